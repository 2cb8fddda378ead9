"""Reconnecting politely: exponential back-off with full jitter.

After a server restart every client reconnects at once; waiting a random time
up to a doubling ceiling spreads them out, so the server is not hit by all of
them in the same second (the "full jitter" scheme). A successful connection
resets the ceiling.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """The delays between reconnection attempts, in seconds.

    ``first`` is the ceiling of the first wait, doubled after every failure up
    to ``ceiling``; each wait is uniform in [``floor``, current ceiling].
    ``rng`` is the random source (a seeded ``random.Random`` makes it
    repeatable in tests).
    """

    first: float = 0.5
    ceiling: float = 60.0
    floor: float = 0.05
    rng: Callable[[], float] = field(default=random.random)
    attempts: int = 0

    def next_delay(self) -> float:
        """The wait before the next attempt; counts the attempt."""
        top = min(self.ceiling, self.first * 2.0 ** min(self.attempts, 32))
        self.attempts += 1
        return self.floor + (max(top, self.floor) - self.floor) * self.rng()

    def reset(self) -> None:
        """After a success: the next failure starts from ``first`` again."""
        self.attempts = 0
