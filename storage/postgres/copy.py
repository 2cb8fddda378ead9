"""Copy an embedded (SQLite) database into a PostgreSQL one: ``chatd migrate``.

Everything is copied, table by table in the order of their foreign keys, with
every id kept: users, rooms, members, associations, messages, notifications,
sanctions, invitations, join requests, audit, API and resume tokens, files'
metadata, public keys, user blocks and webhooks. SQLite's blocks of plain room
text are unpacked into rows (PostgreSQL stores a message a row). Identity
sequences then continue after the largest id SQLite ever handed out (its
AUTOINCREMENT counters remember deleted rows' ids too), so ids held by clients
never come to mean a new row. The copy is one PostgreSQL transaction: it lands whole or not at all.

The source is read in one SQLite read transaction (a consistent snapshot),
in chunks, in a thread. A target that holds any row is refused unless
``replace`` is given, which empties it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from storage.api import DATABASE_META, EPOCH_META, MIGRATED, StorageError
from storage.blocks import read_block
from storage.postgres.storage import PostgresStorage
from storage.sqlite import SqliteStorage

if TYPE_CHECKING:
    from storage.postgres.host import PgConnection

CHUNK = 5000
# The copy's sessions are named so (nodes name theirs ``chatd/<node_id>``).
COPY_NAME = "chatd-migrate"


@dataclass(frozen=True, slots=True)
class Table:
    """A table copied as it is: its columns, those SQLite keeps as 0/1 for booleans,
    and its identity column (continued after the copy), if any."""

    name: str
    columns: tuple[str, ...]
    booleans: tuple[str, ...] = ()
    identity: str | None = None

    @property
    def key(self) -> str:
        """The column order of a stable read (the primary key's columns)."""
        return self.identity or ", ".join(self.columns[:2])


MESSAGE_COLUMNS = ("id", "room_id", "recipient_id", "sender_id", "sender_name", "text", "ts",
                   "kind", "extra", "delivered")

# In the order of the foreign keys; messages (rows and blocks) come after rooms.
TABLES: tuple[Table, ...] = (
    # Bots' owners are users made before them: ordered by id, an owner comes first.
    Table("users", ("id", "name", "password_hash", "is_admin", "created_at", "settings",
                    "kind", "owner_id"), booleans=("is_admin",), identity="id"),
    Table("rooms", ("id", "name", "mode", "topic", "created_at", "terminated_at", "settings",
                    "key", "member_limit", "moderated", "secret", "no_external", "topic_lock"),
          booleans=("moderated", "secret", "no_external", "topic_lock"), identity="id"),
    Table("members", ("seq", "room_id", "user_id", "role", "joined_at", "role_since"),
          identity="seq"),
    Table("user_rooms", ("user_id", "room_id", "last_joined")),
    Table("messages", MESSAGE_COLUMNS, booleans=("delivered",)),
    Table("notifications", ("id", "user_id", "kind", "payload", "created_at"), identity="id"),
    Table("notifications_dropped", ("user_id", "dropped")),
    Table("bans", ("room_id", "user_id", "actor_id", "reason", "created_at", "until")),
    Table("mutes", ("room_id", "user_id", "actor_id", "reason", "created_at", "until")),
    Table("invitations", ("room_id", "user_id", "inviter_id", "created_at", "expires_at")),
    Table("join_requests", ("room_id", "user_id", "created_at")),
    Table("audit", ("id", "ts", "actor", "action", "target", "room", "reason", "room_id"),
          identity="id"),
    Table("api_tokens", ("id", "user_id", "name", "token_hash", "created_at", "expires_at",
                         "scopes", "last_used_at", "kind"), identity="id"),
    Table("resume_tokens", ("id", "user_id", "token_hash", "created_at", "expires_at",
                            "api_token_id", "scopes"), identity="id"),
    Table("files", ("id", "room_id", "uploader_id", "uploader_name", "name", "size", "mime",
                    "sha256", "blob_key", "preview", "created_at"), identity="id"),
    Table("user_keys", ("user_id", "x25519", "mlkem", "fingerprint", "updated_at")),
    Table("user_blocks", ("user_id", "blocked_id", "created_at")),
    Table("webhooks", ("id", "room_id", "name", "secret_hash", "creator_id", "created_at",
                       "token_id"), identity="id"),
)
# SQLite's tables that are not copied as they are: its own bookkeeping, the
# blocks of room text, unpacked into messages, and the facts about the embedded
# daemon's numbering (a cluster numbers by epochs; the copy records MIGRATED).
NOT_COPIED_AS_IS = ("sqlite_sequence", "message_blocks", "chatd_meta")


async def copy_database(source: str, target: str, *, replace: bool = False,
                        meta: dict[str, str] | None = None,
                        whole: bool = True) -> dict[str, int]:
    """Copy the SQLite database ``source`` (a path) into PostgreSQL ``target`` (a URL).

    The source is migrated to the latest schema first; the target is created
    and migrated as a node would, and must hold no row unless ``replace``.
    ``meta`` facts (the blob store's location, the embedded daemon's numbering)
    are recorded in the target, in place of any it held.
    ``whole``: every message the source's daemons acknowledged is in it (none
    ever crashed); otherwise the cluster's first epoch doubts the older ids.
    Returns how many rows each PostgreSQL table received.
    """
    sqlite = SqliteStorage(source)
    await sqlite.open()  # migrates it: both schemas are then at the same version
    await sqlite.close()
    postgres = PostgresStorage(target, sole_node=True, name=COPY_NAME)
    await postgres.open()
    try:
        async with postgres.transaction() as conn:
            await _refuse_served(conn)
            await _prepare_target(conn, replace)
            counts = await _copy_tables(conn, source)
            # Every message is here, whole: the first epoch casts no doubt on them.
            # After a crash of the embedded daemon some were lost: the first epoch
            # doubts them. The target's own facts (an old epoch, a sole node's
            # numbering) were about what it held: forgotten, as its rows are.
            facts = {**(meta or {}), EPOCH_META: MIGRATED} if whole else dict(meta or {})
            # A copy is a database of its own: nodes refuse a Redis that served another.
            facts[DATABASE_META] = secrets.token_hex(8)
            await conn.execute("DELETE FROM chatd_meta")
            await conn.executemany("INSERT INTO chatd_meta (key, value) VALUES ($1, $2)",
                                   list(facts.items()))
    finally:
        await postgres.close()
    return counts


async def _refuse_served(conn: PgConnection) -> None:
    """Refuse a database that nodes sharing it through Redis are serving: they
    hold no node lock (that is a sole node's), but each of their sessions names
    its node (``chatd/<node_id>``), and a copy would replace what they serve."""
    # A node's pools are named chatd/<node_id> and chatd/<node_id>/<purpose>.
    served = await conn.fetch(
        "SELECT DISTINCT split_part(application_name, '/', 2) AS node FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND application_name LIKE 'chatd/%' ORDER BY node")
    if served:
        nodes = ", ".join(row[0] for row in served)
        raise StorageError(f"chatd nodes are serving the target database ({nodes}): "
                           "stop them before copying into it")


async def _prepare_target(conn: PgConnection, replace: bool) -> None:
    names = [table.name for table in TABLES]
    held = [name for name in names
            if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {name})")]
    if not held:
        return
    if not replace:
        raise StorageError(f"the target database is not empty (rows in {', '.join(held)}); "
                           "copy into an empty database, or replace its contents (--force)")
    await conn.execute(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE")


async def _copy_tables(conn: PgConnection, source: str) -> dict[str, int]:
    reader = await asyncio.to_thread(_Snapshot, source)
    try:
        handed_out = await asyncio.to_thread(reader.handed_out)
        counts: dict[str, int] = {}
        for table in TABLES:
            counts[table.name] = await _copy_table(conn, reader, table)
            if table.name == "messages":
                counts[table.name] += await _copy_blocks(conn, reader)
            if table.identity is not None:
                await _continue_identity(conn, table.name, table.identity,
                                         handed_out.get(table.name, 0))
        return counts
    finally:
        await asyncio.to_thread(reader.close)


async def _copy_table(conn: PgConnection, reader: _Snapshot, table: Table) -> int:
    flags = [column in table.booleans for column in table.columns]
    rows = reader.rows(f"SELECT {', '.join(table.columns)} FROM {table.name} "
                       f"ORDER BY {table.key}")
    copied = 0
    while chunk := await asyncio.to_thread(next, rows, None):
        records = [tuple(bool(v) if flag and v is not None else v
                         for v, flag in zip(row, flags, strict=True)) for row in chunk]
        await conn.copy_records_to_table(table.name, records=records, columns=table.columns)
        copied += len(records)
    return copied


async def _copy_blocks(conn: PgConnection, reader: _Snapshot) -> int:
    """Unpack the blocks of room text into message rows. Blocks keep the ids of
    senders deleted since; a row says so with NULL, as its foreign key asks."""
    users = {row[0] for row in await conn.fetch("SELECT id FROM users")}
    blocks = reader.rows("SELECT room_id, count, numbers, strings FROM message_blocks "
                         "ORDER BY last_id")
    copied = 0
    while chunk := await asyncio.to_thread(next, blocks, None):
        records = [(m.id, m.room_id, None, m.sender_id if m.sender_id in users else None,
                    m.sender_name, m.text, m.ts, "text", "{}", True)
                   for row in chunk for m in read_block(*row)]
        await conn.copy_records_to_table("messages", records=records, columns=MESSAGE_COLUMNS)
        copied += len(records)
    return copied


async def _continue_identity(conn: PgConnection, table: str, column: str,
                             handed_out: int) -> None:
    """The next id the table hands out comes after every copied one, and after
    every one SQLite ever handed out (``handed_out``, its AUTOINCREMENT counter):
    the newest rows may have been deleted, and their ids must not come back."""
    await conn.execute(
        f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
        f"GREATEST(COALESCE(MAX({column}), 0), $1::bigint) + 1, false) FROM {table}",
        handed_out)


class _Snapshot:
    """One read transaction of the SQLite file, read in chunks (blocking: use a thread)."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                     check_same_thread=False, isolation_level=None)
        self._conn.execute("BEGIN")

    def rows(self, sql: str) -> Iterator[Sequence[Any]]:
        """The rows of ``sql``, CHUNK at a time (an iterator of lists)."""
        cursor = self._conn.execute(sql)
        while chunk := cursor.fetchmany(CHUNK):
            yield chunk

    def handed_out(self) -> dict[str, int]:
        """The largest id each AUTOINCREMENT table ever handed out (sqlite_sequence),
        deleted rows' included."""
        rows = self._conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall()
        return {str(name): int(seq) for name, seq in rows if seq is not None}

    def close(self) -> None:
        self._conn.close()


def sqlite_tables(path: str) -> list[str]:
    """The tables of an SQLite database (for the check that every one is copied)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        return [str(row[0]) for row in rows]
