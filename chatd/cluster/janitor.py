"""The janitor: a dead node's sessions are dropped within seconds.

Every node looks each ``INTERVAL`` for the nodes registered whose record
(their heartbeat, :mod:`chatd.cluster.heartbeat`) expired, which also tells it
how many nodes are alive. When it finds some, the one node holding the
``janitor`` lead (the :class:`~chatd.cluster.leader.RedisLeader`, with a short
lock so a leader that died mid-run is replaced within seconds) buries each:
in one script, and only if its record is still gone, it removes the node's
counts from its users' hashes, deletes its set of users and unregisters it;
then it publishes a ``down`` entry on the log, so every node shows the users
who have no session elsewhere offline, in order with the messages.

With the heartbeat's 3 s lifetime and a sweep every second, a killed node's
users are offline everywhere within about 4 s.

**The log's format.** A sweep also takes the oldest log format a live node reads
(its record's ``log``): this node writes no newer one. A node of an earlier
version withdraws its record before its persister and its reader have stopped
(and a stalled one loses its record for a while), so an older format seen is
remembered in Redis for ``FORMAT_HOLD`` seconds (``keys.LOG_OLDER``), by every
janitor that sees it: the format is lowered at once, and raised only once no
node has seen an older one for that long, on nodes started meanwhile too. A
newer format is only a saving of CPU; an item a reader cannot read is a loss.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import redis

from chatd.cluster import codec, keys
from chatd.cluster.heartbeat import finish, halt_now, pause

if TYPE_CHECKING:
    import redis.asyncio

    from chatd.cluster.leader import RedisLeader
    from chatd.cluster.presence import ClusterPresence

log = logging.getLogger(__name__)

# Seconds between sweeps, and how long a sweep may hold the lead, in milliseconds.
INTERVAL = 1.0
LEAD_TTL_MS = 2000
# How long an older log format a live node read is still written after it was last
# seen, in seconds: well beyond a stopping node's last reads (its presence's last
# word, its persister's stop) and a heartbeat's lifetime.
FORMAT_HOLD = 60.0

# Bury a node whose record expired (nothing when it came back meanwhile).
# KEYS: the record, the node's users' set, the nodes' hash. ARGV: the node's id.
# Answers its last incarnation and its users.
_BURY = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local life = redis.call('HGET', KEYS[3], ARGV[1])
if not life then return false end
local users = redis.call('SMEMBERS', KEYS[2])
for _, user in ipairs(users) do
  redis.call('HDEL', '{chatd}:p:' .. user, ARGV[1])
end
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[3], ARGV[1])
return {life, users}
"""



class Janitor:
    """Counts the live nodes; buries the dead ones when it leads."""

    def __init__(self, shared: redis.asyncio.Redis, leader: RedisLeader,
                 presence: ClusterPresence) -> None:
        self._shared = shared
        self._leader = leader
        self._presence = presence
        self.interval = INTERVAL
        self.alive = 0
        self.buried = 0
        # The oldest log format a live node reads (keys.LOG_FORMAT); 1 until the first
        # sweep has seen them all.
        self.log_format = 1
        self.format_hold = FORMAT_HOLD
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(self._stopping))

    async def stop(self) -> None:
        await finish(self._task, self._stopping)
        self._task = None

    def halt_now(self) -> None:
        """Stop at once (a stop cut short)."""
        halt_now(self._task)

    async def _run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.sweep()
            except (redis.RedisError, TimeoutError) as exc:
                log.warning("cluster: the janitor's sweep failed: %s", exc)
            await pause(stopping, self.interval)

    async def sweep(self) -> None:
        """One look at the nodes; bury the dead ones if this node leads the job."""
        async with asyncio.timeout(LEAD_TTL_MS / 1000):
            names = [codec.text(name) for name in await self._shared.hkeys(keys.NODES)]
            pipe = self._shared.pipeline(transaction=False)
            for name in names:
                pipe.hmget(keys.node(name), "inc", "log")
            pipe.get(keys.LOG_OLDER)
            *found, older = await pipe.execute()
            dead = [name for name, (life, _) in zip(names, found, strict=True) if life is None]
            self.alive = len(names) - len(dead)
            self.log_format = await self._format(found, older)
        if not dead:
            return
        async with self._leader.lead("janitor", ttl_ms=LEAD_TTL_MS) as leading:
            if leading:
                for name in dead:
                    await self._bury(name)

    async def _format(self, found: list[Any], older: Any) -> int:
        """The log format to write: the oldest a live node reads, or one read within
        ``format_hold`` (see the module's docstring)."""
        # A node of a version before the field reads one entry per item (format 1).
        lowest = min((int(log_format or 1) for life, log_format in found if life is not None),
                     default=keys.LOG_FORMAT)
        if older is not None and int(older) < lowest:
            return int(older)  # an even older one was read lately: it expires by itself
        if lowest < keys.LOG_FORMAT:
            await self._shared.set(keys.LOG_OLDER, lowest, px=int(self.format_hold * 1000))
        return lowest

    async def _bury(self, node_id: str) -> None:
        answer: Any = await self._shared.eval(_BURY, 3, keys.node(node_id),
                                              keys.node_users(node_id), keys.NODES, node_id)
        if not answer:
            return
        life, users = codec.text(answer[0]), answer[1]
        self.buried += 1
        log.warning("cluster: node found dead, its sessions dropped", extra={"fields": {
            "node": node_id, "incarnation": life, "users": len(users)}})
        self._presence.ended(node_id, life)
