"""The IRC listener: binds ``irc.port`` (and ``irc.tls_port``) for a connection host.

It owns what is IRC-wide (the command table and dispatcher, the renderer,
the guests) and nothing of the domain: connections it accepts are counted,
limited, timed out and shut down by their host (the application's server,
through :class:`~chatd.net.connection.ConnectionHost`) like any other; it
never imports that server.
"""

from __future__ import annotations

import asyncio
import importlib
import ssl
from typing import TYPE_CHECKING, Final

from chatd.irc.commands import IRC_COMMANDS, IrcCommandTable, IrcDispatcher
from chatd.irc.connection import IrcConnection
from chatd.irc.guests import Guests
from chatd.irc.render import IrcRenderer

if TYPE_CHECKING:
    from chatd.net.connection import ConnectionHost
    from chatd.protocol.services import Services

# The modules that declare IRC commands (importing one registers its commands).
MODULES: Final = ("registration", "auth", "welcome", "channels", "modes", "queries",
                  "messages")


def load() -> IrcCommandTable:
    """Import every IRC command module and return the table."""
    for name in MODULES:
        importlib.import_module(f"chatd.irc.{name}")
    return IRC_COMMANDS


class IrcListener:
    """IRC's sockets and shared state for one connection host."""

    def __init__(self, host: ConnectionHost, services: Services) -> None:
        self.host = host
        self.services = services
        self.renderer = IrcRenderer(lambda: host.config.irc.server_name,
                                    self.services.clock.time, self._is_member)
        self.guests = Guests(self.services)
        self.dispatcher = IrcDispatcher(self, load())
        self._servers: list[asyncio.Server] = []

    async def start(self) -> list[asyncio.Server]:
        """Bind the plain (and TLS) IRC ports; the host closes them on stop."""
        loop = asyncio.get_running_loop()
        config = self.host.config
        irc = config.irc
        self._servers.append(await loop.create_server(
            self._connection, irc.host, irc.port, reuse_address=True, backlog=1024))
        if irc.tls_port is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(config.tls.cert, config.tls.key)
            self._servers.append(await loop.create_server(
                self._connection, irc.host, irc.tls_port, ssl=context, reuse_address=True,
                backlog=1024))
        return list(self._servers)

    def _connection(self) -> IrcConnection:
        return IrcConnection(self.host, self)

    @property
    def port(self) -> int:
        """The plain IRC port bound (useful when configured as 0)."""
        return _port_of(self._servers[0])

    @property
    def tls_port(self) -> int | None:
        return _port_of(self._servers[1]) if len(self._servers) > 1 else None

    def _is_member(self, room_name: str, user_name: str) -> bool:
        room = self.services.rooms.find(room_name)
        user = self.services.accounts.find(user_name) or self.guests.find(user_name)
        return room is not None and user is not None and room.is_member(user.id)


def _port_of(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])
