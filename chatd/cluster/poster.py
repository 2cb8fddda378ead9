"""A room message charged, numbered and appended to the log in one call to Redis:
the cluster's :class:`~chatd.domain.ports.Poster`.

Without it a post waits for Redis three times, one after another: its
rate-limit charge (:mod:`chatd.cluster.limits`), its id
(:mod:`chatd.cluster.sequencer`), then its entry's append (:mod:`chatd.cluster.bus`).
Each is batched per turn of the event loop, but at light load a turn carries
one post, so each post paid three round trips of latency and three calls of
CPU on its node. The poster collects the posts of a turn and sends them in one
script call that, under the node's epoch, charges each post's bucket in order,
takes as many ids as posts it accepted (a refused post takes none: no gap), and
appends the accepted posts as one item of the log whose field ``f`` is the first
id; every reader numbers the item's entries from it, in order
(:func:`chatd.cluster.codec.entries_of`). The script's answer is the first id
and each post's wait: 0 accepted, else the microseconds until its bucket holds
a token (``rate-limited``, with the flood accounting of
:class:`~chatd.domain.protection.Protection`).

A post is acknowledged, as before, once this node's reader placed its entry
(the gate may still drop it for a sanction ordered before it): it waits under
its entry's token, since its id is only known once the script answered, and the
reader may read the entry first.

**Only when every node reads it.** An item numbered by its script is the log's
format 3 (:data:`chatd.cluster.keys.LOG_NUMBERED`): while a live node of an
earlier version cannot read it (a rolling upgrade), :meth:`ClusterPoster.ready`
is false and posts take the three steps. Direct messages take them always.
Once every live node reads format 4 (:data:`chatd.cluster.keys.LOG_COMPACT`),
the script's items carry their posts compactly (:func:`chatd.cluster.codec.compact_post`),
which every node decodes in about a third of the time.

**Never hanging.** No answer within the sequencer's ``TIMEOUT``: the turn's posts
are refused with ``busy`` and a ``retry_ms``. Another epoch in Redis: ``busy``,
and the node renews. The log's backlog near its limit: refused before asking.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final

import redis

from chatd.cluster import codec, keys
from chatd.cluster.limits import TAKE_FUNCTION, bucket_key
from chatd.cluster.sequencer import TIMEOUT, backlogged, busy
from chatd.cluster.turns import PerTurn
from chatd.domain.limits import RateRefused

if TYPE_CHECKING:
    from collections.abc import Callable

    import redis.asyncio

    from chatd.cluster.bus import ClusterBus, Entry
    from chatd.cluster.limits import ClusterLimitStore
    from chatd.cluster.sequencer import ClusterSequencer
    from chatd.domain.events import Message
    from chatd.domain.limits import Charge
    from chatd.domain.ports import Endpoint
    from chatd.domain.room import Room
    from storage.records import MessageRecord

# KEYS: the epoch, the counter, the log, then each post's bucket. ARGV: the
# node's epoch, '' (the buckets read Redis's clock), the charges (as the limits' script
# takes them: one group of one bucket per post), the log's length, the item's field
# of entries (b, or c for compact ones), the node's id, then each post's entry as
# JSON. Answers false under another epoch, else each post's wait (0: accepted),
# separated by spaces.
_POST: Final = TAKE_FUNCTION + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local waits = take(4, ARGV[2], ARGV[3])
local accepted = {}
for i, wait in ipairs(waits) do
  if wait == '0' then accepted[#accepted + 1] = ARGV[6 + i] end
end
if #accepted > 0 then
  local first = redis.call('INCRBY', KEYS[2], #accepted) - #accepted + 1
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*',
             ARGV[5], '[' .. table.concat(accepted, ',') .. ']', 'f', string.format('%d', first),
             'n', ARGV[6])
end
return table.concat(waits, ' ')
"""


log = logging.getLogger(__name__)

# After a script call answered too late (it may have run), how long its posts may
# still be placed by this node's reader before they are refused, in seconds.
LATE_GRACE = 1.0


class _Post:
    """A post of this turn: its bucket and its entry (its future waits in the bus)."""

    __slots__ = ("charge", "entry")

    def __init__(self, charge: Charge, entry: Entry) -> None:
        self.charge = charge
        self.entry = entry


class ClusterPoster:
    """Room messages in one script call per turn: charge, number, append."""

    def __init__(self, shared: redis.asyncio.Redis, bus: ClusterBus,
                 sequencer: ClusterSequencer, limits: ClusterLimitStore) -> None:
        self._bus = bus
        self._sequencer = sequencer
        self._limits = limits
        self._script = shared.register_script(_POST)
        self._shared = shared
        self._posts: PerTurn[_Post] = PerTurn(self._answer)
        # Script calls that answered (metrics, tests).
        self.batches = 0

    def ready(self) -> bool:
        """Whether every live node reads what the script appends (else the three steps)."""
        return self._bus.log_format() >= keys.LOG_NUMBERED

    def post(self, room: Room, event: Message, record: MessageRecord, charge: Charge,
             skip: Endpoint | None, label: str | None) -> asyncio.Future[int]:
        """Charge ``charge``, number and append ``event`` after this turn; its id once
        placed, :class:`RateRefused` when its bucket is empty, or a ChatError."""
        if self._sequencer.backlogged():
            raise backlogged()
        entry, placed = self._bus.post_entry(room, event, record, skip, label)
        self._posts.add(_Post(charge, entry))
        return placed

    async def aclose(self) -> None:
        await self._posts.drained()

    async def _answer(self, asked: list[_Post]) -> None:
        compact = self._bus.log_format() >= keys.LOG_COMPACT
        batch, encoded = self._encoded(asked, codec.compact_post if compact else codec.encode)
        if not batch:
            return
        charges = " ".join(f"1 {p.charge.rate!r} {p.charge.burst!r} 1.0" for p in batch)
        try:
            async with asyncio.timeout(TIMEOUT):
                answer: Any = await self._script(
                    keys=[keys.EPOCH, keys.COUNTER, keys.LOG,
                          *(bucket_key(*p.charge) for p in batch)],
                    args=[self._sequencer.epoch, "", charges, keys.LOG_LENGTH,
                          "c" if compact else "b", self._bus.node_id, *encoded],
                    client=self._shared)
        except TimeoutError:
            # The script may have run, only its answer late: a post it appended is
            # placed when this node's reader reads it. Refusing now could refuse a
            # message every member then sees, and that its sender sends again; so
            # the posts not placed within LATE_GRACE more are refused then.
            log.warning("cluster: %d posts' script call answered late", len(batch))
            asyncio.get_running_loop().call_later(LATE_GRACE, self._refuse, batch)
            return
        except redis.RedisError:
            self._refuse(batch)  # no answer: Redis unreachable, nothing was run
            return
        if answer is None:  # Redis answered, without this node's epoch: nothing was run
            self._refuse(batch)
            self._sequencer.renew_later()
            return
        self.batches += 1
        # An accepted post (wait 0) learns its id when this node's reader places its
        # entry (ClusterBus._settle): the readers number the item from its field f.
        for post, wait in zip(batch, map(int, answer.split()), strict=True):
            if wait:
                self._refused_by_bucket(post, wait)

    def _encoded(self, asked: list[_Post],
                 encode: Callable[[Entry], bytes]) -> tuple[list[_Post], list[bytes]]:
        """The posts JSON can carry and their entries as JSON; the others are refused
        (one odd value must not keep the turn's other posts off the log)."""
        batch, encoded = [], []
        for post in asked:
            try:
                encoded.append(encode(post.entry))
            except codec.Uncarried as exc:
                self._bus.unplaced(post.entry, codec.refusal(exc))
                continue
            batch.append(post)
        return batch, encoded

    def _refused_by_bucket(self, post: _Post, wait: int) -> None:
        seconds = self._limits.answered((post.charge.kind, post.charge.key), wait)
        self._bus.unplaced(post.entry, RateRefused(seconds))

    def _refuse(self, batch: list[_Post]) -> None:
        """Refuse with busy the posts of ``batch`` still waiting."""
        for post in batch:
            if self._bus.unplaced(post.entry, busy()):
                self._sequencer.refused += 1
