"""Time, injected: the daemon reads the clock only through a :class:`Clock`.

Tests use :class:`ManualClock` to move time for bans, mutes, rate limits and
housekeeping instead of sleeping.
"""

from __future__ import annotations

import time


class Clock:
    """The real clock: wall time for timestamps and expiry, monotonic for rates."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._wall = start
        self._mono = 1000.0

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds
