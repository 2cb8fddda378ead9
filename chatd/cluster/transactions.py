"""Decisions made exactly once across nodes: the cluster's
:class:`~chatd.domain.ports.RoomTransactions` and
:class:`~chatd.domain.ports.AccountTransactions`.

A transaction on a room holds a PostgreSQL advisory lock on the room's id, on a
connection of its own, from before the decision is checked until its change is
written and applied. Two nodes deciding about one room therefore take turns,
first come first served, whatever node a command arrived on. Before the domain
checks anything, the room is reloaded from the database (:class:`RoomSync`):
the decision reads the state the previous holder left, not this node's copy.
A node that dies holding a lock loses its connection, and PostgreSQL releases
the lock with it. The fencing token comes from one counter in Redis, so it
grows across nodes.

This process's lock is taken first (a :class:`LocalTransactions`): the tasks of
one node queue in memory and hold one database connection at a time per room.
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from chatd.cluster import keys
from chatd.domain.transactions import LocalTransactions

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    import asyncpg
    import redis.asyncio

    from chatd.domain.accounts import User
    from chatd.domain.room import Room

# The advisory locks' first key: which kind of thing the second key numbers.
ROOM_LOCKS: Final = 0x63680001
ACCOUNT_LOCKS: Final = 0x63680002


@dataclass(frozen=True, slots=True)
class ClusterTxn:
    room: Room
    fence: int


@dataclass(frozen=True, slots=True)
class ClusterAccountTxn:
    user: User
    fence: int


class ClusterTransactions:
    """One advisory lock per room, and per account, held across the cluster."""

    def __init__(self, pool: asyncpg.Pool, shared: redis.asyncio.Redis,
                 resync: Callable[[int], Awaitable[None]],
                 numbered: Callable[[], Awaitable[None]]) -> None:
        self._pool = pool
        self._numbered = numbered
        self._shared = shared
        self._resync = resync
        self._local = LocalTransactions()
        # Decisions made under a cluster-wide lock, and their total time from
        # asking for the lock to releasing it (metrics).
        self.decisions = 0
        self.decision_seconds = 0.0

    @asynccontextmanager
    async def room(self, room: Room) -> AsyncIterator[ClusterTxn]:
        async with self._local.room(room), self._locked(ROOM_LOCKS, room.id) as fence:
            await self._resync(room.id)
            yield ClusterTxn(room, fence)

    @asynccontextmanager
    async def account(self, user: User) -> AsyncIterator[ClusterAccountTxn]:
        async with self._local.account(user), self._locked(ACCOUNT_LOCKS, user.id) as fence:
            yield ClusterAccountTxn(user, fence)

    async def reload(self, room_id: int) -> None:
        """Reload a room another node decided about, between this node's own
        decisions on it: a reload read before one of them committed must not
        be applied after it (it would bring back what that decision changed)."""
        async with self._local.room_by_id(room_id):
            await self._resync(room_id)

    def queued(self, room: Room) -> int:
        return self._local.queued(room)

    @asynccontextmanager
    async def _locked(self, kind: int, key: int) -> AsyncIterator[int]:
        started = time.monotonic()
        async with self._pool.acquire() as connection:
            await connection.execute("SELECT pg_advisory_lock($1, $2)", kind, key)
            try:
                yield int(await self._shared.incr(keys.FENCE))
            finally:
                try:
                    # The decision's events take their numbers before the next decision.
                    await self._numbered()
                finally:
                    await connection.execute("SELECT pg_advisory_unlock($1, $2)", kind, key)
                    self.decisions += 1
                    self.decision_seconds += time.monotonic() - started
