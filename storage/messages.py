"""SQL for messages: the batched insert, history, direct messages (mixed into
SqliteStorage)."""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import aiosqlite

from storage.host import SqliteHost, dumps_object, loads_object
from storage.records import MessageRecord

_MAX_ID = 2**63 - 1
_MESSAGE = ("id, sender_id, sender_name, text, ts, room_id, recipient_id, kind, extra, "
            "delivered")

# Served by the partial index messages_room (room_id, id): a backwards range scan.
HISTORY_SQL = (f"SELECT {_MESSAGE} FROM messages WHERE room_id = ? AND id < ? "
               "ORDER BY id DESC LIMIT ?")

# Rows go many to a statement: executemany would take the GIL back for every
# row, and a busy event loop then starves the writer thread (measured: a
# 5000-row batch took seconds instead of milliseconds while the daemon was
# delivering). One execute binds a whole chunk in C. Chunk sizes are powers of
# two, so only a few distinct statements exist and sqlite3's statement cache
# always has them compiled.
MESSAGE_CHUNK = 512
_CHUNK_SIZES = tuple(2 ** k for k in range(MESSAGE_CHUNK.bit_length() - 1, -1, -1))

# Most messages are plain room text: they bind only the six columns that are
# not the table's defaults (recipient NULL, kind 'text', extra '{}', delivered).
_PLAIN_COLUMNS = "id, room_id, sender_id, sender_name, text, ts"
_ALL_COLUMNS = ("id, room_id, recipient_id, sender_id, sender_name, text, ts, kind, extra, "
                "delivered")


@functools.lru_cache(maxsize=32)
def _insert_sql(columns: str, rows: int) -> str:
    """A plain multi-row INSERT; fast, and checked by the foreign keys."""
    row = "(" + ",".join("?" * (columns.count(",") + 1)) + ")"
    return f"INSERT INTO messages ({columns}) VALUES {','.join([row] * rows)}"


# The careful form, used only for a chunk the plain form could not insert
# because of a foreign key: a sender deleted while the message waited in the
# writer becomes NULL, and a direct message to a recipient deleted meanwhile is
# dropped (their direct messages were deleted with them). Either way one late
# message cannot make the whole batch fail forever.
@functools.lru_cache(maxsize=16)
def _careful_insert_sql(rows: int) -> str:
    values = ",".join(["(?,?,?,?,?,?,?,?,?,?)"] * rows)
    return (
        f"INSERT INTO messages ({_ALL_COLUMNS}) "
        "SELECT column1, column2, column3, (SELECT id FROM users WHERE id = column4), "
        "column5, column6, column7, column8, column9, column10 "
        f"FROM (VALUES {values}) "
        "WHERE column3 IS NULL OR EXISTS (SELECT 1 FROM users WHERE id = column3)")


def chunk_sizes(count: int) -> list[int]:
    """Split ``count`` rows into full chunks, then the binary digits of the rest."""
    sizes = [MESSAGE_CHUNK] * (count // MESSAGE_CHUNK)
    rest = count % MESSAGE_CHUNK
    sizes.extend(size for size in _CHUNK_SIZES if rest & size)
    return sizes


__all__ = ["HISTORY_SQL", "MESSAGE_CHUNK", "MessageQueries"]


class MessageQueries:
    """Room and direct messages, as a mixin of SqliteStorage."""


    async def append_messages(self: SqliteHost, batch: Sequence[MessageRecord]) -> None:
        """Insert the batch in one transaction (all or nothing); ids come from the caller."""
        if not batch:
            return
        plain = [m for m in batch if _is_plain(m)]
        other = [m for m in batch if not _is_plain(m)] if len(plain) < len(batch) else []
        async with self._transaction() as conn:
            await _insert_chunks(conn, _PLAIN_COLUMNS, plain, _plain_row)
            await _insert_chunks(conn, _ALL_COLUMNS, other, _message_row)

    async def max_message_id(self: SqliteHost) -> int:
        rows = await self._fetch("SELECT COALESCE(MAX(id), 0) FROM messages")
        return int(rows[0][0])

    async def room_history(self: SqliteHost, room_id: int, limit: int,
                           before_id: int | None = None) -> list[MessageRecord]:
        """The last ``limit`` messages of the room (below ``before_id``), oldest first."""
        if limit <= 0:
            return []
        before = _MAX_ID if before_id is None else before_id
        rows = await self._fetch(HISTORY_SQL, (room_id, before, limit))
        return [_message(row) for row in reversed(rows)]

    async def undelivered_direct_messages(self: SqliteHost, user_id: int) -> list[MessageRecord]:
        rows = await self._fetch(
            f"SELECT {_MESSAGE} FROM messages WHERE recipient_id = ? AND delivered = 0 "
            "ORDER BY id", (user_id,))
        return [_message(row) for row in rows]

    async def delete_terminated_history(self: SqliteHost, before: float) -> int:
        """Delete the messages of rooms terminated before ``before``."""
        return await self._write(
            "DELETE FROM messages WHERE room_id IN ("
            "SELECT id FROM rooms WHERE terminated_at IS NOT NULL AND terminated_at < ?)",
            (before,))

    async def mark_delivered(self: SqliteHost, message_ids: Sequence[int]) -> None:
        params = [(message_id,) for message_id in message_ids]
        if not params:
            return
        async with self._transaction() as conn:
            await conn.executemany(
                "UPDATE messages SET delivered = 1 WHERE id = ? AND delivered = 0", params)


def _message(row: sqlite3.Row) -> MessageRecord:
    return MessageRecord(id=row[0], sender_id=row[1] or 0, sender_name=row[2], text=row[3],
                         ts=row[4], room_id=row[5], recipient_id=row[6], kind=row[7],
                         extra=loads_object(row[8]), delivered=bool(row[9]))


async def _insert_chunks(conn: aiosqlite.Connection, columns: str,
                         messages: Sequence[MessageRecord],
                         row: Callable[[MessageRecord], tuple[Any, ...]]) -> None:
    start = 0
    for size in chunk_sizes(len(messages)):
        chunk = messages[start:start + size]
        start += size
        params = list(itertools.chain.from_iterable(map(row, chunk)))
        try:
            await conn.execute(_insert_sql(columns, size), params)
        except sqlite3.IntegrityError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
                raise
            # Only this statement was undone; the transaction goes on.
            careful = list(itertools.chain.from_iterable(map(_message_row, chunk)))
            await conn.execute(_careful_insert_sql(size), careful)


def _is_plain(message: MessageRecord) -> bool:
    """Room text by an account, with every other column at the table's default."""
    return (message.recipient_id is None and message.kind == "text" and not message.extra
            and message.delivered and message.sender_id > 0)


def _plain_row(message: MessageRecord) -> tuple[Any, ...]:
    """A plain message's six values, in the order of _PLAIN_COLUMNS."""
    return (message.id, message.room_id, message.sender_id, message.sender_name,
            message.text, message.ts)


def _message_row(message: MessageRecord) -> tuple[Any, ...]:
    """A message's ten values, in the order of _ALL_COLUMNS."""
    return (message.id, message.room_id, message.recipient_id,
            # A sender without an account (an IRC guest: id 0 or below) is stored as
            # NULL, like the sender of a deleted account's messages.
            message.sender_id if message.sender_id > 0 else None,
            message.sender_name, message.text, message.ts, message.kind,
            dumps_object(message.extra) if message.extra else "{}", int(message.delivered))
