"""The daemon's lifecycle: start, serve, reload and an orderly shutdown.

Start-up order: open storage (migrating it), load accounts, rooms and the
message counter, start the batched writer, then bind the listeners; only
then is the server ready. Shutdown runs the same steps backwards (see
:meth:`ChatServer.stop`) within a time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections import Counter
from typing import TYPE_CHECKING

from chatd import __version__
from chatd.content.blobs import open_blob_store
from chatd.content.files import Files
from chatd.content.stickers import Stickers
from chatd.crypto.e2e import E2E
from chatd.crypto.runner import CryptoService
from chatd.delivery.bus import LocalBus
from chatd.domain.accounts import Accounts
from chatd.domain.admission import Admission
from chatd.domain.audit import AuditLog
from chatd.domain.clock import Clock
from chatd.domain.messaging import Messaging
from chatd.domain.moderation import Moderation
from chatd.domain.notifications import Notifier
from chatd.domain.presence import Presence
from chatd.domain.protection import Protection
from chatd.domain.rooms import Rooms
from chatd.domain.stats import Stats
from chatd.domain.tokens import Tokens
from chatd.errors import Code
from chatd.irc.listener import IrcListener
from chatd.net.connection import Connection, FlushScheduler
from chatd.ops.housekeeping import Housekeeping
from chatd.protocol.dispatch import Dispatcher
from chatd.protocol.services import Services
from storage.sqlite import SqliteStorage
from storage.writer import MessageWriter

if TYPE_CHECKING:
    from chatd.config import Config
    from chatd.protocol.registry import CommandTable
    from storage.api import Storage

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 1.0


class ChatServer:
    """One chatd process: its services, listeners and connections."""

    def __init__(self, config: Config, table: CommandTable, clock: Clock | None = None,
                 storage: Storage | None = None) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.storage: Storage = storage or SqliteStorage(config.storage.path)
        self.services = _wire(config, self.clock, self.storage, table)
        self.dispatcher = Dispatcher(self.services, table)
        self.housekeeping = Housekeeping(self.services)
        self.flusher: FlushScheduler
        self._listeners: list[asyncio.Server] = []
        # The IRC listener when irc.enabled (its sockets join _listeners).
        self.irc: IrcListener | None = None
        self._connections: set[Connection] = set()
        self._per_ip: Counter[str] = Counter()
        self._sweeper: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self.tls_context: ssl.SSLContext | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self, sockets: list[socket.socket] | None = None) -> None:
        """Open storage, load state, then listen (on ``sockets`` if given)."""
        self.flusher = FlushScheduler(asyncio.get_running_loop(), self.services.bus.end_turn)
        await self.storage.open()
        await self.services.accounts.load()
        await self.services.rooms.load()
        await self.services.moderation.load()
        await self.services.messaging.load()
        await self.services.writer.start()
        await self._listen(sockets)
        self._sweeper = asyncio.ensure_future(self._sweep())
        self.housekeeping.start()
        log.info("started", extra={"fields": {
            "version": __version__, "addresses": " ".join(self.addresses),
            "users": self.services.accounts.count, "rooms": self.services.rooms.count}})

    async def _listen(self, sockets: list[socket.socket] | None) -> None:
        """Listen on passed sockets (socket activation) or the configured address,
        plus the TLS listener when it is enabled."""
        loop = asyncio.get_running_loop()
        for sock in sockets or []:
            self._listeners.append(await loop.create_server(
                lambda: Connection(self), sock=sock, backlog=1024))
        if not sockets:
            listen = self.config.listen
            self._listeners.append(await loop.create_server(
                lambda: Connection(self), listen.host, listen.port, reuse_address=True,
                backlog=1024))
        tls = self.config.tls
        if tls.enabled:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tls.cert, tls.key)
            self.tls_context = context
            self._listeners.append(await loop.create_server(
                lambda: Connection(self), tls.host, tls.port, ssl=context,
                reuse_address=True, backlog=1024))
        if self.config.irc.enabled:
            # Appended last, so port still names the line protocol's first listener;
            # stop() closes these sockets and connections with the others.
            self.irc = IrcListener(self, self.services)
            self._listeners.extend(await self.irc.start())

    @property
    def addresses(self) -> list[str]:
        found = []
        for listener in self._listeners:
            for sock in listener.sockets:
                host, port = sock.getsockname()[:2]
                found.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return found

    @property
    def port(self) -> int:
        """The first bound port (useful when configured as 0)."""
        return int(self._listeners[0].sockets[0].getsockname()[1])

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def stop(self, timeout: float = 5.0) -> None:
        """Shut down in order, within ``timeout`` seconds.

        1. stop accepting; 2. tell every client and close its connection after
        its queued output; 3. let commands already running finish (bounded);
        4. flush every acknowledged message to storage; 5. close storage.
        """
        if self._stopped.is_set():
            return
        log.info("stopping", extra={"fields": {"connections": len(self._connections)}})
        for listener in self._listeners:
            listener.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.housekeeping.stop()
        await self._close_connections(timeout * 0.6)
        try:
            await self.services.writer.close()
        finally:
            await self.storage.close()
            self._stopped.set()
        log.info("stopped")

    async def _close_connections(self, timeout: float) -> None:
        notice = {"type": "notice", "text": "the server is shutting down. Goodbye.",
                  "shutdown": True}
        workers = [c.worker for c in self._connections if c.worker is not None]
        for conn in list(self._connections):
            conn.session.send(notice)
            conn.close("shutdown")
        if workers:
            await asyncio.wait(workers, timeout=timeout)
        for listener in self._listeners:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(listener.wait_closed(), timeout=0.5)

    def reload(self, config: Config) -> None:
        """Apply a new, already validated configuration to everything live."""
        self.config = config
        self.services.config = config
        self.services.accounts.reconfigure(config)
        self.services.admission.config = config
        self.services.protection.config = config
        self.services.files.reconfigure(config.files)
        self.services.crypto.reconfigure(config.crypto)
        self.services.e2e.reconfigure(config.crypto)
        self.services.stickers.reload(config.stickers)
        limits = config.limits
        for conn in self._connections:
            conn.session.command_bucket.reconfigure(limits.command_rate, limits.command_burst)
        self._reload_certificate(config)
        log.info("reloaded")

    def _reload_certificate(self, config: Config) -> None:
        """A renewed certificate serves new TLS handshakes without a restart."""
        if self.tls_context is None or not config.tls.enabled:
            return
        try:
            self.tls_context.load_cert_chain(config.tls.cert, config.tls.key)
        except (OSError, ssl.SSLError) as exc:
            log.error("certificate reload failed; the old one stays",
                      extra={"fields": {"error": str(exc)}})

    # -- connections -------------------------------------------------------------

    def connection_opened(self, conn: Connection) -> None:
        limits = self.config.limits
        ip = conn.session.peer.rpartition(":")[0]
        self._connections.add(conn)
        self._per_ip[ip] += 1
        self.services.stats.connections_total += 1
        if (len(self._connections) > limits.max_connections
                or self._per_ip[ip] > limits.max_connections_per_ip):
            conn.session.send({"type": "error", "code": Code.TOO_MANY_CONNECTIONS.value,
                               "message": "too many connections; try again later."})
            conn.close("too many connections")
            return
        self.services.presence.connected(conn.session)
        conn.session.send(self._banner())

    def connection_closed(self, conn: Connection) -> None:
        if conn in self._connections:
            self._connections.discard(conn)
            ip = conn.session.peer.rpartition(":")[0]
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]
        self.services.presence.disconnected(conn.session)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def _banner(self) -> dict[str, object]:
        services = self.services
        online, rooms = services.presence.users_online, services.rooms.count
        text = (f"chatd {__version__} on {self.config.server.name}: "
                f"{online} user{'s' * (online != 1)} online, "
                f"{rooms} room{'s' * (rooms != 1)}. Type /help to begin.")
        if self.config.server.motd:
            text += "\n" + self.config.server.motd
        return {"type": "notice", "text": text, "server": self.config.server.name,
                "version": __version__}

    async def _sweep(self) -> None:
        """One periodic pass for every timeout, instead of a timer per connection.

        It also measures event-loop lag: how late the pass wakes up.
        """
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + SWEEP_INTERVAL
            await asyncio.sleep(SWEEP_INTERVAL)
            self.services.stats.loop_lag = max(0.0, loop.time() - due)
            self.services.stats.flush_seconds = self.services.writer.last_flush_seconds
            self.services.stats.sample(loop.time())
            self.sweep_once()

    def sweep_once(self) -> None:
        """Close connections that did not log in in time, or went idle."""
        limits, now = self.config.limits, self.clock.monotonic()
        for conn in list(self._connections):
            if not conn.session.logged_in:
                if conn.session.anonymous_since < now - limits.login_timeout:
                    self._time_out(conn, Code.NOT_LOGGED_IN, "no login in time; goodbye.")
            elif limits.idle_timeout and conn.last_input < now - limits.idle_timeout:
                self._time_out(conn, Code.IDLE_TIMEOUT, "idle for too long; goodbye.")
        self.services.protection.sweep()

    def _time_out(self, conn: Connection, code: Code, message: str) -> None:
        conn.session.send({"type": "error", "code": code.value, "message": message})
        conn.close(code.value)


def _wire(config: Config, clock: Clock, storage: Storage, table: CommandTable) -> Services:
    """Build the domain services around one storage and one bus."""
    bus = LocalBus()
    stats = Stats()
    writer = MessageWriter(storage, config.storage.flush_interval, config.storage.max_batch)
    accounts = Accounts(storage, config, clock)
    notifier = Notifier(storage, bus, clock)
    audit = AuditLog(storage, clock)
    rooms = Rooms(storage, accounts, bus, notifier, audit, clock)
    moderation = Moderation(storage, rooms, accounts, bus, notifier, audit, clock)
    protection = Protection(config, clock, moderation, audit)
    messaging = Messaging(storage, writer, bus, notifier, clock, protection, stats)
    presence = Presence(accounts, rooms, messaging, notifier, audit, stats, clock)
    admission = Admission(storage, rooms, accounts, bus, notifier, audit, clock, config)
    tokens = Tokens(storage, accounts, clock)
    files = Files(config.files, config.storage.path, storage,
                  open_blob_store(config.files, config.storage.path), messaging, rooms, clock)
    e2e = E2E(config.crypto, storage, accounts, messaging, bus, clock)
    return Services(config=config, clock=clock, storage=storage, writer=writer, bus=bus,
                    accounts=accounts, rooms=rooms, messaging=messaging,
                    moderation=moderation, admission=admission, protection=protection,
                    tokens=tokens, notifier=notifier,
                    audit=audit, presence=presence, commands=table, stats=stats,
                    started_at=clock.time(), version=__version__, files=files,
                    stickers=Stickers(config.stickers),
                    crypto=CryptoService(config.crypto), e2e=e2e)
