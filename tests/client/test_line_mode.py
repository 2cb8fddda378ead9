"""chatd-client's line mode reconnecting with its resume token, against real servers.

The program's ``main()`` runs in a thread of this process (stdin a pipe the
test types into, stdout a buffer it reads), as in tests/crypto/test_client_app.py,
whose harness this borrows; the servers run in the test's own event loop.
"""

from __future__ import annotations

import gc
import getpass
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import pytest

from chatd.client import ChatClient
from chatd.client.tui import app
from chatd.client.tui.catchup import Catchup
from chatd.client.tui.tables import local_time
from chatd.domain.clock import ManualClock
from tests.client.helpers import (
    change_password_offline,
    fixed_backoff,
    quick_backoff,
    said,
    until,
)
from tests.crypto.test_client_app import Terminal, argv
from tests.helpers import PASSWORD, ChatServer, Clients, start_server
from tests.relay import Relay

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



async def test_the_line_mode_shows_what_was_said_while_it_was_away(
        server: ChatServer, clients: Clients, terminal: StartTerminal,
        monkeypatch: pytest.MonkeyPatch) -> None:
    await account(server, "alice", "general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    await bob.command("/say general before the cut")
    # Long enough between attempts for bob to speak while alice is away.
    monkeypatch.setattr(app, "reconnect_backoff", lambda: fixed_backoff(0.5))
    async with Relay(server.port, cut_at=b"cut-here") as relay:
        alice = terminal(relay.port, "alice")
        await alice.shows("Welcome back, alice")
        await alice.type("cut-here")  # the relay drops the connection at this line
        await alice.shows("reconnecting...")
        await bob.command("/say general said while alice was away")
        await bob.command("/msg alice and a direct one")
        await alice.shows("reconnected.")
        await alice.shows("<bob> said while alice was away")
        await alice.shows("<bob -> alice> and a direct one")
        await bob.command("/say general and live again")
        await alice.shows("<bob> and live again")
        assert alice.out.count("said while alice was away") == 1, alice.out
        assert alice.out.count("and a direct one") == 1, alice.out
        assert "before the cut" not in alice.out  # seen before: not replayed
        assert "may be missing" not in alice.out


async def test_the_line_mode_misses_nothing_in_rooms_silent_before_the_cut(
        server: ChatServer, clients: Clients, terminal: StartTerminal,
        monkeypatch: pytest.MonkeyPatch) -> None:
    await account(server, "alice", "fresh")  # a new room: no message to resume after
    bob = await clients.user("bob")
    await bob.command("/join fresh")
    monkeypatch.setattr(app, "reconnect_backoff", lambda: fixed_backoff(0.5))
    async with Relay(server.port, cut_at=b"cut-here") as relay:
        alice = terminal(relay.port, "alice")
        await alice.shows("Welcome back, alice")
        await alice.type("cut-here")
        await alice.shows("reconnecting...")
        await bob.command("/say fresh the first words of #fresh")
        await alice.shows("reconnected.")
        await alice.shows("<bob> the first words of #fresh")
        await bob.command("/say fresh and live again")
        await alice.shows("<bob> and live again")
        assert alice.out.count("the first words of #fresh") == 1, alice.out
        assert "may be missing" not in alice.out


async def test_a_line_for_a_room_one_is_not_in_says_so(
        server: ChatServer, clients: Clients, terminal: StartTerminal) -> None:
    bob = await clients.user("bob")
    await bob.command("/create general")
    await account(server, "alice", "general")
    alice = terminal(server.port, "alice")
    await alice.shows("Welcome back, alice")
    await bob.command("/kick alice general")
    await alice.shows("bob kicked you from #general")
    await alice.type("anyone here?")  # the last room named is still where lines go
    await alice.shows("! not sent: you are not in #general (/join general).")
    assert "list its keys" not in alice.out


async def test_a_new_password_typed_twice_differently_registers_nothing(
        server: ChatServer, terminal: StartTerminal, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATD_PASSWORD")
    answers = iter(["first-try-pw", "first-try-wp"])  # a slip of the fingers
    asked: list[str] = []

    def ask_password(prompt: str) -> str:  # the terminal's hidden input
        asked.append(prompt)
        return next(answers)

    monkeypatch.setattr(getpass, "getpass", ask_password)
    monkeypatch.setattr(app, "_have_terminal", lambda: True)
    newbie = terminal(server.port, "newbie", "--register")
    assert await newbie.exit_status() == 1
    assert asked == ["password for the new account newbie: ", "the same password again: "]
    assert "the two passwords differ: nothing was registered" in newbie.stderr.getvalue()
    assert server.services.accounts.find("newbie") is None


class FarAhead(Catchup):
    """Starts from an id the server never issued: as a client of a database since
    restored from an older backup."""

    async def mark_start(self, client: ChatClient, rooms: Iterable[str]) -> None:
        await super().mark_start(client, rooms)
        self.last_id = 10**9


async def test_the_line_mode_says_when_the_gap_may_be_incomplete(
        server: ChatServer, terminal: StartTerminal, monkeypatch: pytest.MonkeyPatch) -> None:
    await account(server, "alice", "general")
    monkeypatch.setattr(app, "Catchup", FarAhead)
    async with Relay(server.port, cut_at=b"cut-here") as relay:
        alice = terminal(relay.port, "alice")
        await alice.shows("Welcome back, alice")
        await alice.type("cut-here")
        await alice.shows("reconnected.")
        await alice.shows("! messages sent while you were disconnected may be missing (")


async def test_the_client_holds_to_the_line_limit_the_server_says(
        tmp_path: Path, terminal: StartTerminal) -> None:
    # The server's /format answer says its limit: a line over it is refused here,
    # with the limit named, and never sent; --max-line still overrides it.
    # (Above the key its login publishes: ML-KEM-768's takes 1.6 KB of base64.)
    server = await start_server(tmp_path / "small.db", listen__max_line=2048)
    try:
        await account(server, "alice", "hall")
        alice = terminal(server.port, "alice")
        await alice.shows("Welcome back, alice")
        await alice.type("/switch hall", "x" * 2500)
        await alice.shows("over the server's line limit (2048)")
        await alice.type("/quit")
        assert await alice.exit_status() == 0
        loose = terminal(server.port, "alice", "--max-line", "8000")
        await loose.shows("Welcome back, alice")
        await loose.type("/switch hall", "y" * 2500)
        await loose.shows("line-too-long")  # the server's own refusal this time
    finally:
        await server.stop()


async def test_a_server_back_with_another_line_limit_is_held_to_that_one(
        tmp_path: Path, terminal: StartTerminal) -> None:
    db = tmp_path / "limit.db"
    first = await start_server(db, listen__max_line=2048)
    port = first.port
    await account(first, "alice", "hall")
    alice = terminal(port, "alice")
    await alice.shows("Welcome back, alice")
    await alice.type("/switch hall")
    await first.stop()
    await alice.shows("reconnecting...")
    second = await start_server(db, listen__port=port, listen__max_line=8192)
    try:
        await alice.shows("reconnected.")
        await alice.type("z" * 3000)  # over the first server's limit, within this one's
        await alice.shows("<alice> " + "z" * 100)
        assert "over the server's line limit" not in alice.out
    finally:
        await second.stop()


async def test_notifications_show_what_happened_and_when(
        server: ChatServer, clients: Clients, terminal: StartTerminal) -> None:
    # The table is when, kind and the sentence, as text mode has them: the sentence
    # (longer than a cell of the generic table) was left out, and the time's column
    # was headed by its JSON field, ts_epoch.
    await account(server, "alice")
    bob = await clients.user("bob")
    await bob.command("/create dev private")
    await bob.command("/invite alice dev")
    alice = terminal(server.port, "alice")
    await alice.shows("1 unread notification")
    await alice.type("/notifications")
    screen = await alice.shows("1 notification; /notifications clear clears them.")
    assert "when" in screen and "ts_epoch" not in screen, screen
    assert "invitation  bob invited you to #dev: /join " in screen, screen


async def test_the_line_mode_shows_a_bots_sender_as_a_bot(
        server: ChatServer, clients: Clients, terminal: StartTerminal) -> None:
    await account(server, "alice", "general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    token = str((await bob.command("/bot create helper"))["token"])
    helper = await clients.anonymous()
    await helper.command(f"/auth {token}")
    await helper.command("/join general")
    alice = terminal(server.port, "alice")
    await alice.shows("Welcome back, alice")
    await helper.command("/say general beep")
    await alice.shows("<helper (bot)> beep")
    await bob.command("/say general a person")
    await alice.shows("<bob> a person")
    await helper.command("/msg alice psst")
    await alice.shows("<helper (bot) -> alice> psst")


async def test_a_room_decision_prints_one_line_with_what_its_reply_adds(
        server: ChatServer, clients: Clients, terminal: StartTerminal) -> None:
    await account(server, "alice", "dev")
    bob = await clients.user("bob")
    await bob.command("/join dev")
    alice = terminal(server.port, "alice")
    await alice.shows("Welcome back, alice")
    end = local_time(server.services.clock.time() + 7200)
    await alice.type("/ban bob 2h spamming", "/topic ship it", "/whoami")
    await alice.shows("You are alice")
    assert f"bob was banned from #dev by alice until {end} (spamming)" in alice.out
    assert "banned from #dev for 2h" not in alice.out
    assert alice.out.count("ship it") == 1, alice.out
