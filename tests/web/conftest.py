"""Fixtures: a chatd server with its web listener (and IRC's, for /irc)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatd.domain.clock import ManualClock
from tests.helpers import ChatServer, start_server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "server(**overrides): configuration of the test server "
                            "(section__key=value)")


@pytest.fixture
async def server(db_path: Path, clock: ManualClock, request: pytest.FixtureRequest,
                 storage_overrides: dict[str, Any]) -> AsyncIterator[ChatServer]:
    marker = request.node.get_closest_marker("server")
    overrides: dict[str, Any] = dict(marker.kwargs) if marker else {}
    settings: dict[str, Any] = {"web__enabled": True, "web__port": 0, "irc__enabled": True,
                                "irc__port": 0, **storage_overrides, **overrides}
    srv = await start_server(db_path, clock=clock, **settings)
    yield srv
    await srv.stop()
