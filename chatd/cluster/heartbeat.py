"""A node's life in the cluster: its registration, its heartbeat, its fence.

**The record is the heartbeat.** ``{chatd}:node:<id>`` is a hash describing the
node (its incarnation, version, addresses, connections, stream lag, start time,
shared configuration's hash, last beat) that expires ``TTL_MS`` after each
refresh; the node refreshes it every ``INTERVAL``. ``{chatd}:nodes`` names
every node registered and not yet buried, with its incarnation.

**An incarnation per life.** Each registration draws a new random incarnation.
It first removes whatever an earlier life of this node id left (counts, set,
record), then writes the counts this node holds now, in one script: a node
restarted after a crash starts clean, whether or not the janitor came by.

**The fence.** A refresh is a script that succeeds only while the record still
holds this incarnation. A node that finds it another's, or that sees by its
own clock it missed the deadline while it was not running (paused past the
expiry: a stopped process, a long collection), or that reads its own burial
on the log, is fenced: it drops every logged-in
session (the client is told to reconnect and its connection closed), stops
writing under the old incarnation, and registers again as a new one, telling
the others the old life is over. Its stale counts are never written back: every
presence write checks the incarnation too (:mod:`chatd.cluster.presence`).
A record simply gone while the node beat in time means Redis lost its data;
a deadline missed while the node ran and Redis did not answer is an outage.
Either way the node's connections are live: it registers again with the
sessions it holds, and keeps them.

**A Redis numbering another database.** Redis lost its data and another
database's nodes seeded it first (:class:`~chatd.cluster.sequencer.AnotherDatabase`):
this node posts and reads nothing there, so it must not appear there either, in
that cluster's list of nodes, nor its users' sessions among theirs (user ids are
alike in two databases). It withdraws its record and is fenced (its users are told
to reconnect: nothing they send here can be placed), and registers only once Redis
numbers its database again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import redis

from chatd.cluster import codec, keys
from chatd.cluster.retry import stopping as cut_short
from chatd.config import ConfigError

if TYPE_CHECKING:
    import redis.asyncio

    from chatd.cluster.presence import ClusterPresence

log = logging.getLogger(__name__)

# The refresh's answer when the node's record is not in Redis at all.
RECORD_GONE = -1
# Seconds between refreshes, and the record's lifetime after each, in milliseconds.
INTERVAL = 1.0
TTL_MS = 3000

# Forget an earlier life of this node id, then register this one with its counts.
# KEYS: the record, the node's users' set, the nodes' hash, then each user's sessions.
# ARGV: the incarnation, the node's id, the lifetime, the record's field count,
# the record's fields and values, then each user's count.
_REGISTER = """
local old = redis.call('HGET', KEYS[3], ARGV[2])
for _, user in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('HDEL', '{chatd}:p:' .. user, ARGV[2])
end
redis.call('DEL', KEYS[1], KEYS[2])
local fields = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'inc', ARGV[1], unpack(ARGV, 5, 4 + 2 * fields))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[1])
for i = 4, #KEYS do
  redis.call('HSET', KEYS[i], ARGV[2], ARGV[4 + 2 * fields + i - 3])
  redis.call('SADD', KEYS[2], string.match(KEYS[i], ':p:(.*)$'))
end
return old or ''
"""

# Refresh the record while it is this incarnation's.
# KEYS: the record. ARGV: the incarnation, the lifetime, then fields and values.
# Answers 1 (refreshed), 0 (another life's record) or -1 (no record at all).
_BEAT = """
local held = redis.call('HGET', KEYS[1], 'inc')
if not held then return -1 end
if held ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


# A node that stops: its life ends now rather than at its record's expiry.
# KEYS: the record, the node's users' set, the nodes' hash. ARGV: the node's id,
# the incarnation.
_WITHDRAW = """
if redis.call('HGET', KEYS[1], 'inc') ~= ARGV[2] then return 0 end
for _, user in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('HDEL', '{chatd}:p:' .. user, ARGV[1])
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less when the loop is asked to stop."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stopping.wait()


async def finish(task: asyncio.Task[None] | None, stopping: asyncio.Event) -> None:
    """End a loop between two turns: a Redis command is never cancelled midway
    (the client's connection pool does not always recover from that)."""
    stopping.set()
    if task is None:
        return
    try:
        await task
    except asyncio.CancelledError:
        # The loop's own cancellation ends it; the caller's (a stop cut short by
        # its time) must go on up, or the stop would overrun the time it was given.
        if cut_short():
            raise


def halt_now(task: asyncio.Task[None] | None) -> None:
    """Cancel a loop at once, wherever it is: the node's stop was cut short, and its
    connections are closed next (chatd.cluster.node)."""
    if task is not None:
        task.cancel()



def stream_time(stream_id: bytes | str) -> int:
    """The milliseconds of a stream entry's id (``<ms>-<seq>``)."""
    return int(codec.text(stream_id).partition("-")[0])


class NodeIdTaken(ConfigError):
    """Another running process serves this node id: a configuration mistake."""


class Heartbeat:
    """Registers this node, keeps its record alive, and fences it when it lapsed."""

    def __init__(self, node_id: str, shared: redis.asyncio.Redis,
                 presence: ClusterPresence,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.node_id = node_id
        self._shared = shared
        self._presence = presence
        self._monotonic = monotonic
        self.interval = INTERVAL
        self.ttl_ms = TTL_MS
        # What the node says of itself (version, addresses, connections...),
        # given by the composition root; and the log reader's position.
        self.describe: Callable[[], Mapping[str, str | int | float]] = dict
        self.position: Callable[[], bytes] = lambda: b"0-0"
        # Closes every logged-in session with the reason (given by the node).
        self.drop_sessions: Callable[[str], None] = lambda _reason: None
        # Whether Redis numbers another database (the sequencer's verdict).
        self.foreign: Callable[[], bool] = lambda: False
        self.epoch = ""
        self.incarnation = ""
        self._previous = ""  # the incarnation a fence ended, until the next registration
        self.fences = 0
        self.last_beat = 0.0  # monotonic time of the last refresh that held
        self._deadline = 0.0  # and when the record it refreshed expires, at the latest
        # When the attempts to reach Redis began failing, the loop running meanwhile
        # (an outage, not a pause: see beat); None while they succeed.
        self._failing_since: float | None = None
        self.lag_ms = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        presence.lost = self.fence

    @property
    def registered(self) -> bool:
        return bool(self.incarnation)

    def _record(self) -> list[str | int | float]:
        fields: dict[str, str | int | float] = {
            **self.describe(), "id": self.node_id, "epoch": self.epoch,
            "log": keys.LOG_FORMAT, "lag_ms": self.lag_ms, "beat": int(time.time() * 1000)}
        return [item for pair in fields.items() for item in pair]

    # -- registration -------------------------------------------------------------

    async def ensure_alone(self) -> None:
        """At start: refuse (:class:`NodeIdTaken`) when another running process
        holds this node id, rather than take its record and fence each other for ever.

        A record of this id left by an earlier life that crashed lasts until it
        expires (at most ``TTL_MS``): one that is not refreshed meanwhile is that,
        and this start goes on; one refreshed is a live node's."""
        record = keys.node(self.node_id)
        first: Any = await self._shared.hget(record, "beat")
        if first is None:
            return
        deadline = self._monotonic() + self.ttl_ms / 1000 + self.interval
        while self._monotonic() < deadline:
            await asyncio.sleep(self.interval / 4)
            beat: Any = await self._shared.hget(record, "beat")
            if beat is None:
                return  # an earlier life's record, expired
            if beat != first:
                addresses: Any = await self._shared.hget(record, "addresses")
                raise NodeIdTaken(
                    f"cluster.node_id: another running node is {self.node_id} (at "
                    f"{codec.text(addresses or b'?')}): give each node its own node_id")
        log.warning("cluster: the record of node %s was neither refreshed nor expired "
                    "in time; taking it over", self.node_id)

    async def register(self) -> None:
        """Register a new incarnation with this node's counts (RedisError if Redis fails)."""
        incarnation = secrets.token_hex(8)
        counts = self._presence.counts()
        users = sorted(counts)
        record = self._record()
        names = [keys.node(self.node_id), keys.node_users(self.node_id), keys.NODES,
                 *(keys.sessions(user) for user in users)]
        sent = self._monotonic()
        # Half the record's life at most, as a refresh: the record lasts from the
        # sending, so an answer later than that would leave a deadline the next
        # beat, one interval on, had already missed, and the node, though it ran
        # all along, would fence itself as if it had been paused.
        async with asyncio.timeout(self.ttl_ms / 1000 / 2):
            old: Any = await self._shared.eval(
                _REGISTER, len(names), *names, incarnation, self.node_id, self.ttl_ms,
                len(record) // 2, *record, *(counts[user] for user in users))
        stale = {codec.text(old), self._previous} - {"", incarnation}
        self.incarnation, self._previous = incarnation, ""
        self._held(sent)
        self._presence.registered(incarnation, sorted(stale), counts)
        log.info("cluster: node registered", extra={"fields": {
            "node": self.node_id, "incarnation": incarnation, "users": len(users)}})

    def fence(self, reason: str) -> None:
        """This node's life lapsed: drop its sessions; the loop registers a new one.

        Unless the node ran all along and Redis did not answer (an outage, not a
        pause): its connections stayed up and are real, so its sessions are kept
        and registered again with the new life."""
        if not self.registered:
            return
        outage = self._failing_since is not None and self._failing_since <= self._deadline
        self._end_life()
        if outage:
            log.warning("cluster: the node's life lapsed while Redis did not answer (%s); "
                        "registering again with its sessions", reason)
            return
        self.fences += 1
        log.warning("cluster: node fenced, dropping its sessions", extra={"fields": {
            "node": self.node_id, "reason": reason}})
        self.drop_sessions(reason)

    def _end_life(self) -> None:
        """Nothing more under this incarnation; the next registration announces its end."""
        self._previous, self.incarnation = self.incarnation, ""
        self._presence.unregistered()

    # -- the loop -----------------------------------------------------------------

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(self._stopping))

    async def halt(self) -> None:
        """Stop beating: the record expires by itself (as if the process froze)."""
        await finish(self._task, self._stopping)
        self._task = None

    def halt_now(self) -> None:
        """Stop beating at once (a stop cut short): the record expires by itself."""
        halt_now(self._task)

    async def stop(self) -> None:
        """Stop beating and end this life: the others show its users offline now."""
        await self.halt()
        incarnation = self.incarnation
        if not incarnation:
            return
        self.incarnation = ""
        self._presence.unregistered()
        try:
            await self._withdrawn(incarnation)
        except (redis.RedisError, TimeoutError):
            log.warning("cluster: the node's record stays until it expires")
        self._presence.ended(self.node_id, incarnation)

    async def withdraw(self, reason: str) -> None:
        """Take this life's record and counts out of Redis and fence the node (no
        record to lapse: its sessions are dropped at once); nothing while it has none."""
        incarnation = self.incarnation
        if not incarnation:
            return
        self._failing_since = None  # a refusal to be there, not an outage
        self.fence(reason)
        await self._withdrawn(incarnation)

    async def _withdrawn(self, incarnation: str) -> None:
        async with asyncio.timeout(self.ttl_ms / 1000):
            await self._shared.eval(_WITHDRAW, 3, keys.node(self.node_id),
                                    keys.node_users(self.node_id), keys.NODES,
                                    self.node_id, incarnation)

    async def _run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            attempt = self._monotonic()
            try:
                if self.foreign():
                    await self.withdraw("Redis now numbers another database")
                elif self.registered:
                    await self.beat()
                else:
                    await self.register()
            except (redis.RedisError, TimeoutError) as exc:
                log.warning("cluster: heartbeat failed: %s", exc)
                if self._failing_since is None:
                    self._failing_since = attempt
            await pause(stopping, self.interval)

    async def beat(self) -> None:
        """Refresh the record; fence the node when it lapsed or is not its own."""
        if self._monotonic() > self._deadline:
            self.fence("it missed its heartbeat's deadline")
            return
        sent = self._monotonic()
        pipe = self._shared.pipeline(transaction=False)
        pipe.eval(_BEAT, 1, keys.node(self.node_id), self.incarnation, self.ttl_ms,
                  *self._record())
        pipe.xrevrange(keys.LOG, count=1)
        async with asyncio.timeout(self.ttl_ms / 1000 / 2):
            kept, newest = await pipe.execute()
        if kept == RECORD_GONE:
            # Gone although this node beat in time by its own clock: Redis lost its
            # data (a restart without it). The sessions here are live: register them
            # again rather than drop them.
            log.warning("cluster: the node's record is gone from Redis; registering again")
            self._end_life()
            await self.register()
            return
        if not kept:
            self.fence("its heartbeat expired or another life of it registered")
            return
        self._held(sent)
        if newest:
            self.lag_ms = max(0, stream_time(newest[0][0]) - stream_time(self.position()))
        self._presence.flush()  # counts a failed write left behind

    def _held(self, sent: float) -> None:
        """A refresh sent at ``sent`` held: the record lasts until the lifetime after
        (counted from the sending, so this node believes it expired no later than Redis)."""
        self.last_beat = sent
        self._deadline = sent + self.ttl_ms / 1000
        self._failing_since = None

    def heartbeat_age(self) -> float:
        """Seconds since the last refresh that held."""
        return max(0.0, self._monotonic() - self.last_beat)
