"""Tests of the batched message insert: its fast form, the careful retry, chunking.

append_messages writes plain room text in blocks (tests/storage/test_message_blocks.py
has their own tests), every other message with a ten-column INSERT, and falls back
to the careful INSERT ... SELECT for a chunk that broke a foreign key. All against
real SQLite files.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import Conflict, MessageRecord, SqliteStorage, StorageError, chunks
from storage import messages as insert
from storage.blocks import is_plain, read_block
from storage.chunks import CHUNK_ROWS, CHUNK_SIZES, chunk_sizes
from tests.storage import open_storage

T0 = 1_700_000_000.0
KINDS = ("text", "action", "e2e", "sticker", "file")


class World:
    """A storage file with three users (alice, bob, carol) and two rooms."""

    def __init__(self, storage: SqliteStorage, path: str) -> None:
        self.storage = storage
        self.path = path
        self.alice = self.bob = self.carol = self.lobby = self.den = 0

    async def populate(self) -> World:
        self.alice, self.bob, self.carol = [
            (await self.storage.create_user(name, b"h", False, T0)).id
            for name in ("alice", "bob", "carol")]
        self.lobby, self.den = [(await self.storage.create_room(name, "open", self.alice, T0))[0].id
                                for name in ("lobby", "den")]
        return self

    @property
    def users(self) -> tuple[int, int, int]:
        return self.alice, self.bob, self.carol

    def rows(self) -> list[tuple[Any, ...]]:
        """Every column of every message stored a row each, as SQLite holds them."""
        with sqlite3.connect(self.path) as conn:
            return conn.execute("SELECT * FROM messages ORDER BY id").fetchall()

    def in_blocks(self) -> list[MessageRecord]:
        """The messages stored in blocks, senders as stored, by id."""
        with sqlite3.connect(self.path) as conn:
            blocks = conn.execute("SELECT room_id, count, numbers, strings FROM message_blocks")
            found = [m for block in blocks for m in read_block(*block)]
        return sorted(found, key=lambda m: m.id)

    def ids(self) -> list[int]:
        return sorted([row[0] for row in self.rows()] + [m.id for m in self.in_blocks()])


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    path = str(tmp_path / "insert.db")
    async with open_storage(path) as storage:
        yield await World(storage, path).populate()


def mixed_message(w: World, message_id: int) -> MessageRecord:
    """One of ten shapes, by id: plain room text and everything stored a row each."""
    ts = T0 + message_id / 8
    shape = message_id % 10
    room = w.lobby if message_id % 2 else w.den
    if shape <= 2:  # plain room text, the common case
        sender = w.users[shape]
        return MessageRecord(message_id, sender, f"user{sender}", f"hello {message_id}", ts,
                             room_id=room)
    if shape == 3:
        return MessageRecord(message_id, w.bob, "bob", "", ts, room_id=room, kind="sticker",
                             extra={"name": "wave", "size": [64, 64], "alt": "👋"})
    if shape == 4:
        return MessageRecord(message_id, w.alice, "alice", "waves", ts, room_id=room,
                             kind="action")
    if shape == 5:  # text, but with extra fields
        return MessageRecord(message_id, w.carol, "carol", "see file", ts, room_id=room,
                             extra={"file": {"id": message_id, "name": "a.txt"}})
    if shape == 6:  # a system line (sender 0) or an IRC guest (negative id)
        sender = 0 if message_id % 2 else -message_id
        return MessageRecord(message_id, sender, "*", f"topic {message_id}", ts, room_id=room)
    if shape == 9:  # never written by the daemon, but the table allows it
        return MessageRecord(message_id, w.bob, "bob", "unseen", ts, room_id=room,
                             delivered=False)
    sender, recipient = (w.alice, w.bob) if message_id % 2 else (w.carol, w.alice)
    return MessageRecord(message_id, sender, f"user{sender}", f"dm {message_id}", ts,
                         recipient_id=recipient, delivered=shape == 7)


def mixed_batch(w: World, ids: Iterable[int]) -> list[MessageRecord]:
    return [mixed_message(w, message_id) for message_id in ids]


def as_read(message: MessageRecord) -> MessageRecord:
    """The message as storage reads it back: a sender without an account is 0."""
    return replace(message, sender_id=max(message.sender_id, 0))


async def read_back(w: World) -> list[MessageRecord]:
    """Every stored message through the storage API, by id (delivered DMs by SQL)."""
    found = [*await w.storage.room_history(w.lobby, 100_000),
             *await w.storage.room_history(w.den, 100_000)]
    for user in w.users:
        backlog = await w.storage.direct_backlog(user)
        assert backlog is not None
        found.extend(backlog.messages)
    with sqlite3.connect(w.path) as conn:
        delivered = conn.execute(
            "SELECT id, sender_id, sender_name, text, ts, recipient_id, kind, extra "
            "FROM messages WHERE recipient_id IS NOT NULL AND delivered").fetchall()
    found.extend(MessageRecord(i, sender or 0, name, text, ts, recipient_id=recipient,
                               kind=kind, extra=json.loads(extra))
                 for i, sender, name, text, ts, recipient, kind, extra in delivered)
    return sorted(found, key=lambda m: m.id)


# -- the fast form stores what the careful form stores ------------------------------


@pytest.mark.parametrize("count", [20, 200, 1100])
async def test_fast_and_careful_forms_store_identical_rows(world: World, tmp_path: Path,
                                                           count: int) -> None:
    batch = mixed_batch(world, range(1, count + 1))
    assert {m.id % 10 for m in batch} == set(range(10))
    await world.storage.append_messages(batch)
    rows = [m for m in batch if not is_plain(m)]

    # The same batch through the careful statement alone (today's only form before).
    careful = SqliteStorage(str(tmp_path / "careful.db"))
    await careful.open()
    twin = await World(careful, str(tmp_path / "careful.db")).populate()
    await careful.close()
    assert twin.users == world.users and (twin.lobby, twin.den) == (world.lobby, world.den)
    with sqlite3.connect(twin.path, isolation_level=None) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(insert._careful_insert_sql(len(rows)),
                     list(itertools.chain.from_iterable(map(insert._message_row, rows))))

    assert world.rows() == twin.rows()
    assert len(world.rows()) == len(rows)
    assert world.in_blocks() == [m for m in batch if is_plain(m)]


async def test_every_column_of_a_mixed_batch_round_trips(world: World) -> None:
    batch = mixed_batch(world, range(1, 1001))
    await world.storage.append_messages(batch)
    assert await read_back(world) == [as_read(m) for m in batch]
    guest = next(row for row in world.rows() if row[0] % 10 == 6)
    assert guest[3] is None  # sender_id: NULL, not 0 or negative
    assert [m.id for m in world.in_blocks()] == [m.id for m in batch if m.id % 10 < 3]
    assert await world.storage.max_message_id() == 1000


def test_plain_room_text_goes_to_blocks_and_the_rest_to_rows(world: World) -> None:
    batch = mixed_batch(world, range(1, 101))
    plain, other = insert._partition(batch)
    # Plain: room text by an account with no kind, extra fields or recipient.
    assert [m.id % 10 for m in plain] == [1, 2, 0] * 10
    assert sorted(m.id % 10 for m in other) == sorted(list(range(3, 10)) * 10)
    only_plain = [m for m in batch if m.id % 10 < 3]
    assert insert._partition(only_plain) == (only_plain, [])


async def test_a_batch_in_any_order_is_stored_by_id(world: World) -> None:
    batch = mixed_batch(world, range(1, 601))
    random.Random(3).shuffle(batch)
    await world.storage.append_messages(batch)
    assert world.ids() == list(range(1, 601))


# -- foreign keys: the careful retry ------------------------------------------------


async def test_a_sender_deleted_mid_batch_becomes_null(world: World) -> None:
    gone = (await world.storage.create_user("gone", b"h", False, T0)).id
    await world.storage.delete_user(gone)
    batch = mixed_batch(world, range(1, 1001))
    # One plain room message (in a block) and one direct message (a row).
    batch[499] = MessageRecord(500, gone, "gone", "late", T0, room_id=world.lobby)
    batch[800] = MessageRecord(801, gone, "gone", "late dm", T0, recipient_id=world.bob,
                               delivered=False)
    await world.storage.append_messages(batch)
    stored = await read_back(world)
    assert stored == [as_read(replace(m, sender_id=0) if m.sender_id == gone else m)
                      for m in batch]
    assert 801 in {row[0] for row in world.rows() if row[3] is None}
    # A block keeps the id; reading it finds the account gone.
    assert [m.sender_id for m in world.in_blocks() if m.id == 500] == [gone]


async def test_a_direct_message_to_a_deleted_recipient_is_dropped(world: World) -> None:
    gone = (await world.storage.create_user("gone", b"h", False, T0)).id
    await world.storage.delete_user(gone)
    batch = mixed_batch(world, range(1, 1001))
    batch[699] = MessageRecord(700, world.alice, "alice", "too late", T0, recipient_id=gone,
                               delivered=False)
    await world.storage.append_messages(batch)
    assert world.ids() == [i for i in range(1, 1001) if i != 700]
    assert await read_back(world) == [as_read(m) for m in batch if m.id != 700]


async def test_a_failed_statement_leaves_the_transaction_open(world: World) -> None:
    """What the retry relies on: SQLite undoes the failing statement alone."""
    gone = (await world.storage.create_user("gone", b"h", False, T0)).id
    await world.storage.delete_user(gone)
    first = [MessageRecord(i, world.alice, "alice", "ok", T0, room_id=world.lobby,
                           kind="action") for i in range(1, 5)]
    chunk = [MessageRecord(i, world.alice, "alice", "ok", T0, room_id=world.lobby,
                           kind="action") for i in range(5, 9)]
    chunk[2] = replace(chunk[2], sender_id=gone)  # rows before it are in the statement too
    with sqlite3.connect(world.path, isolation_level=None) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(insert._insert_messages_sql(4),
                     list(itertools.chain.from_iterable(map(insert._message_row, first))))
        with pytest.raises(sqlite3.IntegrityError) as failure:
            conn.execute(insert._insert_messages_sql(4),
                         list(itertools.chain.from_iterable(map(insert._message_row, chunk))))
        assert failure.value.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
        assert conn.in_transaction
        assert [r[0] for r in conn.execute("SELECT id FROM messages")] == [1, 2, 3, 4]
        conn.execute(insert._careful_insert_sql(4),
                     list(itertools.chain.from_iterable(map(insert._message_row, chunk))))
        conn.execute("COMMIT")
    assert world.ids() == list(range(1, 9))
    assert [row[3] for row in world.rows()] == [world.alice] * 6 + [None, world.alice]


# -- one call into the database's thread ---------------------------------------------


async def test_a_batch_is_one_call_into_the_database_thread(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each call waits a turn of the event loop, and under a burst of messages a turn
    is long: a batch of every kind, in many chunks, must not wait for one per statement."""
    calls: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", type(fn).__name__))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    batch = mixed_batch(world, range(1, 3001))
    await world.storage.append_messages(batch)
    assert len(calls) == 1
    calls.clear()
    await world.storage.append_audit_entries(
        [(T0, "alice", "login", None, None, "", None)] * 700)
    assert len(calls) == 1
    monkeypatch.undo()
    assert world.ids() == list(range(1, 3001))
    assert await read_back(world) == [as_read(m) for m in batch]
    assert len(await world.storage.list_audit(1000)) == 700


async def test_a_cancelled_batch_is_not_written_and_a_retry_writes_it_once(
        world: World) -> None:
    """The database's thread goes on when its caller is cancelled: it must roll back,
    or a caller that writes again on a failure (the audit log does) writes twice."""
    batch = mixed_batch(world, range(1, 101))
    entries = [(T0, "alice", "ban", "bob", "lobby", "spam", None)]
    for write in (lambda: world.storage.append_messages(batch),
                  lambda: world.storage.append_audit_entries(entries)):
        other = sqlite3.connect(world.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        task = asyncio.ensure_future(write())
        await asyncio.sleep(0.05)  # the thread waits for the lock (busy_timeout)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        other.execute("COMMIT")
        other.close()
        await write()  # queued behind the cancelled one in the database's thread
    assert world.ids() == list(range(1, 101))
    assert [e.action for e in await world.storage.list_audit(10)] == ["ban"]


# -- all or nothing -------------------------------------------------------------------


@pytest.mark.parametrize("duplicate", [1, 10, 6, 13], ids=[
    "plain", "plain-in-batch", "other", "other-in-batch"])
async def test_a_duplicate_id_fails_the_whole_batch(world: World, duplicate: int) -> None:
    await world.storage.append_messages(mixed_batch(world, range(1, 9)))
    before = world.rows(), world.in_blocks()
    batch = mixed_batch(world, range(9, 1009))
    batch.append(replace(mixed_message(world, duplicate), id=duplicate))
    with pytest.raises(Conflict):
        await world.storage.append_messages(batch)
    assert (world.rows(), world.in_blocks()) == before


@pytest.mark.parametrize("old", [8, 3, 1])
async def test_ids_at_or_below_a_stored_one_fail_the_whole_batch(world: World,
                                                                 old: int) -> None:
    """Even ids never used: blocks are keyed by their last id alone, so only
    new ids above every stored one keep ids unique."""
    await world.storage.append_messages(mixed_batch(world, range(2, 9, 2)))
    before = world.rows(), world.in_blocks()
    with pytest.raises(Conflict, match=f"starts at {old}, ids up to 8 are stored"):
        await world.storage.append_messages(mixed_batch(world, [old, 20, 21]))
    assert (world.rows(), world.in_blocks()) == before
    await world.storage.append_messages(mixed_batch(world, [9, 20, 21]))
    assert world.ids() == [2, 4, 6, 8, 9, 20, 21]


async def test_an_unknown_room_fails_the_whole_batch_after_the_retry(world: World) -> None:
    gone = (await world.storage.create_user("gone", b"h", False, T0)).id
    await world.storage.delete_user(gone)
    batch = mixed_batch(world, range(1, 1001))
    # Chunks of both forms are retried carefully, then a late one fails for good.
    batch[0] = replace(batch[0], sender_id=gone)
    batch[3] = replace(batch[3], sender_id=gone)
    assert batch[992].kind == "sticker"
    batch[992] = replace(batch[992], room_id=999)
    with pytest.raises(StorageError) as failure:
        await world.storage.append_messages(batch)
    assert not isinstance(failure.value, Conflict)
    assert "FOREIGN KEY" in str(failure.value)
    assert world.ids() == []
    await world.storage.append_messages(batch[:600])  # the connection is fine afterwards
    assert world.ids() == list(range(1, 601))


async def test_plain_text_to_an_unknown_room_fails_the_whole_batch(world: World) -> None:
    batch = mixed_batch(world, range(1, 1001))
    batch[990] = MessageRecord(991, world.alice, "alice", "lost?", T0, room_id=999)
    with pytest.raises(StorageError, match="FOREIGN KEY"):
        await world.storage.append_messages(batch)
    assert world.ids() == []


# -- chunks -----------------------------------------------------------------------------


def test_chunk_sizes_come_from_the_fixed_set() -> None:
    assert CHUNK_SIZES[0] == CHUNK_ROWS
    assert all(big == 2 * small for big, small in itertools.pairwise(CHUNK_SIZES))
    assert CHUNK_SIZES[-1] == 1
    for count in range(3 * CHUNK_ROWS + 2):
        sizes = chunk_sizes(count)
        assert sum(sizes) == count
        assert set(sizes) <= set(CHUNK_SIZES)
        assert sizes == sorted(sizes, reverse=True)
        # Full chunks, then one statement per binary digit of the rest.
        assert len(sizes) == count // CHUNK_ROWS + (count % CHUNK_ROWS).bit_count()


def test_the_largest_chunk_binds_fewer_parameters_than_sqlite_allows() -> None:
    with sqlite3.connect(":memory:") as conn:
        limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    assert limit >= CHUNK_ROWS * 10


async def test_batches_of_any_size_use_a_few_distinct_statements(world: World) -> None:
    chunks.insert_sql.cache_clear()
    insert._careful_insert_sql.cache_clear()
    gone = (await world.storage.create_user("gone", b"h", False, T0)).id
    await world.storage.delete_user(gone)
    rng = random.Random(5)
    start = 1
    for _ in range(40):
        size = rng.randint(1, 1500)
        batch = mixed_batch(world, range(start, start + size))
        batch[0] = replace(batch[0], sender_id=gone)  # some chunk takes the careful path
        await world.storage.append_messages(batch)
        start += size
    assert len(world.ids()) == start - 1
    # A miss is a distinct SQL text built; none was evicted and built again.
    fast, careful = chunks.insert_sql.cache_info(), insert._careful_insert_sql.cache_info()
    assert fast.misses <= 2 * len(CHUNK_SIZES) and fast.hits > fast.misses
    assert 0 < careful.misses <= len(CHUNK_SIZES)


# -- any valid batch round-trips ------------------------------------------------------

_JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))


@st.composite
def _shapes(draw: st.DrawFn) -> dict[str, Any]:
    """A message without its id; "room"/"recipient"/"sender" index into the world."""
    direct = draw(st.booleans())
    return {
        "room": None if direct else draw(st.sampled_from(["lobby", "den"])),
        "recipient": draw(st.sampled_from(["alice", "bob", "carol"])) if direct else None,
        "sender": draw(st.sampled_from(["alice", "bob", "carol", 0, -1, -12345])),
        "sender_name": draw(st.text(max_size=12)),
        "text": draw(st.text(max_size=40)),
        "ts": draw(st.floats(allow_nan=False, allow_infinity=False)),
        # Mostly plain text, so both forms get their share.
        "kind": draw(st.sampled_from(("text", "text", *KINDS))),
        "extra": draw(st.one_of(st.just({}),
                                st.dictionaries(st.text(max_size=6), _JSON_VALUES, max_size=3))),
        "delivered": draw(st.booleans()) if direct else draw(st.sampled_from([True, True, False])),
    }


def _build(w: World, shape: dict[str, Any], message_id: int) -> MessageRecord:
    def user(ref: str | int) -> int:
        return getattr(w, ref) if isinstance(ref, str) else ref

    return MessageRecord(
        message_id, user(shape["sender"]), shape["sender_name"], shape["text"], shape["ts"],
        room_id=None if shape["room"] is None else getattr(w, shape["room"]),
        recipient_id=None if shape["recipient"] is None else user(shape["recipient"]),
        kind=shape["kind"], extra=shape["extra"], delivered=shape["delivered"])


@settings(max_examples=40, deadline=None)
@given(shapes=st.lists(_shapes(), min_size=1, max_size=30),
       copies=st.integers(1, 40), gaps=st.lists(st.integers(1, 2**40), min_size=1, max_size=5),
       seed=st.integers(0, 2**16))
def test_any_batch_of_valid_messages_round_trips(shapes: list[dict[str, Any]], copies: int,
                                                 gaps: list[int], seed: int) -> None:
    # Repeating the shapes makes batches of up to 1200 messages, across chunk sizes.
    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "any.db")
            async with open_storage(path) as storage:
                w = await World(storage, path).populate()
                ids = itertools.accumulate(itertools.islice(itertools.cycle(gaps),
                                                            len(shapes) * copies))
                batch = [_build(w, shape, message_id)
                         for shape, message_id in zip(shapes * copies, ids, strict=True)]
                random.Random(seed).shuffle(batch)
                await storage.append_messages(batch)
                assert await read_back(w) == sorted(map(as_read, batch), key=lambda m: m.id)

    asyncio.run(scenario())
