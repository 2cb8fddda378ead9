"""Shared test helpers: a real server on 127.0.0.1 port 0 and clients for it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from chatd.app.app import App
from chatd.app.compose import build_app
from chatd.client import ChatClient, LineClient
from chatd.config import Config, load_config
from chatd.domain.clock import Clock, ManualClock
from chatd.domain.room import Room
from chatd.domain.transactions import LocalTransactions

# What the tests start: chatd's App without the process's parts (no control
# socket, backups, metrics or systemd), under the name the tests have always used.
ChatServer = App

PASSWORD = "secret-pw"

# bcrypt at its minimum cost keeps tests fast; generous limits keep them
# independent of rate limiting unless a test configures it.
TEST_OVERRIDES: dict[str, Any] = {
    "listen.host": "127.0.0.1",
    "listen.port": 0,
    "accounts.bcrypt_cost": 4,
    "limits.message_rate": 10000,
    "limits.message_burst": 10000,
    "limits.command_rate": 10000,
    "limits.command_burst": 10000,
    # Every test registers its accounts from one address, and some create many rooms.
    "limits.registrations": 0,
    "limits.room_creations": 0,
    "storage.flush_interval": 0.02,
}


def test_config(db_path: Path, **overrides: Any) -> Config:
    dotted = {key.replace("__", "."): value for key, value in overrides.items()}
    return load_config(None, {**TEST_OVERRIDES, "storage.path": str(db_path), **dotted})


async def start_server(db_path: Path, clock: Clock | None = None, **overrides: Any) -> ChatServer:
    """Start a real server; ``overrides`` use ``section__key=value``."""
    server = build_app(test_config(db_path, **overrides), clock=clock or ManualClock())
    await server.start()
    return server


class Clients:
    """Opens clients against one server and closes them all at the end."""

    def __init__(self, server: ChatServer) -> None:
        self.server = server
        self._open: list[ChatClient | LineClient] = []

    async def raw(self) -> LineClient:
        client = await LineClient.connect("127.0.0.1", self.server.port)
        self._open.append(client)
        return client

    async def anonymous(self) -> ChatClient:
        client = await ChatClient.connect("127.0.0.1", self.server.port)
        self._open.append(client)
        return client

    async def user(self, name: str, password: str = PASSWORD) -> ChatClient:
        """A connection logged in as ``name`` (registering it the first time)."""
        client = await self.anonymous()
        if self.server.services.accounts.find(name) is None:
            await client.command(f"/register {name} {password}")
        else:
            await client.command(f"/login {name} {password}")
        return client

    async def close(self) -> None:
        for client in self._open:
            await client.close()
        self._open.clear()


async def error_of(client: ChatClient, line: str) -> dict[str, Any]:
    """The final ``error`` line of a command that must fail."""
    reply = await client.command(line, check=False)
    assert reply.final["type"] == "error", reply.final
    return reply.final


async def settle(client: ChatClient) -> list[dict[str, Any]]:
    """Everything the connection received (and nobody took) before a /ping round trip."""
    await client.command("/ping")
    return client.pending_events()


def messages(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``message`` lines among ``events``."""
    return [e for e in events if e.get("type") == "message"]


async def room_with(clients: Clients, owner: str, *members: str,
                    room: str = "general") -> list[ChatClient]:
    """``owner`` creates ``room`` and each of ``members`` joins it; all are returned."""
    first = await clients.user(owner)
    await first.command(f"/create {room}")
    joined = [first]
    for name in members:
        client = await clients.user(name)
        await client.command(f"/join {room}")
        joined.append(client)
    for client in joined:
        await settle(client)  # drop the join events
    return joined


async def text_client(clients: Clients, name: str | None = None) -> LineClient:
    """A text-mode connection with its banner read, logged in as ``name`` if given
    (registering it if new)."""
    client = await clients.raw()
    assert (await client.line()).startswith("* chatd")
    if name is not None:
        verb = "login" if clients.server.services.accounts.find(name) else "register"
        await text_run(client, f"/{verb} {name} {PASSWORD}")
    return client


async def text_run(client: LineClient, line: str | bytes | None) -> list[str]:
    """Send ``line`` (if any); return the lines received up to a labelled /ping barrier."""
    if line is not None:
        client.send(line)
    client.send("@sync /ping")
    return (await client.until(lambda s: s.startswith("@sync ")))[:-1]


async def eventually(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until ``condition()`` holds (it depends on the server catching up)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polling server state; no event to wait on
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def holding(server: ChatServer, room: Room
                  ) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
    """Hold ``room``'s lock while commands line up behind it; yields a wait until
    that many of them are queued. On leaving, they run in the order they came."""
    transactions = server.services.transactions
    assert isinstance(transactions, LocalTransactions)
    async with transactions.room(room):
        yield lambda waiters: queued_on(transactions, room, waiters)


async def queued_on(transactions: LocalTransactions, room: Room, waiters: int) -> None:
    """Wait until ``waiters`` tasks queue for a decision about ``room`` (a bounded
    poll, no sleep): a test holds the room's lock while commands line up."""
    for _ in range(10_000):
        if transactions.queued(room) >= waiters:  # first come, first served
            return
        await asyncio.sleep(0)
    raise AssertionError(f"fewer than {waiters} waiting")
