"""One Redis per database: a node refuses to start beside nodes of its database
that another Redis serves.

Nodes share rooms through their Redis alone: a node whose ``cluster.redis``
names another server (or another database number) than the running nodes' of
the same PostgreSQL database would start, serve the same rooms and accounts,
and split the cluster in two, each half blind to the other's messages and
presence, both running the leader's jobs. Redis cannot tell (the other one is
another server), but PostgreSQL can: every node's sessions name it
(``chatd/<node_id>``, ``pg_stat_activity``), and every node registers in its
Redis (``{chatd}:nodes``). A node of this database that this Redis does not
know is served by another.

A node that is starting too has its sessions open before it registers: each
starting node says so in its Redis first (``{chatd}:starting:<id>``, for a
while), so two nodes starting at once on one Redis know each other at once.
A stopping one withdraws its record a moment before its sessions close: only
a node that stays unknown for a heartbeat's lifetime, with its sessions still
open, is taken for one on another Redis. (A node
frozen long enough to be buried looks the same until it thaws and registers
again: the refusal is an OSError, exit status 1, which a supervisor retries.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from chatd.cluster import codec, keys

if TYPE_CHECKING:
    import redis.asyncio

# How long a node of this database may stay unknown to this Redis (starting,
# stopping) before it is taken for one another Redis serves, in seconds: the
# lifetime of a node's record (chatd.cluster.heartbeat).
PATIENCE = 3.0
POLL = 0.25
# How long a starting node is known as such before it registers, in milliseconds.
STARTING_MS = 30_000

# The node ids of the sessions open on this database, but this node's.
_SERVING = ("SELECT DISTINCT split_part(application_name, '/', 2) AS node "
            "FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name LIKE 'chatd/%' AND split_part(application_name, '/', 2) <> $1 "
            "ORDER BY node")


class AnotherRedis(OSError):
    """Running nodes of this database share another Redis: the node does not start
    (an OSError, said in one line, as Redis being unreachable is)."""


async def ensure_one_redis(fetch: Callable[[str, str], Awaitable[list[Any]]],
                           shared: redis.asyncio.Redis, node_id: str,
                           patience: float = PATIENCE) -> None:
    """Refuse (:class:`AnotherRedis`) when nodes serving this database stay unknown
    to this Redis for ``patience`` seconds; ``fetch`` runs a query with one argument."""
    # Said before looking: a node starting at this moment on this Redis sees it.
    await shared.set(keys.starting(node_id), "1", px=STARTING_MS)
    deadline = time.monotonic() + patience
    while True:
        unknown = await _unknown_nodes(fetch, shared, node_id)
        if not unknown:
            return
        if time.monotonic() >= deadline:
            raise AnotherRedis(
                f"cluster.redis: nodes {', '.join(unknown)} serve this database "
                "(cluster.postgres) through another Redis: every node of a database must "
                "name the same cluster.redis, or the nodes split in two groups that do not "
                "see each other's messages")
        await asyncio.sleep(POLL)


async def _unknown_nodes(fetch: Callable[[str, str], Awaitable[list[Any]]],
                         shared: redis.asyncio.Redis, node_id: str) -> list[str]:
    """The nodes with sessions on this database that this Redis has not registered."""
    serving = [codec.text(row[0]) for row in await fetch(_SERVING, node_id)]
    if not serving:
        return []
    pipe = shared.pipeline(transaction=False)
    pipe.hmget(keys.NODES, serving)
    for name in serving:
        pipe.exists(keys.starting(name))
    registered, *starting = await pipe.execute()
    return [name for name, known, started in zip(serving, registered, starting, strict=True)
            if known is None and not started]
