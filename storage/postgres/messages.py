"""SQL for messages on PostgreSQL: the batched insert, history, direct messages
(mixed into PostgresStorage).

Every message is a row of ``messages``. A batch is one statement: its columns
are bound as arrays and unnested, so a batch of thousands costs one round trip.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from storage.api import Conflict
from storage.host import dumps_object, loads_object
from storage.postgres.host import PgHost, refuse_over
from storage.quotas import Quota
from storage.records import DirectBacklog, MessageRecord

_MAX_ID = 2**63 - 1
# Appending batches is serialised (a transaction-level advisory lock), so the
# check that a batch's ids are new cannot race another writer's batch.
MESSAGES_LOCK = 0x6368617464 + 1

_MESSAGE = ("id, COALESCE(sender_id, 0), sender_name, text, ts, room_id, recipient_id, kind, "
            "extra, delivered")

def _direct_side(recipient: str, sender: str) -> str:
    """One side of a conversation of direct messages, newest first below an id ($3),
    none of a kind ($4), at most $5: a backwards range scan of messages_conversation."""
    return (f"SELECT {_MESSAGE} FROM messages "
            f"WHERE recipient_id = {recipient} AND sender_id = {sender} AND id < $3 "
            "AND kind <> $4 ORDER BY id DESC LIMIT $5")


# What $1 received from $2: the whole of $1's notes to themselves when the two are one.
DIRECT_SIDE_SQL = _direct_side("$1", "$2")
# Both sides of the conversation of $1 and $2, merged.
DIRECT_HISTORY_SQL = (f"({_direct_side('$1', '$2')}) UNION ALL ({_direct_side('$2', '$1')}) "
                      "ORDER BY id DESC LIMIT $5")
# The newest message with each partner of $1, received and sent (messages_conversation
# and messages_sent), newest first: DISTINCT ON keeps the first row of each partner,
# which the inner order makes the newest; notes to oneself are on both sides and
# count once.
PARTNERS_SQL = """
SELECT partner, ts FROM (
    SELECT DISTINCT ON (partner) partner, id, ts FROM (
        SELECT sender_id AS partner, id, ts FROM messages
        WHERE recipient_id = $1 AND sender_id IS NOT NULL AND kind <> $2
        UNION ALL
        SELECT recipient_id, id, ts FROM messages
        WHERE sender_id = $1 AND recipient_id IS NOT NULL AND kind <> $2
    ) AS exchanged
    ORDER BY partner, id DESC
) AS newest
ORDER BY id DESC
"""

# A sender deleted while the message waited in the writer becomes NULL, and a
# direct message to a recipient deleted meanwhile is dropped (their direct
# messages went with them), as the SQLite backend does; a message to an unknown
# room breaks the foreign key and the batch is refused.
_INSERT_SQL = """
INSERT INTO messages (id, room_id, recipient_id, sender_id, sender_name, text, ts, kind,
                      extra, delivered)
SELECT m.id, m.room_id, m.recipient_id, u.id, m.sender_name, m.text, m.ts, m.kind,
       m.extra, m.delivered
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[],
            $7::float8[], $8::text[], $9::text[], $10::boolean[])
     AS m (id, room_id, recipient_id, sender_id, sender_name, text, ts, kind, extra, delivered)
LEFT JOIN users u ON u.id = m.sender_id
WHERE m.recipient_id IS NULL OR EXISTS (SELECT 1 FROM users r WHERE r.id = m.recipient_id)
"""

# The persister's insert (chatd/cluster/persister.py): a message already stored
# (the same log entry written twice, by two nodes or after a retry) is skipped.
_STORE_SQL = _INSERT_SQL + "ON CONFLICT (id) DO NOTHING\n"


class PgMessageQueries:
    """Room and direct messages, as a mixin of PostgresStorage."""

    async def append_messages(self: PgHost, batch: Sequence[MessageRecord]) -> None:
        """Insert the batch in one transaction (all or nothing); ids come from the caller.

        Their ids must be distinct and new (for a sole node: above every stored
        one); Conflict otherwise.
        """
        if not batch:
            return
        ids = [m.id for m in batch]
        if len(set(ids)) < len(ids):
            raise Conflict(f"{len(ids) - len(set(ids))} message ids occur twice in one batch")
        first = min(ids)
        columns = _columns(batch)
        async with self._transaction() as conn:
            if self._sole_node:
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MESSAGES_LOCK)
                stored = await conn.fetchval("SELECT COALESCE(MAX(id), 0) FROM messages")
                if first <= stored:
                    raise Conflict(f"message ids must be new: the batch starts at {first}, "
                                   f"ids up to {stored} are stored")
            # Nodes sharing the database write their batches interleaved: the
            # shared counter makes ids unique, the primary key refuses a repeat.
            await conn.execute(_INSERT_SQL, *columns)

    async def store_messages(self: PgHost, batch: Sequence[MessageRecord]) -> int:
        """Insert the messages of ``batch`` not stored yet, in one statement (all or
        nothing), whatever their ids; how many were new. Idempotent: storing a
        batch again changes nothing. One statement is its own transaction: one
        round trip, where BEGIN and COMMIT around it made three."""
        if not batch:
            return 0
        unique = list({m.id: m for m in batch}.values())
        return await self._execute(_STORE_SQL, *_columns(unique))

    async def max_message_id(self: PgHost) -> int:
        return int(await self._fetch_value("SELECT COALESCE(MAX(id), 0) FROM messages"))

    async def room_history(self: PgHost, room_id: int, limit: int,
                           before_id: int | None = None) -> list[MessageRecord]:
        """The last ``limit`` messages of the room (below ``before_id``), oldest first."""
        if limit <= 0:
            return []
        before = _MAX_ID if before_id is None else before_id
        rows = await self._fetch(
            f"SELECT {_MESSAGE} FROM messages WHERE room_id = $1 AND id < $2 "
            "ORDER BY id DESC LIMIT $3", room_id, before, limit)
        return [_message(row) for row in reversed(rows)]

    async def direct_history(self: PgHost, user_id: int, other_id: int, limit: int,
                             before_id: int | None = None,
                             hidden_kind: str = "") -> list[MessageRecord]:
        """The last ``limit`` direct messages between two users, either way (below
        ``before_id``; none of ``hidden_kind``), oldest first."""
        if limit <= 0:
            return []
        before = _MAX_ID if before_id is None else before_id
        # Notes to oneself: one side is the whole conversation (both would repeat it).
        sql = DIRECT_SIDE_SQL if user_id == other_id else DIRECT_HISTORY_SQL
        rows = await self._fetch(sql, user_id, other_id, before, hidden_kind, limit)
        return [_message(row) for row in reversed(rows)]

    async def messages_after(self: PgHost, after_id: int, room_ids: Sequence[int],
                             user_id: int, limit: int) -> list[MessageRecord]:
        """The first ``limit`` messages above ``after_id``, in id order, of the rooms
        ``room_ids`` and the direct messages to or from ``user_id`` (a scan of the
        primary key from ``after_id`` on)."""
        if limit <= 0:
            return []
        rows = await self._fetch(
            f"SELECT {_MESSAGE} FROM messages WHERE id > $1 AND (room_id = ANY($2::bigint[]) "
            "OR recipient_id = $3 OR (sender_id = $3 AND recipient_id IS NOT NULL)) "
            "ORDER BY id LIMIT $4", after_id, list(room_ids), user_id, limit)
        return [_message(row) for row in rows]

    async def direct_partners(self: PgHost, user_id: int,
                              hidden_kind: str = "") -> list[tuple[int, float]]:
        """Everyone ``user_id`` exchanged direct messages with (none of ``hidden_kind``),
        with the time of the newest, newest first."""
        rows = await self._fetch(PARTNERS_SQL, user_id, hidden_kind)
        return [(int(row[0]), float(row[1])) for row in rows]

    async def direct_backlog(self: PgHost, user_id: int,
                             limit: int | None = None) -> DirectBacklog | None:
        """The undelivered direct messages to ``user_id`` (the newest ``limit``), in
        id order, with the count and oldest id of all of them, or None when the
        account is gone (deleted, perhaps by another node a moment ago). One
        statement, so a cluster's log-in learns it all in the round trip it makes
        anyway, and two log-ins at once each count what they read."""
        rows = await self._fetch(
            f"SELECT {_MESSAGE}, EXISTS (SELECT 1 FROM users WHERE id = $1), "
            "COUNT(id) OVER (), MIN(id) OVER () "
            "FROM (SELECT 1) AS one LEFT JOIN messages ON recipient_id = $1 AND NOT delivered "
            "ORDER BY id DESC NULLS LAST LIMIT $2", user_id, limit)
        if not rows[0][10]:
            return None
        oldest = rows[0][12]
        return DirectBacklog([_message(row) for row in reversed(rows) if row[0] is not None],
                             int(rows[0][11]), None if oldest is None else int(oldest))

    async def recipients_of_undelivered(self: PgHost) -> list[int]:
        rows = await self._fetch("SELECT DISTINCT recipient_id FROM messages "
                                 "WHERE NOT delivered ORDER BY recipient_id")
        return [int(row[0]) for row in rows]

    async def held(self: PgHost, quota: Quota) -> int:
        return int(await self._fetch_value(quota.measure.counting("$1", "$2"),
                                           *quota.arguments))

    async def store_direct_counted(
            self: PgHost, quotas: Sequence[Quota],
            numbered: Callable[[], Awaitable[MessageRecord]]) -> MessageRecord:
        """Store the direct message ``numbered`` makes, once ``quotas`` are counted in
        the same transaction, under their holders' advisory locks: one made through
        another node at the same moment is counted after this one commits. A
        refusal (``OverQuota``) comes before ``numbered`` is called, so it takes no
        id the log would wait for. The message's entry of the log is stored again
        by a persister, which changes nothing (``ON CONFLICT (id) DO NOTHING``)."""
        async with self._transaction() as conn:
            await refuse_over(conn, quotas)
            record = await numbered()
            await conn.execute(_STORE_SQL, *_columns([record]))
        return record

    async def mark_direct_delivered(self: PgHost, user_id: int,
                                    up_to: int) -> int:
        return await self._execute(
            "UPDATE messages SET delivered = true WHERE recipient_id = $1 AND NOT delivered "
            "AND id <= $2", user_id, up_to)

    async def delete_terminated_history(self: PgHost, before: float) -> int:
        """Delete the messages of rooms terminated before ``before``; how many there were."""
        return await self._execute(
            "DELETE FROM messages WHERE room_id IN (SELECT id FROM rooms "
            "WHERE terminated_at IS NOT NULL AND terminated_at < $1)", before)


def _columns(batch: Sequence[MessageRecord]) -> tuple[list[Any], ...]:
    """The batch as ten arrays, one per column of _INSERT_SQL's unnest."""
    return (
        [m.id for m in batch], [m.room_id for m in batch], [m.recipient_id for m in batch],
        # A sender without an account (an IRC guest: id 0 or below) is stored as NULL.
        [m.sender_id if m.sender_id > 0 else None for m in batch],
        [m.sender_name for m in batch], [m.text for m in batch], [m.ts for m in batch],
        [m.kind for m in batch],
        [dumps_object(m.extra) if m.extra else "{}" for m in batch],
        [m.delivered for m in batch])


def _message(row: asyncpg.Record) -> MessageRecord:
    return MessageRecord(id=row[0], sender_id=row[1], sender_name=row[2], text=row[3],
                         ts=row[4], room_id=row[5], recipient_id=row[6], kind=row[7],
                         extra=loads_object(row[8]), delivered=row[9])

