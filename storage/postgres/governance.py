"""SQL for room governance on PostgreSQL: bans and mutes, invitations, join
requests, the audit log and user blocks (mixed into PostgresStorage).

Where SQLite reads and then writes inside one ``BEGIN IMMEDIATE`` (taking an
invitation, expiring sanctions), one ``DELETE ... RETURNING`` does both here:
a row is taken by exactly one caller however many nodes ask at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from storage.api import ENDED_ROOMS_STATE
from storage.postgres.host import PgHost, changed, hold_quotas, refuse_over
from storage.quotas import Quota
from storage.records import (
    AuditEntry,
    AuditRecord,
    InvitationRecord,
    JoinRequestRecord,
    SanctionRecord,
    UserBlockRecord,
)

_SANCTION_TABLES = {"ban": "bans", "mute": "mutes"}
_SANCTION = "room_id, user_id, actor_id, reason, created_at, until"
_INVITATION = "room_id, user_id, inviter_id, created_at, expires_at"
_BLOCK_EXISTS = "SELECT 1 FROM user_blocks WHERE user_id = $1 AND blocked_id = $2"


class PgGovernanceQueries:
    """Governance tables, as a mixin of PostgresStorage."""

    # -- bans and mutes ----------------------------------------------------

    async def put_sanction(self: PgHost, kind: str, record: SanctionRecord) -> None:
        table = _sanction_table(kind)
        await self._execute(
            f"INSERT INTO {table} ({_SANCTION}) VALUES ($1, $2, $3, $4, $5, $6) "
            "ON CONFLICT (room_id, user_id) DO UPDATE SET actor_id = excluded.actor_id, "
            "reason = excluded.reason, created_at = excluded.created_at, "
            "until = excluded.until",
            record.room_id, record.user_id, record.actor_id, record.reason,
            record.created_at, record.until)

    async def delete_sanction(self: PgHost, kind: str, room_id: int, user_id: int,
                              ran_out_by: float | None = None) -> bool:
        """Delete the sanction; with ``ran_out_by``, only if its ``until`` has passed
        by then (one imposed anew since it was found expired stays)."""
        table = _sanction_table(kind)
        where = "room_id = $1 AND user_id = $2"
        params: list[int | float] = [room_id, user_id]
        if ran_out_by is not None:
            where += " AND until IS NOT NULL AND until <= $3"
            params.append(ran_out_by)
        return await self._execute(f"DELETE FROM {table} WHERE {where}", *params) > 0

    async def load_sanctions(self: PgHost, kind: str) -> list[SanctionRecord]:
        table = _sanction_table(kind)
        rows = await self._fetch(f"SELECT {_SANCTION} FROM {table} ORDER BY room_id, user_id")
        return [SanctionRecord(*row) for row in rows]

    async def expired_sanctions(self: PgHost, kind: str, now: float) -> list[SanctionRecord]:
        """The sanctions whose ``until`` has passed by ``now``."""
        table = _sanction_table(kind)
        rows = await self._fetch(
            f"SELECT {_SANCTION} FROM {table} WHERE until IS NOT NULL AND until <= $1 "
            "ORDER BY room_id, user_id", now)
        return [SanctionRecord(*row) for row in rows]

    # -- invitations and join requests ---------------------------------------

    async def put_invitation(self: PgHost, record: InvitationRecord) -> None:
        await self._execute(
            f"INSERT INTO invitations ({_INVITATION}) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (room_id, user_id) DO UPDATE SET inviter_id = excluded.inviter_id, "
            "created_at = excluded.created_at, expires_at = excluded.expires_at",
            record.room_id, record.user_id, record.inviter_id, record.created_at,
            record.expires_at)

    async def take_invitation(self: PgHost, room_id: int, user_id: int,
                              now: float) -> InvitationRecord | None:
        """Use up the invitation: delete it, and return it unless it had expired."""
        invitation = await PgGovernanceQueries.use_invitation(self, room_id, user_id)
        return invitation if invitation is not None and invitation.expires_at > now else None

    async def use_invitation(self: PgHost, room_id: int,
                             user_id: int) -> InvitationRecord | None:
        """Delete the invitation and return it, expired or not."""
        row = await self._fetch_one(
            "DELETE FROM invitations WHERE room_id = $1 AND user_id = $2 "
            f"RETURNING {_INVITATION}", room_id, user_id)
        return None if row is None else InvitationRecord(*row)

    async def delete_invitation(self: PgHost, room_id: int, user_id: int) -> bool:
        return await self._execute(
            "DELETE FROM invitations WHERE room_id = $1 AND user_id = $2", room_id, user_id) > 0

    async def load_invitations(self: PgHost, now: float) -> list[InvitationRecord]:
        rows = await self._fetch(
            f"SELECT {_INVITATION} FROM invitations WHERE expires_at > $1 "
            "ORDER BY created_at, room_id, user_id", now)
        return [InvitationRecord(*row) for row in rows]

    async def delete_expired_invitations(self: PgHost, now: float) -> int:
        return await self._execute("DELETE FROM invitations WHERE expires_at <= $1", now)

    async def put_join_request(self: PgHost, record: JoinRequestRecord) -> bool:
        # xmax is 0 in a row version just inserted, the updating transaction's id
        # in one the conflict updated.
        return bool(await self._fetch_value(
            "INSERT INTO join_requests (room_id, user_id, created_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (room_id, user_id) DO UPDATE SET created_at = excluded.created_at "
            "RETURNING (xmax = 0)", record.room_id, record.user_id, record.created_at))

    async def delete_join_request(self: PgHost, room_id: int, user_id: int) -> bool:
        return await self._execute(
            "DELETE FROM join_requests WHERE room_id = $1 AND user_id = $2",
            room_id, user_id) > 0

    async def load_join_requests(self: PgHost) -> list[JoinRequestRecord]:
        rows = await self._fetch("SELECT room_id, user_id, created_at FROM join_requests "
                                 "ORDER BY created_at, room_id, user_id")
        return [JoinRequestRecord(*row) for row in rows]

    async def join_requests_of(self: PgHost, room_id: int) -> list[JoinRequestRecord]:
        rows = await self._fetch("SELECT room_id, user_id, created_at FROM join_requests "
                                 "WHERE room_id = $1 ORDER BY created_at, user_id", room_id)
        return [JoinRequestRecord(*row) for row in rows]

    async def delete_ended_rooms_state(self: PgHost) -> int:
        deleted = 0
        async with self._transaction() as conn:
            for table in ENDED_ROOMS_STATE:
                deleted += changed(await conn.execute(
                    f"DELETE FROM {table} WHERE room_id IN "
                    "(SELECT id FROM rooms WHERE terminated_at IS NOT NULL)"))
        return deleted

    # -- audit log ---------------------------------------------------------

    async def append_audit(self: PgHost, ts: float, actor: str | None, action: str,
                           target: str | None, room: str | None, reason: str,
                           room_id: int | None = None) -> None:
        await self._execute(
            "INSERT INTO audit (ts, actor, action, target, room, reason, room_id) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)", ts, actor, action, target, room, reason,
            room_id)

    async def append_audit_entries(self: PgHost, entries: Sequence[AuditEntry]) -> None:
        """Several entries, in order (a batch of log-ins), in one statement."""
        if not entries:
            return
        columns = list(zip(*entries, strict=True))
        await self._execute(
            "INSERT INTO audit (ts, actor, action, target, room, reason, room_id) "
            "SELECT ts, actor, action, target, room, reason, room_id "
            "FROM unnest($1::float8[], $2::text[], $3::text[], $4::text[], "
            "$5::text[], $6::text[], $7::bigint[]) WITH ORDINALITY AS e(ts, actor, action, "
            "target, room, reason, room_id, n) ORDER BY n",
            *(list(column) for column in columns))

    async def list_audit(self: PgHost, limit: int, room: str | None = None,
                         room_id: int | None = None) -> list[AuditRecord]:
        """The latest ``limit`` entries, oldest first: all, those of one room id,
        or those under one room name (compared ignoring ASCII case)."""
        if limit <= 0:
            return []
        columns = "SELECT id, ts, actor, action, target, room, reason FROM audit"
        if room_id is not None:
            rows = await self._fetch(f"{columns} WHERE room_id = $1 ORDER BY id DESC LIMIT $2",
                                     room_id, limit)
        elif room is not None:
            rows = await self._fetch(f"{columns} WHERE chatd_fold(room) = chatd_fold($1) "
                                     "ORDER BY id DESC LIMIT $2", room, limit)
        else:
            rows = await self._fetch(f"{columns} ORDER BY id DESC LIMIT $1", limit)
        return [AuditRecord(*row) for row in reversed(rows)]

    async def ended_room(self: PgHost, room_id: int | None = None,
                         name: str | None = None) -> tuple[int, str] | None:
        """A terminated room's (id, name): the one of that id, or the one of that name
        (any case) that ended last."""
        condition = "id = $1" if room_id is not None else "chatd_fold(name) = chatd_fold($1)"
        row = await self._fetch_one(
            f"SELECT id, name FROM rooms WHERE terminated_at IS NOT NULL AND {condition} "
            "ORDER BY terminated_at DESC, id DESC LIMIT 1",
            room_id if room_id is not None else name)
        return None if row is None else (int(row[0]), str(row[1]))

    async def delete_audit_before(self: PgHost, before: float) -> int:
        # Entries come in time order: the scan by id stops at the first one kept.
        return await self._execute(
            "DELETE FROM audit WHERE id < COALESCE((SELECT id FROM audit WHERE ts >= $1 "
            "ORDER BY id LIMIT 1), (SELECT MAX(id) FROM audit))", before)

    async def audit_admins(self: PgHost, room_id: int) -> set[str]:
        """Who the room's audit log shows as its admin or owner at some time."""
        rows = await self._fetch(
            "SELECT actor FROM audit WHERE room_id = $1 AND action = 'create' "
            "AND actor IS NOT NULL UNION "
            "SELECT target FROM audit WHERE room_id = $1 "
            "AND action IN ('promote', 'owner', 'transfer') AND target IS NOT NULL", room_id)
        return {str(row[0]) for row in rows}

    # -- users who block another user's direct messages ------------------------

    async def put_user_block(self: PgHost, record: UserBlockRecord,
                             quotas: Sequence[Quota] = ()) -> bool:
        """Store a block; False when it exists already (it keeps its time), which is
        no write and so passes no quota, even one full by then."""
        async with self._transaction() as conn:
            # Under the holder's lock: a block made meanwhile through another node
            # (which holds it to count) is committed, and found, before this looks.
            await hold_quotas(conn, quotas)
            if await conn.fetchval(_BLOCK_EXISTS, record.user_id, record.blocked_id):
                return False
            await refuse_over(conn, quotas)
            status = await conn.execute(
                "INSERT INTO user_blocks (user_id, blocked_id, created_at) "
                "VALUES ($1, $2, $3) ON CONFLICT (user_id, blocked_id) DO NOTHING",
                record.user_id, record.blocked_id, record.created_at)
            return changed(status) > 0

    async def delete_user_block(self: PgHost, user_id: int, blocked_id: int) -> bool:
        return await self._execute(
            "DELETE FROM user_blocks WHERE user_id = $1 AND blocked_id = $2",
            user_id, blocked_id) > 0

    async def list_user_blocks(self: PgHost, user_id: int) -> list[UserBlockRecord]:
        """The blocks ``user_id`` made."""
        rows = await self._fetch("SELECT user_id, blocked_id, created_at FROM user_blocks "
                                 "WHERE user_id = $1 ORDER BY created_at, blocked_id", user_id)
        return [UserBlockRecord(*row) for row in rows]

    async def load_user_blocks(self: PgHost) -> list[UserBlockRecord]:
        rows = await self._fetch("SELECT user_id, blocked_id, created_at FROM user_blocks "
                                 "ORDER BY user_id, created_at, blocked_id")
        return [UserBlockRecord(*row) for row in rows]


def _sanction_table(kind: str) -> str:
    try:
        return _SANCTION_TABLES[kind]
    except KeyError:
        raise ValueError(f"sanction kind must be 'ban' or 'mute', not {kind!r}") from None
