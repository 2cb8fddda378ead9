"""The loops that read Redis for ever (the log's reader, the persister): how
they tell Redis being away from their own cancellation, and how they wait
before trying again; and Redis away when the node starts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import redis

# The first pause after a failure, in seconds; each further failure adds as much.
STEP = 0.1


def stopping() -> bool:
    """Whether the running task is being cancelled: the Redis client may turn a
    cancellation in the middle of a command into a connection error, which a
    retrying loop must not take for Redis being away."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Retries:
    """A loop's failures in a row: the first is logged, each waits a little
    longer than the one before, up to ``longest`` seconds. ``log`` is the
    loop's own logger, so its lines keep naming the part that failed."""

    def __init__(self, what: str, longest: float, log: logging.Logger) -> None:
        self._what = what
        self._longest = longest
        self._log = log
        self.count = 0

    async def failed(self, exc: BaseException) -> None:
        """An attempt failed with ``exc``: raise the cancellation it hides, or
        log (the first time) and wait before the next attempt."""
        if stopping():
            raise asyncio.CancelledError from exc  # cancelled mid-command
        self.count += 1
        if self.count == 1:
            self._log.warning("cluster: %s (%s); retrying", self._what, exc)
        await asyncio.sleep(min(STEP * self.count, self._longest))

    def succeeded(self) -> bool:
        """An attempt succeeded; whether it ends a run of failures."""
        ended, self.count = self.count > 0, 0
        return ended


class RedisUnreachable(OSError):
    """Redis did not answer while the node started: the node cannot start (an
    OSError, as an address it cannot listen on, so the daemon says it in one line)."""


@contextlib.contextmanager
def needed_at_start() -> Iterator[None]:
    """Redis failing while the node starts is :class:`RedisUnreachable`, naming the
    setting, rather than a traceback."""
    try:
        yield
    except redis.RedisError as exc:
        raise RedisUnreachable(f"Redis (cluster.redis) does not answer: {exc}") from exc
