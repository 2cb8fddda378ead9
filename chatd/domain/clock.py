"""Time, injected: the daemon reads the clock only through a :class:`Clock`;
and the one way a time is written out (:func:`iso_ts`).

Tests use :class:`ManualClock` to move time for bans, mutes, rate limits and
housekeeping instead of sleeping.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any, Final

_wall, _monotonic = time.time, time.monotonic

# How late coarse_monotonic() may be.
COARSE: Final = 0.25


class Clock:
    """The real clock: wall time for timestamps and expiry, monotonic for rates."""

    # The time module's functions themselves, not methods that call them: the
    # monotonic clock is read at every charge, the wall clock at every message.
    time = staticmethod(_wall)
    monotonic = staticmethod(_monotonic)

    def __init__(self) -> None:
        self._coarse = -math.inf

    def coarse_monotonic(self) -> float:
        """Monotonic time, up to COARSE seconds late, as one float object for all
        the calls of that moment: what a connection keeps of its last input for
        the idle timeout, which 10,000 idle connections would otherwise hold as
        10,000 floats of 24 bytes."""
        now = self.monotonic()
        if now - self._coarse >= COARSE:
            self._coarse = now
        return self._coarse


class ManualClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        super().__init__()
        self._wall = start
        self._mono = 1000.0

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds


# The formatted second of the last call: messages come many per second, and
# formatting a datetime costs more than the rest of a message's preparation.
_last_second: list[Any] = [None, ""]


def shown_millis(epoch: float) -> int:
    """A time in the whole milliseconds :func:`iso_ts` shows (it truncates)."""
    return int(epoch * 1000)


def iso_ts(epoch: float) -> str:
    """Format UNIX time as ISO 8601 UTC with milliseconds: ``2026-11-21T10:00:00.000Z``."""
    millis = int(epoch * 1000)  # shown_millis, inline: every message's time goes here
    second, milli = divmod(millis, 1000)
    if _last_second[0] != second:
        moment = datetime.fromtimestamp(second, UTC)
        _last_second[:] = [second, f"{moment:%Y-%m-%dT%H:%M:%S}"]
    return f"{_last_second[1]}.{milli:03d}Z"
