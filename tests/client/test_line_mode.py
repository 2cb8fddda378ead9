"""chatd-client's line mode reconnecting with its resume token, against real servers.

The program's ``main()`` runs in a thread of this process (stdin a pipe the
test types into, stdout a buffer it reads), as in tests/crypto/test_client_app.py,
whose harness this borrows; the servers run in the test's own event loop.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from chatd.client.tui import app
from chatd.domain.clock import ManualClock
from tests.client.helpers import change_password_offline, quick_backoff, said, until
from tests.crypto.test_client_app import Terminal, argv
from tests.helpers import PASSWORD, ChatServer, Clients, start_server

StartTerminal = Callable[..., Terminal]


@pytest.fixture
async def terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                   ) -> AsyncIterator[StartTerminal]:
    """One line-mode client at a time, logging in with a password, reconnecting quickly."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHATD_PASSWORD", PASSWORD)
    monkeypatch.delenv("CHATD_TOKEN", raising=False)
    monkeypatch.setattr(app, "reconnect_backoff", quick_backoff)
    opened: list[Terminal] = []

    def start(port: int, user: str, *more: str) -> Terminal:
        opened.append(Terminal(monkeypatch, argv(port, user, "--config-dir",
                                                 str(tmp_path / "keys"), *more)))
        return opened[-1]

    yield start
    for term in opened:
        await term.close()
    gc.collect()  # an unclosed stdin transport would warn when collected: here, not later


async def account(server: ChatServer, name: str, *rooms: str) -> None:
    """An account in ``rooms`` (made if need be), logged out again."""
    made = Clients(server)
    client = await made.user(name)
    for room in rooms:
        await client.command(f"/join {room}", check=False)
        await client.command(f"/create {room}", check=False)
    await made.close()


async def test_the_line_mode_comes_back_with_its_resume_token(
        tmp_path: Path, terminal: StartTerminal) -> None:
    db = tmp_path / "restart.db"
    first = await start_server(db, clock=ManualClock())
    port = first.port
    await account(first, "bob", "general", "dev")
    await account(first, "alice")
    alice = terminal(port, "alice")
    await alice.shows("Welcome back, alice")
    await alice.type("/join general", "/join dev")  # two rooms: #dev is the current one
    await alice.shows("You joined #dev")
    await first.stop()
    await alice.shows("reconnecting...")
    await alice.type("typed while away")  # waits for the connection
    change_password_offline(db, "alice")  # only the resume token can log alice in now
    second = await start_server(db, clock=ManualClock(), listen__port=port)
    try:
        await alice.shows("reconnected.")
        check = Clients(second)
        anonymous = await check.anonymous()
        refused = await anonymous.command(f"/login alice {PASSWORD}", check=False)
        assert refused.final["code"] == "auth-failed"  # so alice came back without it
        bob = await check.user("bob")
        await until(lambda: "<alice> typed while away" in alice.out, "the line sent late")
        history = (await bob.command("/history dev"))["messages"]
        assert history[-1]["text"] == "typed while away"
        await bob.command("/say dev welcome back")
        await alice.shows("<bob> welcome back")
        await alice.type("still in dev")  # the room that was current stays current
        assert (await said(bob, "still in dev"))["room"] == "dev"
        alice.end_input()
        assert await alice.exit_status() == 0
        await check.close()
    finally:
        await second.stop()


async def test_a_refused_login_ends_the_line_mode(
        server: ChatServer, clients: Clients, terminal: StartTerminal) -> None:
    await account(server, "alice")
    alice = terminal(server.port, "alice")
    await alice.shows("Welcome back, alice")
    elsewhere = await clients.user("alice")
    # Closes the client's connection and revokes its resume token: the password
    # it falls back to is the old one.
    await elsewhere.command(f"/passwd {PASSWORD} another-password")
    await alice.shows("reconnecting...")
    assert await alice.exit_status() == 0
    assert "auth-failed: wrong name or password." in alice.out
    assert "reconnected." not in alice.out


async def test_the_end_of_input_while_reconnecting_ends_the_client(
        db_path: Path, terminal: StartTerminal) -> None:
    server = await start_server(db_path)
    await account(server, "alice")
    alice = terminal(server.port, "alice")
    await alice.shows("Welcome back, alice")
    await server.stop()  # and no server comes back
    await alice.shows("reconnecting...")
    alice.end_input()
    assert await alice.exit_status() == 0

