"""Tests of plain room text stored in blocks: the block format, and history read
from blocks and rows together (pages, quiet and busy rooms, deleted senders,
terminated rooms). Real SQLite files throughout."""

from __future__ import annotations

import asyncio
import itertools
import random
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import MessageRecord, SqliteStorage, StorageError
from storage.blocks import BLOCK_SIZE, block_rows, is_plain, read_block
from storage.messages import _BLOCKS_SQL, _STRADDLING_SQL, HISTORY_SQL, MAX_MESSAGE_ID_SQL
from tests.storage import open_storage

T0 = 1_700_000_000.0


def plain(message_id: int, room_id: int, sender_id: int, text: str = "",
          ts: float | None = None) -> MessageRecord:
    return MessageRecord(message_id, sender_id, f"user{sender_id}", text or f"m{message_id}",
                         T0 + message_id if ts is None else ts, room_id=room_id)


def action(message_id: int, room_id: int, sender_id: int) -> MessageRecord:
    """A room message that is not plain: stored as a row of messages."""
    return MessageRecord(message_id, sender_id, f"user{sender_id}", f"waves {message_id}",
                         T0 + message_id, room_id=room_id, kind="action")


# -- the block format ----------------------------------------------------------------

_TEXT = st.text(max_size=30)  # any code point but surrogates: NUL, emoji, combining marks


@settings(max_examples=200, deadline=None)
@given(fields=st.lists(st.tuples(st.integers(1, 2**62), _TEXT, _TEXT,
                                 st.floats(allow_nan=False)),
                       min_size=1, max_size=3 * BLOCK_SIZE, unique_by=lambda f: f[0]),
       rooms=st.lists(st.integers(1, 2**62), min_size=1, max_size=3))
def test_blocks_round_trip_any_plain_messages(fields: list[tuple[int, str, str, float]],
                                              rooms: list[int]) -> None:
    messages = [MessageRecord(message_id, sender, name, text, ts,
                              room_id=rooms[message_id % len(rooms)])
                for sender, (message_id, name, text, ts) in enumerate(fields, start=1)]
    rows = block_rows(messages)
    back = [m for last_id, room_id, first_id, count, numbers, strings in rows
            for m in read_block(room_id, count, numbers, strings)]
    assert sorted(back, key=lambda m: m.id) == sorted(messages, key=lambda m: m.id)
    for last_id, room_id, first_id, count, numbers, strings in rows:
        block = read_block(room_id, count, numbers, strings)
        assert 1 <= count <= BLOCK_SIZE and len(block) == count
        assert (first_id, last_id) == (block[0].id, block[-1].id)
        assert [m.id for m in block] == sorted(m.id for m in block)
        assert all(m.room_id == room_id and is_plain(m) for m in block)


def test_a_room_is_cut_into_full_blocks_in_id_order() -> None:
    per_room = 2 * BLOCK_SIZE + 5
    messages = [plain(i, 1 + i % 2, 7) for i in range(1, 2 * per_room + 1)]
    random.Random(1).shuffle(messages)
    rows = block_rows(messages)
    assert sorted((room, count) for _, room, _, count, _, _ in rows) == [
        (room, count) for room in (1, 2) for count in (5, BLOCK_SIZE, BLOCK_SIZE)]
    den = [m.id for _, room, _, count, numbers, strings in rows if room == 2
           for m in read_block(room, count, numbers, strings)]
    assert den == list(range(1, 2 * per_room + 1, 2))


@pytest.mark.parametrize("damage", ["short numbers", "long strings", "bad count",
                                    "text numbers", "blob strings", "text count"])
def test_a_damaged_block_is_an_error_not_wrong_messages(damage: str) -> None:
    [(_, room, _, count, numbers, strings)] = block_rows([plain(i, 1, 2) for i in (1, 2, 3)])
    stored: tuple[Any, Any, Any] = {"short numbers": (count, numbers[:-1], strings),
              "long strings": (count, numbers, strings + "x"),
              "bad count": (BLOCK_SIZE + 1, numbers, strings),
              "text numbers": (count, numbers.decode("latin-1"), strings),
              "blob strings": (count, numbers, strings.encode()),
              "text count": ("3", numbers, strings)}[damage]
    with pytest.raises(StorageError, match="block of room 1 is damaged"):
        read_block(room, *stored)


def test_only_room_text_by_an_account_is_plain() -> None:
    assert is_plain(plain(1, 1, 2))
    assert not is_plain(action(1, 1, 2))
    assert not is_plain(MessageRecord(1, 2, "u", "t", T0, recipient_id=3))
    assert not is_plain(MessageRecord(1, 2, "u", "t", T0, room_id=1, extra={"a": 1}))
    assert not is_plain(MessageRecord(1, 0, "*", "t", T0, room_id=1))
    assert not is_plain(MessageRecord(1, -4, "guest", "t", T0, room_id=1))
    assert not is_plain(MessageRecord(1, 2, "u", "t", T0, room_id=1, delivered=False))


# -- history from blocks and rows ----------------------------------------------------


class Room:
    """A database with users 1..3 and rooms 1..2, and what was written to it."""

    def __init__(self, storage: SqliteStorage, path: str) -> None:
        self.storage = storage
        self.path = path
        self.written: list[MessageRecord] = []
        self.next_id = 1

    async def populate(self) -> Room:
        for name in ("alice", "bob", "carol"):
            await self.storage.create_user(name, b"h", False, T0)
        for name in ("lobby", "den"):
            await self.storage.create_room(name, "open", 1, T0)
        return self

    async def write(self, batch: list[MessageRecord]) -> None:
        await self.storage.append_messages(batch)
        self.written.extend(batch)

    def ids(self, count: int) -> list[int]:
        ids = list(range(self.next_id, self.next_id + count))
        self.next_id += count
        return ids

    def expected(self, room_id: int, limit: int, before: int | None) -> list[int]:
        mine = [m.id for m in self.written
                if m.room_id == room_id and (before is None or m.id < before)]
        return sorted(mine)[-limit:] if limit > 0 else []

    def block_counts(self) -> list[int]:
        with sqlite3.connect(self.path) as conn:
            return [row[0] for row in conn.execute("SELECT count FROM message_blocks")]


@pytest.fixture
async def room(tmp_path: Path) -> AsyncIterator[Room]:
    path = str(tmp_path / "blocks.db")
    async with open_storage(path) as storage:
        yield await Room(storage, path).populate()


async def write_mixed(room: Room, batch_sizes: Iterable[int], rng: random.Random) -> None:
    """Batches of the given sizes: both rooms, plain text mostly, some actions."""
    for size in batch_sizes:
        batch = [(action if rng.random() < 0.15 else plain)(i, rng.choice((1, 2)),
                                                              rng.choice((1, 2, 3)))
                 for i in room.ids(size)]
        await room.write(batch)


async def history_ids(room: Room, room_id: int, limit: int, before: int | None) -> list[int]:
    return [m.id for m in await room.storage.room_history(room_id, limit, before)]


@pytest.mark.parametrize("shape", ["busy", "quiet", "mixed"])
async def test_history_pages_match_what_was_written(room: Room, shape: str) -> None:
    rng = random.Random(shape)
    sizes = {"busy": [700, 900, 400], "quiet": [1] * 150,
             "mixed": [rng.choice((1, 3, 80, 300)) for _ in range(25)]}[shape]
    await write_mixed(room, sizes, rng)
    last = room.next_id
    probes = [None, last, last + 5, 1, 2, *rng.sample(range(1, last), 40)]
    for before in probes:
        for limit in (1, 7, 50, 200, 5000):
            for room_id in (1, 2):
                assert await history_ids(room, room_id, limit, before) == room.expected(
                    room_id, limit, before), (before, limit, room_id)
    assert await room.storage.room_history(1, 0) == []
    if shape == "busy":
        assert max(room.block_counts()) == BLOCK_SIZE


async def test_paging_back_through_a_room_sees_every_message_once(room: Room) -> None:
    await write_mixed(room, [333, 1, 1, 64, 65, 128, 5, 999], random.Random(2))
    for room_id in (1, 2):
        seen: list[int] = []
        before: int | None = None
        while page := await history_ids(room, room_id, 37, before):
            seen[:0] = page
            before = page[0]
        assert seen == room.expected(room_id, 10**6, None)


async def test_history_records_are_whole_and_senders_of_deleted_accounts_are_0(
        room: Room) -> None:
    gone = (await room.storage.create_user("gone", b"h", False, T0)).id
    batch = [plain(1, 1, 2, "hello"), plain(2, 1, gone, "bye", ts=T0 + 0.123456789),
             action(3, 1, gone), plain(4, 1, 3, "né 👋\x00 tab\t")]
    await room.write(batch)
    await room.storage.delete_user(gone)
    history = await room.storage.room_history(1, 10)
    assert history == [batch[0], MessageRecord(2, 0, f"user{gone}", "bye", T0 + 0.123456789,
                                               room_id=1),
                       MessageRecord(3, 0, f"user{gone}", "waves 3", T0 + 3, room_id=1,
                                     kind="action"), batch[3]]


async def test_terminated_rooms_lose_blocks_and_rows(room: Room) -> None:
    await write_mixed(room, [300, 2, 150], random.Random(3))
    in_den = len(room.expected(2, 10**6, None))
    await room.storage.terminate_room(2, T0 + 10)
    assert await room.storage.delete_terminated_history(T0 + 5) == 0
    assert await room.storage.delete_terminated_history(T0 + 11) == in_den
    assert await room.storage.room_history(2, 1000) == []
    assert await history_ids(room, 1, 1000, None) == room.expected(1, 1000, None)
    assert await room.storage.delete_terminated_history(T0 + 11) == 0


async def test_the_largest_id_is_found_in_blocks_or_rows(room: Room) -> None:
    assert await room.storage.max_message_id() == 0
    await room.write([plain(5, 1, 2), action(3, 2, 1)])
    assert await room.storage.max_message_id() == 5
    await room.write([action(9, 2, 1), plain(7, 1, 2)])
    assert await room.storage.max_message_id() == 9
    await room.write([plain(10, 2, 3), plain(12, 1, 2)])
    assert await room.storage.max_message_id() == 12


ROOM_QUERIES = [
    (_BLOCKS_SQL, (2, 100, 10), "message_blocks_room (room_id=? AND rowid<?)"),
    (_STRADDLING_SQL, (2, 100), "message_blocks_room (room_id=? AND rowid>?)"),
    (HISTORY_SQL, (2, 100, 10), "messages_room (room_id=? AND id<?)"),
    ("DELETE FROM message_blocks INDEXED BY message_blocks_room WHERE room_id IN (7, 8)", (),
     "message_blocks_room (room_id=?)"),
    ("DELETE FROM messages INDEXED BY messages_room WHERE room_id IN (7, 8)", (),
     "messages_room (room_id=?)"),
]


def query_plan(path: str, sql: str, params: tuple[int, ...] = ()) -> str:
    with sqlite3.connect(path) as conn:
        return " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


@pytest.mark.parametrize("skewed", [False, True], ids=["fresh", "one-room-statistics"])
@pytest.mark.parametrize(("sql", "params", "index"), ROOM_QUERIES)
async def test_room_queries_walk_the_room_index(room: Room, sql: str, params: tuple[int, ...],
                                                index: str, skewed: bool) -> None:
    """Even after PRAGMA optimize analysed a database where one room held every
    row: the planner would then walk the whole table by id for the others."""
    if skewed:
        with sqlite3.connect(room.path) as conn:
            conn.execute("ANALYZE")
            conn.executemany("INSERT OR REPLACE INTO sqlite_stat1 VALUES (?, ?, ?)", [
                ("message_blocks", "message_blocks_room", "30000 30000"),
                ("messages", "messages_room", "30000 30000 1")])
        unnamed = sql.replace(" INDEXED BY message_blocks_room", "").replace(
            " INDEXED BY messages_room", "")
        if sql.startswith("SELECT") and "message_blocks" in sql:
            # The trap is real: without the name, a walk of the whole table.
            assert "message_blocks_room" not in query_plan(room.path, unnamed, params)
    plan = query_plan(room.path, sql, params)
    assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan
    assert "TEMP B-TREE" not in plan


def test_the_largest_id_is_two_steps_down_b_trees(room: Room) -> None:
    assert "SCAN message" not in query_plan(room.path, MAX_MESSAGE_ID_SQL)


def test_the_table_refuses_blocks_that_could_not_be_read(room: Room) -> None:
    [good] = block_rows([plain(1, 1, 2), plain(5, 1, 2)])
    last_id, room_id, first_id, count, numbers, strings = good
    bad = [
        (last_id, room_id, first_id, count, numbers[:-1], strings),  # short numbers
        (last_id, room_id, first_id, count, numbers.hex(), strings),  # numbers as text
        (last_id, room_id, first_id, count, numbers, strings.encode()),  # strings as a blob
        (last_id, room_id, last_id, count, numbers, strings),  # 2 messages, 1 id
        (last_id, room_id, first_id, 0, b"", strings),
        (last_id, room_id, first_id, 2.5, numbers, strings),
    ]
    with sqlite3.connect(room.path) as conn:
        for row in bad:
            with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
                conn.execute("INSERT INTO message_blocks VALUES (?, ?, ?, ?, ?, ?)", row)
        conn.execute("INSERT INTO message_blocks VALUES (?, ?, ?, ?, ?, ?)", good)


# -- any sequence of batches --------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(batches=st.lists(st.lists(st.tuples(st.sampled_from(("plain", "plain", "action")),
                                           st.integers(1, 2), st.integers(1, 5)),
                                 min_size=1, max_size=150), min_size=1, max_size=8),
       probes=st.lists(st.tuples(st.integers(0, 1300), st.integers(1, 300)), max_size=6))
def test_any_batches_read_back_in_any_page(batches: list[list[tuple[str, int, int]]],
                                           probes: list[tuple[int, int]]) -> None:
    """Batches of random shapes, ids with gaps (other kinds of messages elsewhere)."""
    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "any.db")
            async with open_storage(path) as storage:
                room = await Room(storage, path).populate()
                for shapes in batches:
                    ids = [room.ids(gap)[-1] for _, _, gap in shapes]
                    await room.write([(plain if kind == "plain" else action)(i, r, 1 + i % 3)
                                      for (kind, r, _), i in zip(shapes, ids, strict=True)])
                for before, limit in [(0, 10**6), *probes]:
                    for room_id in (1, 2):
                        at = before or None
                        assert await history_ids(room, room_id, limit, at) == room.expected(
                            room_id, limit, at)

    asyncio.run(scenario())


async def test_history_read_while_batches_are_written_sees_whole_batches(room: Room) -> None:
    """Blocks and rows are read in one state: never the blocks of a batch
    without its rows, or the rows without the blocks."""
    rng = random.Random(4)
    batches = [[(action if k % 3 == 0 else plain)(i, 1, 1 + k % 3)
                for k, i in enumerate(room.ids(rng.randint(1, 150)))] for _ in range(30)]
    boundaries = {0, *itertools.accumulate(map(len, batches))}

    async def write() -> None:
        for batch in batches:
            await room.write(batch)
            await asyncio.sleep(0)

    async def read() -> list[int]:
        seen: list[int] = []
        for _ in range(60):
            seen.append(len(await room.storage.room_history(1, 10**6)))
            await asyncio.sleep(0)
        return seen

    _, *reads = await asyncio.gather(write(), read(), read())
    for counts in reads:
        assert set(counts) <= boundaries
    assert len(await room.storage.room_history(1, 10**6)) == max(boundaries)
