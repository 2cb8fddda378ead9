"""Fixtures of the end-to-end tests: chatd-client sessions, each with its own keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.crypto.sessions import People
from tests.helpers import ChatServer


@pytest.fixture
async def people(server: ChatServer, tmp_path: Path) -> AsyncIterator[People]:
    crowd = People(server, tmp_path / "homes")
    yield crowd
    await crowd.close()
