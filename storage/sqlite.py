"""SQLite implementation of the :class:`storage.api.Storage` protocol.

One aiosqlite connection (one worker thread) serves the whole daemon. An
asyncio lock serialises the operations, so the transactions of concurrent
coroutines never interleave on the shared connection; every writing method is
one ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction. The database runs in WAL
mode with foreign keys enforced; the schema lives in :mod:`storage.migrations`.

SQLite errors surface as :class:`~storage.api.StorageError`; uniqueness
violations (taken names, duplicate rows) as :class:`~storage.api.Conflict`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import aiosqlite

from storage.api import Conflict, Refused, Storage, StorageError, Unavailable
from storage.content import ContentQueries
from storage.governance import GovernanceQueries
from storage.host import dumps_object, loads_object, refuse_over, rowid
from storage.messages import MessageQueries
from storage.migrations import migrate
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
from storage.tokens import TokenQueries
from storage.user_blocks import UserBlockQueries
from storage.webhooks import WebhookQueries

log = logging.getLogger("storage.sqlite")
# The database and the -wal and -shm files SQLite keeps beside it.
_DATABASE_FILES = ("", "-wal", "-shm")
# The first bytes of every SQLite database file.
_SQLITE_HEADER = b"SQLite format 3\x00"

BUSY_TIMEOUT_MS = 5000
MEMORY = ":memory:"
_MAX_ID = 2**63 - 1
# Another connection holds the lock (past busy_timeout): Unavailable, not broken.
_BUSY_ERRORS = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_UNIQUE_ERRORS = frozenset({sqlite3.SQLITE_CONSTRAINT_UNIQUE,
                            sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY})
_PRAGMAS = ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")

Params = Sequence[Any] | dict[str, Any]
T = TypeVar("T")

_USER = "id, name, password_hash, is_admin, created_at, settings, kind, owner_id"
_ROOM = ("id, name, mode, topic, created_at, terminated_at, settings, key, member_limit, "
         "moderated, secret, no_external, topic_lock")
# Adds to a user's count of dropped notifications (a row made at the first).
_COUNT_DROPPED = ("INSERT INTO notifications_dropped (user_id, dropped) VALUES (?, ?) "
                  "ON CONFLICT (user_id) DO UPDATE SET dropped = dropped + excluded.dropped")
_NOTIFICATION = "id, user_id, kind, payload, created_at"

_UPSERT_ASSOCIATION = """
INSERT INTO user_rooms (user_id, room_id, last_joined) VALUES (?, ?, ?)
ON CONFLICT (user_id, room_id) DO UPDATE SET last_joined = excluded.last_joined
"""


class SqliteStorage(MessageQueries, ContentQueries, GovernanceQueries, TokenQueries,
                    UserBlockQueries, WebhookQueries):
    """The daemon's state in one SQLite file (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self._path = path if path == MEMORY else os.path.abspath(path)
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        """Connect, configure the connection and migrate the schema to the latest version."""
        if self._conn is not None:
            return
        # Refuse a missing directory up front: a failed aiosqlite.connect leaves its
        # worker thread behind, which later posts to an event loop that may be gone.
        folder = os.path.dirname(self._path)
        if self._path != MEMORY and not await asyncio.to_thread(os.path.isdir, folder):
            raise StorageError(f"unable to open database file {self._path}: "
                               f"the directory {folder} does not exist")
        try:
            self._conn = await self._connect()
        except (StorageError, OSError) as exc:
            raise await asyncio.to_thread(_opening_error, self._path, exc) from exc

    async def _connect(self) -> aiosqlite.Connection:
        if self._path != MEMORY:
            await asyncio.to_thread(_owner_only, self._path)
        with _translated():
            conn = await aiosqlite.connect(self._path, isolation_level=None,
                                           timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            conn.row_factory = sqlite3.Row
            with _translated():
                await _configure(conn)
                await migrate(conn)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def close(self) -> None:
        """Wait for the running operation, then close; closing twice is harmless."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        async with self._lock:
            with contextlib.suppress(sqlite3.Error):
                await conn.execute("PRAGMA optimize")
            await conn.close()

    async def schema_version(self) -> int:
        rows = await self._fetch("PRAGMA user_version")
        return int(rows[0][0])

    async def pragmas(self) -> dict[str, Any]:
        """The connection's settings (journal_mode, foreign_keys, ...), for diagnostics."""
        return {name: (await self._fetch(f"PRAGMA {name}"))[0][0] for name in _PRAGMAS}

    async def backup(self, path: str) -> None:
        """Write a consistent copy of the database to ``path`` while the daemon keeps going.

        The copy is made from a second connection in a thread (one backup step
        holding a read snapshot, so WAL lets the daemon write meanwhile), into
        ``path + ".partial"`` that then replaces ``path``.
        """
        self._db()
        if self._path == MEMORY:
            raise StorageError("an in-memory database cannot be backed up")
        try:
            with _translated():
                await asyncio.to_thread(_copy_database, self._path, path)
        except OSError as exc:
            raise StorageError(f"backup to {path} failed: {exc}") from exc

    # -- users -------------------------------------------------------------

    async def create_user(self, name: str, password_hash: bytes, is_admin: bool,
                          created_at: float, kind: str = USER_KIND,
                          owner_id: int | None = None,
                          quotas: Sequence[Quota] = ()) -> UserRecord:
        async with self._transaction() as conn:
            await refuse_over(conn, quotas)
            cursor = await conn.execute(
                "INSERT INTO users (name, password_hash, is_admin, created_at, kind, owner_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, password_hash, is_admin, created_at, kind, owner_id))
            user_id = rowid(cursor)
        return UserRecord(user_id, name, password_hash, is_admin, created_at, {}, kind, owner_id)

    async def get_user(self, user_id: int) -> UserRecord | None:
        row = await self._fetch_one(f"SELECT {_USER} FROM users WHERE id = ?", (user_id,))
        return None if row is None else _user(row)

    async def get_user_by_name(self, name: str) -> UserRecord | None:
        row = await self._fetch_one(f"SELECT {_USER} FROM users WHERE name = ?", (name,))
        return None if row is None else _user(row)

    async def list_users(self) -> list[UserRecord]:
        return [_user(row) for row in await self._fetch(f"SELECT {_USER} FROM users ORDER BY id")]

    async def set_password(self, user_id: int, password_hash: bytes) -> None:
        await self._write("UPDATE users SET password_hash = ? WHERE id = ?",
                          (password_hash, user_id))

    async def set_admin(self, user_id: int, is_admin: bool) -> None:
        await self._write("UPDATE users SET is_admin = ? WHERE id = ?", (is_admin, user_id))

    async def set_user_settings(self, user_id: int, settings: JsonDict) -> None:
        await self._write("UPDATE users SET settings = ? WHERE id = ?",
                          (dumps_object(settings), user_id))

    async def merge_user_settings(self, user_id: int, changed: JsonDict) -> None:
        """Replace only the keys of ``changed`` (a change made at the same time to
        other keys, by another process, stays)."""
        await self._write("UPDATE users SET settings = json_patch(settings, ?) WHERE id = ?",
                          (dumps_object(changed), user_id))

    async def delete_user(self, user_id: int) -> None:
        """Delete the user and what is theirs; their messages stay, with sender_id 0."""
        await self._write("DELETE FROM users WHERE id = ?", (user_id,))

    # -- rooms and memberships ---------------------------------------------

    async def create_room(self, name: str, mode: str, owner_id: int, created_at: float,
                          quotas: Sequence[Quota] = ()) -> tuple[RoomRecord, MemberRecord]:
        """The room and its owner's member row; Refused when the owner's account
        is gone. The check and the rows are one write transaction (SQLite runs
        them one at a time): a deletion is wholly before it or wholly after."""
        async with self._transaction() as conn:
            await refuse_over(conn, quotas)
            cursor = await conn.execute(
                "INSERT INTO rooms (name, mode, created_at) SELECT ?, ?, ? "
                "WHERE EXISTS (SELECT 1 FROM users WHERE id = ?)",
                (name, mode, created_at, owner_id))
            if cursor.rowcount != 1:
                raise Refused(f"no account {owner_id} to own room {name!r}")
            room_id = rowid(cursor)
            owner = await _insert_member(conn, room_id, owner_id, "owner", created_at)
        return RoomRecord(room_id, name, mode, "", created_at), owner

    async def create_unowned_room(self, name: str, mode: str, created_at: float) -> RoomRecord:
        """A room whose creator is not stored (an IRC guest): no member row."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO rooms (name, mode, created_at) VALUES (?, ?, ?)",
                (name, mode, created_at))
            room_id = rowid(cursor)
        return RoomRecord(room_id, name, mode, "", created_at)

    async def load_active_rooms(self) -> list[RoomRecord]:
        rows = await self._fetch(
            f"SELECT {_ROOM} FROM rooms WHERE terminated_at IS NULL ORDER BY id")
        return [_room(row) for row in rows]

    async def load_members(self) -> list[MemberRecord]:
        rows = await self._fetch(
            "SELECT m.room_id, m.user_id, m.role, m.joined_at, m.role_since, m.seq "
            "FROM members m JOIN rooms r ON r.id = m.room_id "
            "WHERE r.terminated_at IS NULL ORDER BY m.room_id, m.seq")
        return [_member(row) for row in rows]

    async def set_room_topic(self, room_id: int, topic: str) -> None:
        await self._write("UPDATE rooms SET topic = ? WHERE id = ?", (topic, room_id))

    async def set_room_mode(self, room_id: int, mode: str) -> None:
        await self._write("UPDATE rooms SET mode = ? WHERE id = ?", (mode, room_id))

    async def set_room_modes(self, room_id: int, key: str | None, limit: int | None,
                             moderated: bool, secret: bool, no_external: bool,
                             topic_lock: bool) -> None:
        await self._write(
            "UPDATE rooms SET key = ?, member_limit = ?, moderated = ?, secret = ?, "
            "no_external = ?, topic_lock = ? WHERE id = ?",
            (key, limit, moderated, secret, no_external, topic_lock, room_id))

    async def set_room_settings(self, room_id: int, settings: JsonDict) -> None:
        await self._write("UPDATE rooms SET settings = ? WHERE id = ?",
                          (dumps_object(settings), room_id))

    async def terminate_room(self, room_id: int, at: float) -> None:
        """Mark the room terminated (once); its name becomes free for a new room."""
        await self._write(
            "UPDATE rooms SET terminated_at = ? WHERE id = ? AND terminated_at IS NULL",
            (at, room_id))

    async def add_member(self, room_id: int, user_id: int, role: str,
                         joined_at: float) -> MemberRecord:
        async with self._transaction() as conn:
            return await _insert_member(conn, room_id, user_id, role, joined_at)

    async def remove_member(self, room_id: int, user_id: int) -> None:
        await self._write("DELETE FROM members WHERE room_id = ? AND user_id = ?",
                          (room_id, user_id))

    async def member_room_ids(self, user_id: int) -> list[int]:
        """The live rooms ``user_id`` is a member of, by id."""
        rows = await self._fetch(
            "SELECT m.room_id FROM members m JOIN rooms r ON r.id = m.room_id "
            "WHERE m.user_id = ? AND r.terminated_at IS NULL ORDER BY m.room_id", (user_id,))
        return [row[0] for row in rows]

    async def set_roles(self, room_id: int, changes: Sequence[tuple[int, str]],
                        at: float) -> None:
        """Apply the role changes; role_since moves only when the role really changes."""
        params = [(role, at, room_id, user_id, role) for user_id, role in changes]
        if not params:
            return
        async with self._transaction() as conn:
            await conn.executemany(
                "UPDATE members SET role = ?, role_since = ? "
                "WHERE room_id = ? AND user_id = ? AND role <> ?", params)

    async def list_associations(self, user_id: int) -> list[AssociationRecord]:
        rows = await self._fetch(
            "SELECT a.user_id, a.room_id, r.name, a.last_joined, "
            "r.terminated_at IS NOT NULL AS terminated "
            "FROM user_rooms a JOIN rooms r ON r.id = a.room_id WHERE a.user_id = ? "
            "ORDER BY a.last_joined DESC, a.room_id DESC", (user_id,))
        return [AssociationRecord(row[0], row[1], row[2], row[3], bool(row[4]))
                for row in rows]

    async def delete_stale_associations(self, before: float) -> int:
        """Forget associations last joined before ``before``, except of users banned
        there or still members (a long-standing member keeps their link)."""
        return await self._write(
            "DELETE FROM user_rooms WHERE last_joined < ? AND NOT EXISTS ("
            "SELECT 1 FROM bans b "
            "WHERE b.room_id = user_rooms.room_id AND b.user_id = user_rooms.user_id) "
            "AND NOT EXISTS (SELECT 1 FROM members m "
            "WHERE m.room_id = user_rooms.room_id AND m.user_id = user_rooms.user_id)",
            (before,))

    # -- notifications -----------------------------------------------------

    async def add_notification(self, user_id: int, kind: str, payload: JsonDict,
                               created_at: float) -> NotificationRecord:
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO notifications (user_id, kind, payload, created_at) "
                "VALUES (?, ?, ?, ?)", (user_id, kind, dumps_object(payload), created_at))
            notification_id = rowid(cursor)
        return NotificationRecord(notification_id, user_id, kind, payload, created_at)

    async def list_notifications(self, user_id: int, limit: int | None = None,
                                 skip: int = 0) -> list[NotificationRecord]:
        """A user's notifications, oldest first: the newest ``limit`` of them after the
        newest ``skip`` (a page of them)."""
        rows = await self._fetch(
            f"SELECT {_NOTIFICATION} FROM notifications WHERE user_id = ? ORDER BY id DESC"
            " LIMIT ? OFFSET ?", (user_id, -1 if limit is None else limit, skip))
        return [NotificationRecord(row[0], row[1], row[2], loads_object(row[3]), row[4])
                for row in reversed(rows)]

    async def count_notifications(self, user_id: int) -> int:
        rows = await self._fetch("SELECT COUNT(*) FROM notifications WHERE user_id = ?",
                                 (user_id,))
        return int(rows[0][0])

    async def clear_notifications(self, user_id: int) -> int:
        async with self._transaction() as conn:
            cursor = await conn.execute("DELETE FROM notifications WHERE user_id = ?",
                                        (user_id,))
            await conn.execute("DELETE FROM notifications_dropped WHERE user_id = ?",
                               (user_id,))
        return cursor.rowcount

    async def add_notification_kept(self, user_id: int, kind: str, payload: JsonDict,
                                    created_at: float,
                                    keep: int) -> tuple[NotificationRecord, int]:
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO notifications (user_id, kind, payload, created_at) "
                "VALUES (?, ?, ?, ?)", (user_id, kind, dumps_object(payload), created_at))
            notification_id = rowid(cursor)
            trimmed = await conn.execute(
                "DELETE FROM notifications WHERE user_id = ? AND id <= (SELECT id FROM "
                "notifications WHERE user_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (user_id, user_id, keep))
            dropped = trimmed.rowcount
            if dropped > 0:
                await conn.execute(_COUNT_DROPPED, (user_id, dropped))
        note = NotificationRecord(notification_id, user_id, kind, payload, created_at)
        return note, max(dropped, 0)

    async def take_dropped_notifications(self, user_id: int) -> int:
        async with self._transaction() as conn:
            rows = list(await conn.execute_fetchall(
                "DELETE FROM notifications_dropped WHERE user_id = ? RETURNING dropped",
                (user_id,)))
        return int(rows[0][0]) if rows else 0

    async def dropped_notifications(self, user_id: int) -> int:
        row = await self._fetch_one(
            "SELECT dropped FROM notifications_dropped WHERE user_id = ?", (user_id,))
        return 0 if row is None else int(row[0])

    async def dropped_notification_counts(self) -> dict[int, int]:
        rows = await self._fetch("SELECT user_id, dropped FROM notifications_dropped")
        return {int(row[0]): int(row[1]) for row in rows}

    async def delete_notifications_before(self, before: float) -> int:
        return await self._write("DELETE FROM notifications WHERE created_at < ?", (before,))

    async def notification_counts(self) -> dict[int, int]:
        """How many notifications each user has (users with none are left out)."""
        rows = await self._fetch("SELECT user_id, COUNT(*) FROM notifications GROUP BY user_id")
        return {int(row[0]): int(row[1]) for row in rows}

    async def expire_notifications(self, before: float) -> dict[int, int]:
        """Delete the notifications created before ``before``; how many of each user's,
        counted in the same transaction (so kept counts can be lowered exactly)."""
        async with self._transaction() as conn:
            rows = await conn.execute_fetchall(
                "SELECT user_id, COUNT(*) FROM notifications WHERE created_at < ? "
                "GROUP BY user_id", (before,))
            await conn.execute("DELETE FROM notifications WHERE created_at < ?", (before,))
        return {int(row[0]): int(row[1]) for row in rows}

    # -- facts about the database ---------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        row = await self._fetch_one("SELECT value FROM chatd_meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    async def set_meta(self, key: str, value: str) -> None:
        await self._write("INSERT INTO chatd_meta (key, value) VALUES (?, ?) "
                          "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    # -- plumbing ----------------------------------------------------------

    def _db(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StorageError("storage is not open")
        return self._conn

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction, alone on the connection; rolled back on any error."""
        async with self._lock:
            conn = self._db()
            with _translated():
                try:
                    await conn.execute("BEGIN IMMEDIATE")
                    yield conn
                    await conn.execute("COMMIT")
                except BaseException:
                    # Unconditional: statements queued before a cancellation still run.
                    with contextlib.suppress(sqlite3.OperationalError):
                        await conn.execute("ROLLBACK")
                    raise

    async def _in_one_step(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` in one write transaction, run whole in the database's thread.

        :meth:`_transaction` awaits each statement, and each await waits a turn of
        the event loop: under a burst of messages a turn lasts a long time
        (measured: 0.3 s and more with 1,000 busy connections), and the message
        writer's transactions of several statements then stored nothing until the
        burst ended. Here BEGIN, the statements and COMMIT (or ROLLBACK) are one
        call into the thread, and the loop is waited for once.

        A caller cancelled meanwhile is told nothing was written, as with
        :meth:`_transaction`: the thread, which goes on by itself, rolls back
        unless it has reached COMMIT (a retry would otherwise write it twice).
        """
        called_off = threading.Event()
        async with self._lock:
            conn = self._db()
            with _translated():
                try:
                    return await _run_in_thread(
                        conn, functools.partial(_all_or_nothing, work, called_off))
                except asyncio.CancelledError:
                    called_off.set()
                    raise

    async def _write(self, sql: str, params: Params = ()) -> int:
        """Run one statement in its own transaction; return the number of rows changed."""
        async with self._transaction() as conn:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, alone: no write of this storage comes between the reads
        made with it (they run in autocommit mode, so another process's could)."""
        async with self._lock:
            conn = self._db()
            with _translated():
                yield conn

    async def _fetch(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async with self._reading() as conn:
            return list(await conn.execute_fetchall(sql, params))

    async def _fetch_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = await self._fetch(sql, params)
        return rows[0] if rows else None


if TYPE_CHECKING:
    _CONFORMS: Storage = SqliteStorage(MEMORY)


class _CalledOff(Exception):
    """The caller of a transaction in the database's thread was cancelled."""


def _all_or_nothing(work: Callable[[sqlite3.Connection], T], called_off: threading.Event,
                    conn: sqlite3.Connection) -> T:
    """``work`` between BEGIN IMMEDIATE and COMMIT, in the database's thread; rolled
    back on any error, and when ``called_off`` is set before the COMMIT."""
    if called_off.is_set():
        raise _CalledOff
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
        if called_off.is_set():
            raise _CalledOff
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.OperationalError):
            conn.execute("ROLLBACK")
        raise
    return result


async def _run_in_thread(conn: aiosqlite.Connection,
                         work: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``work`` with the sqlite3 connection behind ``conn``, in its thread.

    aiosqlite offers no public call for this: its ``_execute`` (queue a function
    for the connection's thread) and ``_conn`` (the sqlite3 connection) have kept
    their names and meaning through its releases; the storage tests run every
    write made this way, so a release that changed them fails them at once.
    """
    raw: sqlite3.Connection = conn._conn
    result: T = await conn._execute(work, raw)  # type: ignore[no-untyped-call]
    return result


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn sqlite3 errors into StorageError: uniqueness violations into Conflict,
    other broken rules (foreign keys, checks, NOT NULL) into Refused."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if exc.sqlite_errorcode in _UNIQUE_ERRORS:
            raise Conflict(str(exc)) from exc
        raise Refused(str(exc)) from exc
    except sqlite3.OperationalError as exc:
        # Another process held the database past busy_timeout (a long-running
        # sqlite3 shell, a backup tool): nothing was done, a retry may pass.
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _BUSY_ERRORS:  # (extended codes)
            raise Unavailable(f"the database is locked by another process: {exc}") from exc
        raise StorageError(str(exc)) from exc
    except sqlite3.Error as exc:
        raise StorageError(str(exc)) from exc


def _opening_error(path: str, exc: Exception) -> StorageError:
    """What stopped the database from opening, with its path, and the likely cause
    when its directory cannot be written (SQLite's own words do not say)."""
    if isinstance(exc, StorageError) and path in str(exc):
        return exc
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    folder = os.path.dirname(path)
    if path != MEMORY and not os.access(folder, os.W_OK):
        reason += (f" (the directory {folder} cannot be written: the database needs its "
                   "-wal and -shm files beside it)")
    return StorageError(f"cannot open the database {path}: {reason}")


def _owner_only(path: str) -> None:
    """Make the database readable by its owner alone: it holds password and token
    hashes and private history.

    A new file is created 0600 whatever the umask; SQLite then gives its -wal
    and -shm files the main file's mode. Group and other access is taken from
    existing files (an earlier version created them following the umask).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Only a database's: a --db naming the configuration file or a directory by
        # mistake must fail to open, not leave it unreadable to the service's user.
        if _is_database(path):
            _tighten([path + suffix for suffix in _DATABASE_FILES])
        return
    try:
        os.fchmod(fd, 0o600)  # the umask may have taken bits of 0600 itself
    finally:
        os.close(fd)


def _is_database(path: str) -> bool:
    """Whether ``path`` is a regular file that is empty (a new database) or an SQLite one."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False  # a directory, a FIFO (whose open would wait), a device
        with open(path, "rb") as handle:
            head = handle.read(len(_SQLITE_HEADER))
    except OSError:
        return False
    return head in (b"", _SQLITE_HEADER)


def _tighten(paths: list[str]) -> None:
    """Take group and other permissions from the files that exist (and are ours)."""
    for path in paths:
        try:
            mode = os.stat(path).st_mode & 0o777
            if mode & 0o077:
                os.chmod(path, mode & 0o700)
                log.warning("database file was open to other users; now owner-only",
                            extra={"fields": {"path": path, "mode": f"{mode:04o}"}})
        except (FileNotFoundError, PermissionError):
            continue


async def _configure(conn: aiosqlite.Connection) -> None:
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = await _enter_wal(conn)
    if mode != "wal":
        log.warning("database journal mode is %s, not wal", mode)
    await conn.execute("PRAGMA foreign_keys = ON")
    await conn.execute("PRAGMA synchronous = NORMAL")


async def _enter_wal(conn: aiosqlite.Connection) -> str:
    """Switch the file to WAL (once: the mode is stored in the file) and return its mode.

    Entering WAL needs the file to itself, and SQLite reports "database is
    locked" at once instead of waiting for the busy timeout when another
    process is opening a new file at the same moment: retry for that long.
    """
    rows = list(await conn.execute_fetchall("PRAGMA journal_mode"))
    if rows[0][0] == "wal":
        return "wal"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            rows = list(await conn.execute_fetchall("PRAGMA journal_mode = WAL"))
            return str(rows[0][0])
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or loop.time() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


def _copy_database(source: str, target: str) -> None:
    """Copy ``source`` to ``target`` with SQLite's online backup API (blocking)."""
    partial = f"{target}.partial"
    try:
        with contextlib.closing(sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000)) as src, \
                contextlib.closing(sqlite3.connect(partial)) as dst:
            src.backup(dst)
            # A self-contained single file, easy to move around.
            dst.execute("PRAGMA journal_mode = DELETE")
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
        raise


async def _insert_member(conn: aiosqlite.Connection, room_id: int, user_id: int, role: str,
                         joined_at: float) -> MemberRecord:
    cursor = await conn.execute(
        "INSERT INTO members (room_id, user_id, role, joined_at, role_since) "
        "VALUES (?, ?, ?, ?, ?)", (room_id, user_id, role, joined_at, joined_at))
    seq = rowid(cursor)
    await conn.execute(_UPSERT_ASSOCIATION, (user_id, room_id, joined_at))
    return MemberRecord(room_id, user_id, role, joined_at, joined_at, seq)


def _user(row: sqlite3.Row) -> UserRecord:
    return UserRecord(id=row[0], name=row[1], password_hash=bytes(row[2]),
                      is_admin=bool(row[3]), created_at=row[4], settings=loads_object(row[5]),
                      kind=row[6], owner_id=row[7])


def _room(row: sqlite3.Row) -> RoomRecord:
    return RoomRecord(id=row[0], name=row[1], mode=row[2], topic=row[3], created_at=row[4],
                      terminated_at=row[5], settings=loads_object(row[6]), key=row[7],
                      member_limit=row[8], moderated=bool(row[9]), secret=bool(row[10]),
                      no_external=bool(row[11]), topic_lock=bool(row[12]))


def _member(row: Iterable[Any]) -> MemberRecord:
    return MemberRecord(*row)
