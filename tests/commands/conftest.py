"""The fast level for command tests: whole conversations, in memory.

Each test gets a real server (the real dispatcher, command table, domain
services and a SQLite file in the test's directory, on the manual clock) that
listens as usual but is spoken to through in-memory connections: a
:class:`MemoryTransport` stands where the socket would be, so a line goes
through the real :class:`chatd.net.connection.Connection` (framing, flush,
the session's rendering) without a socket or a client library. A
conversation takes milliseconds.

Which level to use:

- here (``tests/commands``): what one or a few commands say and do, in text
  or JSON, to the sender and to the others in a room: the wire output of a
  command, its errors and labels, its effect on the domain.
- the real-socket tests (``tests/protocol``, ``tests/irc``, ``tests/operations``
  and the others, through ``tests/helpers.py``): anything about the socket
  itself or the process around it (back-pressure, slow readers, EOF, TLS,
  timeouts, reload, shutdown, the IRC listener, the clients in ``chatd.client``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatd.domain.clock import ManualClock
from chatd.net.connection import Connection
from tests.helpers import PASSWORD, ChatServer, start_server


class MemoryTransport(asyncio.Transport):
    """Where a connection writes: a byte buffer, never full."""

    def __init__(self, peer: str) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self._peer = (peer, 50000)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._peer if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Peer:
    """One client on an in-memory connection: send lines, read what came back."""

    def __init__(self, server: ChatServer, address: str) -> None:
        self.transport = MemoryTransport(address)
        # The connection host of the real listeners: limits, clock, dispatch, flush.
        self.connection = Connection(server.listeners)
        self.connection.connection_made(self.transport)
        self._read = 0

    async def send(self, line: str) -> None:
        """Send one line and wait until it is answered (and every output flushed)."""
        self.connection.data_received(f"{line}\r\n".encode())
        await settle(self.connection)

    def lines(self) -> list[str]:
        """What arrived since the last call, line by line."""
        data = bytes(self.transport.written[self._read:])
        self._read = len(self.transport.written)
        return data.decode().splitlines()

    async def say(self, line: str) -> list[str]:
        """Send ``line``; the lines that came back (and any before, not yet read)."""
        await self.send(line)
        return self.lines()

    def records(self) -> list[dict[str, Any]]:
        """What arrived since the last call, as JSON records (in JSON format)."""
        return [json.loads(line) for line in self.lines()]

    async def ask(self, line: str) -> list[dict[str, Any]]:
        """Send ``line`` in JSON format; the records that came back."""
        await self.send(line)
        return self.records()

    async def final(self, line: str) -> dict[str, Any]:
        """Send ``line`` in JSON format; its final ``ok`` or ``error`` record."""
        finals = [r for r in await self.ask(line) if r["type"] in ("ok", "error")]
        assert len(finals) == 1, finals
        return finals[0]

    def close(self) -> None:
        self.connection.connection_lost(None)


async def settle(conn: Connection) -> None:
    """Wait until ``conn`` has no line waiting or running, then for the flush."""
    while conn.worker is not None:
        await conn.worker
    # The flush is scheduled for the end of this turn of the loop (the servers
    # here have no flush delay); deliveries to other connections were queued
    # in the same turn.
    await asyncio.sleep(0)
    await asyncio.sleep(0)


class Chat:
    """Opens in-memory clients against one server."""

    def __init__(self, server: ChatServer, clock: ManualClock) -> None:
        self.server = server
        self.clock = clock
        self._peers: list[Peer] = []

    async def anonymous(self) -> Peer:
        """A fresh connection, its banner read."""
        peer = Peer(self.server, f"10.0.0.{len(self._peers) + 1}")
        self._peers.append(peer)
        await settle(peer.connection)
        peer.lines()
        return peer

    async def user(self, name: str, *, json_format: bool = False) -> Peer:
        """A connection logged in as ``name`` (registered the first time), its
        welcome read; in JSON format when asked."""
        peer = await self.anonymous()
        verb = "login" if self.server.services.accounts.find(name) else "register"
        reply = await peer.say(f"/{verb} {name} {PASSWORD}")
        assert reply and reply[-1].startswith("* "), reply
        if json_format:
            await peer.say("/format json")
        return peer

    def close(self) -> None:
        for peer in self._peers:
            peer.close()


@pytest.fixture
async def chat(tmp_path: Path, storage_overrides: dict[str, Any]) -> AsyncIterator[Chat]:
    clock = ManualClock()
    # Output at the end of each loop turn (no listen.flush_delay, whatever the
    # default): a conversation here settles in two turns.
    server = await start_server(tmp_path / "chatd.db", clock=clock, listen__flush_delay=0,
                                **storage_overrides)
    opened = Chat(server, clock)
    yield opened
    opened.close()
    await server.stop()
