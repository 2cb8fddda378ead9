"""Rate limits every node shares: the cluster's :class:`~chatd.domain.limits.LimitStore`.

A user's message bucket (and their bucket in a room with its own rate), the
failed-login buckets of an IP address and of an account name, and each incoming
webhook's bucket live in Redis, so a flood, a password guesser or a webhook spread
over several nodes gets no more than on one: every node charges the same bucket,
in one atomic script.

**Never on the loop's time, never a round trip per message.** A charge is a
future: the charges of one turn of the event loop are sent after the turn in
one script call, which answers them all, in the order they were asked. One
call is in flight at a time; what is asked meanwhile waits for the next. The
message path awaits its charge before it asks the sequencer for an id (so a
refused message leaves no gap in the order): a post costs one more turn's
round trip of latency, not one more call per message. The script reads
Redis's own clock, so the nodes' clocks never disagree about a refill.

**Exact, not approximate.** The buckets are token buckets (the same arithmetic
as :class:`~chatd.domain.limits.TokenBucket`), updated atomically, so across
all nodes at most ``burst + rate * t`` messages of one user are accepted in
any ``t`` seconds: no slack per node.

**Idle buckets disappear.** Each bucket's key expires when it would have
refilled (written with ``PX``, a ``PEXPIRE``): a missing key is a full bucket.

**Redis unreachable.** A charge not answered within the sequencer's
``TIMEOUT`` is refused with ``busy`` and a ``retry_ms``: nothing waits without
bound.

Everything else (commands and typing, per connection) is
this node's :class:`~chatd.domain.limits.MemoryLimitStore`; so is a charge
made synchronously (``take``), which nothing in chatd makes of a shared kind.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Final

import redis

from chatd.cluster import keys
from chatd.cluster.sequencer import RETRY_MS, TIMEOUT
from chatd.cluster.turns import PerTurn
from chatd.domain.limits import MAX_KEYS, Charge, Kind, MemoryLimitStore
from chatd.errors import ChatError, Code

if TYPE_CHECKING:
    import redis.asyncio

    from chatd.domain.clock import Clock

# The buckets kept in Redis, with the tag of each kind's keys.
SHARED: Final = {Kind.MESSAGE: "m", Kind.ROOM_MESSAGE: "r", Kind.LOGIN_ADDRESS: "a",
                 Kind.LOGIN_NAME: "n", Kind.WEBHOOK: "w", Kind.REGISTRATION: "g",
                 Kind.ROOM_CREATION: "c"}

# Take from groups of buckets, each group all or nothing, in the order given.
# KEYS: the buckets, group after group. ARGV[1]: now in microseconds ('' for
# Redis's own clock); ARGV[2]: the groups, as numbers separated by spaces: each
# group's size, followed by the rate, burst and cost of each of its buckets (a
# negative cost gives tokens back). One string, and one string back (the
# answers separated by spaces): a thousand charges are two arguments to
# encode and one reply to parse, not thousands. Answers per group: 0 taken,
# -1 never (a cost above the burst), else the microseconds until it could be.
# A bucket is a string: its tokens and the time they were counted, read with
# one GET, written with one SET.
# The token buckets' arithmetic, a Lua function: ``take(first_key, now, groups)``
# charges the groups (the buckets from KEYS[first_key] on) and returns their answers.
TAKE_FUNCTION: Final = """
local function take(first_key, clock, groups)
local now = tonumber(clock)
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local n = {}
for word in string.gmatch(groups, '%S+') do n[#n + 1] = tonumber(word) end
local EPSILON = 1e-9
local results = {}
local k, a = first_key, 1
while a <= #n do
  local size = n[a]
  a = a + 1
  local have, stamps, wait = {}, {}, 0
  for i = 0, size - 1 do
    local rate, burst, cost = n[a + 3 * i], n[a + 3 * i + 1], n[a + 3 * i + 2]
    if rate > 0 then
      local state = redis.call('GET', KEYS[k + i])
      local tokens, stamp = burst, now
      if state then
        local counted, at = string.match(state, '^(%S+) (%S+)$')
        tokens, stamp = tonumber(counted), tonumber(at)
        if now > stamp then
          tokens = tokens + (now - stamp) * rate / 1000000
          stamp = now
        end
        tokens = math.min(tokens, burst)
      end
      have[i], stamps[i] = tokens, stamp
      if cost > 0 and tokens + EPSILON < cost then
        local this = -1
        if cost <= burst then this = math.ceil((cost - tokens) * 1000000 / rate) end
        if wait ~= -1 and (this == -1 or this > wait) then wait = this end
      end
    end
  end
  if wait == 0 then
    for i = 0, size - 1 do
      local rate, burst, cost = n[a + 3 * i], n[a + 3 * i + 1], n[a + 3 * i + 2]
      if rate > 0 then
        local left = math.min(burst, have[i] - cost)
        if left >= burst then
          redis.call('DEL', KEYS[k + i])
        else
          redis.call('SET', KEYS[k + i],
                     string.format('%.17g %.17g', left, stamps[i]), 'PX',
                     string.format('%d', math.ceil((burst - left) * 1000 / rate) + 1))
        end
      end
    end
  end
  results[#results + 1] = string.format('%d', wait)
  k = k + size
  a = a + 3 * size
end
return results
end
"""

_TAKE: Final = TAKE_FUNCTION + """
return table.concat(take(1, ARGV[1], ARGV[2]), ' ')
"""


def busy() -> ChatError:
    return ChatError(Code.BUSY, "the cluster cannot check rate limits right now: "
                     "try again in a moment.", retry_ms=RETRY_MS)


def bucket_key(kind: Kind, key: Hashable, rate: float, burst: float) -> str:
    """The Redis key of a shared bucket.

    A room's bucket names the room's rate and burst: when the room's owner
    changes them, the next charge finds a fresh (full) bucket on every node,
    and the old one expires, which is what forgetting does in one process.
    """
    if kind is Kind.ROOM_MESSAGE:
        assert isinstance(key, tuple)
        return keys.bucket(SHARED[kind], *key, rate, burst)
    return keys.bucket(SHARED[kind], key)


class _Ask:
    """One group of buckets to charge together, and who waits for the answer."""

    __slots__ = ("args", "future", "keys", "lone")

    def __init__(self, keys: list[str], args: str, lone: tuple[Kind, Hashable] | None,
                 future: asyncio.Future[float]) -> None:
        self.keys = keys
        self.args = args
        # A lone bucket refused is known empty (in a group, which one is not said).
        self.lone = lone
        self.future = future


class ClusterLimitStore:
    """Message and failed-login buckets in Redis, one script call per turn;
    the rest in this node's memory."""

    def __init__(self, shared: redis.asyncio.Redis, clock: Clock,
                 now: Callable[[], float] | None = None) -> None:
        """``now`` (seconds) replaces Redis's clock: for tests that move time."""
        self._shared = shared
        self._script = shared.register_script(_TAKE)
        self._clock = clock
        self._now = now
        self._local = MemoryLimitStore(clock)
        self._asks: PerTurn[_Ask] = PerTurn(self._answer)
        # Until when (this node's monotonic seconds) a shared bucket is known
        # to be empty: a flood refused once is refused again here, without a
        # call, until then. Only ever stricter than Redis (nothing refills sooner).
        self._empty_until: dict[tuple[Kind, Hashable], float] = {}
        self.batches = 0

    # -- this node's kinds, and the synchronous form ------------------------------

    def take(self, kind: Kind, key: Hashable, rate: float, burst: float,
             cost: float = 1.0) -> float:
        return self._local.take(kind, key, rate, burst, cost)

    def wait(self, kind: Kind, key: Hashable, rate: float, burst: float,
             cost: float = 1.0) -> float:
        """A shared bucket's wait as last learnt here (0.0: not known to be empty)."""
        if kind not in SHARED:
            return self._local.wait(kind, key, rate, burst, cost)
        until = self._empty_until.get((kind, key))
        return 0.0 if until is None else max(0.0, until - self._clock.monotonic())

    def forget(self, kind: Kind, scope: Hashable) -> None:
        self._local.forget(kind, scope)
        for known in [k for k in self._empty_until if k[0] is kind and _in_scope(k[1], scope)]:
            del self._empty_until[known]

    def sweep(self) -> None:
        self._local.sweep()
        now = self._clock.monotonic()
        for known in [k for k, until in self._empty_until.items() if until <= now]:
            del self._empty_until[known]

    # -- the shared kinds -------------------------------------------------------

    def take_shared(self, kind: Kind, key: Hashable, rate: float, burst: float,
                    cost: float = 1.0) -> float | Awaitable[float]:
        if kind not in SHARED:
            return self._local.take(kind, key, rate, burst, cost)
        known = self.wait(kind, key, rate, burst)
        if known:
            return known
        return self._ask([bucket_key(kind, key, rate, burst)], f"1 {rate!r} {burst!r} {cost!r}",
                         (kind, key) if cost > 0 else None)

    def take_all(self, charges: Sequence[Charge],
                 cost: float = 1.0) -> float | Awaitable[float]:
        if not all(charge.kind in SHARED for charge in charges):
            return self._local.take_all(charges, cost)
        known = max((self.wait(*charge) for charge in charges), default=0.0)
        if known:
            return known
        return self._ask_group(charges, cost)

    def give_back(self, charges: Sequence[Charge],
                  cost: float = 1.0) -> Awaitable[None] | None:
        if not all(charge.kind in SHARED for charge in charges):
            self._local.give_back(charges, cost)
            return None
        for charge in charges:
            self._empty_until.pop((charge.kind, charge.key), None)
        return _settled(self._ask_group(charges, -cost))

    # -- one script call per turn -----------------------------------------------

    def _ask_group(self, charges: Sequence[Charge], cost: float) -> asyncio.Future[float]:
        args = " ".join([str(len(charges)), *(f"{c.rate!r} {c.burst!r} {cost!r}"
                                              for c in charges)])
        lone = (charges[0].kind, charges[0].key) if len(charges) == 1 and cost > 0 else None
        return self._ask([bucket_key(*charge) for charge in charges], args, lone)

    def _ask(self, bucket_keys: list[str], args: str,
             lone: tuple[Kind, Hashable] | None) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._asks.add(_Ask(bucket_keys, args, lone, future))
        return future

    async def _answer(self, batch: list[_Ask]) -> None:
        now = "" if self._now is None else str(round(self._now() * 1_000_000))
        script_keys: list[str] = []
        for ask in batch:
            script_keys += ask.keys
        groups = " ".join([ask.args for ask in batch])
        try:
            async with asyncio.timeout(TIMEOUT):
                answer = await self._script(keys=script_keys, args=[now, groups],
                                            client=self._shared)
        except (redis.RedisError, TimeoutError):
            for ask in batch:
                if not ask.future.done():
                    ask.future.set_exception(busy())
            return
        self.batches += 1
        for ask, wait in zip(batch, map(int, answer.split()), strict=True):
            seconds = self.answered(ask.lone, wait)
            if not ask.future.done():  # a post whose connection went away no longer waits
                ask.future.set_result(seconds)

    def answered(self, bucket: tuple[Kind, Hashable] | None, wait: int) -> float:
        """The seconds a script's answer for a charge says to wait (``wait`` in
        microseconds, -1 for never), remembering that ``bucket`` (when the charge
        was its alone) is empty meanwhile."""
        seconds = math.inf if wait < 0 else wait / 1_000_000
        if seconds and bucket is not None:
            self._note_empty(bucket, seconds)
        return seconds

    def _note_empty(self, bucket: tuple[Kind, Hashable], wait: float) -> None:
        """Remember that ``bucket`` is empty for ``wait`` seconds."""
        if wait == math.inf:
            return  # a cost above the burst: a reload may raise the burst
        if len(self._empty_until) >= MAX_KEYS:
            self.sweep()
            if len(self._empty_until) >= MAX_KEYS:
                self._empty_until.clear()  # only a shortcut: losing it costs calls
        self._empty_until[bucket] = self._clock.monotonic() + wait


def _in_scope(key: Hashable, scope: Hashable) -> bool:
    return key == scope or (isinstance(key, tuple) and bool(key) and key[0] == scope)


async def _settled(answer: Awaitable[float]) -> None:
    await answer
