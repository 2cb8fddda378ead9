"""Rate limiting primitives: a token bucket, a flood detector and a fake clock.

Time is always read from an injected ``Clock`` (monotonic seconds), so tests
and simulations move a ``FakeClock`` instead of sleeping. Pure: no asyncio, no
I/O, no import from the rest of chatd.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Final

__all__ = ["Clock", "FakeClock", "FloodDetector", "TokenBucket"]

Clock = Callable[[], float]
"""A source of monotonic time in seconds (``time.monotonic`` in production)."""

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

    __slots__ = ("_burst", "_clock", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float, clock: Clock) -> None:
        """Create a full bucket refilling at ``rate`` tokens per second."""
        _check_burst(burst)
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()

    @property
    def rate(self) -> float:
        """Tokens added per second (0 or less: unlimited)."""
        return self._rate

    @property
    def burst(self) -> float:
        """The bucket's capacity."""
        return self._burst

    @property
    def tokens(self) -> float:
        """The tokens available now (an unlimited bucket is always full)."""
        if self._rate <= 0:
            return self._burst
        self._refill()
        return max(0.0, self._tokens)

    def try_take(self, cost: float = 1.0) -> float:
        """Take ``cost`` tokens if available.

        Returns 0.0 when they were taken. Otherwise nothing is taken and the
        result is the seconds to wait until ``cost`` tokens will be available
        (``math.inf`` when ``cost`` exceeds the burst and never will be).
        """
        if cost < 0:
            raise ValueError(f"cost must not be negative, not {cost}")
        if self._rate <= 0:
            return 0.0
        self._refill()
        if self._tokens + _EPSILON >= cost:
            self._tokens -= cost
            return 0.0
        if cost > self._burst:
            return math.inf
        return (cost - self._tokens) / self._rate

    def reconfigure(self, rate: float, burst: float) -> None:
        """Change rate and burst, keeping the current tokens (clamped to ``burst``)."""
        _check_burst(burst)
        # Credit the time elapsed so far at the old rate before switching.
        self._refill()
        # An unlimited bucket is always full, so it becomes a full bucket.
        self._tokens = burst if self._rate <= 0 else min(self._tokens, burst)
        self._rate = rate
        self._burst = burst

    def _refill(self) -> None:
        """Add the tokens earned since the last refill."""
        now = self._clock()
        elapsed = now - self._stamp
        if elapsed <= 0:
            # A clock that stands still (or, wrongly, goes back) earns nothing;
            # keeping the old stamp means it cannot earn twice later either.
            return
        if self._rate > 0:
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._stamp = now

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

    __slots__ = ("_clock", "_threshold", "_times", "_window")

    def __init__(self, threshold: int, window: float, clock: Clock) -> None:
        """Flag ``threshold`` refusals within ``window`` seconds."""
        if threshold < 1:
            raise ValueError(f"threshold must be at least 1, not {threshold}")
        if window <= 0:
            raise ValueError(f"window must be positive, not {window}")
        self._threshold = threshold
        self._window = window
        self._clock = clock
        # Never longer than threshold: it is cleared when it gets there.
        self._times: deque[float] = deque()

    @property
    def count(self) -> int:
        """Refusals recorded within the window (as of the last record)."""
        return len(self._times)

    def record(self) -> bool:
        """Record one refusal now; True when this one completes a flood."""
        now = self._clock()
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


class FakeClock:
    """A controllable monotonic clock for tests and simulations."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 1000.0) -> None:
        """Start at ``start`` seconds (not 0, so code that treats 0 as unset is exercised)."""
        self._now = start

    def __call__(self) -> float:
        """The current fake time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``; a monotonic clock never goes back."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back ({seconds} s)")
        self._now += seconds
