"""The singleton jobs' leader across nodes: a :class:`~chatd.ops.leader.Leader`.

Each run of a job takes the job's key in Redis with ``SET NX PX``: the node
that gets it runs the job, the others skip their turn. The key expires on its
own (``TTL``) should its holder die mid-run, and is deleted at the end of the
run only by its holder (the script compares the holder's token), so a run that
outlived its expiry never frees the next holder's lock.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import TYPE_CHECKING, Final

import redis

from chatd.cluster import keys

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import redis.asyncio

# The longest a run can hold its job's lock, in milliseconds.
TTL: Final = 60_000

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLeader:
    """Leads a job's run when it holds the job's key."""

    def __init__(self, shared: redis.asyncio.Redis) -> None:
        self._shared = shared
        self._holding = 0

    def is_leader(self) -> bool:
        return self._holding > 0

    @contextlib.asynccontextmanager
    async def lead(self, job: str, ttl_ms: int = TTL) -> AsyncIterator[bool]:
        """Hold ``job``'s lock for one run, at most ``ttl_ms`` (a short job asks
        for less, so a holder that died mid-run is replaced soon)."""
        token = secrets.token_hex(8)
        try:
            won = bool(await self._shared.set(keys.lead(job), token, nx=True, px=ttl_ms))
        except redis.RedisError:
            won = False  # no lock, no run: the job runs at a later turn
        if not won:
            yield False
            return
        self._holding += 1
        try:
            yield True
        finally:
            self._holding -= 1
            with contextlib.suppress(redis.RedisError):
                await self._shared.eval(_RELEASE, 1, keys.lead(job), token)
