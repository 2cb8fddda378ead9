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

**Never hanging.** Taking the lock (a connection, the lock itself, the fencing
token) is bounded by ``LOCK_WAIT``: PostgreSQL or Redis away, or a decision on
another node holding the room that long, refuses the decision with ``busy``
and a ``retry_ms`` before anything was decided.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import redis

from chatd.cluster import keys
from chatd.domain.transactions import LocalTransactions
from chatd.errors import ChatError, Code
from storage.postgres.host import ACCOUNT_LOCKS, ROOM_LOCKS

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    import asyncpg
    import redis.asyncio

    from chatd.domain.accounts import User
    from chatd.domain.room import Room

# How long a decision waits for its lock (connection, lock, fencing token), in seconds.
LOCK_WAIT = 5.0
RETRY_MS = 2000

log = logging.getLogger(__name__)
T = TypeVar("T")


def unavailable(what: str) -> ChatError:
    return ChatError(Code.BUSY, f"the cluster cannot decide this right now ({what}): "
                     "try again in a moment.", retry_ms=RETRY_MS)


async def answered(call: Awaitable[T]) -> T:
    """What Redis answers ``call`` with, waited for as long as a decision waits for
    its lock (LOCK_WAIT); ``busy`` (:func:`unavailable`) when it fails or does not
    answer in time."""
    try:
        async with asyncio.timeout(LOCK_WAIT):
            return await call
    except (redis.RedisError, TimeoutError) as exc:
        raise unavailable("Redis does not answer") from exc


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

    async def creatable(self) -> None:
        """A room made while Redis is away would be known to this node alone until
        Redis came back, while every other decision is refused meanwhile: refused
        as they are (busy), before anything is written."""
        try:
            async with asyncio.timeout(LOCK_WAIT):
                await self._shared.ping()
        except (redis.RedisError, OSError, TimeoutError) as exc:
            raise unavailable("Redis does not answer") from exc

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
        connection = await self._connection()
        locked = False
        try:
            await self._lock(connection, kind, key)
            locked = True
            fence = await self._fence()
            try:
                yield fence
            finally:
                # The decision's events take their numbers before the next decision.
                await self._numbered()
        finally:
            await self._release(connection, kind, key, locked)
            if locked:
                self.decisions += 1
                self.decision_seconds += time.monotonic() - started

    async def _connection(self) -> Any:
        try:
            async with asyncio.timeout(LOCK_WAIT):
                return await self._pool.acquire()
        except Exception as exc:  # any failure to connect: refused
            log.warning("cluster: no database connection for a decision: %s", exc)
            raise unavailable("the database does not answer") from exc

    async def _lock(self, connection: Any, kind: int, key: int) -> None:
        try:
            await connection.execute("SELECT pg_advisory_lock($1, $2)", kind, key,
                                     timeout=LOCK_WAIT)
        except Exception as exc:
            # Not taken in time: whether PostgreSQL grants it late is unknown, so the
            # connection is closed (a lock dies with its session).
            connection.terminate()
            await self._pool.release(connection)
            log.warning("cluster: a decision's lock was not taken: %s",
                        exc or type(exc).__name__)
            raise unavailable("the database does not answer") from exc

    async def _fence(self) -> int:
        return int(await answered(self._shared.incr(keys.FENCE)))

    async def _release(self, connection: Any, kind: int, key: int, locked: bool) -> None:
        if not locked:
            return  # _lock closed and released it
        try:
            await connection.execute("SELECT pg_advisory_unlock($1, $2)", kind, key,
                                     timeout=LOCK_WAIT)
        except Exception:
            connection.terminate()  # the session ends, and its lock with it
            log.warning("cluster: a decision's lock was released by closing its connection")
        await self._pool.release(connection)
