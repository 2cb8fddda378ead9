"""TCP keepalive: set once on the listening sockets, inherited by every connection."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path

from chatd.net.connection import set_keepalive
from tests.helpers import start_server


def probes(sock: socket.socket) -> tuple[int, int]:
    """Whether keepalive is on, and after how many idle seconds it probes."""
    return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE))


def test_an_accepted_socket_inherits_the_listeners_keepalive() -> None:
    # What the daemon relies on instead of a call per connection.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        set_keepalive(listener, True)
        with socket.create_connection(listener.getsockname()) as client:
            accepted, _ = listener.accept()
            with accepted:
                assert probes(accepted) == (1, 60)
                assert probes(client)[0] == 0  # the client's side is its own


async def test_the_listeners_keepalive_follows_the_configuration(tmp_path: Path) -> None:
    server = await start_server(tmp_path / "chatd.db", irc__enabled=True, irc__port=0)
    try:
        assert len(server.listeners.sockets) >= 2  # the line protocol's and IRC's
        assert {probes(s) for s in server.listeners.sockets} == {(1, 60)}
        limits = dataclasses.replace(server.config.limits, keepalive=False)
        server.apply(dataclasses.replace(server.config, limits=limits))
        assert {probes(s)[0] for s in server.listeners.sockets} == {0}
        # A connection accepted now inherits the change (the daemon still serves it).
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert (await reader.readline()).startswith(b"* chatd")
        writer.close()
    finally:
        await server.stop()
