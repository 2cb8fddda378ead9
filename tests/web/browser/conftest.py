"""Real-browser tests: Debian's chromium driven by Playwright, against a real chatd.

Playwright's own browsers are never downloaded: the tests drive the system's
``chromium`` (installed by scripts/test) through ``executable_path``. Without
it the tests are skipped locally and fail under CI (``CI=true``). Screenshots
of the main screens go to ``test-output/browser/`` (git-ignored), whose path
is printed at the end of the run.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright

from chatd.client import ChatClient
from chatd.domain.clock import ManualClock
from tests.helpers import PASSWORD, ChatServer, start_server
from tests.services import unavailable

SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-output" / "browser"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# Every wait in a page is bounded by this (milliseconds).
PAGE_TIMEOUT_MS = 15_000


def chromium_path() -> str:
    found = shutil.which("chromium")
    if found is None:
        unavailable("chromium (Debian package: chromium)")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Daemon:
    """A chatd on fixed ports (its web listener and TCP), so it can restart under
    the pages that use it; the same database each time."""

    def __init__(self, db_path: Path, clock: ManualClock) -> None:
        self.db_path = db_path
        self.clock = clock
        self.web_port = free_port()
        self.tcp_port = free_port()
        self.server: ChatServer | None = None
        self._clients: list[ChatClient] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    async def start(self, web: bool = True, **overrides: Any) -> ChatServer:
        """Start (or start again); ``overrides`` as start_server's (``listen__max_line``...)."""
        self.server = await start_server(self.db_path, clock=self.clock, web__enabled=web,
                                         web__port=self.web_port, listen__port=self.tcp_port,
                                         **overrides)
        return self.server

    async def stop(self) -> None:
        for client in self._clients:
            await client.close()
        self._clients.clear()
        if self.server is not None:
            await self.server.stop()
            self.server = None

    async def tcp_user(self, name: str) -> ChatClient:
        """A line-protocol user over TCP (registered the first time)."""
        assert self.server is not None
        client = await ChatClient.connect("127.0.0.1", self.tcp_port)
        self._clients.append(client)
        verb = "login" if self.server.services.accounts.find(name) else "register"
        await client.command(f"/{verb} {name} {PASSWORD}")
        return client

    async def admin_account(self, name: str) -> None:
        assert self.server is not None
        await self.server.services.accounts.create(name, PASSWORD, is_admin=True)


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    running = Daemon(tmp_path / "chatd.db", ManualClock())
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Any]:
    """A factory of browser users: each a chromium of its own, with a fresh profile."""
    executable = chromium_path()

    async with async_playwright() as playwright:
        contexts: list[Any] = []

        async def open_page(name: str) -> Any:
            context = await playwright.chromium.launch_persistent_context(
                str(tmp_path / f"profile-{name}"), executable_path=executable,
                args=CHROMIUM_ARGS, headless=True, viewport={"width": 1200, "height": 760})
            context.set_default_timeout(PAGE_TIMEOUT_MS)
            contexts.append(context)
            page = context.pages[0] if context.pages else await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.script_errors = errors
            return page

        yield open_page
        for context in contexts:
            await context.close()


async def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SCREENSHOTS.is_dir() and any(SCREENSHOTS.iterdir()):
        terminalreporter.write_line(f"browser screenshots: {SCREENSHOTS}")
