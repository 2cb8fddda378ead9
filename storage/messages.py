"""SQL for messages: the batched insert, history, direct messages (mixed into
SqliteStorage).

Plain room text is stored in blocks (``message_blocks``, see storage.blocks);
every other message (direct, action, sticker, file, end-to-end, a guest's or
the system's) a row each in ``messages``. History reads both.
"""

from __future__ import annotations

import functools
import json
import operator
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import aiosqlite

from storage.api import Conflict
from storage.blocks import BLOCK_COLUMNS, BLOCK_SIZE, block_rows, is_plain, read_block
from storage.chunks import (
    CHUNK_SIZES,
    InsertSql,
    flat,
    insert_chunks,
    insert_sql,
    values_sql,
    width,
)
from storage.host import SqliteHost, dumps_object, loads_object
from storage.quotas import Quota
from storage.records import DirectBacklog, MessageRecord

_MAX_ID = 2**63 - 1
_MESSAGE = ("id, sender_id, sender_name, text, ts, room_id, recipient_id, kind, extra, "
            "delivered")

# The room queries name their index: statistics gathered by PRAGMA optimize
# while one room held nearly all the rows make the planner prefer walking the
# whole table by id, which for any other room means reading every row.

# The partial index messages_room (room_id, id): a backwards range scan.
HISTORY_SQL = (f"SELECT {_MESSAGE} FROM messages INDEXED BY messages_room "
               "WHERE room_id = ? AND id < ? ORDER BY id DESC LIMIT ?")

# One side of a conversation of direct messages, newest first below an id (a
# backwards range scan of messages_conversation); both sides, merged.
_DIRECT_SIDE = (f"SELECT * FROM (SELECT {_MESSAGE} FROM messages "
                "INDEXED BY messages_conversation "
                "WHERE recipient_id = ? AND sender_id = ? AND id < ? AND kind <> ? "
                "ORDER BY id DESC LIMIT ?)")
DIRECT_HISTORY_SQL = f"{_DIRECT_SIDE} UNION ALL {_DIRECT_SIDE} ORDER BY id DESC LIMIT ?"
# The newest message with each partner, received and sent (a bare column takes
# its value from the row of the MAX).
_PARTNERS_SQL = ("SELECT sender_id, MAX(id), ts FROM messages INDEXED BY messages_conversation "
                 "WHERE recipient_id = ? AND sender_id IS NOT NULL AND kind <> ? "
                 "GROUP BY sender_id UNION ALL "
                 "SELECT recipient_id, MAX(id), ts FROM messages INDEXED BY messages_sent "
                 "WHERE sender_id = ? AND recipient_id IS NOT NULL AND kind <> ? "
                 "GROUP BY recipient_id")

# A room's blocks that end below an id, newest first.
_BLOCKS_SQL = ("SELECT last_id, count, numbers, strings FROM message_blocks "
               "INDEXED BY message_blocks_room "
               "WHERE room_id = ? AND last_id < ? ORDER BY last_id DESC LIMIT ?")
# The one block of a room that may hold messages on both sides of an id.
_STRADDLING_SQL = ("SELECT count, numbers, strings FROM message_blocks "
                   "INDEXED BY message_blocks_room "
                   "WHERE room_id = ? AND last_id >= ? ORDER BY last_id LIMIT 1")

# The messages above an id (/resume) of some rooms (a JSON list) and of one
# user's direct messages, either way: a range scan of the table by id, which
# beats any index when, as usual, the id is recent.
_AFTER_SQL = (f"SELECT {_MESSAGE} FROM messages NOT INDEXED WHERE id > ? AND "
              "(room_id IN (SELECT value FROM json_each(?)) OR recipient_id = ? "
              "OR (sender_id = ? AND recipient_id IS NOT NULL)) ORDER BY id LIMIT ?")
# The blocks of some rooms holding messages above an id, by their first message,
# from a first id on (a range scan by last_id, the key).
_BLOCKS_AFTER_SQL = ("SELECT first_id, room_id, count, numbers, strings FROM message_blocks "
                     "NOT INDEXED WHERE last_id > ? AND room_id IN "
                     "(SELECT value FROM json_each(?)) AND first_id > ? "
                     "ORDER BY first_id LIMIT ?")

# Both lookups are a step down a B-tree: the key of message_blocks is last_id.
MAX_MESSAGE_ID_SQL = ("SELECT MAX((SELECT COALESCE(MAX(id), 0) FROM messages), "
                      "(SELECT COALESCE(MAX(last_id), 0) FROM message_blocks))")

# -- the batched insert (in the fixed shapes of storage.chunks) ------------------------

_ALL_COLUMNS = ("id, room_id, recipient_id, sender_id, sender_name, text, ts, kind, extra, "
                "delivered")

_insert_messages_sql: InsertSql = functools.partial(insert_sql, "messages", _ALL_COLUMNS)
_insert_blocks_sql: InsertSql = functools.partial(insert_sql, "message_blocks", BLOCK_COLUMNS)


# The careful form, used only for a chunk the fast form could not insert
# because of a foreign key: a sender deleted while the message waited in the
# writer becomes NULL, and a direct message to a recipient deleted meanwhile is
# dropped (their direct messages were deleted with them). Either way one late
# message cannot make the whole batch fail forever. A message to an unknown
# room still fails here, and with it the batch. (Blocks need no careful form:
# they reference their room alone.)
@functools.lru_cache(maxsize=len(CHUNK_SIZES))
def _careful_insert_sql(rows: int) -> str:
    return (
        f"INSERT INTO messages ({_ALL_COLUMNS}) "
        "SELECT column1, column2, column3, (SELECT id FROM users WHERE id = column4), "
        "column5, column6, column7, column8, column9, column10 "
        f"FROM ({values_sql(_ALL_COLUMNS, rows)}) "
        "WHERE column3 IS NULL OR EXISTS (SELECT 1 FROM users WHERE id = column3)")


__all__ = ["HISTORY_SQL", "MAX_MESSAGE_ID_SQL", "MessageQueries"]


class MessageQueries:
    """Room and direct messages, as a mixin of SqliteStorage."""

    async def append_messages(self: SqliteHost, batch: Sequence[MessageRecord]) -> None:
        """Insert the batch in one transaction (all or nothing); ids come from the caller.

        The order of the messages does not matter (the ids order them), but
        their ids must be distinct and above every stored one (the daemon's
        counter makes them so); Conflict otherwise. Blocks are keyed by their
        last id alone, so this check is what keeps message ids unique.
        """
        if not batch:
            return
        first = _first_new_id(batch)
        plain, other = _partition(batch)
        # The values are made here, in the event loop, before taking the lock.
        block_values = flat(block_rows(plain))
        other_values = flat(map(_message_row, other))
        await self._in_one_step(functools.partial(_append, first, block_values, other_values))

    async def max_message_id(self: SqliteHost) -> int:
        rows = await self._fetch(MAX_MESSAGE_ID_SQL)
        return int(rows[0][0])

    async def room_history(self: SqliteHost, room_id: int, limit: int,
                           before_id: int | None = None) -> list[MessageRecord]:
        """The last ``limit`` messages of the room (below ``before_id``), oldest first."""
        if limit <= 0:
            return []
        before = _MAX_ID if before_id is None else before_id
        # One state of the database for all the reads: a batch written between
        # them could show its blocks without its rows, or the other way round.
        async with self._reading() as conn:
            rows = await conn.execute_fetchall(HISTORY_SQL, (room_id, before, limit))
            found = [_message(row) for row in rows]
            blocks = await _blocks_before(conn, room_id, limit, before, before_id is not None)
            await _forget_deleted_senders(conn, blocks)
        found.extend(blocks)
        found.sort(key=_by_id)
        return found[-limit:]

    async def direct_history(self: SqliteHost, user_id: int, other_id: int, limit: int,
                             before_id: int | None = None,
                             hidden_kind: str = "") -> list[MessageRecord]:
        """The last ``limit`` direct messages between two users, either way (below
        ``before_id``; none of ``hidden_kind``), oldest first."""
        if limit <= 0:
            return []
        before = _MAX_ID if before_id is None else before_id
        if user_id == other_id:  # notes to oneself: one side is the whole conversation
            sql = f"{_DIRECT_SIDE} ORDER BY id"
            params: tuple[Any, ...] = (user_id, user_id, before, hidden_kind, limit)
        else:
            sql = DIRECT_HISTORY_SQL
            params = (user_id, other_id, before, hidden_kind, limit,
                      other_id, user_id, before, hidden_kind, limit, limit)
        rows = await self._fetch(sql, params)
        return sorted((_message(row) for row in rows), key=_by_id)

    async def messages_after(self: SqliteHost, after_id: int, room_ids: Sequence[int],
                             user_id: int, limit: int) -> list[MessageRecord]:
        """The first ``limit`` messages above ``after_id``, in id order, of the rooms
        ``room_ids`` and the direct messages to or from ``user_id``."""
        if limit <= 0:
            return []
        rooms = json.dumps(list(room_ids))
        async with self._reading() as conn:
            rows = await conn.execute_fetchall(_AFTER_SQL,
                                               (after_id, rooms, user_id, user_id, limit))
            found = [_message(row) for row in rows]
            # A full page of rows is complete only up to its last id.
            complete_below = found[-1].id + 1 if len(found) == limit else _MAX_ID
            blocks = await _blocks_after(conn, rooms, after_id, limit,
                                         _Cut(found, complete_below))
            await _forget_deleted_senders(conn, blocks)
        found.extend(blocks)
        found.sort(key=_by_id)
        return found[:limit]

    async def direct_partners(self: SqliteHost, user_id: int,
                              hidden_kind: str = "") -> list[tuple[int, float]]:
        """Everyone ``user_id`` exchanged direct messages with (none of ``hidden_kind``),
        with the time of the newest, newest first."""
        rows = await self._fetch(_PARTNERS_SQL, (user_id, hidden_kind, user_id, hidden_kind))
        newest: dict[int, tuple[int, float]] = {}
        for partner, last_id, ts in rows:
            if partner not in newest or newest[partner][0] < last_id:
                newest[partner] = (last_id, ts)
        return [(partner, ts) for partner, (_, ts)
                in sorted(newest.items(), key=lambda item: item[1][0], reverse=True)]

    async def direct_backlog(self: SqliteHost, user_id: int,
                             limit: int | None = None) -> DirectBacklog | None:
        """The undelivered direct messages to ``user_id`` (the newest ``limit``), in
        id order, with the count and oldest id of all of them, or None when the
        account is gone (one statement, as PostgreSQL's)."""
        rows = await self._fetch(
            f"SELECT {_MESSAGE}, EXISTS (SELECT 1 FROM users WHERE id = ?), "
            "COUNT(id) OVER (), MIN(id) OVER () "
            "FROM (SELECT 1) AS one LEFT JOIN messages ON recipient_id = ? AND delivered = 0 "
            "ORDER BY id DESC LIMIT ?", (user_id, user_id, -1 if limit is None else limit))
        if not rows[0][10]:
            return None
        return DirectBacklog([_message(row) for row in reversed(rows) if row[0] is not None],
                             rows[0][11], rows[0][12])

    async def recipients_of_undelivered(self: SqliteHost) -> list[int]:
        """The users who have direct messages they have not seen (index messages_undelivered)."""
        rows = await self._fetch(
            "SELECT DISTINCT recipient_id FROM messages WHERE delivered = 0 ORDER BY recipient_id")
        return [row[0] for row in rows]

    async def held(self: SqliteHost, quota: Quota) -> int:
        rows = await self._fetch(quota.measure.counting("?1", "?2"), quota.arguments)
        return int(rows[0][0])

    async def delete_terminated_history(self: SqliteHost, before: float) -> int:
        """Delete the messages of rooms terminated before ``before``; how many there were."""
        rooms = ("room_id IN (SELECT id FROM rooms "
                 "WHERE terminated_at IS NOT NULL AND terminated_at < ?)")
        blocks = "message_blocks INDEXED BY message_blocks_room"
        async with self._transaction() as conn:
            rows = await conn.execute_fetchall(
                f"SELECT COALESCE(SUM(count), 0) FROM {blocks} WHERE {rooms}", (before,))
            await conn.execute(f"DELETE FROM {blocks} WHERE {rooms}", (before,))
            cursor = await conn.execute(
                f"DELETE FROM messages INDEXED BY messages_room WHERE {rooms}", (before,))
            return int(next(iter(rows))[0]) + cursor.rowcount

    async def mark_direct_delivered(self: SqliteHost, user_id: int,
                                    up_to: int) -> int:
        return await self._write(
            "UPDATE messages SET delivered = 1 WHERE recipient_id = ? AND delivered = 0 "
            "AND id <= ?", (user_id, up_to))


def _append(first: int, block_values: list[Any], other_values: list[Any],
            conn: sqlite3.Connection) -> None:
    """append_messages' transaction, in the database's thread."""
    [(stored,)] = conn.execute(MAX_MESSAGE_ID_SQL).fetchall()
    if first <= stored:
        raise Conflict(f"message ids must be new: the batch starts at {first}, "
                       f"ids up to {stored} are stored")
    insert_chunks(conn, _insert_blocks_sql, _BLOCK_WIDTH, block_values)
    insert_chunks(conn, _insert_messages_sql, _ALL_WIDTH, other_values,
                  careful=_careful_insert_sql)


async def _blocks_before(conn: aiosqlite.Connection, room_id: int, limit: int, before: int,
                         straddling: bool) -> list[MessageRecord]:
    """At least the last ``limit`` block-stored messages of the room below ``before``
    (fewer if there are no more), senders as stored.

    ``straddling``: ``before`` may fall inside a block (a page of history
    before a message), which is then read first.
    """
    found: list[MessageRecord] = []
    if straddling:
        for count, numbers, strings in await conn.execute_fetchall(
                _STRADDLING_SQL, (room_id, before)):
            found.extend(m for m in read_block(room_id, count, numbers, strings)
                         if m.id < before)
    # Blocks hold BLOCK_SIZE messages when the daemon is busy and fewer when
    # it is quiet: ask for what full blocks would need, then for more at once.
    take = -(-limit // BLOCK_SIZE) + 1
    upper = before
    while len(found) < limit:
        rows = list(await conn.execute_fetchall(_BLOCKS_SQL, (room_id, upper, take)))
        for last_id, count, numbers, strings in rows:
            found.extend(read_block(room_id, count, numbers, strings))
            upper = last_id
            if len(found) >= limit:
                break
        if len(rows) < take:
            break
        take = min(4 * take, limit)
    return found


class _Cut:
    """Rows already found above an id, and the id below which they are complete."""

    __slots__ = ("below", "rows")

    def __init__(self, rows: list[MessageRecord], below: int) -> None:
        self.rows = rows
        self.below = below

    def enough(self, blocks: list[MessageRecord], next_first: int, limit: int) -> bool:
        """Whether ``limit`` messages are known below every one not read yet: the
        blocks not read start at ``next_first`` or above, the rows at ``below``."""
        bound = min(next_first, self.below)
        known = sum(1 for m in self.rows if m.id < bound)
        return known + sum(1 for m in blocks if m.id < bound) >= limit


async def _blocks_after(conn: aiosqlite.Connection, rooms: str, after_id: int, limit: int,
                        cut: _Cut) -> list[MessageRecord]:
    """The block-stored messages of ``rooms`` above ``after_id``: enough of them
    that, with ``cut``'s rows, the first ``limit`` above it are all known.

    Blocks of different rooms overlap in ids, so they are read in the order of
    their first ids: every block not read yet starts above the last one read.
    """
    found: list[MessageRecord] = []
    take = -(-limit // BLOCK_SIZE) + 1
    first = -1
    while True:
        rows = list(await conn.execute_fetchall(_BLOCKS_AFTER_SQL,
                                                (after_id, rooms, first, take + 1)))
        for first_id, room_id, count, numbers, strings in rows[:take]:
            found.extend(m for m in read_block(room_id, count, numbers, strings)
                         if m.id > after_id)
            first = first_id
        if len(rows) <= take or cut.enough(found, rows[take][0], limit):
            return found
        take = min(4 * take, 4096)


async def _forget_deleted_senders(conn: aiosqlite.Connection,
                                  messages: list[MessageRecord]) -> None:
    """Set to 0 the sender of messages whose sender's account was deleted.

    Blocks do not reference their senders (a foreign key would cost every
    insert): deleting an account leaves their ids there, and they are read
    as messages whose sender is gone, like rows in messages.
    """
    senders = {m.sender_id for m in messages}
    if not senders:
        return
    # One parameter however many senders: SQLite limits the number of them.
    rows = await conn.execute_fetchall(
        "SELECT id FROM users WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(list(senders)),))
    present = {row[0] for row in rows}
    for message in messages:
        if message.sender_id not in present:
            message.sender_id = 0


_by_id = operator.attrgetter("id")
_ALL_WIDTH = width(_ALL_COLUMNS)
_BLOCK_WIDTH = width(BLOCK_COLUMNS)


def _first_new_id(batch: Sequence[MessageRecord]) -> int:
    """The batch's smallest id; Conflict if two of its messages share one."""
    ids: set[int] = set(map(_by_id, batch))
    if len(ids) < len(batch):
        raise Conflict(f"{len(batch) - len(ids)} message ids occur twice in one batch")
    return min(ids)


def _message(row: sqlite3.Row) -> MessageRecord:
    return MessageRecord(id=row[0], sender_id=row[1] or 0, sender_name=row[2], text=row[3],
                         ts=row[4], room_id=row[5], recipient_id=row[6], kind=row[7],
                         extra=loads_object(row[8]), delivered=bool(row[9]))


def _partition(batch: Iterable[MessageRecord]) -> tuple[list[MessageRecord],
                                                         list[MessageRecord]]:
    """The plain room messages (stored in blocks) and the others."""
    plain: list[MessageRecord] = []
    other: list[MessageRecord] = []
    for message in batch:
        (plain if is_plain(message) else other).append(message)
    return plain, other


def _message_row(message: MessageRecord) -> tuple[Any, ...]:
    """A message's ten values, in the order of _ALL_COLUMNS."""
    return (message.id, message.room_id, message.recipient_id,
            # A sender without an account (an IRC guest: id 0 or below) is stored as
            # NULL, like the sender of a deleted account's messages.
            message.sender_id if message.sender_id > 0 else None,
            message.sender_name, message.text, message.ts, message.kind,
            dumps_object(message.extra) if message.extra else "{}", int(message.delivered))
