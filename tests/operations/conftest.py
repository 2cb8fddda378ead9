"""Fixtures shared by the console's tests: a daemon in this process with its control
socket, and clients of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatd.app.app import App
from tests.helpers import Clients
from tests.operations import running_daemon


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[App]:
    async with running_daemon(tmp_path) as running:
        yield running


@pytest.fixture
async def clients(daemon: App) -> AsyncIterator[Clients]:
    opened = Clients(daemon)
    yield opened
    await opened.close()
