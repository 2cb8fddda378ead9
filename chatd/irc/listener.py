"""The IRC listener: binds ``irc.port`` (and ``irc.tls_port``) for a connection host.

Connections it accepts get the IRC front end (:mod:`chatd.irc.front`) and
are counted, limited, timed out and shut down by their host (the
application's listeners, through :class:`~chatd.net.connection.ConnectionHost`)
like any other; it never imports the application.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

from chatd.irc.connection import IrcConnection

if TYPE_CHECKING:
    from collections.abc import Callable

    from chatd.irc.front import IrcFront
    from chatd.net.connection import ConnectionHost


class IrcListener:
    """IRC's sockets, for one connection host and one IRC front end."""

    def __init__(self, host: ConnectionHost, front: IrcFront,
                 tls: Callable[[], ssl.SSLContext]) -> None:
        self.host = host
        self.front = front
        self._tls = tls
        self._servers: list[asyncio.Server] = []

    async def start(self) -> list[asyncio.Server]:
        """Bind the plain (and TLS) IRC ports; the host closes them on stop."""
        loop = asyncio.get_running_loop()
        config = self.host.config
        irc = config.irc
        self._servers.append(await loop.create_server(
            self._connection, irc.host, irc.port, reuse_address=True, backlog=1024))
        if irc.tls_port is not None:
            # The line protocol's context: a reload renews the certificate for both.
            self._servers.append(await loop.create_server(
                self._connection, irc.host, irc.tls_port, ssl=self._tls(),
                reuse_address=True, backlog=1024))
        return list(self._servers)

    def _connection(self) -> IrcConnection:
        return IrcConnection(self.host, self.front)

    @property
    def port(self) -> int:
        """The plain IRC port bound (useful when configured as 0)."""
        return _port_of(self._servers[0])

    @property
    def tls_port(self) -> int | None:
        return _port_of(self._servers[1]) if len(self._servers) > 1 else None


def _port_of(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])
