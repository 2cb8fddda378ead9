"""Tests of MessageWriter over a real SqliteStorage file."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from storage import MessageRecord, MessageWriter, SqliteStorage, StorageError

T0 = 1_700_000_000.0


class RecordingStorage(SqliteStorage):
    """Test double at the outside boundary: logs each batch, can fail or stall on demand."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.batches: list[list[int]] = []
        self.attempts = 0
        self.fail = False
        # Attempts (counted from 1) that fail as if the disk had, whatever ``fail`` says.
        self.fail_at: set[int] = set()
        # When set, the call waits on it after committing, before returning.
        self.gate: asyncio.Event | None = None

    async def append_messages(self, batch: Sequence[MessageRecord]) -> None:
        self.attempts += 1
        if self.fail or self.attempts in self.fail_at:
            raise StorageError("disk on fire")
        await super().append_messages(batch)
        self.batches.append([m.id for m in batch])
        if self.gate is not None:
            await self.gate.wait()

    @property
    def written_ids(self) -> list[int]:
        return [i for batch in self.batches for i in batch]


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[RecordingStorage]:
    store = RecordingStorage(str(tmp_path / "chat.db"))
    await store.open()
    owner = await store.create_user("owner", b"x", False, T0)
    await store.create_room("lobby", "open", owner.id, T0)
    yield store
    await store.close()


def msg(message_id: int) -> MessageRecord:
    return MessageRecord(id=message_id, sender_id=1, sender_name="owner",
                         text=f"m{message_id}", ts=T0 + message_id, room_id=1)


async def history_ids(storage: SqliteStorage) -> list[int]:
    return [m.id for m in await storage.room_history(1, 1_000_000)]


async def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def test_flush_writes_everything_in_order(storage: RecordingStorage) -> None:
    writer = MessageWriter(storage, max_batch=400)
    for i in range(1, 1001):
        writer.submit(msg(i))
    assert (writer.pending, writer.written, writer.last_flush_seconds) == (1000, 0, 0.0)
    await writer.flush()
    assert (writer.pending, writer.written) == (0, 1000)
    assert writer.last_flush_seconds > 0
    assert [len(b) for b in storage.batches] == [400, 400, 200]
    assert await history_ids(storage) == list(range(1, 1001))
    await writer.flush()  # nothing left: no empty transaction
    assert storage.attempts == 3
    await writer.close()


async def test_concurrent_flushes_write_each_record_once(storage: RecordingStorage) -> None:
    writer = MessageWriter(storage, interval=0.001, max_batch=7)
    await writer.start()
    for i in range(1, 301):
        writer.submit(msg(i))
        if i % 50 == 0:
            await asyncio.gather(*(writer.flush() for _ in range(4)))
    await asyncio.gather(*(writer.flush() for _ in range(4)), writer.close())
    assert storage.written_ids == list(range(1, 301))
    assert all(len(b) <= 7 for b in storage.batches)
    assert await history_ids(storage) == list(range(1, 301))
    assert (writer.written, writer.pending) == (300, 0)


async def test_close_flushes_the_rest(storage: RecordingStorage) -> None:
    writer = MessageWriter(storage, interval=60)
    await writer.start()
    await writer.start()  # already running: no second task
    for i in range(1, 11):
        writer.submit(msg(i))
    await writer.close()
    assert await history_ids(storage) == list(range(1, 11))
    await writer.close()  # again: harmless
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(msg(11))
    with pytest.raises(RuntimeError, match="closed"):
        await writer.start()


async def test_close_without_start_flushes(storage: RecordingStorage) -> None:
    writer = MessageWriter(storage)
    writer.submit(msg(1))
    await writer.close()
    assert await history_ids(storage) == [1]


async def test_periodic_flush_without_explicit_calls(storage: RecordingStorage) -> None:
    writer = MessageWriter(storage, interval=0.01)
    await writer.start()
    try:
        for i in range(1, 6):
            writer.submit(msg(i))
        await wait_for(lambda: writer.written == 5)
        writer.submit(msg(6))
        await wait_for(lambda: writer.written == 6)
        assert writer.pending == 0
        assert await history_ids(storage) == list(range(1, 7))
    finally:
        await writer.close()


async def test_full_batch_wakes_the_flusher_early(storage: RecordingStorage) -> None:
    writer = MessageWriter(storage, interval=30, max_batch=3)
    await writer.start()
    try:
        writer.submit(msg(1))
        writer.submit(msg(2))
        await asyncio.sleep(0.05)
        assert writer.written == 0  # below max_batch: waits for the interval
        writer.submit(msg(3))
        # Any wait well short of the 30 s interval shows the early wake; 1 s was
        # too short for a loaded machine's database write.
        await wait_for(lambda: writer.written == 3, timeout=10.0)
    finally:
        await writer.close()


async def test_failed_flush_keeps_the_records(
        storage: RecordingStorage, caplog: pytest.LogCaptureFixture) -> None:
    writer = MessageWriter(storage, max_batch=2)
    for i in range(1, 6):
        writer.submit(msg(i))
    await writer.flush()  # nothing failed yet: baseline
    for i in range(6, 10):
        writer.submit(msg(i))
    storage.fail = True
    with caplog.at_level(logging.ERROR, logger="storage.writer"), \
            pytest.raises(StorageError, match="disk on fire"):
        await writer.flush()
    assert [r.name for r in caplog.records] == ["storage.writer"]
    assert "stay pending" in caplog.records[0].getMessage()
    assert (writer.pending, writer.written) == (4, 5)
    storage.fail = False
    await writer.flush()
    assert await history_ids(storage) == list(range(1, 10))
    await writer.close()


async def test_background_failures_back_off_and_recover(
        storage: RecordingStorage, caplog: pytest.LogCaptureFixture) -> None:
    writer = MessageWriter(storage, interval=0.01, max_batch=2)
    storage.fail = True
    with caplog.at_level(logging.ERROR, logger="storage.writer"):
        await writer.start()
        for i in range(1, 31):  # above max_batch all along: each submit asks for a flush
            writer.submit(msg(i))
            await asyncio.sleep(0.01)
    # Backing off (0.02, 0.04, 0.08, 0.16 s ...): a handful of tries, not one per submit.
    assert 2 <= storage.attempts <= 7
    assert len(caplog.records) == storage.attempts
    assert writer.pending == 30
    storage.fail = False
    await wait_for(lambda: writer.written == 30)
    await writer.close()
    assert await history_ids(storage) == list(range(1, 31))


def to_unknown_room(message_id: int) -> MessageRecord:
    """A record the database refuses: its room does not exist."""
    return MessageRecord(id=message_id, sender_id=1, sender_name="owner", text="lost",
                         ts=T0, room_id=999)


@pytest.mark.parametrize("bad", [[1], [7], [20], [3, 4, 15]])
async def test_records_the_database_refuses_are_dropped_alone(
        storage: RecordingStorage, caplog: pytest.LogCaptureFixture, bad: list[int]) -> None:
    writer = MessageWriter(storage, max_batch=20)
    for i in range(1, 31):
        writer.submit(to_unknown_room(i) if i in bad else msg(i))
    with caplog.at_level(logging.ERROR, logger="storage.writer"):
        await writer.flush()
    assert await history_ids(storage) == [i for i in range(1, 31) if i not in bad]
    assert (writer.pending, writer.written, writer.dropped) == (0, 30 - len(bad), len(bad))
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        f"message {i}" for i in bad]
    assert all("refused by the database and dropped: FOREIGN KEY" in r.getMessage()
               for r in caplog.records)
    assert sorted(storage.written_ids) == [i for i in range(1, 31) if i not in bad]
    await writer.close()


async def test_an_id_already_stored_is_dropped_and_the_rest_written(
        storage: RecordingStorage) -> None:
    writer = MessageWriter(storage)
    for i in range(1, 6):
        writer.submit(msg(i))
    await writer.flush()
    for i in (6, 3, 7):  # 3 again: only a bug could do it, and it must not stop the writer
        writer.submit(msg(i))
    await writer.flush()
    assert await history_ids(storage) == [1, 2, 3, 4, 5, 6, 7]
    assert (writer.written, writer.dropped) == (7, 1)
    await writer.close()


async def test_a_failure_while_halving_loses_and_repeats_nothing(
        storage: RecordingStorage, caplog: pytest.LogCaptureFixture) -> None:
    writer = MessageWriter(storage)
    for i in range(1, 9):
        writer.submit(to_unknown_room(i) if i == 6 else msg(i))
    storage.fail_at = {3}  # the whole batch refused, its first half written, then the disk
    with caplog.at_level(logging.ERROR, logger="storage.writer"), \
            pytest.raises(StorageError, match="disk on fire"):
        await writer.flush()
    [failed] = caplog.records
    assert failed.getMessage() == "writing 4 messages failed; they stay pending (4 in all)"
    assert (writer.pending, writer.written, writer.dropped) == (4, 4, 0)
    await writer.flush()
    assert await history_ids(storage) == [1, 2, 3, 4, 5, 7, 8]
    assert storage.batches == [[1, 2, 3, 4], [5], [7, 8]]
    assert (writer.pending, writer.written, writer.dropped) == (0, 7, 1)
    await writer.close()


async def test_flush_to_a_closed_storage_keeps_the_records(tmp_path: Path) -> None:
    path = str(tmp_path / "chat.db")
    storage = SqliteStorage(path)
    await storage.open()
    owner = await storage.create_user("owner", b"x", False, T0)
    await storage.create_room("lobby", "open", owner.id, T0)
    writer = MessageWriter(storage)
    writer.submit(msg(1))
    await storage.close()
    with pytest.raises(StorageError, match="not open"):
        await writer.close()
    assert writer.pending == 1
    await storage.open()
    try:
        await writer.close()  # retrying the final write
        assert await history_ids(storage) == [1]
    finally:
        await storage.close()


async def test_cancelled_flush_neither_loses_nor_duplicates(storage: RecordingStorage) -> None:
    writer = MessageWriter(storage, max_batch=3)
    for i in range(1, 8):
        writer.submit(msg(i))
    storage.gate = asyncio.Event()
    flushing = asyncio.create_task(writer.flush())
    await wait_for(lambda: len(storage.batches) == 1)  # committed, not yet returned
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    storage.gate.set()
    await writer.flush()  # must not write 1..3 again (that would be a Conflict)
    assert storage.written_ids == list(range(1, 8))
    assert await history_ids(storage) == list(range(1, 8))
    await writer.close()


async def test_submit_never_awaits(storage: RecordingStorage) -> None:
    writer = MessageWriter(storage, interval=0.01, max_batch=10)
    await writer.start()
    started = time.perf_counter()
    for i in range(1, 20_001):
        writer.submit(msg(i))  # no await: the loop cannot run the flusher meanwhile
    assert writer.pending == 20_000
    assert time.perf_counter() - started < 1.0
    await writer.close()
    assert writer.written == 20_000
    assert await storage.max_message_id() == 20_000


def test_invalid_settings() -> None:
    storage = SqliteStorage("unused.db")
    with pytest.raises(ValueError, match="interval"):
        MessageWriter(storage, interval=0)
    with pytest.raises(ValueError, match="max_batch"):
        MessageWriter(storage, max_batch=0)
