"""Conversations of direct messages: both sides of one, newest first, and a user's
partners, on both backends; and the indexes each backend reads them through."""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import MessageRecord, SqliteStorage, Storage
from storage.messages import _PARTNERS_SQL, DIRECT_HISTORY_SQL
from tests.backends import both

T0 = 1_700_000_000.0
HIDDEN = "e2e-key"

backend = both


@pytest.fixture
async def sqlite_storage(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    store = SqliteStorage(str(tmp_path / "chat.db"))
    await store.open()
    yield store
    await store.close()


async def _users(storage: Storage, *names: str) -> list[int]:
    return [(await storage.create_user(name, b"hash", False, T0)).id for name in names]


def _dm(message_id: int, sender_id: int, recipient_id: int, kind: str = "text") -> MessageRecord:
    return MessageRecord(id=message_id, sender_id=sender_id, sender_name=f"user{sender_id}",
                         text=f"dm {message_id}", ts=T0 + message_id, recipient_id=recipient_id,
                         kind=kind)


async def test_a_conversation_is_both_sides_oldest_first(storage: Storage) -> None:
    alice, bob, carol = await _users(storage, "alice", "bob", "carol")
    room = (await storage.create_room("lobby", "open", alice, T0))[0].id
    await storage.append_messages([
        _dm(1, alice, bob), _dm(2, bob, alice), _dm(3, carol, alice), _dm(4, alice, carol),
        MessageRecord(5, alice, "alice", "in the room", T0 + 5, room_id=room),
        _dm(6, alice, bob, kind=HIDDEN), _dm(7, bob, alice), _dm(8, alice, bob),
        _dm(9, alice, alice)])

    def ids(found: list[MessageRecord]) -> list[int]:
        return [m.id for m in found]

    assert ids(await storage.direct_history(alice, bob, 10, hidden_kind=HIDDEN)) == [1, 2, 7, 8]
    assert ids(await storage.direct_history(bob, alice, 10)) == [1, 2, 6, 7, 8]
    assert ids(await storage.direct_history(alice, bob, 2, hidden_kind=HIDDEN)) == [7, 8]
    assert ids(await storage.direct_history(alice, bob, 2, before_id=7,
                                            hidden_kind=HIDDEN)) == [1, 2]
    assert ids(await storage.direct_history(alice, carol, 10)) == [3, 4]
    assert ids(await storage.direct_history(alice, alice, 10)) == [9]
    assert await storage.direct_history(alice, bob, 0) == []
    [first] = await storage.direct_history(bob, alice, 1, before_id=2)
    assert first == _dm(1, alice, bob)

    assert await storage.direct_partners(alice, HIDDEN) == [
        (alice, T0 + 9), (bob, T0 + 8), (carol, T0 + 4)]
    assert await storage.direct_partners(carol) == [(alice, T0 + 4)]
    assert await storage.direct_partners(bob, HIDDEN) == [(alice, T0 + 8)]
    # Only the hidden kind with someone: no conversation to show.
    await storage.append_messages([_dm(10, carol, bob, kind=HIDDEN)])
    assert await storage.direct_partners(bob, HIDDEN) == [(alice, T0 + 8)]
    assert await storage.direct_partners(bob) == [(carol, T0 + 10), (alice, T0 + 8)]


async def test_a_deleted_account_leaves_no_conversation(storage: Storage) -> None:
    alice, bob, gone = await _users(storage, "alice", "bob", "gone")
    await storage.append_messages([_dm(1, gone, alice), _dm(2, alice, gone), _dm(3, bob, alice)])
    await storage.delete_user(gone)
    # What they sent is kept, sender unknown; it belongs to no conversation any more.
    assert await storage.direct_history(alice, gone, 10) == []
    assert await storage.direct_partners(alice) == [(bob, T0 + 3)]


# Fresh names for every example: the examples of one test share its database.
_names = itertools.count()


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.booleans()), max_size=40),
       st.integers(1, 12), st.integers(1, 45))
async def test_a_conversation_is_the_newest_of_what_the_two_exchanged(
        storage: Storage, sent_pairs: list[tuple[int, int, bool]], limit: int,
        before: int) -> None:
    users = await _users(storage, *(f"u{next(_names)}" for _ in range(3)))
    first = await storage.max_message_id() + 1
    sent = [_dm(first + i, users[a], users[b], kind=HIDDEN if hidden else "text")
            for i, (a, b, hidden) in enumerate(sent_pairs)]
    if sent:
        await storage.append_messages(sent)
    shown = [m for m in sent if m.kind != HIDDEN]
    for a in users:
        for b in users:
            expected = [m for m in shown if {m.sender_id, m.recipient_id} == {a, b}
                        and m.id < first + before - 1][-limit:]
            found = await storage.direct_history(a, b, limit, before_id=first + before - 1,
                                                 hidden_kind=HIDDEN)
            assert found == expected
        newest: dict[int, MessageRecord] = {}
        for m in shown:
            if a in (m.sender_id, m.recipient_id):
                newest[m.recipient_id if m.sender_id == a else m.sender_id] = m
        assert await storage.direct_partners(a, HIDDEN) == [
            (partner, m.ts) for partner, m in sorted(newest.items(), key=lambda i: -i[1].id)]


async def test_sqlite_reads_conversations_through_their_indexes(
        sqlite_storage: SqliteStorage, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "chat.db") as conn:
        plan = " ".join(row[3] for row in conn.execute(
            f"EXPLAIN QUERY PLAN {DIRECT_HISTORY_SQL}", (1, 2, 100, "", 10, 2, 1, 100, "", 10, 10)))
        partners = " ".join(row[3] for row in conn.execute(
            f"EXPLAIN QUERY PLAN {_PARTNERS_SQL}", (1, "", 1, "")))
    assert "USING INDEX messages_conversation (recipient_id=? AND sender_id=? AND id<?)" in plan
    assert "SCAN messages" not in plan.replace("SCAN messages_", "")
    assert "USING INDEX messages_conversation (recipient_id=?" in partners
    assert "USING INDEX messages_sent (sender_id=?" in partners


async def test_postgres_reads_conversations_through_their_indexes(postgres_url: str) -> None:
    import asyncpg

    from storage.postgres.messages import DIRECT_HISTORY_SQL as PG_HISTORY_SQL
    from storage.postgres.messages import PARTNERS_SQL as PG_PARTNERS_SQL

    conn = await asyncpg.connect(postgres_url)
    try:
        # An empty table is cheapest to read whole: ask for the plan an index allows.
        await conn.execute("SET enable_seqscan = off")
        plan = "\n".join(row[0] for row in await conn.fetch(
            f"EXPLAIN {PG_HISTORY_SQL}", 1, 2, 100, "", 10))
        partners = "\n".join(row[0] for row in await conn.fetch(
            f"EXPLAIN {PG_PARTNERS_SQL}", 1, ""))
    finally:
        await conn.close()
    # Each side a backwards range scan, of either index (both lead with the two
    # users, then the id), the two merged in order: no row beyond the limit is read.
    sides = re.findall(r"Index Scan Backward using messages_(?:conversation|sent) .*\n.*"
                       r"Index Cond: .*_id = .*_id = .*id < ", plan)
    assert len(sides) == 2 and "Merge Append" in plan and "Seq Scan" not in plan, plan
    # The partners' two sides: by an index on the user's column, whichever of the
    # indexes that lead with it the planner's statistics of the moment prefer.
    assert re.findall(r"Index Cond: \(\w+ = ", partners) and "Seq Scan" not in partners, partners
