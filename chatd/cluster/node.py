"""One node of a cluster: its connections to the shared services, and the
parts of chatd's seams that use them, built for the composition root.

The Redis client is made at once (it connects on first use); the PostgreSQL
pool of the node's locks and reloads when the node starts, once storage is
open (:meth:`ClusterNode.start`, called by the sequencer's ``load``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis.asyncio

from chatd.cluster.accountsync import AccountSync
from chatd.cluster.bus import ClusterBus, Entry
from chatd.cluster.epoch import EpochChange
from chatd.cluster.guestbans import RedisGuestBans
from chatd.cluster.heartbeat import Heartbeat
from chatd.cluster.janitor import Janitor
from chatd.cluster.leader import RedisLeader
from chatd.cluster.limits import ClusterLimitStore
from chatd.cluster.oneredis import ensure_one_redis
from chatd.cluster.persister import LogWriter, Persister
from chatd.cluster.poster import ClusterPoster
from chatd.cluster.presence import ClusterPresence
from chatd.cluster.registry import NodeRegistry
from chatd.cluster.retry import needed_at_start
from chatd.cluster.sequencer import ClusterSequencer
from chatd.cluster.sync import RoomSync
from chatd.cluster.tail import LogTail
from chatd.cluster.transactions import ClusterTransactions, unavailable
from chatd.domain.stats import Figure

if TYPE_CHECKING:
    import asyncpg

    from chatd.config import ClusterConfig
    from chatd.delivery.bus import LocalBus
    from chatd.domain.accounts import Accounts
    from chatd.domain.audit import AuditLog
    from chatd.domain.clock import Clock
    from chatd.domain.presence import Presence
    from chatd.domain.resume import ResumeTokens
    from chatd.domain.rooms import Rooms
    from chatd.domain.tokens import Tokens
    from chatd.irc.guests import Guests
    from storage.api import Storage

log = logging.getLogger(__name__)

# Refusal reasons always exported (at 0 until the first), so a rate can be graphed at once.
# Every reason a post can be refused where the order is decided (the bus and its
# gate), exported at 0 from the start so that each can be graphed at once.
REFUSAL_REASONS = ("busy", "banned", "muted", "not-in-room", "no-such-room", "moderated",
                   "not-permitted")
# Connections of a node's locks and reloads (each governance decision in
# progress holds one; more wait).
POOL_SIZE = 8
# A connection, a statement, or a wait for a free connection taking longer
# fails: a command is refused (busy) rather than left hanging on a database away.
PG_TIMEOUT = 2.0
# How long the reader waits for a room's reload before it delivers without it.
RELOAD_TIMEOUT = 2.0


class _Pool:
    """The node's PostgreSQL pool, made when the node starts."""

    def __init__(self, url: str, name: str) -> None:
        self._url = url
        self._name = name
        self.pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        import asyncpg  # noqa: PLC0415 - the cluster extra's driver, imported where used

        self.pool = await asyncpg.create_pool(
            self._url, min_size=1, max_size=POOL_SIZE, timeout=PG_TIMEOUT,
            command_timeout=PG_TIMEOUT, server_settings={"application_name": self._name})

    def acquire(self) -> Any:
        assert self.pool is not None, "the node has not started"
        return self.pool.acquire(timeout=PG_TIMEOUT)

    async def fetch(self, query: str, argument: str) -> list[Any]:
        """The rows of one query with one argument, on a connection of the pool."""
        async with self.acquire() as connection:
            return list(await connection.fetch(query, argument))

    async def release(self, connection: Any) -> None:
        """Give ``connection`` back (a closed one is replaced by the pool)."""
        assert self.pool is not None, "the node has not started"
        try:
            await self.pool.release(connection, timeout=PG_TIMEOUT)
        except Exception:  # the database away: the connection is dropped
            connection.terminate()

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    def terminate(self) -> None:
        """Close every connection at once, awaiting none (a stop that failed or was
        cut short: a part may still hold one)."""
        if self.pool is not None:
            self.pool.terminate()


class ClusterNode:
    """What one node shares with the others."""

    def __init__(self, config: ClusterConfig, storage: Storage) -> None:
        self.node_id = config.node_id
        self._storage = storage
        self.redis = redis.asyncio.Redis.from_url(config.redis, socket_connect_timeout=1.0)
        self._pool = _Pool(config.postgres, f"chatd/{config.node_id}/locks")
        self.sequencer = ClusterSequencer(storage, self.redis)
        self.leader = RedisLeader(self.redis)
        self._pool_user: Any = self._pool
        self.sync: RoomSync | None = None
        # The IRC guests, whose bans are read again with their room (when IRC is on).
        self._guests: Guests | None = None
        self._guest_bans: RedisGuestBans | None = None
        self._rooms: Rooms | None = None
        self._accounts: Accounts | None = None
        self.accounts: AccountSync | None = None
        self.bus: ClusterBus | None = None
        self.transactions: ClusterTransactions | None = None
        self.persister: Persister | None = None
        self.tail: LogTail | None = None
        self.poster: ClusterPoster | None = None
        self.epoch: EpochChange | None = None
        # Presence across nodes, the node's heartbeat and fence, the janitor.
        self.presence = ClusterPresence(config.node_id, self.redis)
        self.heartbeat = Heartbeat(config.node_id, self.redis, self.presence)
        self.janitor = Janitor(self.redis, self.leader, self.presence)
        self.registry = NodeRegistry(self.redis, self.heartbeat, self.janitor)
        # The comparisons of the shared configuration a reload started, still running.
        self._checks: set[asyncio.Task[None]] = set()

    async def nodes(self) -> list[dict[str, Any]]:
        """Every node of the cluster, for ``chatctl nodes``."""
        return await self.registry.nodes()

    def figures(self) -> list[Figure]:
        """This node's cluster metrics: its log reader and writer, its ids, its
        decisions, its persister, its life in the cluster."""
        found = self.registry.figures()
        bus, persister, transactions = self.bus, self.persister, self.transactions
        if bus is not None:
            refusals = dict.fromkeys(REFUSAL_REASONS, 0) | dict(bus.refusals)
            found += [
                Figure("chatd_cluster_entries_delivered", "Entries of the shared log this "
                       "node delivered to its connections", "counter", bus.delivered),
                Figure("chatd_cluster_refusals", "This node's posts refused where the "
                       "cluster's order is decided, by reason", "counter", by=refusals,
                       label="reason")]
        found += [
            Figure("chatd_cluster_sequencer_batches", "Round trips that numbered a turn's "
                   "ids", "counter", self.sequencer.batches),
            Figure("chatd_cluster_poster_batches", "Round trips that charged, numbered and "
                   "appended a turn's room messages", "counter",
                   self.poster.batches if self.poster is not None else 0),
            Figure("chatd_cluster_sequencer_refused", "Ids refused with busy: Redis did not "
                   "answer in time", "counter", self.sequencer.refused),
            Figure("chatd_epoch_changes", "Times this node found Redis had lost its data and "
                   "started over on a new epoch", "counter", self.sequencer.epoch_changes)]
        if transactions is not None:
            found.append(Figure("chatd_cluster_transaction_seconds", "Governance decisions "
                                "under a cluster-wide lock: from asking for the lock to "
                                "releasing it", "summary", transactions.decision_seconds,
                                samples=transactions.decisions))
        if persister is not None:
            found += [
                Figure("chatd_log_backlog", "Entries of the cluster's log not stored in "
                       "PostgreSQL yet (the group persist's lag and pending)",
                       value=persister.backlog),
                Figure("chatd_log_full", "1 while messages are refused because the backlog "
                       "is over 90% of the log's length", value=float(persister.full)),
                Figure("chatd_persisted", "Messages this node's persister stored", "counter",
                       persister.stored),
                Figure("chatd_persist_lag_seconds", "Messages this node's persister "
                       "stored: from their append to the log to their acknowledgement once "
                       "in PostgreSQL (Redis's clock)", "summary", persister.lag_seconds,
                       samples=persister.lagged)]
        return found

    def make_bus(self, local: LocalBus) -> ClusterBus:
        """The node's bus around ``local`` (rooms and accounts given by :meth:`attach`)."""
        self.bus = ClusterBus(local, self.node_id, self.sequencer, self.redis,
                              lambda room_id: self._rooms.get(room_id) if self._rooms else None,
                              lambda user_id: self._accounts.get(user_id)
                              if self._accounts else None, self._reload, self._account_changed)
        self.bus.handlers.update(p=self.presence.on_entry, down=self.presence.on_down)
        janitor = self.janitor
        self.bus.log_format = lambda: janitor.log_format
        self.presence.bus = self.bus
        bus = self.bus
        self.heartbeat.position = lambda: bus.position
        store = getattr(self._storage, "store_messages")  # noqa: B009 - PostgreSQL's alone
        self.persister = Persister(self.redis, self.node_id, store, self.bus.verdict,
                                   self.bus.items)
        self.sequencer.backlogged = lambda: self.persister is not None and self.persister.full
        sequencer = self.sequencer
        self.persister.database = lambda: sequencer.database
        self.tail = LogTail(self.redis, self.bus.verdict)
        return self.bus

    def make_writer(self) -> LogWriter:
        """The domain's writer: a message goes with its entry of the log, and the
        group ``persist`` stores it (chatd/cluster/persister.py)."""
        assert self.bus is not None and self.persister is not None, "make_bus first"
        return LogWriter(self.bus.keep, self.persister)

    def attach(self, rooms: Rooms, accounts: Accounts, presence: Presence,
               tokens: Tokens, resume: ResumeTokens, audit: AuditLog) -> None:
        """The rooms, accounts and API and resume tokens this node keeps, reloaded
        when others decide, and its sessions, dropped when the node is fenced; its
        audit log's live readers, told of what the other nodes audit."""
        self._rooms = rooms
        self._accounts = accounts
        self.accounts = AccountSync(self._storage, accounts, presence, tokens, resume,
                                    self.presence.elsewhere)
        self.presence.user_of = accounts.get
        self.presence.watchers = presence.watchers
        self.heartbeat.drop_sessions = lambda reason: drop_sessions(presence, reason)
        self.heartbeat.foreign = lambda: self.sequencer.foreign
        self.sync = RoomSync(self._pool_user, rooms)
        rooms.read_room = self._read_room
        bus = self.bus
        if bus is not None:
            accounts.on_changed = lambda user, what, details: bus.announce_account(
                user.id, what, details)
            presence.on_broadcast = bus.announce_broadcast
            # An operator's broadcast goes to this node's connections; an audit
            # entry (stored where it was made) to this node's live readers.
            bus.handlers["bc"] = self._from_elsewhere(presence.broadcast_here)
            audit.shared = bus.announce_audit
            bus.handlers["au"] = self._from_elsewhere(audit.heard)
        if bus is not None and self.persister is not None:
            self.epoch = EpochChange(
                bus, self.persister,
                lambda: [r.id for r in (*rooms.listed_for(None), *rooms.hidden_rooms())],
                self._resync, self.presence)
            self.sequencer.epoch_changed = self.epoch

    def make_limits(self, clock: Clock) -> ClusterLimitStore:
        """The rate limits every node shares (messages, failed logins); and the
        poster, which charges room messages to them (make_bus first)."""
        limits = ClusterLimitStore(self.redis, clock)
        assert self.bus is not None, "make_bus first"
        self.poster = ClusterPoster(self.redis, self.bus, self.sequencer, limits)
        return limits

    def make_transactions(self) -> ClusterTransactions:
        self.transactions = ClusterTransactions(self._pool_user, self.redis, self._resync,
                                                self.sequencer.caught_up)
        return self.transactions

    def _from_elsewhere(self, tell: Callable[[Any], object]) -> Callable[[Entry], None]:
        """The handler of a kind of entry whose value (``x``) the node that made it
        applied there at once: ``tell`` is given the value of another node's."""
        def handle(entry: Entry) -> None:
            if entry["n"] != self.node_id:
                tell(entry["x"])
        return handle

    async def _account_changed(self, entry: Entry) -> None:
        """Another node made or changed an account: see chatd/cluster/accountsync.py."""
        assert self.accounts is not None, "attach first"
        await self.accounts(entry["u"], entry.get("w", "created"), entry.get("x", {}))

    async def _reload(self, room_id: int) -> None:
        """The reader's reload of a room another node decided about (bounded: the
        database away must not stop the messages; the next decision reloads)."""
        assert self.transactions is not None
        try:
            async with asyncio.timeout(RELOAD_TIMEOUT):
                await self.transactions.reload(room_id)
        except Exception as exc:  # deliver all the same; logged
            log.warning("cluster: room %d not reloaded (%s): the database does not answer",
                        room_id, exc or type(exc).__name__)

    async def _read_room(self, room_id: int) -> None:
        """A room this node must decide about before its announcement is read here
        (an account's deletion, see ``Rooms.of_user_stored``): read now, or the
        decision is refused (``busy``) rather than made without it."""
        assert self.transactions is not None
        try:
            async with asyncio.timeout(RELOAD_TIMEOUT):
                await self.transactions.reload(room_id)
        except Exception as exc:
            log.warning("cluster: room %d not read (%s)", room_id, exc or type(exc).__name__)
            raise unavailable("the database does not answer") from exc

    async def _resync(self, room_id: int) -> None:
        assert self.sync is not None
        await self.sync(room_id)
        if self._guests is not None:
            await self._guests.reload_bans(room_id)

    def share_guest_bans(self, guests: Guests) -> None:
        """The IRC guests' bans this node decides are kept in Redis, and read again
        with the room, so that they hold on every node (chatd/cluster/guestbans.py)."""
        self._guest_bans = guests.shared = RedisGuestBans(self.redis, self._announce_room)
        self._guests = guests

    def _announce_room(self, room_id: int) -> None:
        if self.bus is not None:
            self.bus.announce_room(room_id)

    async def start(self) -> None:
        """Storage is open and the sequencer seeded: open the pool, read the log."""
        with needed_at_start():
            # Before anything reads the log: a duplicate of a running node must not
            # read its consumer group under that node's name.
            await self.heartbeat.ensure_alone()
            await self._pool.open()
            # Before it reads the log or registers: a node on another Redis than
            # its database's running nodes would split the cluster in two.
            await ensure_one_redis(self._pool.fetch, self.redis, self.node_id)
            assert self.bus is not None and self.persister is not None
            await self.bus.start()
            await self.persister.start()
            self.heartbeat.epoch = self.sequencer.epoch
            await self.presence.load()
            if self._guests is not None:
                # A room with bans kept that this node does not know is read again:
                # ended, its bans are deleted; made meanwhile, they are its own.
                for room_id in await self._guests.load_shared_bans():
                    await self._reload(room_id)
            await self.heartbeat.register()
        self.heartbeat.start()
        self.janitor.start()
        await self.registry.warn_if_configured_otherwise()

    def reconfigured(self) -> None:
        """A reload was applied: compare the shared configuration with the live
        nodes' again, as at start (in the background: a reload does not wait for
        Redis). Before the node registered there is nothing to compare yet."""
        if not self.heartbeat.registered:
            return
        check = asyncio.get_running_loop().create_task(
            self._compare_after_reload(), name="cluster-config-check")
        self._checks.add(check)
        check.add_done_callback(self._checks.discard)

    async def reload_compared(self) -> None:
        """Wait for the comparisons the reloads so far started: once this returns,
        the warning of a reload that made the shared configuration differ is logged
        (an operator's tooling, and the tests, wait on it rather than on a clock)."""
        await asyncio.gather(*self._checks)

    async def _compare_after_reload(self) -> None:
        # A heartbeat's interval first: the operator reloading the nodes one after the
        # other, a node reloaded a moment before says its new configuration in its
        # record only from its next beat on, and must not be taken for the odd one.
        await asyncio.sleep(self.heartbeat.interval)
        await self.registry.warn_if_configured_otherwise()

    async def stop(self) -> None:
        """Stop each part in turn, then close the connections to PostgreSQL and
        Redis. When a part failed to stop or the stop was cut short (chatd.app
        bounds it), the loops still running are halted and every connection the
        node owns is closed all the same (the pool's, the Redis client's, the log
        reader's own), so that none is left for the garbage collector."""
        stopped = False
        checks = list(self._checks)
        for check in checks:
            check.cancel()  # a warning no one will act on: the node is going
        # Waited for, so none reads through a client closed below.
        await asyncio.gather(*checks, return_exceptions=True)
        try:
            await self._stop_parts()
            await self._pool.close()
            stopped = True
        finally:
            if not stopped:
                self._halt_parts()
                self._pool.terminate()
            await self._close_connections()

    def _halt_parts(self) -> None:
        """Cancel every loop a failed stop may have left running: one left would
        open a new connection through the client closed next."""
        self.janitor.halt_now()
        self.heartbeat.halt_now()
        for part in (self.accounts, self.persister):
            if part is not None:
                part.halt_now()

    async def _close_connections(self) -> None:
        if self.bus is not None:
            with contextlib.suppress(redis.RedisError):
                await self.bus.close_reading()
        with contextlib.suppress(redis.RedisError):
            await self.redis.aclose()

    async def _stop_parts(self) -> None:
        if self.poster is not None:
            await self.poster.aclose()  # its last batch stored by this node's persister
        await self.janitor.stop()
        if self.accounts is not None:
            await self.accounts.stop()
        if self.persister is not None:
            # Before the record goes: while it is there, the other nodes write no log
            # format this node's persister cannot read (chatd.cluster.janitor).
            await self.persister.stop()
        await self.heartbeat.stop()
        await self.presence.close()
        if self.bus is not None:
            await self.bus.stop()
        await self.sequencer.aclose()
        if self._guest_bans is not None:
            await self._guest_bans.settled()


def drop_sessions(presence: Presence, reason: str) -> None:
    """Close every logged-in connection of a fenced node, telling the client why:
    its sessions are no longer counted anywhere, so they must log in again."""
    notice = {"type": "notice", "reconnect": True,
              "text": f"this server lost its place in the cluster ({reason}); "
                      "please reconnect."}
    for session in [s for s in presence.sessions if s.user is not None]:
        session.send(notice)
        session.close("fenced", going_away=True)
        presence.logout(session)
