"""The composition root: the one place that builds every part of chatd and
wires them together, and the only module that imports the ``commands`` package.

Each part gets what it needs and no more: connections see their host
(:class:`~chatd.net.listener.Listeners`) through the ConnectionHost Protocol,
the control socket and metrics see the :class:`~chatd.app.app.App` through
the Admin facade, singleton jobs ask the Leader. Every part that applies
reloaded keys is registered here with the keys it reads (see
:mod:`chatd.app.reloads`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import commands
from chatd import __version__
from chatd.app.app import App
from chatd.app.reloads import Applies, Reloads
from chatd.config import ConfigError
from chatd.content.blobs import open_blob_store
from chatd.content.files import Files
from chatd.content.stickers import Stickers
from chatd.crypto.e2e import E2E
from chatd.crypto.runner import CryptoService
from chatd.delivery.bus import LocalBus
from chatd.domain.accounts import Accounts
from chatd.domain.admission import Admission
from chatd.domain.audit import AuditLog
from chatd.domain.catchup import Catchup
from chatd.domain.clock import Clock
from chatd.domain.messaging import Messaging
from chatd.domain.moderation import Moderation
from chatd.domain.notifications import Notifier
from chatd.domain.presence import Presence
from chatd.domain.protection import Protection
from chatd.domain.resume import ResumeTokens
from chatd.domain.rooms import Rooms
from chatd.domain.sequence import LocalSequencer
from chatd.domain.stats import Stats
from chatd.domain.tokens import Tokens
from chatd.domain.transactions import LocalTransactions
from chatd.domain.webhooks import Webhooks
from chatd.irc.connection import IrcConnection
from chatd.irc.front import IrcFront
from chatd.irc.listener import IrcListener
from chatd.net.listener import Listeners
from chatd.ops.backups import Backups
from chatd.ops.control import ControlServer
from chatd.ops.housekeeping import Housekeeping
from chatd.ops.leader import SoleLeader
from chatd.ops.logfmt import configure_logging
from chatd.ops.nodes import describe
from chatd.protocol.adminfeed import AdminFeed
from chatd.protocol.dispatch import Dispatcher
from chatd.protocol.services import Services
from storage.sqlite import SqliteStorage
from storage.writer import MessageWriter

if TYPE_CHECKING:
    from chatd.cluster.node import ClusterNode
    from chatd.cluster.transactions import ClusterTransactions
    from chatd.config import Config, Reconfigurable
    from chatd.domain.ports import Bus, Sequencer
    from chatd.net.connection import Connection
    from chatd.ops.leader import Leader
    from chatd.protocol.registry import CommandTable
    from chatd.web.server import WebServer
    from storage.api import Storage
    from storage.writer import Writer

# The keys handlers and the IRC front end read through ``Services.config`` at
# each use (so a reload reaches them by replacing it), housekeeping's among them.
READ_PER_USE = ("server", "rooms", "accounts.registration", "accounts.guests",
                "housekeeping")
# What connections and their host read of the configuration they are given.
READ_BY_CONNECTIONS = ("server", "listen.max_line", "listen.flush_delay", "tls.cert", "tls.key",
                       "limits.output_buffer",
                       "limits.input_queue", "limits.login_timeout", "limits.idle_timeout",
                       "limits.keepalive", "limits.max_connections",
                       "limits.max_connections_per_ip", "limits.ipv6_prefix", "irc.server_name",
                       # The web listener reads these through its host's configuration.
                       "web.allowed_origins", "web.trusted_proxies", "web.max_body",
                       "web.request_timeout", "web.ping_interval", "web.download_ttl")
# Protection's limits: every rate-limited action is charged there.
READ_BY_PROTECTION = ("limits.message_rate", "limits.message_burst", "limits.command_rate",
                      "limits.command_burst", "limits.typing_rate",
                      "limits.room_message_rate_max", "limits.room_message_burst_max",
                      "limits.flood_threshold", "limits.flood_window", "limits.flood_action",
                      "limits.flood_mute", "limits.auth_failures", "limits.auth_window",
                      "limits.registrations", "limits.registration_window",
                      "limits.room_creations", "limits.room_creation_window",
                      "limits.ipv6_prefix",
                      "web.webhook_rate", "web.webhook_burst")


def build_app(config: Config, clock: Clock | None = None, storage: Storage | None = None,
              *, process: bool = False, config_path: str | None = None,
              overrides: dict[str, Any] | None = None) -> App:
    """chatd with every command of the ``commands`` package.

    ``process`` makes it the whole daemon (``chatd serve``): control socket,
    scheduled backups, metrics, systemd, and a reload that re-reads
    ``config_path`` with ``overrides`` (the command line's) on top.
    """
    clock = clock or Clock()
    storage = storage or make_storage(config)
    reloads = Reloads()
    node = make_node(config, storage)
    leader: Leader = SoleLeader() if node is None else node.leader
    backups = Backups(storage, config.backup, config.storage.path, leader)
    if process:
        # First: the lines about the reload itself are in the new format.
        reloads.register(Applies("logging", lambda c: configure_logging(
            c.logging.level, c.logging.format)), "logging")
        reloads.register(Applies("backups", lambda c: backups.reconfigure(c.backup)), "backup")
    table = commands.load()
    services = wire_services(config, clock, storage, table, reloads, node)
    listeners = Listeners(config, clock, services, Dispatcher(services, table))
    reloads.register(listeners, *READ_BY_CONNECTIONS)
    irc = front = None
    if config.irc.enabled:
        front = IrcFront(lambda: listeners.config, services)
        if node is not None:
            node.share_guest_bans(front.guests)
        irc = IrcListener(listeners, front, listeners.server_tls_context)
        listeners.also(irc.start, "irc", "irc_tls")
    web = build_web(listeners, services, front) if config.web.enabled else None
    housekeeping = Housekeeping(services, leader)
    reloads.register(Applies("housekeeping", lambda c: housekeeping.interval_changed()),
                     "housekeeping.interval")
    app = App(config, services, listeners, housekeeping, reloads,
              ControlServer, backups, irc=irc, web=web, process=process,
              nodes=node, cluster=node,
              config_path=config_path, overrides=overrides)
    if node is not None:
        node.heartbeat.describe = lambda: describe(app)
        # Reads no key of its own: after every reload it compares the shared
        # sections with the live nodes', as the node does at start.
        reloads.register(Applies("cluster", lambda _config: node.reconfigured()))
    return app


def build_web(listeners: Listeners, services: Services, front: IrcFront | None) -> WebServer:
    """The web listener, its WebSockets connections of ``listeners`` like TCP's
    (IRC's through ``front`` when the IRC listener is on)."""
    # Imported here: the web's library is an optional extra, needed only when it is on.
    from chatd.web.server import WebServer  # noqa: PLC0415

    def irc_connection() -> Connection:
        assert front is not None
        return IrcConnection(listeners, front)

    web = WebServer(listeners, services, irc_connection if front is not None else None)
    listeners.also(web.start, "web")
    return web


def make_storage(config: Config) -> Storage:
    """The embedded SQLite file, or in cluster mode the PostgreSQL database.

    asyncpg is imported here and only here, so the embedded daemon never loads it.
    """
    if not config.cluster.enabled:
        return SqliteStorage(config.storage.path)
    try:
        from storage.postgres import PostgresStorage  # noqa: PLC0415 - optional, cluster only
    except ImportError as exc:
        raise ConfigError(f"cluster.enabled: needs the PostgreSQL driver ({exc.name}): "
                          "install chatd with its cluster extra (pip install 'chatd[cluster]')"
                          ) from exc
    # Without Redis one node serves the database; with it nodes share delivery
    # (see docs/CLUSTER.md).
    return PostgresStorage(config.cluster.postgres, sole_node=not config.cluster.redis,
                           name=f"chatd/{config.cluster.node_id}",
                           fail_fast=bool(config.cluster.redis))


def make_node(config: Config, storage: Storage) -> ClusterNode | None:
    """In cluster mode with Redis, this node's share of the cluster; None otherwise.

    The Redis client is imported here and only here, so the embedded daemon never
    loads it.
    """
    if not (config.cluster.enabled and config.cluster.redis):
        return None
    try:
        from chatd.cluster.node import ClusterNode  # noqa: PLC0415 - optional, cluster only
    except ImportError as exc:
        raise ConfigError(f"cluster.redis: needs the Redis client ({exc.name}): install "
                          "chatd with its cluster extra (pip install 'chatd[cluster]')"
                          ) from exc
    return ClusterNode(config.cluster, storage)


def make_seams(config: Config, storage: Storage, node: ClusterNode | None
               ) -> tuple[Bus, Sequencer, LocalTransactions | ClusterTransactions, Writer]:
    """The bus, the sequencer, the room and account transactions and the
    writer of messages: this process's own, or with ``node`` the cluster's,
    shared through Redis and PostgreSQL."""
    if node is None:
        writer = MessageWriter(storage, config.storage.flush_interval,
                               config.storage.max_batch)
        return (LocalBus(), LocalSequencer(storage, writer, config.storage.max_pending),
                LocalTransactions(), writer)
    return (node.make_bus(LocalBus()), node.sequencer, node.make_transactions(),
            node.make_writer())


def wire_services(config: Config, clock: Clock, storage: Storage, table: CommandTable,
                  reloads: Reloads, node: ClusterNode | None = None) -> Services:
    """Build the domain services around one storage and one bus; register
    those a reload reaches with the keys they read."""
    bus, sequencer, transactions, writer = make_seams(config, storage, node)
    stats = Stats()
    audit = AuditLog(storage, clock)
    accounts = Accounts(storage, config, clock, audit, LocalTransactions())
    notifier = Notifier(storage, bus, clock)
    rooms = Rooms(storage, accounts, bus, notifier, audit, clock, transactions)
    moderation = Moderation(storage, rooms, accounts, bus, notifier, audit, clock, transactions)
    protection = Protection(config, clock, moderation, audit,
                            None if node is None else node.make_limits(clock))
    messaging = Messaging(storage, writer, bus, notifier, clock, protection, stats, sequencer)
    tokens = Tokens(storage, accounts, clock)
    presence = Presence(accounts, rooms, messaging, notifier, audit, stats, clock, transactions,
                        node.presence if node is not None else None, tokens.sessions)
    tokens.on_revoked = presence.token_ended
    resume = ResumeTokens(storage, accounts, tokens, clock, config)
    if node is not None:
        tokens.shared = resume.shared = notifier.shared = True
        node.attach(rooms, accounts, presence, tokens, resume, audit)
        messaging.tail, messaging.shared = node.tail, True
        messaging.poster = node.poster
        messaging.counted = getattr(storage, "store_direct_counted")  # noqa: B009 - PostgreSQL's
    admission = Admission(storage, rooms, accounts, bus, notifier, audit, clock, config,
                          transactions)
    files = Files(config.files, config.storage.path, storage,
                  open_blob_store(config.files, config.storage.path), messaging, rooms, clock)
    e2e = E2E(config.crypto, storage, accounts, messaging, rooms, bus, clock, transactions)
    stickers = Stickers(config.stickers)
    crypto = CryptoService(config.crypto, protection)
    webhooks = Webhooks(storage, accounts, tokens, rooms, messaging, protection, audit, clock)
    services = Services(config=config, clock=clock, storage=storage, writer=writer, bus=bus,
                        accounts=accounts, rooms=rooms, messaging=messaging,
                        moderation=moderation, admission=admission, protection=protection,
                        tokens=tokens, resume=resume, notifier=notifier,
                        audit=audit, presence=presence, commands=table, stats=stats,
                        started_at=clock.time(), version=__version__, files=files,
                        stickers=stickers, crypto=crypto, e2e=e2e, sequencer=sequencer,
                        transactions=transactions,
                        webhooks=webhooks,
                        admin_feed=AdminFeed(audit, presence),
                        catchup=Catchup(storage, writer, messaging.tail, sequencer, rooms,
                                        accounts))

    def per_use(c: Config) -> None:
        services.config = c

    def protect(c: Config) -> None:
        protection.config = c

    def admit(c: Config) -> None:
        admission.config = c

    # The parts that keep their limits themselves: set now, and at each reload.
    bounded: list[tuple[Reconfigurable, tuple[str, ...]]] = [
        (rooms, ("rooms.creation", "rooms.max_owned")),
        (notifier, ("limits.max_notifications",)),
        (messaging, ("rooms.offline_replay_max",)),
        (webhooks, ("web.max_webhooks",)),
        (tokens, ("accounts.max_session_tokens",))]
    for part, keys in bounded:
        part.reconfigure(config)
        reloads.register(part, *keys)

    reloads.register(Applies("services", per_use), *READ_PER_USE)
    reloads.register(accounts, "accounts.bcrypt_cost", "accounts.max_blocks")
    reloads.register(resume, "accounts.resume_ttl")
    reloads.register(Applies("admission", admit), "rooms.invitation_ttl")
    reloads.register(Applies("protection", protect), *READ_BY_PROTECTION)
    reloads.register(Applies("files", lambda c: files.reconfigure(c.files)), "files")
    reloads.register(Applies("crypto", lambda c: crypto.reconfigure(c.crypto)), "crypto")
    reloads.register(Applies("e2e", lambda c: e2e.reconfigure(c.crypto)), "crypto.max_envelope",
                     "crypto.max_pending_keys")
    reloads.register(Applies("stickers", lambda c: stickers.reload(c.stickers)), "stickers")
    return services
