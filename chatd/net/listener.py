"""The listening sockets and the connections they accepted.

:class:`Listeners` is the :class:`~chatd.net.connection.ConnectionHost` of
every connection, whatever its front end: it binds the line protocol's
ports (plain, TLS, or sockets systemd passed), then those of other front
ends (the IRC listener registers its own with :meth:`Listeners.also`, so
this module never imports it). It keeps the connection registry with its
limits (in total and per address), greets new connections, times out the
silent ones in one periodic sweep, and on shutdown tells every client
goodbye. The application drives it (see :mod:`chatd.app.app`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import TYPE_CHECKING

from chatd import __version__
from chatd.config import ConfigError, effective_flush_delay
from chatd.domain.clock import COARSE
from chatd.domain.limits import address_key
from chatd.errors import Code
from chatd.net.connection import Connection, FlushScheduler, set_keepalive
from chatd.protocol.session import Session

if TYPE_CHECKING:
    import socket
    from collections.abc import Awaitable, Callable

    from chatd.config import Config
    from chatd.domain.clock import Clock
    from chatd.net.connection import LineHandler
    from chatd.protocol.services import Services

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 1.0


class _Address:
    """A client address: its host string, shared by its connections, and how
    many of them are open."""

    __slots__ = ("connections", "host")

    def __init__(self, host: str) -> None:
        self.host = host
        self.connections = 0


class Listeners:
    """Listening sockets, the connections they accepted, and their limits."""

    def __init__(self, config: Config, clock: Clock, services: Services,
                 dispatcher: LineHandler) -> None:
        self.config = config
        self.clock = clock
        self.services = services
        self.dispatcher = dispatcher
        self.flusher: FlushScheduler
        self.tls_context: ssl.SSLContext | None = None
        self._servers: list[asyncio.Server] = []
        # What each server of _servers speaks (the same order): "line", "line_tls",
        # then the other front ends' names.
        self._kinds: list[str] = []
        self._more: list[tuple[Callable[[], Awaitable[list[asyncio.Server]]], tuple[str, ...]]] = []
        # Open connections, counted: presence's sessions are the one list of them
        # (see _open_connections; a map of its own here cost each held
        # connection some 50 bytes).
        self._open = 0
        self._per_ip: dict[str, _Address] = {}
        self._sweeper: asyncio.Task[None] | None = None
        # At a stop: the connections told goodbye that are still open, and what is
        # set when the last of them ended (see close_connections).
        self._ending: set[Connection] = set()
        self._all_ended = asyncio.Event()

    def also(self, bind: Callable[[], Awaitable[list[asyncio.Server]]], *kinds: str) -> None:
        """Another front end's ports (IRC, web): bound after ours, closed with them.
        ``kinds`` name what the servers ``bind`` returns speak, in their order."""
        self._more.append((bind, kinds))

    # -- binding and closing --------------------------------------------------------

    async def listen(self, sockets: list[socket.socket] | None = None) -> None:
        """Listen on passed sockets (socket activation) or the configured address,
        plus the TLS listener when it is enabled, then the other front ends'."""
        loop = asyncio.get_running_loop()
        self.flusher = FlushScheduler(loop, self.services.bus.end_turn,
                                      lambda: effective_flush_delay(self.config))
        for sock in sockets or []:
            self._add("line", await loop.create_server(
                lambda: Connection(self), sock=sock, backlog=1024))
        if not sockets:
            listen = self.config.listen
            self._add("line", await loop.create_server(
                lambda: Connection(self), listen.host, listen.port, reuse_address=True,
                backlog=1024))
        tls = self.config.tls
        if tls.enabled:
            self._add("line_tls", await loop.create_server(
                lambda: Connection(self), tls.host, tls.port, ssl=self.server_tls_context(),
                reuse_address=True, backlog=1024))
        for bind, kinds in self._more:
            # Appended last, so port still names the line protocol's first listener.
            for index, server in enumerate(await bind()):
                self._add(kinds[index] if index < len(kinds) else "other", server)
        self._apply_keepalive(self.config)
        self._sweeper = asyncio.ensure_future(self._sweep())

    def stop_accepting(self) -> None:
        for server in self._servers:
            server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()

    async def close_connections(self, timeout: float) -> None:
        """Tell every client goodbye and close its connection after its queued
        output; wait (up to ``timeout``) for commands already running and for the
        connections to end (a WebSocket's once its client answered the close), then
        cut off those still open: none outlives the stop."""
        notice = {"type": "notice", "text": "the server is shutting down. Goodbye.",
                  "shutdown": True}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        connections = self._open_connections()
        workers = [task for c in connections for task in c.running()]
        self._ending = set(connections)
        self._all_ended = asyncio.Event()
        for conn in connections:
            conn.session.send(notice)
            conn.close("shutdown", going_away=True)
        if workers:
            await asyncio.wait(workers, timeout=timeout)
        await self._connections_ended(deadline - loop.time())
        for server in self._servers:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), timeout=0.5)

    async def _connections_ended(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for the connections told goodbye to end; abort
        those still open (a client that neither reads nor answers the close)."""
        if self._ending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(timeout, 0.0)):
                    await self._all_ended.wait()
        for conn in list(self._ending):
            conn.abort()

    @property
    def sockets(self) -> list[socket.socket]:
        """Every listening socket, the other front ends' included."""
        return [sock for server in self._servers for sock in server.sockets]

    @property
    def addresses(self) -> list[str]:
        return [_address(sock) for sock in self.sockets]

    @property
    def addresses_by_kind(self) -> dict[str, str]:
        """Each kind of listener ("line", "line_tls", "irc", "irc_tls", "web") and its
        addresses, space-separated: with port 0 the log says which port is which."""
        found: dict[str, list[str]] = {}
        for kind, server in zip(self._kinds, self._servers, strict=True):
            found.setdefault(kind, []).extend(_address(sock) for sock in server.sockets)
        return {kind: " ".join(addresses) for kind, addresses in found.items()}

    def _add(self, kind: str, server: asyncio.Server) -> None:
        self._servers.append(server)
        self._kinds.append(kind)

    @property
    def port(self) -> int:
        """The first bound port (useful when configured as 0)."""
        return int(self._servers[0].sockets[0].getsockname()[1])

    # -- reload ------------------------------------------------------------------------

    def reconfigure(self, config: Config) -> None:
        """New limits, banner and names for every connection; a renewed certificate."""
        self.config = config
        self._reload_certificate(config)
        self._apply_keepalive(config)

    def _apply_keepalive(self, config: Config) -> None:
        """TCP keepalive on every listening socket (the connections they accept
        inherit it); a reload reaches the connections accepted after it."""
        for sock in self.sockets:
            with contextlib.suppress(OSError):  # not TCP (a passed Unix socket)
                set_keepalive(sock, config.limits.keepalive)

    def server_tls_context(self) -> ssl.SSLContext:
        """The one TLS context of every TLS listener (the line protocol's, IRC's), so
        a reload renews the certificate for all of them."""
        if self.tls_context is None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.config.tls.cert, self.config.tls.key)
            self.tls_context = context
        return self.tls_context

    def _reload_certificate(self, config: Config) -> None:
        """A renewed certificate serves new TLS handshakes without a restart (a reload
        checked it first: see check_certificate)."""
        if self.tls_context is None:
            return
        try:
            self.tls_context.load_cert_chain(config.tls.cert, config.tls.key)
        except (OSError, ssl.SSLError) as exc:
            log.error("certificate reload failed; the old one stays",
                      extra={"fields": {"error": str(exc), "cert": config.tls.cert,
                                        "key": config.tls.key}})

    # -- connections (the ConnectionHost protocol) ----------------------------------------

    def connection_opened(self, conn: Connection) -> None:
        limits = self.config.limits
        # An IPv6 address counts with its network (limits.ipv6_prefix): one host
        # commonly has a whole /64 to open connections from.
        host = conn.peer.rpartition(":")[0]
        key = address_key(host, limits.ipv6_prefix)
        address = self._per_ip.get(key)
        if address is None:
            address = self._per_ip[key] = _Address(key)
        address.connections += 1
        # Its connections share the key's string, and it is what they count against
        # at the end, when the socket may no longer say (TLS), whatever a reload
        # made of limits.ipv6_prefix meanwhile.
        conn.address_key = address.host
        conn.address = address.host if host == address.host else host
        self._open += 1
        self.services.stats.connections_total += 1
        if (self._open > limits.max_connections
                or address.connections > limits.max_connections_per_ip):
            conn.session.send({"type": "error", "code": Code.TOO_MANY_CONNECTIONS.value,
                               "message": "too many connections; try again later."})
            conn.close("too many connections")
            return
        self.services.presence.connected(conn.session)
        conn.session.send(self._banner())

    def connection_closed(self, conn: Connection) -> None:
        address = self._per_ip.get(conn.address_key)
        if address is not None:  # (it was counted: connection_opened named its address)
            self._open -= 1
            address.connections -= 1
            if address.connections <= 0:
                del self._per_ip[conn.address_key]
        self.services.presence.disconnected(conn.session)
        if self._ending:
            self._ending.discard(conn)
            if not self._ending:
                self._all_ended.set()

    @property
    def connection_count(self) -> int:
        return self._open

    def _open_connections(self) -> list[Connection]:
        """This listener's connections (line protocol and IRC) among presence's
        sessions; one refused for the connection limits is closing already."""
        return [conn for session in self.services.presence.sessions
                if isinstance(session, Session) and isinstance(conn := session.out, Connection)
                and conn.host is self]

    def _banner(self) -> dict[str, object]:
        services = self.services
        online, rooms = services.presence.users_online, services.rooms.count
        text = (f"chatd {__version__} on {self.config.server.name}: "
                f"{online} user{'s' * (online != 1)} online, "
                f"{rooms} room{'s' * (rooms != 1)}. Type /help to begin.")
        if self.config.server.motd:
            text += "\n" + self.config.server.motd
        # max_line: the longest line this connection takes (its framer was made with
        # this configuration's), so a client can refuse a longer one before sending it.
        return {"type": "notice", "text": text, "server": self.config.server.name,
                "version": __version__, "max_line": self.config.listen.max_line}

    # -- timeouts ------------------------------------------------------------------------

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
            self.services.stats.storage_pending = self.services.writer.pending
            self.services.stats.sample(loop.time())
            self.sweep_once()

    def sweep_once(self) -> None:
        """Close connections that did not log in in time, or went idle."""
        limits = self.config.limits
        # Both times were taken from coarse_monotonic(), which may be up to COARSE
        # late: a connection is never timed out before its time.
        now = self.clock.monotonic() - COARSE
        for conn in self._open_connections():
            if not conn.session.logged_in:
                if conn.session.anonymous_since < now - limits.login_timeout:
                    self._time_out(conn, Code.NOT_LOGGED_IN, "no login in time; goodbye.")
            elif limits.idle_timeout and conn.last_input < now - limits.idle_timeout:
                self._time_out(conn, Code.IDLE_TIMEOUT, "idle for too long; goodbye.")
        self.services.presence.expire_tokens()
        self.services.protection.sweep()

    def _time_out(self, conn: Connection, code: Code, message: str) -> None:
        conn.session.send({"type": "error", "code": code.value, "message": message})
        conn.close(code.value)


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_certificate(config: Config) -> None:
    """ConfigError naming the files when a TLS listener's certificate or key cannot
    be loaded: a reload is then refused, and the old certificate stays."""
    if not (config.tls.enabled or (config.irc.enabled and config.irc.tls_port is not None)):
        return
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            config.tls.cert, config.tls.key)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"tls.cert, tls.key: cannot load {config.tls.cert} with "
                          f"{config.tls.key}: {reason}") from exc
