"""SQL for messages: the batched insert, history, direct messages (mixed into
SqliteStorage)."""

from __future__ import annotations

import functools
import itertools
import operator
import sqlite3
from collections.abc import Iterable, Sequence
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

# -- the batched insert ----------------------------------------------------------
#
# Rows go many to a statement: executemany would take the GIL back for every
# row, and a busy event loop then starves the writer thread (measured: a
# 5000-row batch took seconds instead of milliseconds while the daemon was
# delivering). One execute binds a whole chunk in C.
#
# Chunks have sizes from a fixed set only, so only a few distinct statements
# ever exist and sqlite3's statement cache always has them compiled: preparing
# a 400-row INSERT costs 0.6-1 ms, more than running it, and with one arbitrary
# remainder per batch it was paid for nearly every batch. Powers of two split
# any count into few statements (at most one per binary digit of the rest),
# and each statement has a fixed cost (see _MIN_PLAIN). 512 rows bind at most
# 5120 parameters, far below SQLite's limit (32766 since SQLite 3.32).
MESSAGE_CHUNK = 512
CHUNK_SIZES: tuple[int, ...] = tuple(
    2 ** k for k in range(MESSAGE_CHUNK.bit_length() - 1, -1, -1))

# Most messages are plain room text: they bind only the six columns that are
# not the table's defaults (recipient NULL, kind 'text', extra '{}',
# delivered 1), which costs SQLite about 30% less than binding all ten.
_PLAIN_COLUMNS = "id, room_id, sender_id, sender_name, text, ts"
_ALL_COLUMNS = ("id, room_id, recipient_id, sender_id, sender_name, text, ts, kind, extra, "
                "delivered")
_PLAIN_WIDTH = _PLAIN_COLUMNS.count(",") + 1
_ALL_WIDTH = _ALL_COLUMNS.count(",") + 1

# Each statement costs about 9 us of the SQLite thread (24 us in all) whatever
# its size, and the six-column form saves about 0.6 us a row: a few plain
# messages among others are not worth statements of their own, and go with the
# others in the ten-column form.
_MIN_PLAIN = 32

# A plain message's values in the order of _PLAIN_COLUMNS, as a tuple made in C.
_plain_row = operator.attrgetter("id", "room_id", "sender_id", "sender_name", "text", "ts")


@functools.lru_cache(maxsize=2 * len(CHUNK_SIZES))
def _insert_sql(columns: str, rows: int) -> str:
    """The fast INSERT of ``rows`` rows; the foreign keys check what it inserts."""
    row = "(" + ",".join("?" * (columns.count(",") + 1)) + ")"
    return f"INSERT INTO messages ({columns}) VALUES {','.join([row] * rows)}"


# The careful form, used only for a chunk the fast form could not insert
# because of a foreign key: a sender deleted while the message waited in the
# writer becomes NULL, and a direct message to a recipient deleted meanwhile is
# dropped (their direct messages were deleted with them). Either way one late
# message cannot make the whole batch fail forever. A message to an unknown
# room still fails here, and with it the batch.
@functools.lru_cache(maxsize=len(CHUNK_SIZES))
def _careful_insert_sql(rows: int) -> str:
    values = ",".join(["(?,?,?,?,?,?,?,?,?,?)"] * rows)
    return (
        f"INSERT INTO messages ({_ALL_COLUMNS}) "
        "SELECT column1, column2, column3, (SELECT id FROM users WHERE id = column4), "
        "column5, column6, column7, column8, column9, column10 "
        f"FROM (VALUES {values}) "
        "WHERE column3 IS NULL OR EXISTS (SELECT 1 FROM users WHERE id = column3)")


def chunk_sizes(count: int) -> list[int]:
    """Split ``count`` rows into chunks of the sizes in CHUNK_SIZES, largest first."""
    sizes: list[int] = []
    for size in CHUNK_SIZES:
        full, count = divmod(count, size)
        sizes.extend([size] * full)
    return sizes


__all__ = ["CHUNK_SIZES", "HISTORY_SQL", "MESSAGE_CHUNK", "MessageQueries", "chunk_sizes"]


class MessageQueries:
    """Room and direct messages, as a mixin of SqliteStorage."""


    async def append_messages(self: SqliteHost, batch: Sequence[MessageRecord]) -> None:
        """Insert the batch in one transaction (all or nothing); ids come from the caller.

        The order of the rows does not matter (the ids order them), so plain
        room messages go first, in the six-column form, and the others after.
        """
        if not batch:
            return
        plain, other = _partition(batch)
        # The values are flattened here, in the event loop, before taking the lock.
        plain_values = _flat(map(_plain_row, plain))
        other_values = _flat(map(_message_row, other))
        async with self._transaction() as conn:
            await _insert_chunks(conn, _PLAIN_COLUMNS, _PLAIN_WIDTH, plain, plain_values)
            await _insert_chunks(conn, _ALL_COLUMNS, _ALL_WIDTH, other, other_values)

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


def _partition(batch: Iterable[MessageRecord]) -> tuple[list[MessageRecord],
                                                         list[MessageRecord]]:
    """The plain room messages and the others (all of them, when plain are few).

    Plain: room text by an account, with every other column at the table's
    default. The test is written out in the loop rather than called per
    message: that halves the cost of this pass.
    """
    plain: list[MessageRecord] = []
    other: list[MessageRecord] = []
    for m in batch:
        if (m.room_id is not None and m.recipient_id is None and m.kind == "text"
                and not m.extra and m.delivered and m.sender_id > 0):
            plain.append(m)
        else:
            other.append(m)
    if other and len(plain) < _MIN_PLAIN:
        return [], [*plain, *other]
    return plain, other


def _flat(rows: Iterable[tuple[Any, ...]]) -> list[Any]:
    """The rows' values in one list, as a multi-row statement binds them."""
    return list(itertools.chain.from_iterable(rows))


async def _insert_chunks(conn: aiosqlite.Connection, columns: str, width: int,
                         messages: Sequence[MessageRecord], values: list[Any]) -> None:
    """Insert ``messages`` (whose ``width`` values each are ``values``) chunk by chunk."""
    start = 0
    for size in chunk_sizes(len(messages)):
        end = start + size
        try:
            await conn.execute(_insert_sql(columns, size), values[start * width:end * width])
        except sqlite3.IntegrityError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
                raise
            # SQLite undid this statement alone; the transaction goes on with
            # the chunks before it, so the careful form can take its place.
            careful = _flat(map(_message_row, messages[start:end]))
            await conn.execute(_careful_insert_sql(size), careful)
        start = end


def _message_row(message: MessageRecord) -> tuple[Any, ...]:
    """A message's ten values, in the order of _ALL_COLUMNS."""
    return (message.id, message.room_id, message.recipient_id,
            # A sender without an account (an IRC guest: id 0 or below) is stored as
            # NULL, like the sender of a deleted account's messages.
            message.sender_id if message.sender_id > 0 else None,
            message.sender_name, message.text, message.ts, message.kind,
            dumps_object(message.extra) if message.extra else "{}", int(message.delivered))
