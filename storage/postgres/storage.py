"""PostgreSQL implementation of the :class:`storage.api.Storage` protocol.

A pool of asyncpg connections serves the daemon; each writing method is one
transaction (``READ COMMITTED``), its decisions taken by the statements
themselves (a ``DELETE ... RETURNING`` takes a row once, unique indexes refuse
a taken name) or under an advisory lock (the batch of messages), so they hold
whichever node runs them. The schema is created and migrated on ``open`` (see
:mod:`storage.postgres.schema`).

``sole_node``: until several nodes share delivery, only one daemon may serve a
database (two would each count message ids from the same start). ``open``
then takes a session-level advisory lock on a connection of its own and
refuses to open while another daemon holds it.

Driver errors surface as :class:`~storage.api.StorageError`; uniqueness
violations as :class:`~storage.api.Conflict`, other broken rules as
:class:`~storage.api.Refused`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from storage.api import Refused, Storage, StorageError
from storage.host import dumps_object, loads_object
from storage.postgres.content import PgContentQueries
from storage.postgres.governance import PgGovernanceQueries
from storage.postgres.host import (
    ACCOUNT_LOCKS,
    NOTIFICATION_LOCKS,
    changed,
    refuse_over,
    translated,
    where,
)
from storage.postgres.messages import PgMessageQueries
from storage.postgres.schema import migrate, schema_version
from storage.postgres.tokens import PgTokenQueries
from storage.postgres.webhooks import PgWebhookQueries
from storage.quotas import Quota
from storage.records import (
    USER_KIND,
    AssociationRecord,
    JsonDict,
    MemberRecord,
    NotificationRecord,
    RoomRecord,
    UserRecord,
)

if TYPE_CHECKING:
    from storage.postgres.host import PgConnection

# Connections of the pool: enough for the writer, governance and logins at once.
POOL_SIZE = 10
# A statement still running after this long fails (PostgreSQL stuck or unreachable).
COMMAND_TIMEOUT = 60.0
CONNECT_TIMEOUT = 10.0
# With ``fail_fast`` (nodes sharing delivery, whose messages flow through Redis
# while the database is away): a statement, a connection, or a wait for a free
# connection taking longer fails with Unavailable, so a command is refused
# rather than left hanging.
FAST_COMMAND_TIMEOUT = 5.0
FAST_CONNECT_TIMEOUT = 2.0
# The key of the lock a sole node holds for as long as it serves the database.
NODE_LOCK = 0x6368617464 + 2

async def _session_unchanged(conn: asyncpg.Connection) -> None:
    """The pool's reset of a connection given back: nothing to undo. Its default
    runs ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on every
    release, a round trip each time, for session state this storage never sets
    (its advisory locks are transaction-level, and the node lock has a
    connection of its own). An open transaction is still rolled back by asyncpg
    before this runs."""


_USER = "id, name, password_hash, is_admin, created_at, settings, kind, owner_id"
_ROOM = ("id, name, mode, topic, created_at, terminated_at, settings, key, member_limit, "
         "moderated, secret, no_external, topic_lock")
_NOTIFICATION = "id, user_id, kind, payload, created_at"

_UPSERT_ASSOCIATION = """
INSERT INTO user_rooms (user_id, room_id, last_joined) VALUES ($1, $2, $3)
ON CONFLICT (user_id, room_id) DO UPDATE SET last_joined = excluded.last_joined
"""


class PostgresStorage(PgMessageQueries, PgContentQueries, PgGovernanceQueries,
                      PgTokenQueries, PgWebhookQueries):
    """The daemon's state in a PostgreSQL database (see the module docstring)."""

    def __init__(self, url: str, *, sole_node: bool = False, name: str = "chatd",
                 fail_fast: bool = False) -> None:
        self._url = url
        self._sole_node = sole_node
        self._name = name
        self._command_timeout = FAST_COMMAND_TIMEOUT if fail_fast else COMMAND_TIMEOUT
        self._connect_timeout = FAST_CONNECT_TIMEOUT if fail_fast else CONNECT_TIMEOUT
        # How long a statement waits for a free connection (None: as long as it takes).
        self._acquire_timeout = FAST_CONNECT_TIMEOUT if fail_fast else None
        self._pool: asyncpg.Pool | None = None
        self._lock_conn: asyncpg.Connection | None = None

    @property
    def where(self) -> str:
        """The server and database, without credentials (for messages and logs)."""
        return where(self._url)

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        """Connect, migrate the schema to the latest version, and (sole node) take
        the node lock."""
        if self._pool is not None:
            return
        try:
            with translated():
                if self._sole_node:
                    self._lock_conn = await self._claim_database()
                pool = await asyncpg.create_pool(
                    self._url, min_size=1, max_size=POOL_SIZE, timeout=self._connect_timeout,
                    command_timeout=self._command_timeout, reset=_session_unchanged,
                    server_settings={"application_name": self._name})
                try:
                    async with pool.acquire() as conn:
                        await migrate(conn)
                except BaseException:
                    await pool.close()
                    raise
        except StorageError as exc:
            await self._release_lock()
            raise StorageError(f"PostgreSQL at {self.where}: {exc}") from exc
        except BaseException:
            await self._release_lock()
            raise
        self._pool = pool

    async def _claim_database(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT,
                                     server_settings={"application_name": self._name})
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", NODE_LOCK):
            await conn.close()
            raise StorageError("another chatd node is serving this database: without "
                               "cluster.redis, one node may use it (nodes share a database "
                               "through Redis)")
        return conn

    async def _release_lock(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        """Wait for the running operations, then close; closing twice is harmless."""
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(asyncpg.InterfaceError, OSError):
                await pool.close()
        await self._release_lock()

    async def schema_version(self) -> int:
        async with self._connection() as conn:
            return await schema_version(conn)

    async def backup(self, path: str) -> None:
        raise StorageError("a PostgreSQL database is backed up with pg_dump, not by chatd "
                           "(see docs/CLUSTER.md)")

    async def get_meta(self, key: str) -> str | None:
        """A fact recorded about the database (``chatd_meta``), or None."""
        value = await self._fetch_value("SELECT value FROM chatd_meta WHERE key = $1", key)
        return None if value is None else str(value)

    async def set_meta(self, key: str, value: str) -> None:
        await self._execute("INSERT INTO chatd_meta (key, value) VALUES ($1, $2) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, value)

    async def meta_once(self, key: str, value: str) -> str:
        """The fact ``key`` records, set to ``value`` first when it records none
        (nodes starting at once all read the first one's)."""
        await self._execute("INSERT INTO chatd_meta (key, value) VALUES ($1, $2) "
                            "ON CONFLICT (key) DO NOTHING", key, value)
        return str(await self._fetch_value("SELECT value FROM chatd_meta WHERE key = $1", key))

    def transaction(self) -> contextlib.AbstractAsyncContextManager[PgConnection]:
        """One transaction on a connection of the pool, for bulk work beside the
        daemon's (``chatd migrate`` copies a whole database in one)."""
        return self._transaction()

    # -- users -------------------------------------------------------------

    async def create_user(self, name: str, password_hash: bytes, is_admin: bool,
                          created_at: float, kind: str = USER_KIND,
                          owner_id: int | None = None,
                          quotas: Sequence[Quota] = ()) -> UserRecord:
        async with self._transaction() as conn:
            await refuse_over(conn, quotas)
            user_id = await conn.fetchval(
                "INSERT INTO users (name, password_hash, is_admin, created_at, kind, owner_id) "
                "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                name, password_hash, is_admin, created_at, kind, owner_id)
        return UserRecord(int(user_id), name, password_hash, is_admin, created_at, {}, kind,
                          owner_id)

    async def get_user(self, user_id: int) -> UserRecord | None:
        row = await self._fetch_one(f"SELECT {_USER} FROM users WHERE id = $1", user_id)
        return None if row is None else _user(row)

    async def get_user_by_name(self, name: str) -> UserRecord | None:
        row = await self._fetch_one(
            f"SELECT {_USER} FROM users WHERE chatd_fold(name) = chatd_fold($1)", name)
        return None if row is None else _user(row)

    async def list_users(self) -> list[UserRecord]:
        return [_user(row) for row in await self._fetch(f"SELECT {_USER} FROM users ORDER BY id")]

    async def set_password(self, user_id: int, password_hash: bytes) -> None:
        await self._execute("UPDATE users SET password_hash = $1 WHERE id = $2",
                            password_hash, user_id)

    async def set_admin(self, user_id: int, is_admin: bool) -> None:
        await self._execute("UPDATE users SET is_admin = $1 WHERE id = $2", is_admin, user_id)

    async def set_user_settings(self, user_id: int, settings: JsonDict) -> None:
        await self._execute("UPDATE users SET settings = $1 WHERE id = $2",
                            dumps_object(settings), user_id)

    async def merge_user_settings(self, user_id: int, changed: JsonDict) -> None:
        """Replace only the keys of ``changed`` (a change made at the same time to
        other keys, on another node, stays)."""
        await self._execute("UPDATE users SET settings = (settings::jsonb || $1::jsonb)::text "
                            "WHERE id = $2", dumps_object(changed), user_id)

    async def delete_user(self, user_id: int) -> None:
        """Delete the user and what is theirs; their messages stay, with sender_id 0."""
        await self._execute("DELETE FROM users WHERE id = $1", user_id)

    # -- rooms and memberships ---------------------------------------------

    async def create_room(self, name: str, mode: str, owner_id: int, created_at: float,
                          quotas: Sequence[Quota] = ()) -> tuple[RoomRecord, MemberRecord]:
        """The room and its owner's member row; Refused when the owner's account
        is gone.

        A deletion of the owner (on any node) holds the account's advisory lock
        from before it reads the owner's rooms until its row is deleted. Taken
        here, shared (creations by one owner do not wait for each other), it
        makes the two happen one after the other: a creation that comes first
        is committed before the deletion reads the rooms, which then ends the
        room; one that comes second finds no account (checked in a statement
        after the wait, so under a snapshot that sees the deletion)."""
        async with self._transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock_shared($1, $2)",
                               ACCOUNT_LOCKS, owner_id)
            await refuse_over(conn, quotas)
            room_id = await conn.fetchval(
                "INSERT INTO rooms (name, mode, created_at) SELECT $1, $2, $3 "
                "WHERE EXISTS (SELECT 1 FROM users WHERE id = $4) RETURNING id",
                name, mode, created_at, owner_id)
            if room_id is None:
                raise Refused(f"no account {owner_id} to own room {name!r}")
            owner = await _insert_member(conn, room_id, owner_id, "owner", created_at)
        return RoomRecord(int(room_id), name, mode, "", created_at), owner

    async def create_unowned_room(self, name: str, mode: str, created_at: float) -> RoomRecord:
        """A room whose creator is not stored (an IRC guest): no member row."""
        room_id = await self._fetch_value(
            "INSERT INTO rooms (name, mode, created_at) VALUES ($1, $2, $3) RETURNING id",
            name, mode, created_at)
        return RoomRecord(int(room_id), name, mode, "", created_at)

    async def load_active_rooms(self) -> list[RoomRecord]:
        rows = await self._fetch(
            f"SELECT {_ROOM} FROM rooms WHERE terminated_at IS NULL ORDER BY id")
        return [_room(row) for row in rows]

    async def load_members(self) -> list[MemberRecord]:
        rows = await self._fetch(
            "SELECT m.room_id, m.user_id, m.role, m.joined_at, m.role_since, m.seq "
            "FROM members m JOIN rooms r ON r.id = m.room_id "
            "WHERE r.terminated_at IS NULL ORDER BY m.room_id, m.seq")
        return [MemberRecord(*row) for row in rows]

    async def set_room_topic(self, room_id: int, topic: str) -> None:
        await self._execute("UPDATE rooms SET topic = $1 WHERE id = $2", topic, room_id)

    async def set_room_mode(self, room_id: int, mode: str) -> None:
        await self._execute("UPDATE rooms SET mode = $1 WHERE id = $2", mode, room_id)

    async def set_room_modes(self, room_id: int, key: str | None, limit: int | None,
                             moderated: bool, secret: bool, no_external: bool,
                             topic_lock: bool) -> None:
        await self._execute(
            "UPDATE rooms SET key = $1, member_limit = $2, moderated = $3, secret = $4, "
            "no_external = $5, topic_lock = $6 WHERE id = $7",
            key, limit, moderated, secret, no_external, topic_lock, room_id)

    async def set_room_settings(self, room_id: int, settings: JsonDict) -> None:
        await self._execute("UPDATE rooms SET settings = $1 WHERE id = $2",
                            dumps_object(settings), room_id)

    async def terminate_room(self, room_id: int, at: float) -> None:
        """Mark the room terminated (once); its name becomes free for a new room."""
        await self._execute(
            "UPDATE rooms SET terminated_at = $1 WHERE id = $2 AND terminated_at IS NULL",
            at, room_id)

    async def add_member(self, room_id: int, user_id: int, role: str,
                         joined_at: float) -> MemberRecord:
        async with self._transaction() as conn:
            return await _insert_member(conn, room_id, user_id, role, joined_at)

    async def remove_member(self, room_id: int, user_id: int) -> None:
        await self._execute("DELETE FROM members WHERE room_id = $1 AND user_id = $2",
                            room_id, user_id)

    async def member_room_ids(self, user_id: int) -> list[int]:
        """The live rooms ``user_id`` is a member of, by id."""
        rows = await self._fetch(
            "SELECT m.room_id FROM members m JOIN rooms r ON r.id = m.room_id "
            "WHERE m.user_id = $1 AND r.terminated_at IS NULL ORDER BY m.room_id", user_id)
        return [row[0] for row in rows]

    async def set_roles(self, room_id: int, changes: Sequence[tuple[int, str]],
                        at: float) -> None:
        """Apply the role changes; role_since moves only when the role really changes."""
        if not changes:
            return
        async with self._transaction() as conn:
            await conn.executemany(
                "UPDATE members SET role = $1, role_since = $2 "
                "WHERE room_id = $3 AND user_id = $4 AND role <> $1",
                [(role, at, room_id, user_id) for user_id, role in changes])

    async def list_associations(self, user_id: int) -> list[AssociationRecord]:
        rows = await self._fetch(
            "SELECT a.user_id, a.room_id, r.name, a.last_joined, "
            "r.terminated_at IS NOT NULL AS terminated "
            "FROM user_rooms a JOIN rooms r ON r.id = a.room_id WHERE a.user_id = $1 "
            "ORDER BY a.last_joined DESC, a.room_id DESC", user_id)
        return [AssociationRecord(*row) for row in rows]

    async def delete_stale_associations(self, before: float) -> int:
        """Forget associations last joined before ``before``, except of users banned
        there or still members."""
        return await self._execute(
            "DELETE FROM user_rooms a WHERE a.last_joined < $1 AND NOT EXISTS ("
            "SELECT 1 FROM bans b WHERE b.room_id = a.room_id AND b.user_id = a.user_id) "
            "AND NOT EXISTS (SELECT 1 FROM members m "
            "WHERE m.room_id = a.room_id AND m.user_id = a.user_id)", before)

    # -- notifications -----------------------------------------------------

    async def add_notification(self, user_id: int, kind: str, payload: JsonDict,
                               created_at: float) -> NotificationRecord:
        notification_id = await self._fetch_value(
            "INSERT INTO notifications (user_id, kind, payload, created_at) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            user_id, kind, dumps_object(payload), created_at)
        return NotificationRecord(int(notification_id), user_id, kind, payload, created_at)

    async def list_notifications(self, user_id: int, limit: int | None = None,
                                 skip: int = 0) -> list[NotificationRecord]:
        """A user's notifications, oldest first: the newest ``limit`` of them after the
        newest ``skip`` (a page of them)."""
        rows = await self._fetch(
            f"SELECT {_NOTIFICATION} FROM notifications WHERE user_id = $1 ORDER BY id DESC"
            " LIMIT $2 OFFSET $3", user_id, limit, skip)
        return [NotificationRecord(row[0], row[1], row[2], loads_object(row[3]), row[4])
                for row in reversed(rows)]

    async def count_notifications(self, user_id: int) -> int:
        return int(await self._fetch_value(
            "SELECT COUNT(*) FROM notifications WHERE user_id = $1", user_id))

    async def clear_notifications(self, user_id: int) -> int:
        async with self._transaction() as conn:
            cleared = changed(await conn.execute(
                "DELETE FROM notifications WHERE user_id = $1", user_id))
            await conn.execute("DELETE FROM notifications_dropped WHERE user_id = $1",
                               user_id)
        return cleared

    async def add_notification_kept(self, user_id: int, kind: str, payload: JsonDict,
                                    created_at: float,
                                    keep: int) -> tuple[NotificationRecord, int]:
        async with self._transaction() as conn:
            # One writer of the account's notifications at a time: under READ
            # COMMITTED each would otherwise not see the other's new row, and both
            # keep ``keep`` of the rest (more than ``keep`` left in all).
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", NOTIFICATION_LOCKS,
                               user_id)
            notification_id = await conn.fetchval(
                "INSERT INTO notifications (user_id, kind, payload, created_at) "
                "VALUES ($1, $2, $3, $4) RETURNING id",
                user_id, kind, dumps_object(payload), created_at)
            dropped = int(await conn.fetchval(
                "WITH gone AS (DELETE FROM notifications WHERE user_id = $1 AND id <= ("
                "SELECT id FROM notifications WHERE user_id = $1 ORDER BY id DESC "
                "LIMIT 1 OFFSET $2) RETURNING 1), counted AS (INSERT INTO "
                "notifications_dropped (user_id, dropped) SELECT $1, COUNT(*) FROM gone "
                "HAVING COUNT(*) > 0 ON CONFLICT (user_id) DO UPDATE SET dropped = "
                "notifications_dropped.dropped + excluded.dropped) "
                "SELECT COUNT(*) FROM gone", user_id, keep))
        note = NotificationRecord(int(notification_id), user_id, kind, payload, created_at)
        return note, dropped

    async def take_dropped_notifications(self, user_id: int) -> int:
        dropped = await self._fetch_value(
            "DELETE FROM notifications_dropped WHERE user_id = $1 RETURNING dropped", user_id)
        return 0 if dropped is None else int(dropped)

    async def dropped_notifications(self, user_id: int) -> int:
        dropped = await self._fetch_value(
            "SELECT dropped FROM notifications_dropped WHERE user_id = $1", user_id)
        return 0 if dropped is None else int(dropped)

    async def dropped_notification_counts(self) -> dict[int, int]:
        rows = await self._fetch("SELECT user_id, dropped FROM notifications_dropped")
        return {int(row[0]): int(row[1]) for row in rows}

    async def delete_notifications_before(self, before: float) -> int:
        return await self._execute("DELETE FROM notifications WHERE created_at < $1", before)

    async def notification_counts(self) -> dict[int, int]:
        """How many notifications each user has (users with none are left out)."""
        rows = await self._fetch("SELECT user_id, COUNT(*) FROM notifications GROUP BY user_id")
        return {int(row[0]): int(row[1]) for row in rows}

    async def expire_notifications(self, before: float) -> dict[int, int]:
        """Delete the notifications created before ``before``; how many of each user's
        (one statement: the rows deleted are the rows counted)."""
        rows = await self._fetch(
            "WITH gone AS (DELETE FROM notifications WHERE created_at < $1 RETURNING user_id) "
            "SELECT user_id, COUNT(*) FROM gone GROUP BY user_id", before)
        return {int(row[0]): int(row[1]) for row in rows}

    # -- plumbing ----------------------------------------------------------

    def _db(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StorageError("storage is not open")
        return self._pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[PgConnection]:
        """A connection of the pool, for statements that need no transaction."""
        pool = self._db()
        with translated():
            async with pool.acquire(timeout=self._acquire_timeout) as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[PgConnection]:
        """One transaction on a connection of the pool; rolled back on any error."""
        async with self._connection() as conn:
            with translated():
                async with conn.transaction():
                    yield conn

    async def _execute(self, sql: str, *args: Any) -> int:
        """Run one statement (its own transaction); the number of rows it changed."""
        async with self._connection() as conn:
            return changed(await conn.execute(sql, *args))

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self._connection() as conn:
            return list(await conn.fetch(sql, *args))

    async def _fetch_one(self, sql: str, *args: Any) -> asyncpg.Record | None:
        async with self._connection() as conn:
            return await conn.fetchrow(sql, *args)

    async def _fetch_value(self, sql: str, *args: Any) -> Any:
        async with self._connection() as conn:
            return await conn.fetchval(sql, *args)


if TYPE_CHECKING:
    _CONFORMS: Storage = PostgresStorage("postgresql://")


async def _insert_member(conn: PgConnection, room_id: int, user_id: int, role: str,
                         joined_at: float) -> MemberRecord:
    seq = await conn.fetchval(
        "INSERT INTO members (room_id, user_id, role, joined_at, role_since) "
        "VALUES ($1, $2, $3, $4, $4) RETURNING seq", room_id, user_id, role, joined_at)
    await conn.execute(_UPSERT_ASSOCIATION, user_id, room_id, joined_at)
    return MemberRecord(room_id, user_id, role, joined_at, joined_at, int(seq))


def _user(row: asyncpg.Record) -> UserRecord:
    return UserRecord(id=row[0], name=row[1], password_hash=bytes(row[2]), is_admin=row[3],
                      created_at=row[4], settings=loads_object(row[5]), kind=row[6],
                      owner_id=row[7])


def _room(row: asyncpg.Record) -> RoomRecord:
    return RoomRecord(id=row[0], name=row[1], mode=row[2], topic=row[3], created_at=row[4],
                      terminated_at=row[5], settings=loads_object(row[6]), key=row[7],
                      member_limit=row[8], moderated=row[9], secret=row[10],
                      no_external=row[11], topic_lock=row[12])
