"""Bounded load over real loopback sockets: a thousand connections held open,
a client that never reads and one that floods, while well-behaved members of
the room receive every message of a paced sender, in order.

Only generous resource bounds are asserted, never timings; the whole test runs
under one asyncio timeout so it always stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatd.client import ChatClient
from chatd.domain.clock import ManualClock
from tests.helpers import PASSWORD, eventually
from tests.protection import ProtectionClients, room_with, serving

HELD = 1000
BOTS = 50  # of the held connections, logged in with an API token
PACED = 300
FLOOD_MAX = 20000
MIB = 1 << 20


def rss_bytes() -> int:
    """This process's resident set size (the server runs in it too)."""
    status = Path("/proc/self/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1)) * 1024



class Held:
    """Raw connections held open: banner read, then left alone (or logged in)."""

    def __init__(self) -> None:
        self.streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def open(self, port: int, count: int, batch: int = 100) -> None:
        async def one() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            self.streams.append((reader, writer))
            assert await reader.readline()  # the banner

        for start in range(0, count, batch):
            await asyncio.gather(*(one() for _ in range(min(batch, count - start))))

    async def close(self) -> None:
        for _, writer in self.streams:
            writer.close()
        for _, writer in self.streams:
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        self.streams.clear()


async def login_bots(held: Held, token: str) -> None:
    """Log the first BOTS held connections in with a token (no bcrypt) into #lobby."""
    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"/format json\r\n@a /auth {token}\r\n@b /join lobby\r\n".encode())
        finals: dict[str, str] = {}
        while "b" not in finals:
            line = await reader.readline()
            assert line, "a bot's connection closed"
            if line.startswith(b"{"):
                obj = json.loads(line)
                if obj.get("label") in ("a", "b"):
                    finals[obj["label"]] = obj["type"]
        assert finals == {"a": "ok", "b": "ok"}, finals

    await asyncio.gather(*(one(r, w) for r, w in held.streams[:BOTS]))


async def collect_paced(client: ChatClient, sender: str, last: str) -> list[dict[str, Any]]:
    """The paced sender's messages as ``client`` receives them, up to ``last``."""
    got = []
    async for event in client.events():
        if event.get("type") == "message" and event.get("from") == sender:
            got.append(event)
            if event["text"] == last:
                break
    return got


async def paced(sender: ChatClient) -> list[str]:
    sent = []
    for i in range(PACED):
        text = f"paced {i}"
        echo = await sender.say(text)
        assert echo["type"] == "message", echo
        sent.append(text)
    return sent


async def flood(flooder: ChatClient, until: Callable[[], bool]) -> int:
    """Send 1 KB lines in pipelined batches until ``until()`` (or FLOOD_MAX)."""
    filler = "f" * 1000
    count = 0
    while not until() and count < FLOOD_MAX:
        for i in range(100):
            flooder.send_line(f"{count + i} {filler}")
        for _ in range(100):
            event = await flooder.next_event(lambda e: e.get("type") in ("message", "error")
                                             and e.get("from", "flooder") == "flooder")
            assert event["type"] == "message", event
        count += 100
    return count


async def test_a_thousand_connections_a_flood_and_a_slow_reader(
        db_path: Path, clock: ManualClock) -> None:
    async with asyncio.timeout(90), serving(
            db_path, clock, limits__max_connections_per_ip=2000,
            limits__output_buffer=65536) as (server, clients):
        baseline = rss_bytes()
        await run_the_load(server.port, clients)
        await clients.close()
        await eventually(lambda: server.connection_count == 0)
        # The server still serves after all that.
        again = await clients.user("alice")
        assert (await again.command("/ping"))["type"] == "ok"
        growth = rss_bytes() - baseline
        assert growth < 300 * MIB, f"RSS grew by {growth / MIB:.0f} MiB"


async def run_the_load(port: int, clients: ProtectionClients) -> None:
    server = clients.server
    members = await room_with(clients, "sender", "w1", "w2", "w3", "flooder")
    sender, w1, w2, w3, flooder = members
    await sender.command("/create lobby")
    await sender.command("/switch general")
    token = (await sender.command("/token create bots"))["token"]
    held = Held()
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        await held.open(port, HELD)
        await login_bots(held, token)
        assert server.connection_count == HELD + len(members)
        # The slow reader: logs in, joins, and never reads a byte.
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(slow, ("127.0.0.1", port))
        await loop.sock_sendall(slow, f"/register slow {PASSWORD}\r\n/join general\r\n".encode())
        room = server.services.rooms.find("general")
        assert room is not None
        await eventually(lambda: len(room.members) == 6)
        slow_user = server.services.accounts.find("slow")
        assert slow_user is not None and slow_user.online
        last = f"paced {PACED - 1}"
        readers = [asyncio.ensure_future(collect_paced(c, "sender", last)) for c in (w1, w2, w3)]
        sent, flooded = await asyncio.gather(
            paced(sender), flood(flooder, lambda: not slow_user.online))
        assert not slow_user.online, f"the slow reader survived {flooded} flood lines"
        for got in await asyncio.gather(*readers):
            assert [m["text"] for m in got] == sent
            ids = [m["id"] for m in got]
            assert all(a < b for a, b in itertools.pairwise(ids))
        # The held connections are all still there and answer.
        assert server.connection_count == HELD + len(members)
        reader, writer = held.streams[-1]
        writer.write(b"/ping\r\n")
        assert await asyncio.wait_for(reader.readline(), 10)
    finally:
        slow.close()
        await held.close()
