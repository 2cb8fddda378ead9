"""Three nodes share one PostgreSQL database and one Redis: rooms, order and
governance across them (docs/CLUSTER.md). The nodes are in-process servers on
free loopback ports; the services are the tests' own (tests/services.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis

from chatd.app.app import App
from chatd.client import ChatClient
from chatd.client.api import ClientError
from tests.helpers import PASSWORD, start_server
from tests.services import RedisServer

pytestmark = pytest.mark.asyncio

USERS = ("ann", "bob", "cat", "dan")


@pytest.fixture
async def nodes(tmp_path: Path, postgres_url: str,
                redis_server: RedisServer) -> AsyncIterator[list[App]]:
    """Three nodes; the accounts are made on the first before the others start."""
    redis.Redis.from_url(redis_server.url).flushall()
    started: list[App] = []

    async def node(n: int) -> App:
        app = await start_server(tmp_path / f"n{n}.db", cluster__enabled=True,
                                 cluster__node_id=f"n{n}", cluster__postgres=postgres_url,
                                 cluster__redis=redis_server.url)
        started.append(app)
        return app

    first = await node(1)
    for name in USERS:
        client = await ChatClient.connect("127.0.0.1", first.port)
        await client.command(f"/register {name} {PASSWORD}")
        await client.close()
    await node(2)
    await node(3)
    yield started
    for app in started:
        await app.stop()


async def login(app: App, name: str) -> ChatClient:
    client = await ChatClient.connect("127.0.0.1", app.port)
    await client.command(f"/login {name} {PASSWORD}")
    return client


async def known_everywhere(nodes: list[App], room: str) -> None:
    """A room created on one node reaches the others through the log (bounded wait)."""
    async with asyncio.timeout(10):
        while any(app.services.rooms.find(room) is None for app in nodes):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def messages(client: ChatClient, count: int) -> list[dict[str, Any]]:
    """The next ``count`` room messages ``client`` receives (bounded wait)."""
    got = []
    while len(got) < count:
        event = await client.next_event(lambda e: e.get("type") == "message", timeout=10)
        got.append(event)
    return got


async def test_messages_reach_every_node_in_one_order(nodes: list[App]) -> None:
    ann, bob, cat = [await login(app, name) for app, name in zip(nodes, USERS, strict=False)]
    await ann.command("/create lobby")
    await known_everywhere(nodes, "lobby")
    await bob.command("/join lobby")
    await cat.command("/join lobby")
    for i in range(10):
        for n, sender in enumerate((ann, bob, cat)):
            sender.send_line(f"/say lobby m{n}.{i}")
    seen = [await messages(c, 30) for c in (ann, bob, cat)]
    orders = [[m["id"] for m in got] for got in seen]
    assert orders[0] == orders[1] == orders[2]
    assert orders[0] == sorted(set(orders[0]))  # unique, strictly increasing
    assert len({m["text"] for m in seen[0]}) == 30
    for client in (ann, bob, cat):
        await client.close()


async def test_two_admins_kicking_one_member_on_two_nodes(nodes: list[App]) -> None:
    ann, bob, cat = [await login(app, name) for app, name in zip(nodes, USERS, strict=False)]
    await ann.command("/create hall")
    await known_everywhere(nodes, "hall")
    await bob.command("/join hall")
    await cat.command("/join hall")
    await ann.command("/promote bob hall")
    replies = await asyncio.gather(ann.command("/kick cat hall", check=False),
                                   bob.command("/kick cat hall", check=False))
    assert sorted(r.get("type") for r in replies) == ["error", "ok"]
    audit = await nodes[0].storage.list_audit(50, room="hall")
    assert [a.action for a in audit].count("kick") == 1
    with pytest.raises(ClientError):
        await cat.command("/say hall still here?")
    for client in (ann, bob, cat):
        await client.close()


async def test_last_two_members_leaving_at_once_end_the_room_once(nodes: list[App]) -> None:
    ann, bob = await login(nodes[0], "ann"), await login(nodes[1], "bob")
    await ann.command("/create den")
    await known_everywhere(nodes, "den")
    await bob.command("/join den")
    await asyncio.gather(ann.command("/leave den", check=False),
                         bob.command("/leave den", check=False))
    audit = await nodes[2].storage.list_audit(50, room="den")
    assert [a.action for a in audit].count("terminate") == 1
    await asyncio.sleep(0)
    for app in nodes:
        for _ in range(50):
            if app.services.rooms.find("den") is None:
                break
            await asyncio.sleep(0.05)
        assert app.services.rooms.find("den") is None
    for client in (ann, bob):
        await client.close()
