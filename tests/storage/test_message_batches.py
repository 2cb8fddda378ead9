"""The batched message insert: plain and full rows, fixed chunk sizes, the careful retry."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import Conflict, SqliteStorage
from storage.messages import MESSAGE_CHUNK, chunk_sizes
from storage.records import MessageRecord

T0 = 1_700_000_000.0
_COLUMNS = ("id, room_id, recipient_id, sender_id, sender_name, text, ts, kind, extra, "
            "delivered")


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "batches.db")


@pytest.fixture
async def storage(db_path: str) -> AsyncIterator[SqliteStorage]:
    store = SqliteStorage(db_path)
    await store.open()
    yield store
    await store.close()


def stored_rows(db_path: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path) as conn:
        return list(conn.execute(f"SELECT {_COLUMNS} FROM messages ORDER BY id"))


def expected_row(m: MessageRecord) -> tuple[Any, ...]:
    extra = "{}" if not m.extra else None  # compared separately below when set
    return (m.id, m.room_id, m.recipient_id, m.sender_id if m.sender_id > 0 else None,
            m.sender_name, m.text, m.ts, m.kind, extra, int(m.delivered))


def mixed_batch(room: int, alice: int, bob: int, start: int = 1) -> list[MessageRecord]:
    """One of every shape the daemon writes."""
    i = start
    return [
        MessageRecord(i, alice, "alice", "plain room text", T0, room_id=room),
        MessageRecord(i + 1, alice, "alice", "waves", T0 + 1, room_id=room, kind="action"),
        MessageRecord(i + 2, bob, "bob", "", T0 + 2, room_id=room, kind="sticker",
                      extra={"sticker": "cat"}),
        MessageRecord(i + 3, alice, "alice", "dm seen", T0 + 3, recipient_id=bob),
        MessageRecord(i + 4, bob, "bob", "dm waiting", T0 + 4, recipient_id=alice,
                      delivered=False),
        MessageRecord(i + 5, 0, "guest", "from irc", T0 + 5, room_id=room),
        MessageRecord(i + 6, -3, "guest2", "also a guest", T0 + 6, room_id=room),
        MessageRecord(i + 7, bob, "bob", "ünïcode ✓ and 'quotes'", T0 + 7, room_id=room),
    ]


async def users_and_room(storage: SqliteStorage) -> tuple[int, int, int]:
    alice = (await storage.create_user("alice", b"h", False, T0)).id
    bob = (await storage.create_user("bob", b"h", False, T0)).id
    room, _ = await storage.create_room("lobby", "open", alice, T0)
    return room.id, alice, bob


def test_chunk_sizes_are_full_chunks_then_powers_of_two() -> None:
    assert chunk_sizes(0) == []
    assert chunk_sizes(1) == [1]
    assert chunk_sizes(MESSAGE_CHUNK) == [MESSAGE_CHUNK]
    assert chunk_sizes(2 * MESSAGE_CHUNK + 7) == [MESSAGE_CHUNK, MESSAGE_CHUNK, 4, 2, 1]
    for count in range(0, 3 * MESSAGE_CHUNK, 37):
        sizes = chunk_sizes(count)
        assert sum(sizes) == count
        # Few distinct statements ever: the full size and the binary digits below it.
        assert all(size & (size - 1) == 0 and size <= MESSAGE_CHUNK for size in sizes)
        assert len(sizes) == len(set(sizes)) + max(0, sizes.count(MESSAGE_CHUNK) - 1)


async def test_every_shape_is_stored_column_for_column(storage: SqliteStorage,
                                                       db_path: str) -> None:
    room, alice, bob = await users_and_room(storage)
    batch = mixed_batch(room, alice, bob)
    await storage.append_messages(batch)
    rows = stored_rows(db_path)
    assert len(rows) == len(batch)
    for row, message in zip(rows, batch, strict=True):
        expected = expected_row(message)
        assert row[:8] == expected[:8] and row[9] == expected[9]
        assert row[8] == ("{}" if not message.extra else '{"sticker":"cat"}')


async def test_a_large_mixed_batch_round_trips(storage: SqliteStorage, db_path: str) -> None:
    room, alice, bob = await users_and_room(storage)
    batch = [m for k in range(130) for m in mixed_batch(room, alice, bob, 1 + 8 * k)]
    await storage.append_messages(batch)
    assert len(stored_rows(db_path)) == len(batch) == 1040
    history = await storage.room_history(room, 2000)
    assert [m.id for m in history] == [m.id for m in batch if m.room_id is not None]
    waiting = await storage.undelivered_direct_messages(alice)
    assert [m.text for m in waiting] == ["dm waiting"] * 130


async def test_a_deleted_sender_mid_batch_is_stored_as_null(storage: SqliteStorage,
                                                            db_path: str) -> None:
    room, alice, _bob = await users_and_room(storage)
    gone = (await storage.create_user("gone", b"h", False, T0)).id
    await storage.delete_user(gone)
    batch = [MessageRecord(i, alice, "alice", f"m{i}", T0 + i, room_id=room)
             for i in range(1, 40)]
    batch[20] = MessageRecord(21, gone, "gone", "written after the account went", T0,
                              room_id=room)
    await storage.append_messages(batch)
    rows = stored_rows(db_path)
    assert [r[0] for r in rows] == list(range(1, 40))
    assert rows[20][3] is None and rows[20][4] == "gone"


async def test_a_direct_message_to_a_deleted_recipient_is_dropped(
        storage: SqliteStorage, db_path: str) -> None:
    room, alice, bob = await users_and_room(storage)
    gone = (await storage.create_user("gone", b"h", False, T0)).id
    await storage.delete_user(gone)
    batch = [MessageRecord(1, alice, "alice", "to the room", T0, room_id=room),
             MessageRecord(2, alice, "alice", "to nobody", T0, recipient_id=gone,
                           delivered=False),
             MessageRecord(3, alice, "alice", "to bob", T0, recipient_id=bob, delivered=False)]
    await storage.append_messages(batch)
    assert [r[0] for r in stored_rows(db_path)] == [1, 3]


async def test_a_duplicate_id_still_fails_the_whole_batch(storage: SqliteStorage,
                                                          db_path: str) -> None:
    room, alice, bob = await users_and_room(storage)
    await storage.append_messages([MessageRecord(5, alice, "alice", "x", T0, room_id=room)])
    batch = mixed_batch(room, alice, bob, start=1)  # ids 1..8: 5 exists already
    with pytest.raises(Conflict):
        await storage.append_messages(batch)
    assert [r[0] for r in stored_rows(db_path)] == [5]


messages = st.lists(
    st.tuples(st.sampled_from(["room", "dm", "dm-waiting"]),
              st.sampled_from(["text", "action", "sticker"]),
              st.text(max_size=40).filter(lambda t: "\x00" not in t),
              st.booleans()),
    max_size=60)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shapes=messages)
async def test_any_valid_batch_round_trips(tmp_path: Path, shapes: list[tuple[str, str, str,
                                                                            bool]]) -> None:
    path = str(tmp_path / f"prop{abs(hash(tuple(shapes)))}.db")
    store = SqliteStorage(path)
    await store.open()
    try:
        room, alice, bob = await users_and_room(store)
        batch = []
        for i, (where, kind, text, with_extra) in enumerate(shapes, start=1):
            extra = {"n": i} if with_extra else {}
            if where == "room":
                batch.append(MessageRecord(i, alice, "alice", text, T0 + i, room_id=room,
                                           kind=kind, extra=extra))
            else:
                batch.append(MessageRecord(i, alice, "alice", text, T0 + i, recipient_id=bob,
                                           kind=kind, extra=extra,
                                           delivered=where == "dm"))
        await store.append_messages(batch)
        in_room = [m for m in batch if m.room_id is not None]
        assert await store.room_history(room, 100) == in_room
        waiting = [m for m in batch if m.recipient_id is not None and not m.delivered]
        assert await store.undelivered_direct_messages(bob) == waiting
    finally:
        await store.close()
