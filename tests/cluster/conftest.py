"""Nodes of one cluster in this process, on the tests' own PostgreSQL and Redis;
the cluster tests' marker: ``-m cluster`` selects them, ``-m "not cluster"``
leaves them out (they start PostgreSQL, Redis and node processes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

from chatd.app.app import App
from chatd.client import ChatClient
from tests.helpers import PASSWORD, start_server
from tests.services import RedisServer

StartNode = Callable[..., Awaitable[App]]


@pytest.fixture
async def shared(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    """A client of the tests' Redis, emptied first."""
    client = redis.asyncio.Redis.from_url(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: starts cluster nodes on PostgreSQL and Redis")


@pytest.fixture
async def start_node(tmp_path: Path, postgres_url: str,
                     redis_server: RedisServer) -> AsyncIterator[StartNode]:
    """Starts node ``n<number>`` of a cluster on an empty Redis (``overrides`` as
    ``section__key``); every node started is stopped at the end."""
    with redis.Redis.from_url(redis_server.url) as fresh:
        fresh.flushall()
    started: list[App] = []

    async def start(number: int, **overrides: Any) -> App:
        app = await start_server(tmp_path / f"n{number}.db", cluster__enabled=True,
                                 cluster__node_id=f"n{number}", cluster__postgres=postgres_url,
                                 cluster__redis=redis_server.url, **overrides)
        started.append(app)
        return app

    yield start
    # Each node is stopped whatever became of the one before: a node left running
    # would leave its connections to the garbage collector, whose warnings then
    # fail whichever test runs at that moment.
    failures = []
    for app in started:
        try:
            await app.stop()
        except Exception as exc:  # (raised below, once all are stopped)
            failures.append(exc)
    if failures:
        raise failures[0]


async def register(app: App, *names: str) -> None:
    for name in names:
        client = await ChatClient.connect("127.0.0.1", app.port)
        await client.command(f"/register {name} {PASSWORD}")
        await client.close()


async def login(app: App, name: str) -> ChatClient:
    client = await ChatClient.connect("127.0.0.1", app.port)
    await client.command(f"/login {name} {PASSWORD}")
    return client
