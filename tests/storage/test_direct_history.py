"""Conversations of direct messages: both sides of one, newest first, and a user's partners."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import MessageRecord, SqliteStorage
from storage.messages import _PARTNERS_SQL, DIRECT_HISTORY_SQL

T0 = 1_700_000_000.0
HIDDEN = "e2e-key"


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    store = SqliteStorage(str(tmp_path / "chat.db"))
    await store.open()
    yield store
    await store.close()


async def _users(storage: SqliteStorage, *names: str) -> list[int]:
    return [(await storage.create_user(name, b"hash", False, T0)).id for name in names]


def _dm(message_id: int, sender_id: int, recipient_id: int, kind: str = "text") -> MessageRecord:
    return MessageRecord(id=message_id, sender_id=sender_id, sender_name=f"user{sender_id}",
                         text=f"dm {message_id}", ts=T0 + message_id, recipient_id=recipient_id,
                         kind=kind)


async def test_a_conversation_is_both_sides_oldest_first(storage: SqliteStorage) -> None:
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


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), max_size=40),
       st.integers(1, 12), st.integers(1, 45))
def test_a_conversation_is_the_newest_of_what_the_two_exchanged(
        tmp_path_factory: pytest.TempPathFactory, pairs: list[tuple[int, int]],
        limit: int, before: int) -> None:
    async def check() -> None:
        store = SqliteStorage(str(tmp_path_factory.mktemp("dm") / "chat.db"))
        await store.open()
        try:
            users = await _users(store, "u0", "u1", "u2")
            sent = [_dm(i + 1, users[a], users[b]) for i, (a, b) in enumerate(pairs)]
            if sent:
                await store.append_messages(sent)
            for a in users:
                for b in users:
                    expected = [m for m in sent if {m.sender_id, m.recipient_id} == {a, b}
                                and m.id < before][-limit:]
                    found = await store.direct_history(a, b, limit, before_id=before)
                    assert found == expected
        finally:
            await store.close()

    asyncio.run(check())


async def test_conversations_are_read_through_their_indexes(storage: SqliteStorage,
                                                            tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "chat.db") as conn:
        plan = " ".join(row[3] for row in conn.execute(
            f"EXPLAIN QUERY PLAN {DIRECT_HISTORY_SQL}", (1, 2, 100, "", 10, 2, 1, 100, "", 10, 10)))
        partners = " ".join(row[3] for row in conn.execute(
            f"EXPLAIN QUERY PLAN {_PARTNERS_SQL}", (1, "", 1, "")))
    assert "USING INDEX messages_conversation (recipient_id=? AND sender_id=? AND id<?)" in plan
    assert "SCAN messages" not in plan.replace("SCAN messages_", "")
    assert "USING INDEX messages_conversation (recipient_id=?" in partners
    assert "USING INDEX messages_sent (sender_id=?" in partners
