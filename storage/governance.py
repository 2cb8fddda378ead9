"""SQL for room governance: bans and mutes, invitations, join requests and the audit
log (mixed into SqliteStorage)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from storage.api import ENDED_ROOMS_STATE
from storage.chunks import InsertSql, flat, insert_chunks, insert_sql, width
from storage.host import SqliteHost
from storage.records import (
    AuditEntry,
    AuditRecord,
    InvitationRecord,
    JoinRequestRecord,
    SanctionRecord,
)

_SANCTION_TABLES = {"ban": "bans", "mute": "mutes"}
_SANCTION = "room_id, user_id, actor_id, reason, created_at, until"
_AUDIT = "ts, actor, action, target, room, reason, room_id"
_AUDIT_WIDTH = width(_AUDIT)
_insert_audit_sql: InsertSql = functools.partial(insert_sql, "audit", _AUDIT)
_INVITATION = "room_id, user_id, inviter_id, created_at, expires_at"


class GovernanceQueries:
    """Governance tables, as a mixin of SqliteStorage."""

    # -- bans and mutes ----------------------------------------------------

    async def put_sanction(self: SqliteHost, kind: str, record: SanctionRecord) -> None:
        table = _sanction_table(kind)
        await self._write(
            f"INSERT INTO {table} ({_SANCTION}) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (room_id, user_id) DO UPDATE SET actor_id = excluded.actor_id, "
            "reason = excluded.reason, created_at = excluded.created_at, "
            "until = excluded.until",
            (record.room_id, record.user_id, record.actor_id, record.reason,
             record.created_at, record.until))

    async def delete_sanction(self: SqliteHost, kind: str, room_id: int, user_id: int,
                              ran_out_by: float | None = None) -> bool:
        """Delete the sanction; with ``ran_out_by``, only if its ``until`` has passed
        by then (one imposed anew since it was found expired stays)."""
        table = _sanction_table(kind)
        where = "room_id = ? AND user_id = ?"
        params: tuple[int | float, ...] = (room_id, user_id)
        if ran_out_by is not None:
            where += " AND until IS NOT NULL AND until <= ?"
            params += (ran_out_by,)
        return await self._write(f"DELETE FROM {table} WHERE {where}", params) > 0

    async def load_sanctions(self: SqliteHost, kind: str) -> list[SanctionRecord]:
        table = _sanction_table(kind)
        rows = await self._fetch(f"SELECT {_SANCTION} FROM {table} ORDER BY room_id, user_id")
        return [SanctionRecord(*row) for row in rows]

    async def expired_sanctions(self: SqliteHost, kind: str,
                                now: float) -> list[SanctionRecord]:
        """The sanctions whose ``until`` has passed by ``now``."""
        table = _sanction_table(kind)
        rows = await self._fetch(
            f"SELECT {_SANCTION} FROM {table} WHERE until IS NOT NULL AND until <= ? "
            "ORDER BY room_id, user_id", (now,))
        return [SanctionRecord(*row) for row in rows]

    # -- invitations and join requests ---------------------------------------

    async def put_invitation(self: SqliteHost, record: InvitationRecord) -> None:
        await self._write(
            f"INSERT INTO invitations ({_INVITATION}) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (room_id, user_id) DO UPDATE SET inviter_id = excluded.inviter_id, "
            "created_at = excluded.created_at, expires_at = excluded.expires_at",
            (record.room_id, record.user_id, record.inviter_id, record.created_at,
             record.expires_at))

    async def take_invitation(self: SqliteHost, room_id: int, user_id: int,
                              now: float) -> InvitationRecord | None:
        """Use up the invitation: delete it, and return it unless it had expired."""
        invitation = await GovernanceQueries.use_invitation(self, room_id, user_id)
        return invitation if invitation is not None and invitation.expires_at > now else None

    async def use_invitation(self: SqliteHost, room_id: int,
                             user_id: int) -> InvitationRecord | None:
        """Delete the invitation and return it, expired or not (the caller tells
        an expired one apart, to say so)."""
        key = "WHERE room_id = ? AND user_id = ?"
        async with self._transaction() as conn:
            rows = list(await conn.execute_fetchall(
                f"SELECT {_INVITATION} FROM invitations {key}", (room_id, user_id)))
            if rows:
                await conn.execute(f"DELETE FROM invitations {key}", (room_id, user_id))
        return InvitationRecord(*rows[0]) if rows else None

    async def delete_invitation(self: SqliteHost, room_id: int, user_id: int) -> bool:
        count = await self._write(
            "DELETE FROM invitations WHERE room_id = ? AND user_id = ?", (room_id, user_id))
        return count > 0

    async def load_invitations(self: SqliteHost, now: float) -> list[InvitationRecord]:
        rows = await self._fetch(
            f"SELECT {_INVITATION} FROM invitations WHERE expires_at > ? "
            "ORDER BY created_at, room_id, user_id", (now,))
        return [InvitationRecord(*row) for row in rows]

    async def delete_expired_invitations(self: SqliteHost, now: float) -> int:
        return await self._write("DELETE FROM invitations WHERE expires_at <= ?", (now,))

    async def put_join_request(self: SqliteHost, record: JoinRequestRecord) -> bool:
        async with self._transaction() as conn:
            rows = await conn.execute_fetchall(
                "SELECT 1 FROM join_requests WHERE room_id = ? AND user_id = ?",
                (record.room_id, record.user_id))
            await conn.execute(
                "INSERT INTO join_requests (room_id, user_id, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (room_id, user_id) DO UPDATE SET created_at = excluded.created_at",
                (record.room_id, record.user_id, record.created_at))
        return not rows

    async def delete_join_request(self: SqliteHost, room_id: int, user_id: int) -> bool:
        count = await self._write(
            "DELETE FROM join_requests WHERE room_id = ? AND user_id = ?", (room_id, user_id))
        return count > 0

    async def load_join_requests(self: SqliteHost) -> list[JoinRequestRecord]:
        rows = await self._fetch("SELECT room_id, user_id, created_at FROM join_requests "
                                 "ORDER BY created_at, room_id, user_id")
        return [JoinRequestRecord(*row) for row in rows]

    async def join_requests_of(self: SqliteHost, room_id: int) -> list[JoinRequestRecord]:
        rows = await self._fetch("SELECT room_id, user_id, created_at FROM join_requests "
                                 "WHERE room_id = ? ORDER BY created_at, user_id", (room_id,))
        return [JoinRequestRecord(*row) for row in rows]

    async def delete_ended_rooms_state(self: SqliteHost) -> int:
        deleted = 0
        async with self._transaction() as conn:
            for table in ENDED_ROOMS_STATE:
                cursor = await conn.execute(
                    f"DELETE FROM {table} WHERE room_id IN "
                    "(SELECT id FROM rooms WHERE terminated_at IS NOT NULL)")
                deleted += cursor.rowcount
        return deleted

    # -- audit log ---------------------------------------------------------

    async def append_audit(self: SqliteHost, ts: float, actor: str | None, action: str,
                           target: str | None, room: str | None, reason: str,
                           room_id: int | None = None) -> None:
        await self._write(
            "INSERT INTO audit (ts, actor, action, target, room, reason, room_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (ts, actor, action, target, room, reason, room_id))

    async def append_audit_entries(self: SqliteHost, entries: Sequence[AuditEntry]) -> None:
        """Several entries, in order, in one transaction: a batch of log-ins (a few
        statements of the fixed shapes of storage.chunks)."""
        if not entries:
            return
        values = flat(entries)
        await self._in_one_step(
            lambda conn: insert_chunks(conn, _insert_audit_sql, _AUDIT_WIDTH, values))

    async def list_audit(self: SqliteHost, limit: int, room: str | None = None,
                         room_id: int | None = None) -> list[AuditRecord]:
        """The latest ``limit`` entries, oldest first: all, those of one room id,
        or those under one room name (compared case-insensitively)."""
        if limit <= 0:
            return []
        columns = "SELECT id, ts, actor, action, target, room, reason FROM audit"
        params: tuple[int | str, ...]
        if room_id is not None:
            where, params = "WHERE room_id = ?", (room_id, limit)
        elif room is not None:
            where, params = "WHERE room = ?", (room, limit)
        else:
            where, params = "", (limit,)
        rows = await self._fetch(f"{columns} {where} ORDER BY id DESC LIMIT ?", params)
        return [AuditRecord(*row) for row in reversed(rows)]

    async def ended_room(self: SqliteHost, room_id: int | None = None,
                         name: str | None = None) -> tuple[int, str] | None:
        """A terminated room's (id, name): the one of that id, or the one of that name
        (any case) that ended last."""
        where, params = (("id = ?", (room_id,)) if room_id is not None
                         else ("name = ? COLLATE NOCASE", (name,)))
        row = await self._fetch_one(
            f"SELECT id, name FROM rooms WHERE terminated_at IS NOT NULL AND {where} "
            "ORDER BY terminated_at DESC, id DESC LIMIT 1", params)
        return None if row is None else (int(row[0]), str(row[1]))

    async def delete_audit_before(self: SqliteHost, before: float) -> int:
        # Entries come in time order: the scan by id stops at the first one kept.
        return await self._write(
            "DELETE FROM audit WHERE id < COALESCE((SELECT id FROM audit WHERE ts >= ? "
            "ORDER BY id LIMIT 1), (SELECT MAX(id) FROM audit))", (before,))

    async def audit_admins(self: SqliteHost, room_id: int) -> set[str]:
        """Who the room's audit log shows as its admin or owner at some time: its
        creator, and the targets of promotions, ownership changes and transfers."""
        rows = await self._fetch(
            "SELECT actor FROM audit WHERE room_id = ? AND action = 'create' "
            "AND actor IS NOT NULL UNION "
            "SELECT target FROM audit WHERE room_id = ? "
            "AND action IN ('promote', 'owner', 'transfer') AND target IS NOT NULL",
            (room_id, room_id))
        return {str(row[0]) for row in rows}


def _sanction_table(kind: str) -> str:
    try:
        return _SANCTION_TABLES[kind]
    except KeyError:
        raise ValueError(f"sanction kind must be 'ban' or 'mute', not {kind!r}") from None
