"""Rate limiting primitives: the token bucket, the flood detector, and where buckets live.

Time is always read from the daemon's one :class:`chatd.domain.clock.Clock`
(its monotonic seconds), so tests move a ``ManualClock`` instead of sleeping.
Bucket state lives behind a :class:`LimitStore`, keyed by kind and key: in
memory today; a cluster can keep it where every node charges the same bucket,
so a flood spread over nodes gets no more than it would on one. Pure: no
asyncio, no I/O.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import math
from collections import deque
from collections.abc import Awaitable, Hashable, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol

if TYPE_CHECKING:
    from chatd.domain.clock import Clock

__all__ = ["Charge", "FloodDetector", "Kind", "LimitStore", "MemoryLimitStore",
           "SlidingWindow", "TokenBucket"]

# Tolerance for floating-point rounding: after waiting exactly the time
# try_take() asked for, the refill may come out a hair short (0.9999999999
# tokens); without this the caller would be told to wait again for ~1e-10 s.
# The shortfall is kept as (slightly) negative tokens, so it never accumulates
# into extra allowance.
_EPSILON: Final = 1e-9


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst``, starts full.

    A ``rate`` of 0 or less means unlimited: ``try_take`` always succeeds.
    """

    __slots__ = ("_burst", "_now", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float, clock: Clock) -> None:
        """Create a full bucket refilling at ``rate`` tokens per second."""
        _check_burst(burst)
        self._rate = rate
        self._burst = burst
        # The bound method, looked up once: a bucket reads the clock on every take.
        self._now = clock.monotonic
        self._tokens = burst
        self._stamp = self._now()

    @property
    def rate(self) -> float:
        """Tokens added per second (0 or less: unlimited)."""
        return self._rate

    @property
    def burst(self) -> float:
        """The bucket's capacity."""
        return self._burst

    @property
    def full(self) -> bool:
        """Whether the bucket holds its whole burst: then it is no different from a new one."""
        return self.tokens >= self._burst

    def wait(self, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are available, taking nothing (0.0: now)."""
        rate = self._rate
        if rate <= 0:
            return 0.0
        missing = cost - max(0.0, self._refilled(rate))
        if missing <= _EPSILON:
            return 0.0
        return math.inf if cost > self._burst else missing / rate

    @property
    def tokens(self) -> float:
        """The tokens available now (an unlimited bucket is always full)."""
        if self._rate <= 0:
            return self._burst
        return max(0.0, self._refilled(self._rate))

    def try_take(self, cost: float = 1.0) -> float:
        """Take ``cost`` tokens if available.

        Returns 0.0 when they were taken. Otherwise nothing is taken and the
        result is the seconds to wait until ``cost`` tokens will be available
        (``math.inf`` when ``cost`` exceeds the burst and never will be).
        """
        if cost < 0:
            raise ValueError(f"cost must not be negative, not {cost}")
        rate = self._rate
        if rate <= 0:
            return 0.0
        tokens = self._refilled(rate)
        if tokens + _EPSILON >= cost:
            self._tokens = tokens - cost
            return 0.0
        if cost > self._burst:
            return math.inf
        return (cost - tokens) / rate

    def give(self, cost: float = 1.0) -> None:
        """Put back ``cost`` tokens taken for nothing (at most up to the burst)."""
        if self._rate <= 0:
            return
        self._refilled(self._rate)
        self._tokens = min(self._burst, self._tokens + cost)

    def reconfigure(self, rate: float, burst: float) -> None:
        """Change rate and burst, keeping the current tokens (clamped to ``burst``)."""
        _check_burst(burst)
        # Credit the time elapsed so far at the old rate before switching.
        self._refilled(self._rate)
        # An unlimited bucket is always full, so it becomes a full bucket.
        self._tokens = burst if self._rate <= 0 else min(self._tokens, burst)
        self._rate = rate
        self._burst = burst

    def _refilled(self, rate: float) -> float:
        """Add the tokens earned at ``rate`` (the bucket's; 0 or less earns nothing)
        since the last refill, and return the tokens held: one call, as every
        charge of a message runs it."""
        now = self._now()
        elapsed = now - self._stamp
        if elapsed <= 0:
            # A clock that stands still (or, wrongly, goes back) earns nothing;
            # keeping the old stamp means it cannot earn twice later either.
            return self._tokens
        self._stamp = now
        if rate > 0:
            tokens = self._tokens + elapsed * rate
            burst = self._burst
            self._tokens = burst if tokens > burst else tokens
        return self._tokens

    def __repr__(self) -> str:
        """Show rate, burst and the stored (not refilled) tokens."""
        return f"TokenBucket(rate={self._rate}, burst={self._burst}, tokens={self._tokens:.3f})"


def _check_burst(burst: float) -> None:
    """Reject a negative capacity."""
    if burst < 0:
        raise ValueError(f"burst must not be negative, not {burst}")


class FloodDetector:
    """Count refusals in a sliding window and flag a flood.

    ``record()`` returns True exactly when the number of refusals within the
    last ``window`` seconds reaches ``threshold``; the count then starts over,
    so a client that keeps flooding is flagged again every ``threshold``
    refusals rather than on every one.
    """

    __slots__ = ("_now", "_threshold", "_times", "_window")

    def __init__(self, threshold: int, window: float, clock: Clock) -> None:
        """Flag ``threshold`` refusals within ``window`` seconds."""
        if threshold < 1:
            raise ValueError(f"threshold must be at least 1, not {threshold}")
        if window <= 0:
            raise ValueError(f"window must be positive, not {window}")
        self._threshold = threshold
        self._window = window
        self._now = clock.monotonic
        # Never longer than threshold: it is cleared when it gets there.
        self._times: deque[float] = deque()

    @property
    def count(self) -> int:
        """Refusals recorded within the window (as of the last record)."""
        return len(self._times)

    @property
    def idle(self) -> bool:
        """No refusal within the window: the detector is no different from a new one."""
        times = self._times
        return not times or times[-1] <= self._now() - self._window

    def record(self) -> bool:
        """Record one refusal now; True when this one completes a flood."""
        now = self._now()
        times = self._times
        times.append(now)
        cutoff = now - self._window
        while times[0] <= cutoff:
            times.popleft()
        if len(times) >= self._threshold:
            times.clear()
            return True
        return False

    def reset(self) -> None:
        """Forget every recorded refusal."""
        self._times.clear()



class SlidingWindow:
    """At most ``limit`` takes within any ``window`` seconds: a log of the recent takes.

    Stricter than a bucket of that burst, which allows its burst plus a
    window's refill within one window: for a budget of a scarce resource (CPU
    for processes) whose starts must never bunch up.
    """

    __slots__ = ("_now", "_times", "_window")

    def __init__(self, window: float, clock: Clock) -> None:
        """Count takes within ``window`` seconds."""
        if window <= 0:
            raise ValueError(f"window must be positive, not {window}")
        self._window = window
        self._now = clock.monotonic
        self._times: deque[float] = deque()

    def try_take(self, limit: int) -> float:
        """Take one if fewer than ``limit`` were taken within the window: 0.0, else
        the seconds until one is free (nothing is taken). ``limit`` may change
        between calls, as a reload changes it."""
        now = self._now()
        times, cutoff = self._times, now - self._window
        while times and times[0] <= cutoff:
            times.popleft()
        if len(times) < limit:
            times.append(now)
            return 0.0
        # Free once all but limit - 1 of them have left the window.
        return times[len(times) - limit] - cutoff


class Kind(Enum):
    """Every limited action, and what its bucket is keyed by.

    The rate and burst of each are declared once, in
    :class:`chatd.domain.protection.Protection`; IRC's fakelag is no kind of its
    own: it waits on ``COMMAND`` and ``MESSAGE`` instead of being refused.
    """

    MESSAGE = "message"              # per user, shared by all their connections
    ROOM_MESSAGE = "room-message"    # per (room, user), in a room with its own /ratelimit
    COMMAND = "command"              # per connection: every command line
    TYPING = "typing"                # per connection: typing indicators
    LOGIN_ADDRESS = "login-address"  # failed logins per IP address
    LOGIN_NAME = "login-name"        # failed logins per account name
    CRYPTO_SPAWN = "crypto-spawn"    # chatd-crypt process starts, for this daemon (a window)
    WEBHOOK = "webhook"              # posts through one incoming webhook
    REGISTRATION = "registration"    # accounts made with /register, per IP address
    ROOM_CREATION = "room-creation"  # rooms created, per user

    # A member is its only equal, so its identity hashes it: cheaper than
    # Enum's hash of the name, paid at every charge (the store is keyed by kind).
    __hash__ = object.__hash__


class RateRefused(Exception):
    """A shared bucket answered later that it holds no token: ``wait`` seconds
    until it does (:data:`math.inf`: never, a cost above its burst). The domain
    turns it into ``rate-limited`` (see Protection.refuse_message)."""

    def __init__(self, wait: float) -> None:
        super().__init__(wait)
        self.wait = wait


class Charge(NamedTuple):
    """One bucket to charge, with the rate and burst in force."""

    kind: Kind
    key: Hashable
    rate: float
    burst: float


class LimitStore(Protocol):
    """Where token buckets live, keyed by kind and key.

    Each call names the rate and burst in force, so a store never reads the
    configuration: a bucket made under another rate is switched to this one
    (keeping its tokens), and a store shared by several daemons applies one
    rate whoever charges. A bucket that has refilled is no different from a
    new one, so a store may forget it.

    The ``take_shared``, ``take_all`` and ``give_back`` calls are made where the
    caller can wait (a post, a login): a store shared by several daemons may
    answer them after the turn, with an awaitable of the same result.
    """

    def take(self, kind: Kind, key: Hashable, rate: float, burst: float,
             cost: float = 1.0) -> float:
        """Take ``cost`` tokens; 0.0 when taken, else the seconds to wait (nothing taken)."""
        ...

    def wait(self, kind: Kind, key: Hashable, rate: float, burst: float,
             cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are available, taking nothing."""
        ...

    def take_shared(self, kind: Kind, key: Hashable, rate: float, burst: float,
                    cost: float = 1.0) -> float | Awaitable[float]:
        """``take``, or an awaitable of its answer when the bucket is shared."""
        ...

    def take_all(self, charges: Sequence[Charge],
                 cost: float = 1.0) -> float | Awaitable[float]:
        """Take ``cost`` from every bucket of ``charges`` or from none: 0.0 when
        taken, else the longest wait (or an awaitable of that answer)."""
        ...

    def give_back(self, charges: Sequence[Charge],
                  cost: float = 1.0) -> Awaitable[None] | None:
        """Put back what ``take_all`` took for nothing (up to each burst)."""
        ...

    def forget(self, kind: Kind, scope: Hashable) -> None:
        """Drop the buckets of ``kind`` keyed ``scope``, or by a tuple that starts with it."""
        ...

    def sweep(self) -> None:
        """Drop every bucket that has refilled: it holds nothing worth keeping."""
        ...


# Buckets one kind keeps at most in memory. Bounds what a client spraying
# names or addresses can make the daemon hold: past it, the kind's refilled
# buckets are dropped (they hold nothing), then, if that is not enough, the
# oldest made, down to a tenth below the bound, so the scan is paid at most
# once per tenth of the bound of new keys, never on a charge of a known key.
MAX_KEYS: Final = 100_000


class MemoryLimitStore:
    """A :class:`LimitStore` in this process's memory, bounded per kind.

    A charge of a key it holds is a plain dict lookup and the bucket's own
    take: no reordering, no allocation.
    """

    __slots__ = ("_buckets", "_clock", "_max_keys")

    def __init__(self, clock: Clock, max_keys: int = MAX_KEYS) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[Kind, dict[Hashable, TokenBucket]] = {kind: {} for kind in Kind}

    def take(self, kind: Kind, key: Hashable, rate: float, burst: float,
             cost: float = 1.0) -> float:
        buckets = self._buckets[kind]
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = TokenBucket(rate, burst, self._clock)
            if len(buckets) > self._max_keys:
                # Charged first: the new bucket is not among the refilled ones.
                wait = bucket.try_take(cost)
                self._bound(buckets)
                return wait
        elif bucket._rate != rate or bucket._burst != burst:  # its fields: same module
            bucket.reconfigure(rate, burst)
        return bucket.try_take(cost)

    # This process's buckets answer at once: the shared form is the plain take.
    take_shared = take

    def take_all(self, charges: Sequence[Charge], cost: float = 1.0) -> float:
        longest = max((self.wait(*charge, cost) for charge in charges), default=0.0)
        if longest:
            return longest
        for charge in charges:
            self.take(*charge, cost)
        return 0.0

    def give_back(self, charges: Sequence[Charge], cost: float = 1.0) -> None:
        for charge in charges:
            bucket = self._buckets[charge.kind].get(charge.key)
            if bucket is not None:  # none: it was forgotten full, nothing to give
                bucket.give(cost)

    def _bound(self, buckets: dict[Hashable, TokenBucket]) -> None:
        """Bring one kind's buckets back under the bound (see ``MAX_KEYS``)."""
        for key in [k for k, b in buckets.items() if b.full]:
            del buckets[key]
        if len(buckets) > self._max_keys:
            keep = self._max_keys - self._max_keys // 10
            # Oldest made first: a dict keeps the order of insertion.
            for key in list(itertools.islice(buckets, len(buckets) - keep)):
                del buckets[key]

    def wait(self, kind: Kind, key: Hashable, rate: float, burst: float,
             cost: float = 1.0) -> float:
        bucket = self._buckets[kind].get(key)
        if bucket is None:
            # A bucket not yet made is full: only a cost above the burst waits.
            return 0.0 if rate <= 0 or cost <= burst else math.inf
        if bucket._rate != rate or bucket._burst != burst:  # its fields: same module
            bucket.reconfigure(rate, burst)
        return bucket.wait(cost)

    def forget(self, kind: Kind, scope: Hashable) -> None:
        buckets = self._buckets[kind]
        buckets.pop(scope, None)
        for key in [k for k in buckets if isinstance(k, tuple) and k and k[0] == scope]:
            del buckets[key]

    def sweep(self) -> None:
        for buckets in self._buckets.values():
            for key in [k for k, b in buckets.items() if b.full]:
                del buckets[key]

    def __len__(self) -> int:
        """The buckets held, of every kind."""
        return sum(len(b) for b in self._buckets.values())


@functools.lru_cache(maxsize=4096)  # (a log-in asks twice; clients come back)
def address_key(host: str, ipv6_prefix: int) -> str:
    """What the limits of one address count under (limits.ipv6_prefix): an IPv4
    address whole; an IPv6 address by its network of ``ipv6_prefix`` bits, since
    one host commonly has a whole /64 to pick addresses from (an IPv4 address
    written in IPv6, ``::ffff:192.0.2.1``, as itself). ``host`` may be bracketed
    (``[2001:db8::1]``, as a peer is written); one that is no address is its own key."""
    try:
        ip = ipaddress.ip_address(host.removeprefix("[").removesuffix("]").partition("%")[0])
    except ValueError:
        return host
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, ipv6_prefix), strict=False))
