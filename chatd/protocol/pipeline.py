"""A connection's posts that wait for a cluster, without holding back the posts after them.

On one node a post is sent before its line's handling returns. A cluster node
waits for Redis (the rate-limit charge, the id, the log's order): were every
line to wait for the one before, one connection would post at most one
message per round trip of that chain, and each turn of the event loop would
carry a few posts, not the many the per-turn batching of the charge, the id
and the log can take in one call each.

So a plain line whose post waits is left running, and the plain lines after it
are handled at once: they are charged, numbered and placed in the order they
were read (each of those steps answers a turn's asks in the order they came),
so the connection's messages keep their order and their ids increase. Anything
else, a command, waits until every post before it settled: ``/leave`` after a
message is handled after that message, as it would be on one node. At most
``MAX_WAITING`` posts wait per connection; a line beyond them waits for the
oldest, and the connection's input queue (``limits.input_queue``) holds the
rest back from the socket.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from typing import Any

# Posts one connection may have waiting for the cluster at once.
MAX_WAITING: Final = 64


class Posts:
    """The posts of one connection still waiting, oldest first."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        self._waiting: deque[asyncio.Future[Any]] = deque()

    def waiting(self) -> bool:
        """Whether a post of this connection has not settled yet."""
        waiting = self._waiting
        while waiting and waiting[0].done():
            waiting.popleft()
        return bool(waiting)

    def add(self, post: asyncio.Future[Any]) -> Awaitable[None] | None:
        """``post`` runs beside the next lines: None, or, past ``MAX_WAITING``, an
        awaitable the next line waits for (the oldest post)."""
        self._waiting.append(post)
        if self.waiting() and len(self._waiting) >= MAX_WAITING:
            return self._oldest()
        return None

    def pending(self) -> list[asyncio.Future[Any]]:
        """The posts not settled yet (a server stopping waits for them)."""
        return [post for post in self._waiting if not post.done()]

    async def settled(self) -> None:
        """Until every post added so far has settled."""
        waiting = list(self._waiting)
        if waiting:
            await asyncio.wait(waiting)
        self.waiting()

    async def _oldest(self) -> None:
        await asyncio.wait([self._waiting[0]])
        self.waiting()
