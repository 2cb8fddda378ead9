"""Message ids shared by every node: the cluster's
:class:`~chatd.domain.ports.Sequencer`.

One counter in Redis (``INCR``) numbers room messages, direct messages and
every event a node publishes, so ids are unique across the cluster and one
order holds for all of them (:mod:`chatd.cluster.bus` delivers in that order).

The domain takes an id with a plain call, never an await (a post must not
interleave with anything). So the id is taken with one short blocking round
trip on a connection of its own, bounded by a timeout: when Redis does not
answer, the post is refused with ``busy`` and a ``retry_ms`` rather than
queued. Batching the posts of one turn into one script call needs the
domain's post to become asynchronous; that is the next step (docs/CLUSTER.md).

The counter is seeded once per Redis lifetime, by the first node to find no
epoch, above the largest stored id plus a margin: should Redis lose its memory,
the ids numbered but not stored before the loss are never issued again.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio

from chatd.cluster import keys
from chatd.errors import ChatError, Code

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from storage.api import Storage

# Set the epoch and the counter together, once: the first node to arrive seeds.
_SEED = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  local current = tonumber(redis.call('GET', KEYS[2]) or '0')
  if current < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end
end
return redis.call('GET', KEYS[1])
"""

# How long a post waits for Redis before it is refused, in seconds.
TIMEOUT = 0.5
RETRY_MS = 1000


class ClusterSequencer:
    """Ids from Redis's counter."""

    def __init__(self, url: str, storage: Storage, shared: redis.asyncio.Redis) -> None:
        self._storage = storage
        self._shared = shared
        self._counter = redis.Redis.from_url(url, socket_timeout=TIMEOUT,
                                             socket_connect_timeout=TIMEOUT)
        self.epoch = ""
        # The node's start (once the counter is joined) and stop.
        self.started: Callable[[], Awaitable[None]] | None = None
        self.stopping: Callable[[], Awaitable[None]] | None = None

    async def load(self) -> None:
        """Join the counter, seeding it if this Redis has none yet."""
        seed = await self._storage.max_message_id() + keys.SEED_MARGIN
        epoch: Any = await self._shared.eval(_SEED, 2, keys.EPOCH, keys.COUNTER,
                                             secrets.token_hex(8), seed)
        self.epoch = epoch.decode() if isinstance(epoch, bytes) else str(epoch)
        if self.started is not None:
            await self.started()

    async def aclose(self) -> None:
        """The node stops: it reads and publishes nothing more."""
        if self.stopping is not None:
            await self.stopping()

    def for_room(self, room_id: int) -> int:
        return self.next()

    def for_direct(self, recipient_id: int) -> int:
        return self.next()

    def next(self) -> int:
        """The next id of the cluster (an event's place in the one order)."""
        try:
            return int(self._counter.incr(keys.COUNTER))
        except redis.RedisError as exc:
            raise ChatError(Code.BUSY, "the cluster cannot number messages right now: "
                            "try again in a moment.", retry_ms=RETRY_MS) from exc

    def close(self) -> None:
        self._counter.close()
