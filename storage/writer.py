"""Batched message writer: keeps the database off the message fan-out path.

The daemon calls :meth:`MessageWriter.submit` (synchronous, instant) for every
message it delivers; a background task writes the pending messages every
``interval`` seconds in transactions of at most ``max_batch`` records, earlier
when a full batch is waiting. Records are written exactly once and in
submission order, even with concurrent :meth:`~MessageWriter.flush` calls or
cancellations. A failed write is logged (logger ``storage.writer``) and its
records stay pending; the background task then backs off instead of spinning.
A record the database refuses outright (:class:`~storage.api.Refused`: a
rule of the schema, which no retry can satisfy) is found by halving the
batch, logged with its id and dropped, so that it cannot hold back every
message after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from storage.api import Refused, Storage
from storage.records import MessageRecord

log = logging.getLogger("storage.writer")

# Longest pause of the background task between retries of a failing write.
MAX_BACKOFF = 5.0


class Writer(Protocol):
    """Where the daemon hands the messages it delivers, to be stored: this
    module's :class:`MessageWriter`, or a cluster's log (chatd/cluster/persister.py)."""

    @property
    def pending(self) -> int: ...
    @property
    def written(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def last_flush_seconds(self) -> float: ...
    def submit(self, record: MessageRecord) -> None: ...
    def pending_after(self, after_id: int) -> list[MessageRecord]: ...
    async def start(self) -> None: ...
    async def flush(self) -> None: ...
    async def close(self) -> None: ...


# What :func:`write_or_drop` reports of a record the database refused.
DROPPED: Final = object()


async def write_or_drop(batch: list[MessageRecord],
                        write: Callable[[list[MessageRecord]], Awaitable[object]],
                        settled: Callable[[list[MessageRecord], object], None]) -> None:
    """Write ``batch`` with ``write``; tell ``settled`` of each piece written (with
    what ``write`` answered) or dropped (``DROPPED``), in order.

    A batch the database refuses is written again in halves, down to the single
    records it refuses, which are logged and dropped: one bad record (a room
    deleted meanwhile, say) never holds back the others.
    """
    try:
        answer = await write(batch)
    except Refused as exc:
        if len(batch) > 1:
            middle = len(batch) // 2
            await write_or_drop(batch[:middle], write, settled)
            await write_or_drop(batch[middle:], write, settled)
            return
        message = batch[0]
        log.error("message %d (room %s, recipient %s, sender %s) is refused by the "
                  "database and dropped: %s", message.id, message.room_id,
                  message.recipient_id, message.sender_name, exc)
        settled(batch, DROPPED)
        return
    settled(batch, answer)


class MessageWriter:
    """Buffers submitted messages and appends them to ``storage`` in ordered batches."""

    def __init__(self, storage: Storage, interval: float = 0.1, max_batch: int = 10000) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._storage = storage
        self._interval = interval
        self._max_batch = max_batch
        self._pending: list[MessageRecord] = []
        self._submitted = 0
        # Records taken off the pending list: written, or refused and dropped.
        self._settled = 0
        self._dropped = 0
        self._last_flush = 0.0
        self._write_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Records submitted and not written yet."""
        return len(self._pending)

    def pending_after(self, after_id: int) -> list[MessageRecord]:
        """The records not written yet whose ids are above ``after_id`` (a copy):
        what a reader of storage merges so as to see every message delivered."""
        return [m for m in self._pending if m.id > after_id]

    @property
    def written(self) -> int:
        """Records written since the writer was created."""
        return self._settled - self._dropped

    @property
    def dropped(self) -> int:
        """Records the database refused, logged and dropped since the writer was created."""
        return self._dropped

    @property
    def last_flush_seconds(self) -> float:
        """How long the last flush that wrote something took (0.0 before the first)."""
        return self._last_flush

    def submit(self, record: MessageRecord) -> None:
        """Queue a record for writing; never blocks. RuntimeError once the writer is closed."""
        if self._closed:
            raise RuntimeError("MessageWriter is closed")
        self._pending.append(record)
        self._submitted += 1
        if len(self._pending) >= self._max_batch:
            self._wake.set()

    async def start(self) -> None:
        """Start the background flusher (again: no effect)."""
        if self._closed:
            raise RuntimeError("MessageWriter is closed")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="storage.writer")

    async def flush(self) -> None:
        """Write every record submitted before this call, in batches of up to max_batch.

        Raises the storage's exception if a batch fails; that batch and the
        later records stay pending.
        """
        target = self._submitted
        if self._settled >= target:
            return
        started = time.perf_counter()
        while self._settled < target:
            # Shielded: a cancelled flush never leaves a batch half-known, so
            # no record is lost or written twice.
            error = await asyncio.shield(self._write_next_batch())
            if error is not None:
                raise error
        self._last_flush = time.perf_counter() - started

    async def close(self) -> None:
        """Stop the background task, then write what is left (raises if that fails).

        After close, submit() raises; close() may be called again to retry the
        final write.
        """
        self._closed = True
        self._stop.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None and not task.cancelled():
            await task
        await self.flush()

    async def _write_next_batch(self) -> Exception | None:
        """Write the oldest pending records; return the failure instead of raising it."""
        async with self._write_lock:
            batch = self._pending[: self._max_batch]
            if not batch:
                return None
            settled = self._settled
            try:
                await self._write(batch)
            except Exception as exc:
                unwritten = len(batch) - (self._settled - settled)
                log.exception("writing %d messages failed; they stay pending (%d in all)",
                              unwritten, len(self._pending))
                return exc
            return None

    async def _write(self, batch: list[MessageRecord]) -> None:
        """Write ``batch``, the oldest pending records, and take it off the pending list.

        Each piece (see :func:`write_or_drop`) leaves the pending list as soon
        as it is settled, so a failure of another kind midway loses and
        repeats nothing.
        """
        await write_or_drop(batch, self._storage.append_messages, self._settle)

    def _settle(self, piece: list[MessageRecord], written: object) -> None:
        if written is DROPPED:
            self._dropped += 1
        del self._pending[: len(piece)]
        self._settled += len(piece)

    async def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            await self._pause(failures)
            if self._pending and not self._stop.is_set():
                failures = 0 if await self._try_flush() else failures + 1

    async def _pause(self, failures: int) -> None:
        if failures:
            # Backing off: a full batch must not make a failing writer spin.
            delay = min(self._interval * 2 ** min(failures, 16),
                        max(self._interval, MAX_BACKOFF))
            event = self._stop
        else:
            delay, event = self._interval, self._wake
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await event.wait()
        self._wake.clear()

    async def _try_flush(self) -> bool:
        try:
            await self.flush()
        except Exception:  # already logged with its traceback
            return False
        return True
