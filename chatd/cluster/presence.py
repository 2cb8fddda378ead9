"""Who is online across nodes: the cluster's
:class:`~chatd.domain.presence.PresenceStore`.

**In Redis**, each node keeps its own share: ``{chatd}:p:<user>`` is a hash of
session counts by node, and ``{chatd}:nu:<node>`` the set of users the node
holds a session of, so a dead node's share can be dropped whole (the janitor,
:mod:`chatd.cluster.janitor`). A node writes the *count* it holds rather than
``HINCRBY ±1``: a write repeated after a timeout, or made again at a
re-registration, cannot make the counts drift. Every write is a script that
first checks the node's heartbeat (``{chatd}:node:<id>``) still names this
node's incarnation: a node that was paused past its heartbeat's expiry cannot
write back what the janitor removed (see :mod:`chatd.cluster.heartbeat`).

**Never a round trip per read.** The domain asks synchronously ("is ann
online?"), so each node keeps a mirror: its own counts, and for every other
node's incarnation the users it holds a session of. The mirror is loaded from
Redis when the node starts, then follows the log: a node that gains its first
session of a user, or loses its last, publishes a numbered ``p`` entry, and a
dead node's burial is a ``down`` entry; both take their place in the one order
with messages. The writes of one turn of the loop go to Redis in one script call.

Users come online and go offline on every node when the mirror says so: the
domain's presence watchers (IRC's MONITOR and away-notify, the admin feed) are
told on each node as it reads the entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from chatd.cluster import codec, keys

if TYPE_CHECKING:
    from collections.abc import Iterable

    import redis.asyncio

    from chatd.cluster.bus import ClusterBus
    from chatd.domain.accounts import User
    from chatd.domain.presence import PresenceWatcher

log = logging.getLogger(__name__)

# How long one write of the counts may take before it is tried again later, in seconds.
WRITE_TIMEOUT = 1.0
# How long a stopping node waits to read back the entry that ends its life, in seconds.
LAST_WORD_WAIT = 2.0

# The counts of this node's users, written if the heartbeat is still this incarnation's.
# KEYS: the node's record, its users' set, then each user's sessions hash.
# ARGV: the incarnation, the node's id, then each user's count (0: none left).
_WRITE = """
if redis.call('HGET', KEYS[1], 'inc') ~= ARGV[1] then return 0 end
for i = 3, #KEYS do
  local user = string.match(KEYS[i], ':p:(.*)$')
  if ARGV[i] == '0' then
    redis.call('HDEL', KEYS[i], ARGV[2])
    redis.call('SREM', KEYS[2], user)
  else
    redis.call('HSET', KEYS[i], ARGV[2], ARGV[i])
    redis.call('SADD', KEYS[2], user)
  end
end
return 1
"""

Entry = dict[str, Any]



def host(node_id: str, incarnation: str) -> str:
    """One life of a node: its id and the incarnation it registered with."""
    return f"{node_id}@{incarnation}"


class ClusterPresence:
    """This node's sessions per user, and a mirror of the other nodes'."""

    def __init__(self, node_id: str, shared: redis.asyncio.Redis) -> None:
        self.node_id = node_id
        self._shared = shared
        # The incarnation the heartbeat registered; empty while the node is not
        # registered (starting, or fenced): then nothing is written or published.
        self.incarnation = ""
        self._local: dict[int, int] = {}
        # The other nodes' lives holding a session, by user; the users by life.
        self._remote: dict[int, set[str]] = {}
        self._hosts: dict[str, set[int]] = {}
        # Lives buried: an entry of theirs read late is stale and ignored.
        self._buried: set[str] = set()
        self._online = 0
        self._dirty: set[int] = set()
        self._writing: asyncio.Task[None] | None = None
        self.bus: ClusterBus | None = None
        self.user_of: Callable[[int], User | None] = lambda _user_id: None
        self.watchers: list[PresenceWatcher] = []
        # Called when a write finds the heartbeat gone (the heartbeat fences the node).
        self.lost: Callable[[str], None] = lambda _reason: None
        self.writes = 0
        # The life a stopping node ended, until it reads that entry back.
        self._ending: tuple[str, asyncio.Event] | None = None

    # -- the PresenceStore ----------------------------------------------------

    def arrived(self, user_id: int) -> None:
        before = self.is_online(user_id)
        count = self._local.get(user_id, 0)
        self._local[user_id] = count + 1
        if not before:
            self._online += 1
        self._changed(user_id, count == 0, True)

    def left(self, user_id: int) -> bool:
        before = self.is_online(user_id)
        count = self._local.pop(user_id, 0)
        if count > 1:
            self._local[user_id] = count - 1
        if count > 0:
            self._changed(user_id, count == 1, False)
        if before and not self.is_online(user_id):
            self._online -= 1
        return not self.is_online(user_id)

    def is_online(self, user_id: int) -> bool:
        return user_id in self._local or user_id in self._remote

    def elsewhere(self, user_id: int) -> int:
        """How many other nodes' connections ``user_id`` has, as last heard."""
        return len(self._remote.get(user_id, ()))

    def count(self) -> int:
        return self._online

    # -- this node's share ------------------------------------------------------

    def counts(self) -> dict[int, int]:
        """This node's sessions per user with an account (what a registration writes)."""
        return {user: count for user, count in self._local.items() if user > 0}

    def _changed(self, user_id: int, turned: bool, online: bool) -> None:
        """This node's count of ``user_id``'s sessions changed; ``turned`` when it
        was their first (``online``) or their last: the other nodes are told."""
        if user_id <= 0:
            return  # an IRC guest: its id is this process's own, it has no account
        self._dirty.add(user_id)
        if not self.incarnation:
            return  # the registration writes and announces what is held then
        self.flush()
        if turned and self.bus is not None:
            self.bus.publish({"k": "p", "u": user_id, "on": online, "i": self.incarnation})

    def flush(self) -> None:
        """Write the counts changed since the last write, after this turn."""
        if self._dirty and self.incarnation and self._writing is None:
            self._writing = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        try:
            await asyncio.sleep(0)  # the rest of this turn's logins and logouts too
            while self._dirty and self.incarnation:
                batch, self._dirty = self._dirty, set()
                if not await self._send(sorted(batch)):
                    break
        finally:
            self._writing = None

    async def _send(self, users: list[int]) -> bool:
        """One script call; False when it did not go through (tried again later)."""
        incarnation = self.incarnation
        names = [keys.node(self.node_id), keys.node_users(self.node_id),
                 *(keys.sessions(user) for user in users)]
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                written: Any = await self._shared.eval(
                    _WRITE, len(names), *names, incarnation, self.node_id,
                    *(self._local.get(user, 0) for user in users))
        except (redis.RedisError, TimeoutError):
            log.warning("cluster: presence of %d users not written; trying again", len(users))
            self._dirty.update(users)
            return False
        self.writes += 1
        if not written and incarnation == self.incarnation:
            self.lost("its heartbeat is gone")
            return False
        return True

    async def close(self) -> None:
        """The last writes are done, and the entry ending this node's life was
        read back (bounded): the log reader is idle when the node stops it."""
        if self._writing is not None:
            await self._writing
        if self._ending is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LAST_WORD_WAIT):
                    await self._ending[1].wait()

    # -- registration and fencing (driven by the heartbeat) ------------------------

    def registered(self, incarnation: str, stale: Iterable[str],
                   written: dict[int, int]) -> None:
        """Registered as ``incarnation`` with the counts ``written``: tell the other
        nodes its ``stale`` lives are over, and who it holds now; write what
        changed while the registration was on its way."""
        self.incarnation = incarnation
        now = self.counts()
        self._dirty = {user for user in self._dirty | set(written)
                       if now.get(user, 0) != written.get(user, 0)}
        self.flush()
        if self.bus is None:
            return
        for old in stale:
            self.ended(self.node_id, old)
        self.announce()

    def ended(self, node_id: str, incarnation: str) -> None:
        """Tell every node that a life of ``node_id`` is over (its users' sessions there)."""
        if self.bus is not None:
            self.bus.publish({"k": "down", "d": node_id, "i": incarnation})
            if node_id == self.node_id and not self.incarnation:
                self._ending = (incarnation, asyncio.Event())

    def unregistered(self) -> None:
        """Fenced or stopping: nothing more is written or published under the old
        incarnation (its share is dropped whole)."""
        self.incarnation = ""

    # -- the other nodes' shares: the mirror ---------------------------------------

    async def load(self) -> None:
        """Read what the other nodes hold now (at start; the log brings the rest)."""
        self._adopt(await self._registered())

    async def start_over(self) -> None:
        """Redis lost its memory (a new epoch). The lives it recorded are gone with
        it, and no ``down`` entry will ever end them: each other life known before
        and not recorded now is buried (the nodes register again as new lives;
        one read meanwhile is not a candidate). Then this node tells the new log
        who it holds: its registration may have published before its own epoch
        changed, when no entry could be numbered. The other nodes do the same, so
        their users come back from the new log."""
        candidates = set(self._hosts)
        registered = await self._registered()
        for life in sorted(candidates - set(registered)):
            self.bury(life)
        self.announce()

    def announce(self) -> None:
        """Publish that this node holds a session of each of its users (under its
        incarnation, once registered)."""
        if self.bus is None or not self.incarnation:
            return
        for user_id in self.counts():
            self.bus.publish({"k": "p", "u": user_id, "on": True, "i": self.incarnation})

    def _adopt(self, lives: dict[str, list[int]]) -> None:
        for life, users in lives.items():
            for user_id in users:
                self._host_add(life, user_id)

    async def _registered(self) -> dict[str, list[int]]:
        """The other nodes' lives Redis records now, and the users each holds."""
        names = [codec.text(name) for name in await self._shared.hkeys(keys.NODES)]
        others = [name for name in names if name != self.node_id]
        pipe = self._shared.pipeline(transaction=False)
        for name in others:
            pipe.hget(keys.node(name), "inc")
            pipe.smembers(keys.node_users(name))
        answers = await pipe.execute()
        lives: dict[str, list[int]] = {}
        for index, name in enumerate(others):
            incarnation, users = answers[2 * index], answers[2 * index + 1]
            if incarnation:  # a node whose record expired is the janitor's
                lives[host(name, codec.text(incarnation))] = sorted(int(u) for u in users)
        return lives

    def on_entry(self, entry: Entry) -> None:
        """A ``p`` entry: a node's first session of a user, or its last, ended."""
        if entry["n"] == self.node_id:
            return  # this node's own counts are authoritative
        life = host(entry["n"], entry["i"])
        if entry["on"]:
            self._host_add(life, entry["u"])
        else:
            self._host_remove(life, entry["u"])

    def on_down(self, entry: Entry) -> None:
        """A ``down`` entry: a node's life is over (dead, fenced or stopped)."""
        if entry["d"] == self.node_id:
            if entry["i"] == self.incarnation:
                self.lost("the cluster found its heartbeat expired")
            elif self._ending is not None and entry["i"] == self._ending[0]:
                self._ending[1].set()
            return
        self.bury(host(entry["d"], entry["i"]))

    def bury(self, life: str) -> None:
        self._buried.add(life)
        for user_id in sorted(self._hosts.pop(life, ())):
            self._host_remove(life, user_id)

    def _host_add(self, life: str, user_id: int) -> None:
        if life in self._buried:
            return  # read after its burial: a stale node's, never brought back
        before = self.is_online(user_id)
        self._remote.setdefault(user_id, set()).add(life)
        self._hosts.setdefault(life, set()).add(user_id)
        self._settle(user_id, before)

    def _host_remove(self, life: str, user_id: int) -> None:
        before = self.is_online(user_id)
        lives = self._remote.get(user_id)
        if lives is not None:
            lives.discard(life)
            if not lives:
                del self._remote[user_id]
        users = self._hosts.get(life)
        if users is not None:
            users.discard(user_id)
        self._settle(user_id, before)

    def _settle(self, user_id: int, before: bool) -> None:
        """Keep the account's count of other nodes, and tell the watchers of a change."""
        user = self.user_of(user_id)
        if user is not None:
            user.elsewhere = len(self._remote.get(user_id, ()))
        after = self.is_online(user_id)
        if after == before:
            return
        self._online += 1 if after else -1
        if user is None:
            return
        for watcher in list(self.watchers):
            if after:
                watcher.came_online(user)
            else:
                watcher.went_offline(user)
