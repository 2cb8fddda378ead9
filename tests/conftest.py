"""Fixtures: a real chatd server per test, on loopback, with its own database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatd.domain.clock import ManualClock
from tests.helpers import ChatServer, Clients, start_server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "chatd.db"


@pytest.fixture
async def server(db_path: Path, clock: ManualClock) -> AsyncIterator[ChatServer]:
    srv = await start_server(db_path, clock=clock)
    yield srv
    await srv.stop()


@pytest.fixture
async def clients(server: ChatServer) -> AsyncIterator[Clients]:
    opened = Clients(server)
    yield opened
    await opened.close()
