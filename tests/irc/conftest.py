"""Fixtures: a chatd server with its IRC listener, and IRC clients for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from chatd.domain.clock import ManualClock
from tests.helpers import PASSWORD, ChatServer, start_server
from tests.irc.helpers import IrcClient, login


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "server(**overrides): configuration of the test server "
                            "(section__key=value)")


@pytest.fixture
async def server(db_path: Path, clock: ManualClock, request: pytest.FixtureRequest,
                 storage_overrides: dict[str, Any]) -> AsyncIterator[ChatServer]:
    marker = request.node.get_closest_marker("server")
    overrides: dict[str, Any] = dict(marker.kwargs) if marker else {}
    srv = await start_server(db_path, clock=clock, irc__enabled=True, irc__port=0,
                             **storage_overrides, **overrides)
    yield srv
    await srv.stop()


IrcFactory = Callable[..., Awaitable[IrcClient]]


@pytest.fixture
async def irc(server: ChatServer) -> AsyncIterator[IrcFactory]:
    """``await irc("bob")``: bob's account (made if needed) logged in over IRC;
    ``await irc()``: a connection that has not registered."""
    opened: list[IrcClient] = []

    async def connect(name: str | None = None, **kwargs: Any) -> IrcClient:
        assert server.irc is not None
        if name is None:
            client = await IrcClient.connect(server.irc.port)
        else:
            if server.services.accounts.find(name) is None:
                await server.services.accounts.create(name, PASSWORD)
            client = await login(server.irc.port, name, **kwargs)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        await client.close()
