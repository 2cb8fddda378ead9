"""History written from the log: the consumer group ``persist`` on ``{chatd}:log``.

In cluster mode a message is acknowledged once its entry took its place in the
shared log (:meth:`chatd.cluster.bus.ClusterBus.placed`); from then on it must
not be lost, even if the node that took it dies at once. So no node writes its
own messages: every node runs one consumer of the group (named after the node),
Redis hands each entry to one of them, and the consumer stores the messages of
its entries in PostgreSQL in batches, then acknowledges them (``XACK``) after
the commit.

**Exactly once.** A consumer that dies leaves its entries pending in the group;
another takes them over (``XAUTOCLAIM``) once they have been pending for
``CLAIM_IDLE_MS``, and a node restarting under the same name first finishes
its own. Entries may so be stored twice (a batch committed, then the node died
before ``XACK``): the insert skips ids already stored, so each message is
stored once.

**What is stored.** The messages whose entry carries their row's remaining
fields (:meth:`ClusterBus.keep`), minus those the gate dropped: every node's
reader drops the same ones, and the consumer asks its own
(:meth:`ClusterBus.verdict`), waiting a little for it to get there.

**A refused batch.** As the daemon's batched writer does (``storage.writer``),
a batch PostgreSQL refuses (a rule of the schema: a room deleted meanwhile) is
halved down to the messages it refuses, which are logged with their ids and
dropped; any other failure (PostgreSQL away) is retried with a growing pause,
the entries staying pending meanwhile, and the consumer catches up when the
database is back. Messages keep flowing through Redis all along.

**Backlog.** Each node measures the group's backlog (entries not yet handed to
a consumer plus those pending) now and then: above half of the log's length
(``keys.LOG_LENGTH``) it warns; above 90 % the node refuses new messages with
``busy`` (:attr:`Persister.full`), so that trimming the log never drops an
entry not yet stored.

**Lag.** Each item's id in the log is Redis's clock (milliseconds) when it was
appended; the acknowledgement of a batch asks Redis's clock too (``TIME``, in
the same round trip). For each message of the batch stored (not typing, presence
or other entries, nor those the gate dropped), the time from its append to its
acknowledgement is added to :attr:`Persister.lag_seconds` (with
:attr:`Persister.lagged`, their count): the metric
``chatd_persist_lag_seconds``, a summary whose mean is the persistence lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import redis

from chatd.cluster import codec, keys
from chatd.cluster.items import DecodedItems
from chatd.cluster.retry import Retries, stopping
from storage.api import StorageError
from storage.records import MessageRecord
from storage.writer import DROPPED, write_or_drop

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    import redis.asyncio


    Store = Callable[[Sequence[MessageRecord]], Awaitable[int]]
    Verdict = Callable[[int], bool | None]

log = logging.getLogger(__name__)

# The most entries in one batch.
BATCH = 2000
# How long a read waits for new entries, in milliseconds.
READ_BLOCK_MS = 1000
# After a batch of several entries but fewer than BATCH (messages keep coming),
# the consumer waits this long before reading again, so that the next batch
# gathers what arrived meanwhile: one PostgreSQL transaction and one XACK for
# many messages, not for every few. A lone entry is not waited after: when the
# log is quiet, a message is stored at once (its lag grows by at most this).
GATHER = 0.02
# Entries pending this long with another consumer are taken over (a dead node).
CLAIM_IDLE_MS = 5000
# How often pending entries are looked for, in seconds.
CLAIM_EVERY = 1.0
# How long a batch waits for this node's reader to decide its messages.
VERDICT_WAIT = 5.0
# The longest pause between attempts while PostgreSQL or Redis fails.
MAX_BACKOFF = 5.0
# How often the backlog is measured, in seconds.
MEASURE_EVERY = 0.5
# How long stopping waits for the consumer's tasks to end.
STOP_WAIT = 2.0
# Fractions of the log's length: a warning above the first, refusals above the second.
WARN_AT = 0.5
REFUSE_AT = 0.9

# The errors of a read of the group once Redis lost its data (the group and the log
# are made anew): no group, or the log deleted while the read waited for entries.
GONE = ("NOGROUP", "UNBLOCKED")

Pair = tuple[bytes, dict[str, Any]]


def record_of(entry: dict[str, Any]) -> MessageRecord | None:
    """The message an entry of the log carries to be stored; None for any other."""
    fields = entry.get("p")
    if fields is None:
        return None
    event = codec.decode(entry["e"])
    sender_id, recipient_id, delivered = fields
    return MessageRecord(event.id, sender_id, event.sender, event.text, event.ts,
                         room_id=entry.get("r") if recipient_id is None else None,
                         recipient_id=recipient_id, kind=event.msg_kind, extra=event.extra,
                         delivered=delivered)


def appended_at(stream_id: bytes | str) -> float | None:
    """When an item was appended to the log, in seconds since the epoch: the
    milliseconds of its id (``<ms>-<seq>``, Redis's clock); None for an odd id."""
    millis = codec.millis_of(stream_id)
    return None if millis is None else millis / 1000


def backlog_of(groups: list[dict[Any, Any]]) -> int | None:
    """The entries of the log the group has not stored yet (XINFO GROUPS); None
    when there is no group."""
    for group in groups:
        name = group.get("name")
        if name in (keys.PERSIST, keys.PERSIST.encode()):
            lag = group.get("lag")
            return int(group.get("pel-count") or 0) + int(lag or 0)
    return None


class AnotherLog(Exception):
    """Redis holds the log of another database than this node's: nothing of it is
    stored here (see :meth:`Persister._own_log`)."""


class Persister:
    """This node's consumer of the group ``persist``."""

    def __init__(self, shared: redis.asyncio.Redis, node_id: str, store: Store,
                 verdict: Verdict, items: DecodedItems | None = None) -> None:
        self._shared = shared
        # Decoded once for this consumer and the node's bus.
        self._items = DecodedItems() if items is None else items
        self._name = node_id
        self._store = store
        self._verdict = verdict
        self._tasks: list[asyncio.Task[None]] = []
        # This node's database (chatd_meta "database", the sequencer's once loaded;
        # "" to store whatever the log holds).
        self.database: Callable[[], str] = lambda: ""
        # Redis holds another database's log (see _own_log); or it was seen to hold
        # this one's, which only a loss of its data (a new group: reset) changes.
        self._foreign = False
        self._confirmed = False
        # This consumer's own pending entries (from before a restart) come first.
        self._own_first = True
        self._claim_from = "0-0"
        self._claimed_at = 0.0
        self.stored = 0
        self.dropped = 0
        self.batches = 0
        self.last_batch_seconds = 0.0
        # Each stored entry's time from its append to the log to its acknowledgement.
        self.lag_seconds = 0.0
        self.lagged = 0
        # The ids of the batch being written that the database refused (dropped).
        self._dropped_now: set[int] = set()
        self.backlog = 0
        self.full = False
        self._warned = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._consume(), name="cluster.persister"),
                       loop.create_task(self._measure(), name="cluster.backlog")]

    async def stop(self) -> None:
        """Stop at once: what is not acknowledged stays pending for the next
        consumer (another node's, or this node's next start)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_WAIT)

    def halt_now(self) -> None:
        """Stop at once, awaiting nothing (a stop cut short): what is not
        acknowledged stays pending, as after :meth:`stop`."""
        for task in self._tasks:
            task.cancel()

    def reset(self) -> None:
        """A new epoch: the group is recreated on the new log (when first read)."""
        self._own_first = True
        self._claim_from = "0-0"
        self._confirmed = False

    # -- consuming -----------------------------------------------------------

    async def _consume(self) -> None:
        retries = Retries("the persister cannot reach Redis", MAX_BACKOFF, log)
        foreign = Retries("the persister stores nothing", MAX_BACKOFF, log)
        while not stopping():
            try:
                if 1 < await self.step() < BATCH:
                    await asyncio.sleep(GATHER)
            except AnotherLog as exc:
                await foreign.failed(exc)
                continue
            except redis.ResponseError as exc:
                # Redis lost its data: no group (NOGROUP), or, emptied (FLUSHDB) while
                # this consumer waited for entries, no log (UNBLOCKED ...).
                if not any(gone in str(exc) for gone in GONE):
                    raise
                await self._create_group()
                continue
            except redis.RedisError as exc:
                await retries.failed(exc)
                continue
            retries.succeeded()
            foreign.succeeded()

    async def _create_group(self) -> None:
        """The group starts at the log's beginning: nothing in it is skipped."""
        try:
            await self._shared.xgroup_create(keys.LOG, keys.PERSIST, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self.reset()

    async def step(self) -> int:
        """Store the next batch of entries and acknowledge it; how many entries.
        :class:`AnotherLog` when Redis holds another database's log."""
        if self._foreign or self._own_first:
            # Read nothing of it (its nodes claim what was left pending here), nor
            # from a group made anew after Redis lost its data.
            await self._own_log()
        pairs = await self._next()
        if not pairs:
            return 0
        # Asked after the read: what was read is of the log Redis held by then.
        await self._own_log()
        started = time.perf_counter()
        stored = await self._persist([entry for _, entry in pairs])
        # An item of several entries gives each its pair: acknowledged once. Redis's
        # clock comes with the acknowledgement: the lag is measured on one clock.
        pipe = self._shared.pipeline(transaction=False)
        pipe.xack(keys.LOG, keys.PERSIST, *dict.fromkeys(stream_id for stream_id, _ in pairs))
        pipe.time()
        _, (seconds, micros) = await pipe.execute()
        self.batches += 1
        self.last_batch_seconds = time.perf_counter() - started
        self._lagged([(i, e) for i, e in pairs if e.get("s") in stored],
                     int(seconds) + int(micros) / 1e6)
        return len(pairs)

    async def _own_log(self) -> None:
        """Raise :class:`AnotherLog` if Redis names a database (the sequencer's seed
        notes it) that is not this node's: it lost its data, and the nodes of another
        database took it (a copy ``chatd migrate`` replaced, its nodes left running).
        Their entries stored here would be missing from their history (acknowledged
        in the group they share), and room and user ids mean other rows here. Those
        read stay pending under this consumer, for their nodes to claim."""
        ours = self.database()
        if not ours or self._confirmed:
            # Once Redis named this database for this group, only a loss of its data
            # names another, and that loss makes the group anew (reset): not asked
            # after every batch, which, under light load, is every message.
            return
        named = await self._shared.get(keys.DATABASE)
        self._foreign = named is not None and codec.text(named) != ours
        self._confirmed = named is not None and not self._foreign
        if self._foreign:
            raise AnotherLog("Redis (cluster.redis) holds the log of another database")

    def _lagged(self, pairs: list[Pair], now: float) -> None:
        """Add the lag of the messages of a batch stored, acknowledged at ``now``,
        Redis's time (see Lag). An item's entries share its time: read once."""
        counts: dict[bytes, int] = {}
        for stream_id, _ in pairs:
            counts[stream_id] = counts.get(stream_id, 0) + 1
        for stream_id, count in counts.items():
            appended = appended_at(stream_id)
            if appended is not None:
                self.lag_seconds += max(0.0, now - appended) * count
                self.lagged += count

    async def _next(self) -> list[Pair]:
        """This consumer's own pending entries, else entries another consumer left
        pending too long, else new entries (waiting up to READ_BLOCK_MS)."""
        if self._own_first:
            pairs = await self._read("0", block=None)
            if pairs:
                return pairs
            self._own_first = False
        if time.monotonic() - self._claimed_at >= CLAIM_EVERY:
            pairs = await self._claim()
            if pairs:
                return pairs
        return await self._read(">", block=READ_BLOCK_MS)

    async def _read(self, start: str, block: int | None) -> list[Pair]:
        answer: Any = await self._shared.xreadgroup(
            keys.PERSIST, self._name, {keys.LOG: start}, count=BATCH, block=block)
        return [pair for _, items in answer or () for stream_id, fields in items if fields
                for pair in self._decoded(stream_id, fields)]

    async def _claim(self) -> list[Pair]:
        answer: Any = await self._shared.xautoclaim(
            keys.LOG, keys.PERSIST, self._name, CLAIM_IDLE_MS, start_id=self._claim_from,
            count=BATCH)
        following, items = answer[0], answer[1]
        gone = answer[2] if len(answer) > 2 else []
        if gone:
            # Trimmed while pending: cannot happen below the backlog's limit.
            log.error("cluster: %d log entries were trimmed before they were stored",
                      len(gone))
        self._claim_from = codec.text(following)
        if self._claim_from == "0-0":
            self._claimed_at = time.monotonic()  # went round: rest a while
        pairs = [pair for stream_id, fields in items if fields
                 for pair in self._decoded(stream_id, fields)]
        if pairs:
            log.info("cluster: took over %d log entries pending with another node", len(pairs))
        return pairs

    def _decoded(self, stream_id: bytes, fields: dict[bytes, bytes]) -> list[Pair]:
        entries = self._items.entries(stream_id, fields)
        # An item it cannot read is still acknowledged (with nothing to store): left
        # pending, it would be claimed and skipped again for ever.
        return [(stream_id, entry) for entry in entries] or [(stream_id, {})]

    # -- storing -------------------------------------------------------------

    async def _persist(self, entries: list[dict[str, Any]]) -> set[int]:
        """Store the messages of ``entries`` the gate did not drop; retry until
        PostgreSQL takes them (or refuses some, dropped). Their ids."""
        records = [r for r in map(record_of, entries) if r is not None]
        if not records:
            return set()
        await self._decided(records)
        kept = [r for r in records if self._verdict(r.id) is not False]
        failures = 0
        while True:
            try:
                await self._write(kept)
                break
            except StorageError as exc:
                failures += 1
                if failures == 1:
                    log.warning("cluster: storing %d messages failed (%s); they stay in "
                                "the log and are retried", len(kept), exc)
                await asyncio.sleep(min(0.1 * 2 ** min(failures, 8), MAX_BACKOFF))
        if failures:
            log.info("cluster: stored %d messages after %d failed attempts", len(kept),
                     failures)
        dropped, self._dropped_now = self._dropped_now, set()
        return {r.id for r in kept} - dropped

    async def _decided(self, records: list[MessageRecord]) -> None:
        """Wait (at most VERDICT_WAIT) until this node's reader decided the batch's
        room messages; what it has not decided by then is stored."""
        undecided = [r.id for r in records if r.room_id is not None]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(VERDICT_WAIT):
                while undecided:
                    undecided = [n for n in undecided if self._verdict(n) is None]
                    if undecided:
                        await asyncio.sleep(0.02)
        if undecided:
            log.warning("cluster: %d messages stored before this node's reader placed "
                        "them", len(undecided))

    async def _write(self, batch: list[MessageRecord]) -> None:
        """Store ``batch``; what the database refuses is logged and dropped
        (:func:`storage.writer.write_or_drop`)."""
        if batch:
            await write_or_drop(batch, self._store, self._settle)

    def _settle(self, piece: list[MessageRecord], stored: object) -> None:
        if stored is DROPPED:
            self.dropped += 1
            self._dropped_now.update(r.id for r in piece)
        elif isinstance(stored, int):
            self.stored += stored

    # -- backlog -------------------------------------------------------------

    async def _measure(self) -> None:
        while not stopping():
            try:
                self.measured(backlog_of(await self._shared.xinfo_groups(keys.LOG)) or 0)
            except redis.RedisError as exc:
                if stopping():
                    raise asyncio.CancelledError from exc
            await asyncio.sleep(MEASURE_EVERY)

    def measured(self, backlog: int) -> None:
        """Take a measure of the backlog into account: warn, refuse, or clear."""
        self.backlog = backlog
        length = keys.LOG_LENGTH
        full = backlog > REFUSE_AT * length
        if full != self.full:
            self.full = full
            if full:
                log.error("cluster: %d log entries are not stored yet (limit %d): messages "
                          "are refused until PostgreSQL catches up", backlog, length)
            else:
                log.warning("cluster: the history backlog is down to %d: messages are "
                            "taken again", backlog)
        warn = backlog > WARN_AT * length
        if warn and not self._warned:
            log.warning("cluster: %d log entries are not stored yet, over half the log's "
                        "length (%d): is PostgreSQL reachable?", backlog, length)
        self._warned = warn



class LogWriter:
    """The domain's message writer in cluster mode (:class:`storage.writer.Writer`).

    Nothing is written here: a message submitted is carried by its entry of
    the log (``keep``), which the persister stores. So there is nothing to
    flush; the figures are the persister's (pending: the group's backlog)."""

    def __init__(self, keep: Callable[[MessageRecord], None], persister: Persister) -> None:
        self._keep = keep
        self._persister = persister

    @property
    def pending(self) -> int:
        return self._persister.backlog

    @property
    def written(self) -> int:
        return self._persister.stored

    @property
    def dropped(self) -> int:
        return self._persister.dropped

    @property
    def last_flush_seconds(self) -> float:
        return self._persister.last_batch_seconds

    def submit(self, record: MessageRecord) -> None:
        self._keep(record)

    def pending_after(self, after_id: int) -> list[MessageRecord]:
        """Nothing: what is not stored yet is in the log, read from its tail."""
        return []

    async def start(self) -> None:
        """The persister starts with the node."""

    async def flush(self) -> None:
        """Nothing waits here: history merges the log's tail (chatd.cluster.tail)."""

    async def close(self) -> None:
        """What the log holds is stored by the group, whatever becomes of this node."""
