"""The cycle collector, set for a daemon that makes many short-lived objects.

CPython frees nearly every object by reference counting; its cycle collector
exists for the rest. By default it runs a young collection whenever 700 more
container objects were made than freed, and every tenth young collection of
the middle generation, which moves whatever is still alive into the oldest
generation. A message in flight (its event, entry, future and records) lives a
few milliseconds to a few seconds, so under load nearly every one was moved
there, and the oldest generation, whose collections walk every object in it,
was collected about twice a second: a third of a cluster node's CPU at 25,000
messages a second (docs/PERFORMANCE.md, "Round 17: the cycle collector").

With the young threshold at :data:`YOUNG`, objects freed within a young
collection's span are never looked at, and the collector runs when the heap
grows, not with the traffic. What it costs: cyclic garbage waits for a larger
young generation before it is freed, a few megabytes at most.
"""

from __future__ import annotations

import gc

# Container objects made (and not yet freed) between two young collections.
YOUNG = 50_000


def tune() -> tuple[int, int, int]:
    """Set the collector's thresholds for serving; the thresholds before."""
    before: tuple[int, int, int] = gc.get_threshold()
    gc.set_threshold(YOUNG, before[1], before[2])
    return before
