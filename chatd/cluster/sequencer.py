"""Message ids shared by every node: the cluster's
:class:`~chatd.domain.ports.Sequencer`.

One counter in Redis numbers room messages, direct messages and every event a
node publishes, so ids are unique across the cluster and one order holds for
all of them (:mod:`chatd.cluster.bus` delivers in that order).

**Never on the loop's time.** An id is a future: the posts of one turn of the
event loop ask, and after the turn one ``INCRBY`` (by how many asked) answers
them all with a contiguous range, handed out in the order they asked. One
batch is in flight at a time; what is asked meanwhile waits for the next. So
the ids this node issues increase in the order they were asked for, and a
connection, which waits for each of its posts before its next line, sees its
own ids increase. When Redis does not answer within ``TIMEOUT``, the posts
waiting are refused with ``busy`` and a ``retry_ms`` rather than queued.

The counter is seeded once per Redis lifetime, by the first node to find no
epoch, above the largest stored id plus a margin: should Redis lose its memory,
the ids numbered but not stored before the loss are never issued again. Ids
issued before the cluster numbered (by the embedded daemon ``chatd migrate``
copied, or a sole node), stored or not, are below the seed too
(``chatd_meta`` key ``ids_reserved``).

**Epochs.** Each batch's ``INCRBY`` runs in a script that first checks the
epoch this node holds: a Redis that lost its memory (no epoch, or another)
answers no ids, the batch is refused with ``busy``, and the node renews (its
reader also checks now and then): the first node seeds a new epoch, every node
adopts it and starts over on the new log (``epoch_changed``).

**Backpressure.** While the log holds too many entries not yet stored
(``backlogged``, see :mod:`chatd.cluster.persister`), messages are refused with
``busy`` rather than numbered: trimming the log must never drop one.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any

import redis

from chatd.cluster import codec, keys
from chatd.cluster.retry import needed_at_start
from chatd.cluster.turns import PerTurn
from chatd.domain.ports import IdSpan
from chatd.domain.sequence import RESERVED_META
from chatd.errors import ChatError, Code
from storage.api import DATABASE_META, EPOCH_META, MIGRATED, StorageError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import redis.asyncio

    from storage.api import Storage

# Set the epoch and the counter together, once: the first node to arrive seeds,
# and notes the first id of the epoch (KEYS[3]) when the database held messages
# (ids of an earlier epoch may then be lost; with none stored, none can be), and the
# database the epoch numbers (KEYS[4]; one numbered before it was noted takes it).
_SEED = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  local current = tonumber(redis.call('GET', KEYS[2]) or '0')
  if current < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end
  redis.call('SET', KEYS[3], ARGV[3])
  redis.call('SET', KEYS[4], ARGV[4])
else
  redis.call('SET', KEYS[4], ARGV[4], 'NX')
end
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[3]) or '0',
        redis.call('GET', KEYS[4])}
"""

# A batch of ids, under this node's epoch only (nil: Redis's epoch is another, or none).
_NUMBER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
return redis.call('INCRBY', KEYS[2], ARGV[2])
"""

log = logging.getLogger(__name__)

# How long a post waits for Redis before it is refused, in seconds.
TIMEOUT = 0.5
RETRY_MS = 1000


def busy() -> ChatError:
    return ChatError(Code.BUSY, "the cluster cannot number messages right now: "
                     "try again in a moment.", retry_ms=RETRY_MS)


def backlogged() -> ChatError:
    return ChatError(Code.BUSY, "the cluster is behind with writing history: "
                     "try again in a moment.", retry_ms=RETRY_MS)


class EpochChanged(Exception):
    """Redis's epoch is not this node's, and the node could not renew yet."""


class AnotherDatabase(OSError):
    """Redis holds the state (the counter, the log) of nodes that served another
    database: a trial copy ``chatd migrate`` replaced since. Numbering on from its
    counter would go below this database's ids, and its log would be written into
    this history: the node does not start (an OSError, said in one line)."""


class ClusterSequencer:
    """Ids from Redis's counter, one round trip for the asks of a turn."""

    def __init__(self, storage: Storage, shared: redis.asyncio.Redis) -> None:
        self._storage = storage
        self._shared = shared
        self._asks: PerTurn[asyncio.Future[int]] = PerTurn(self._answer)
        self.epoch = ""
        # This database's identity (chatd_meta DATABASE_META), which Redis must hold.
        self.database = ""
        # Redis numbers another database now (met by a renewal): this node reads and
        # stores nothing of its log (the bus and the persister ask).
        self.foreign = False
        # The largest id issued before this cluster numbered (chatd_meta RESERVED_META).
        self._issued = 0
        # The first id of the counter's epoch (0: nothing before it was stored).
        self.first = 0
        self.batches = 0
        # Ids refused with busy because Redis did not answer (metrics).
        self.refused = 0
        self.epoch_changes = 0
        self._number_script = shared.register_script(_NUMBER)
        self._renewing = asyncio.Lock()
        self._renewal: asyncio.Task[None] | None = None
        # Whether messages are refused for now (the log's backlog; set by the node).
        self.backlogged: Callable[[], bool] = lambda: False
        # The node starts over on a new epoch's log.
        self.epoch_changed: Callable[[], Awaitable[None]] | None = None
        # The node's start (once the counter is joined) and stop.

    async def load(self) -> None:
        """Join the counter, seeding it if this Redis has none yet. Ids before a new
        epoch are in doubt (a log may have held messages never stored) unless the
        database was copied whole from embedded mode and no epoch numbered it since
        (``chatd migrate`` records that: see storage.api.EPOCH_META)."""
        meta = self._storage  # PostgreSQL's: a cluster node's storage
        served = await getattr(meta, "get_meta")(EPOCH_META)  # noqa: B009
        # Ids issued and never stored (by the embedded daemon a copy came from, or a
        # sole node) are above the largest stored: never issued again either.
        self._issued = int(await getattr(meta, "get_meta")(RESERVED_META) or 0)  # noqa: B009
        self.database = await getattr(meta, "meta_once")(  # noqa: B009
            DATABASE_META, secrets.token_hex(8))
        with needed_at_start():
            await self._join(await self._storage.max_message_id(), doubtful=served != MIGRATED)
        if served != self.epoch:
            await getattr(meta, "set_meta")(EPOCH_META, self.epoch)  # noqa: B009

    async def _join(self, stored: int, doubtful: bool = True) -> None:
        """Seed the counter above ``stored`` (the database's largest id) under a new
        epoch, unless Redis has one: then take it, and the epoch's first id."""
        stored = max(stored, self._issued)
        seed = stored + keys.SEED_MARGIN
        epoch, first, database = await self._shared.eval(
            _SEED, 4, keys.EPOCH, keys.COUNTER, keys.EPOCH_FIRST, keys.DATABASE,
            secrets.token_hex(8), seed, seed + 1 if stored and doubtful else 0, self.database)
        if codec.text(database) != self.database:
            raise await self._another_database()
        self.epoch = codec.text(epoch)
        self.first = int(codec.text(first))

    async def _another_database(self) -> AnotherDatabase:
        """Why this node may not number in this Redis, and what to do about it. Left
        by a trial copy's nodes, Redis is to be emptied; but nodes still running
        there serve the other database, and emptying Redis under them would lose
        the messages of their log not stored yet: this database needs its own."""
        running = await self._running_nodes()
        if running:
            return AnotherDatabase(
                "Redis (cluster.redis) numbers another database, which running nodes "
                f"serve ({', '.join(running)}): give this database's nodes a Redis of "
                "their own (another server, or another database number in cluster.redis); "
                "do not empty this one, their messages not yet stored would be lost")
        return AnotherDatabase(
            "Redis (cluster.redis) holds the state of nodes that served another "
            "database (a copy chatd migrate replaced since?): empty it (redis-cli "
            "FLUSHDB) before the nodes start on this one")

    async def _running_nodes(self) -> list[str]:
        """The registered nodes whose record is alive (refreshed within its lifetime)."""
        registered: Any = await self._shared.hkeys(keys.NODES)
        names = sorted(codec.text(name) for name in registered)
        alive = [bool(await self._shared.exists(keys.node(name))) for name in names]
        return [name for name, living in zip(names, alive, strict=True) if living]

    async def check_epoch(self) -> None:
        """Renew if Redis's epoch is not this node's (EpochChanged if it cannot yet)."""
        current: Any = await self._shared.get(keys.EPOCH)
        if current is None or current.decode() != self.epoch:
            await self.renew()

    async def renew(self) -> None:
        """Redis lost its memory: seed a new epoch (the first node to find none) or
        adopt the one another node seeded, then let the node start over."""
        async with self._renewing:
            current: Any = await self._shared.get(keys.EPOCH)
            if current is not None and current.decode() == self.epoch:
                return  # renewed meanwhile
            try:
                stored = await self._storage.max_message_id()
            except StorageError as exc:
                raise EpochChanged(f"a new epoch waits for the database: {exc}") from exc
            old = self.epoch
            try:
                await self._join(stored)
            except AnotherDatabase as exc:
                self.foreign = True
                raise EpochChanged(
                    "Redis (cluster.redis) lost its data and now numbers another database "
                    "(its nodes took it first): this node reads and stores nothing of its "
                    "log; give each database its own Redis") from exc
            self.foreign = False
            self.epoch_changes += 1
            log.warning("cluster: Redis lost its data (epoch %s, now %s): entries of the "
                        "old log not yet stored are lost", old, self.epoch)
            if self.epoch_changed is not None:
                await self.epoch_changed()

    def renew_later(self) -> None:
        if self._renewal is None:
            self._renewal = asyncio.get_running_loop().create_task(self._renew_quietly())

    async def _renew_quietly(self) -> None:
        try:
            await self.renew()
        except (redis.RedisError, EpochChanged) as exc:
            log.warning("cluster: renewing the epoch failed (%s); the next batch retries", exc)
        finally:
            self._renewal = None

    async def stopped(self) -> None:
        """Nothing to record: the epoch (see chatd.cluster.epoch) says what a
        node's crash may have lost."""

    async def aclose(self) -> None:
        """The node stops: the ids asked for are answered, no renewal is left running."""
        await self._asks.drained()
        renewal = self._renewal
        if renewal is not None:
            renewal.cancel()
            # Waited for: cut short, it must not go on through the client the node
            # closes next.
            await asyncio.gather(renewal, return_exceptions=True)

    async def issued(self) -> IdSpan:
        """The epoch's first id and the counter's value; ``busy`` without Redis."""
        try:
            async with asyncio.timeout(TIMEOUT):
                last = int(await self._shared.get(keys.COUNTER) or 0)
        except (redis.RedisError, TimeoutError):
            raise busy() from None
        return IdSpan(self.first, last)

    def for_room(self, room_id: int) -> asyncio.Future[int]:
        return self._message_id()

    def for_direct(self, recipient_id: int) -> asyncio.Future[int]:
        return self._message_id()

    def _message_id(self) -> asyncio.Future[int]:
        if not self.backlogged():
            return self.next()
        refused: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        refused.set_exception(backlogged())
        return refused

    def next(self) -> asyncio.Future[int]:
        """The next id of the cluster (an event's place in the one order), once
        this turn's batch is numbered."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._asks.add(future)
        return future

    async def caught_up(self) -> None:
        """Wait until every id asked for so far is answered (or refused): a
        decision's events are numbered before its room's lock is released, so
        the decisions about a room are numbered in the order they were made."""
        waiting = [*self._asks.in_flight, *self._asks.asked]
        if waiting:
            await asyncio.wait(waiting)

    def _refuse(self, batch: list[asyncio.Future[int]]) -> None:
        for future in batch:
            if not future.done():
                self.refused += 1
                future.set_exception(busy())

    async def _answer(self, batch: list[asyncio.Future[int]]) -> None:
        try:
            async with asyncio.timeout(TIMEOUT):
                answer = await self._number_script(keys=[keys.EPOCH, keys.COUNTER],
                                                   args=[self.epoch, len(batch)],
                                                   client=self._shared)
        except (redis.RedisError, TimeoutError):
            self._refuse(batch)
            return
        if answer is None:  # Redis answered, without this node's epoch
            self._refuse(batch)
            self.renew_later()
            return
        last = int(answer)
        self.batches += 1
        for number, future in enumerate(batch, last - len(batch) + 1):
            if not future.done():  # a post whose connection went away no longer waits
                future.set_result(number)

