"""The full-screen client (chatd/client/tui/screen.py) in this process, against a real server.

Keys go in through prompt_toolkit's pipe input, exactly the bytes a terminal
sends (``\\x1b[D`` is Left); the screen is read back from what the renderer
last drew, row by row, as a person would see it. tests/client/test_terminal.py
drives the real program in tmux.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from chatd.client import ChatClient
from chatd.client.sdk import Backoff
from chatd.client.tui import app
from chatd.client.tui import controller as controller_module
from chatd.client.tui.complete import Vocabulary
from chatd.client.tui.controller import Controller
from chatd.client.tui.keyring import Keyring
from chatd.client.tui.lines import Line, from_ok, local_time
from chatd.client.tui.paint import fragments
from chatd.client.tui.roomargs import RoomDefaults
from chatd.client.tui.screen import Screen, chat
from chatd.client.tui.session import ClientSession
from chatd.client.tui.state import ChatState
from chatd.client.tui.view import View
from chatd.domain.clock import ManualClock
from tests.client.helpers import change_password_offline, fixed_backoff, said, until
from tests.crypto.sessions import next_message
from tests.helpers import PASSWORD, ChatServer, Clients, settle, start_server
from tests.relay import Relay

LEFT, UP, ENTER, TAB, PAGE_UP, PAGE_DOWN = "\x1b[D", "\x1b[A", "\r", "\t", "\x1b[5~", "\x1b[6~"
CTRL_N, CTRL_P, CTRL_D = "\x0e", "\x10", "\x04"
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"  # a bracketed paste
ROWS, COLUMNS = 24, 100


class Terminal(DummyOutput):
    """An output of a fixed size that draws nowhere: the renderer keeps the screen."""

    def __init__(self, columns: int = COLUMNS) -> None:
        self.columns = columns

    def get_size(self) -> Size:
        return Size(rows=ROWS, columns=self.columns)


class Person:
    """One person at a full-screen client: types keys, reads the screen."""

    def __init__(self, screen: Screen, keys: PipeInput, task: asyncio.Task[int]) -> None:
        self.screen = screen
        self.keys = keys
        self.task = task

    @property
    def state(self) -> ChatState:
        return self.screen.state

    def rows(self) -> list[str]:
        drawn = self.screen.app.renderer._last_screen
        if drawn is None:
            return []
        return ["".join(drawn.data_buffer[y][x].char for x in range(COLUMNS)).rstrip()
                for y in range(ROWS)]

    def text(self) -> str:
        return "\n".join(self.rows())

    @property
    def input_row(self) -> str:
        rows = self.rows()
        return rows[-1] if rows else ""

    @property
    def status_row(self) -> str:
        rows = self.rows()
        return rows[-2] if rows else ""

    def room_list(self) -> list[str]:
        return [row.split("\N{BOX DRAWINGS LIGHT VERTICAL}")[0].strip() for row in self.rows()]

    def type(self, keys: str) -> None:
        self.keys.send_text(keys)

    async def sees(self, condition: Callable[[Person], bool] | str, what: str = "") -> str:
        check = (lambda p: condition in p.text()) if isinstance(condition, str) else condition
        await until(lambda: check(self), lambda: f"{what or condition!r} on screen:\n"
                    + self.text())
        return self.text()

    async def joins(self, room: str) -> None:
        """Type ``/join room`` and wait until the join is handled whole.

        The room is shown as soon as the server says yes, but the client then asks
        for its members and history, and files the join's own lines last; keys typed
        before that (Alt-1, a line) would race the rest of the join.
        """
        self.type(f"/join {room}" + ENTER)
        await self.sees(lambda p: p.state.current == room, f"#{room} shown")
        await self.sees(lambda p: any(line.text.startswith(f"You joined #{room} ")
                                      for line in p.state.conversations[room].lines),
                        f"the join's own lines in #{room}")

    async def quits(self) -> int:
        self.type("\x15" + CTRL_D)  # Ctrl-U empties the line; Ctrl-D on an empty one quits
        return await asyncio.wait_for(self.task, 8)


Open = Callable[..., "asyncio.Future[Person]"]


@pytest.fixture
async def person(server: ChatServer, tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    opened: list[tuple[Person, ChatClient]] = []
    inputs = contextlib.ExitStack()

    async def open_screen(name: str, register: bool = True, port: int | None = None,
                          reconnect: bool = False, color: bool = True,
                          mouse: bool = False, backoff: Backoff | None = None,
                          columns: int = COLUMNS) -> Person:
        keyring, _ = Keyring.open(tmp_path / name, f"test:{server.port}")
        client = await ChatClient.connect("127.0.0.1", port or server.port)
        session = ClientSession(client, keyring)
        said_at_login = await session.login(name, PASSWORD, register=register)
        assert session.user == name, said_at_login
        state = ChatState(name)
        control = Controller(session, state, Vocabulary(),
                             _reconnector(session, name, port or server.port) if reconnect
                             else None,
                             backoff or Backoff(first=0.01, ceiling=0.05, rng=lambda: 0.5))
        keys = inputs.enter_context(create_pipe_input())
        screen = Screen(control, color=color, mouse=mouse, input=keys,
                        output=Terminal(columns))
        await control.start(said_at_login)
        task = asyncio.ensure_future(screen.run())
        opened.append((Person(screen, keys, task), client))
        await opened[-1][0].sees(lambda p: bool(p.rows()), "the first drawing")
        return opened[-1][0]

    yield open_screen
    for shown, client in opened:
        if not shown.task.done():
            shown.screen.app.exit(result=0)
            await asyncio.wait_for(shown.task, 8)
        await shown.screen.controller.session.client.close()
        await client.close()
    inputs.close()


def _reconnector(session: ClientSession, name: str, port: int) -> app.Reconnect:
    """The program's own reconnection: the resume token first, else the password."""
    where = argparse.Namespace(host="127.0.0.1", port=port, user=name, tls=False,
                               max_line=None)
    return app._reconnector(session, where, PASSWORD, None)


async def bob_in(clients: Clients, *rooms: str) -> ChatClient:
    bob = await clients.user("bob")
    for room in rooms:
        await bob.command(f"/create {room}")
    return bob


# -- the input line --------------------------------------------------------------------------


async def test_editing_history_and_incoming_lines_keep_the_input(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general")
    alice: Person = await person("alice")  # type: ignore[misc]
    await alice.joins("general")
    await settle(bob)

    alice.type("abc" + LEFT + LEFT + "X")
    await alice.sees(lambda p: p.input_row == "#general> aXbc", "the edited line")
    await bob.command("/say general hello from bob")
    await alice.sees("<bob> hello from bob")
    assert alice.input_row == "#general> aXbc"  # the message did not land on the input line
    alice.type(ENTER)
    assert (await said(bob, "aXbc"))["text"] == "aXbc"  # no escape codes were sent
    await alice.sees(lambda p: p.input_row == "#general>", "an empty input line")
    await alice.sees("<alice> aXbc")
    alice.type(UP)
    await alice.sees(lambda p: p.input_row == "#general> aXbc", "the recalled line")
    alice.type(UP + UP)
    await alice.sees(lambda p: p.input_row == "#general> /join general", "the line before")
    assert await alice.quits() == 0


async def test_tab_completes_commands_nicks_and_rooms(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general", "gardening")
    await bob.command("/say general hi")
    alice: Person = await person("alice")  # type: ignore[misc]
    alice.type("/jo" + TAB)
    await alice.sees(lambda p: p.input_row.startswith("server> /join"), "/jo completed")
    alice.type("gene" + TAB)
    await alice.sees(lambda p: p.input_row == "server> /join general", "the room completed")
    alice.type(ENTER)
    await alice.sees(lambda p: p.state.current == "general", "#general shown")
    # The room is on screen before the server said who is in it: its history is
    # fetched after the member list, so once it is drawn the nicks are known.
    await alice.sees("<bob> hi")
    alice.type("b" + TAB)
    await alice.sees(lambda p: p.input_row == "#general> bob:", "the nick completed")
    alice.type("\x15/whoi" + TAB)  # Ctrl-U empties the line first
    await alice.sees(lambda p: p.input_row == "#general> /whois", "a server command")
    alice.type("bo" + TAB)
    await alice.sees(lambda p: p.input_row == "#general> /whois bob", "a user argument")
    alice.type("\x15/fingerp" + TAB)
    await alice.sees(lambda p: p.input_row == "#general> /fingerprint", "a local command")


# -- the room list, unread counts, switching ---------------------------------------------------


async def test_room_list_counts_unread_and_mentions(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general", "dev")
    alice: Person = await person("alice")  # type: ignore[misc]
    alice.type("/join dev" + ENTER + "/join general" + ENTER)
    await alice.sees(lambda p: p.state.current == "general", "#general shown")
    await bob.command("/say dev a build broke")
    await alice.sees(lambda p: "2:#dev (1)" in p.room_list(), "one unread in #dev")
    await bob.command("/say dev alice: can you look?")
    await alice.sees(lambda p: "2:#dev (2!)" in p.room_list(), "a mention in #dev")
    await bob.command("/say general here too")
    await alice.sees("<bob> here too")
    assert "3:#general" in alice.room_list()  # the room on screen counts nothing
    alice.type("\x1b2")  # Alt-2
    await alice.sees(lambda p: p.state.current == "dev", "#dev shown")
    await alice.sees("<bob> alice: can you look?")
    assert "2:#dev" in alice.room_list() and "#dev" in alice.status_row  # read now
    alice.type(CTRL_N)
    await alice.sees(lambda p: p.state.current == "general", "the next room")
    alice.type(CTRL_P + CTRL_P)
    await alice.sees(lambda p: p.state.current == "", "the server conversation")
    alice.type("\x1b\x1b[C")  # Alt-Right, as many terminals send it
    await alice.sees(lambda p: p.state.current == "dev", "the room after the server")
    alice.type("/leave dev" + ENTER)
    await alice.sees(lambda p: "dev" not in p.state.conversations, "#dev gone from the list")


# -- scrollback and history -----------------------------------------------------------------------


async def test_page_up_scrolls_and_fetches_older_history(
        clients: Clients, person: Callable[..., object],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(controller_module, "HISTORY_PAGE", 20)
    bob = await bob_in(clients, "general")
    for n in range(45):
        await bob.command(f"/say general message number {n}")
    alice: Person = await person("alice")  # type: ignore[misc]
    alice.type("/join general" + ENTER)
    await alice.sees("message number 44")
    conversation = alice.state.conversations["general"]
    await until(lambda: len(conversation.known_ids()) == 20, "the first page of history")
    assert "message number 24" not in alice.text()
    alice.type(PAGE_UP)
    await alice.sees("rows below: PageDown")
    for _ in range(6):
        alice.type(PAGE_UP)
        await asyncio.sleep(0.05)
    await alice.sees("message number 0", "the oldest message, fetched by scrolling")
    await alice.sees("the start of #general's history")
    assert len(conversation.known_ids()) == 45 and conversation.history_done
    for _ in range(10):
        alice.type(PAGE_DOWN)
    await alice.sees(lambda p: "message number 44" in p.text() and "rows below" not in p.text(),
                     "back at the bottom")


# -- status bar, direct conversations, theme ------------------------------------------------------


async def test_status_bar_typing_direct_messages_and_theme(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general")
    alice_setup = await clients.user("alice")
    await alice_setup.command("/set theme dark")
    await alice_setup.command("/join general")
    alice: Person = await person("alice", register=False)  # type: ignore[misc]
    assert alice.state.theme == "dark"
    assert "general" in alice.state.conversations and alice.state.current == "general"
    await alice.sees(lambda p: "alice \N{MIDDLE DOT} connected \N{MIDDLE DOT} #general"
                     in p.status_row, "the status bar")
    await bob.command("/typing general")
    await alice.sees(lambda p: "bob is typing" in p.status_row, "bob typing")
    await bob.command("/say general done typing")
    await alice.sees(lambda p: "typing" not in p.status_row, "the typing notice gone")

    alice.type("hel")  # alice types: bob is told, once
    got = await bob.next_event(lambda e: e.get("event") == "typing", 8)
    assert got["user"] == "alice"

    alice.type("\x15/query bob" + ENTER)
    await alice.sees(lambda p: p.state.current == "@bob", "the conversation with bob")
    alice.type("just between us" + ENTER)
    got = await said(bob, "just between us")
    assert got["to"] == "bob"
    await bob.command("/msg alice agreed")
    await alice.sees("<bob -> alice> agreed")
    alice.type(CTRL_P)  # to #general; a direct message there counts as unread for @bob
    await alice.sees(lambda p: p.state.current == "general", "#general")
    await bob.command("/msg alice one more")
    await alice.sees(lambda p: "3:@bob (1!)" in p.room_list(), "an unread direct message")
    alice.type("/set theme light" + ENTER)
    await alice.sees(lambda p: p.state.theme == "light", "the theme changed")
    alice.type("/quit" + ENTER)
    assert await asyncio.wait_for(alice.task, 8) == 0


async def test_kicked_from_a_room_and_errors_are_shown(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general")
    alice: Person = await person("alice")  # type: ignore[misc]
    await alice.joins("general")
    alice.type("/join nosuchroom" + ENTER)
    await alice.sees("! no-such-room")
    await bob.command("/kick alice general enough")
    await alice.sees(lambda p: "general" not in p.state.conversations, "#general closed")
    await alice.sees("kicked")
    alice.type("/query" + ENTER)
    await alice.sees("usage: /query <user>")
    alice.type("/close" + ENTER + "hello?" + ENTER)
    await alice.sees("you are in no room")


async def test_a_room_left_on_another_connection_leaves_the_list(
        clients: Clients, person: Callable[..., object]) -> None:
    await bob_in(clients, "general", "dev")
    alice: Person = await person("alice")  # type: ignore[misc]
    await alice.joins("dev")
    await alice.joins("general")
    elsewhere = await clients.user("alice")  # alice at another device
    await elsewhere.command("/leave general")
    await alice.sees(lambda p: "general" not in p.state.conversations, "#general closed")
    await alice.sees("you left #general on another connection")
    assert "dev" in alice.state.conversations
    assert not [row for row in alice.room_list() if "#general" in row]
    alice.type("/leave dev" + ENTER)  # left here: the server's answer says so, alone
    await alice.sees("You left #dev")
    await alice.sees(lambda p: "dev" not in p.state.conversations, "#dev closed")
    assert "left #dev on another connection" not in alice.text()


async def test_close_shuts_a_direct_conversation_and_never_hides_a_room(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general")
    alice: Person = await person("alice")  # type: ignore[misc]
    await alice.joins("general")
    alice.type("/close" + ENTER)  # a room's view: alice is still a member of #general
    await alice.sees("/close closes a direct conversation; /leave general leaves #general")
    assert "general" in alice.state.conversations and alice.state.current == "general"
    await bob.command("/say general still here")
    await alice.sees("<bob> still here")
    alice.type("\x1b1" + "/close" + ENTER)  # the server conversation cannot close either
    await alice.sees("/close closes a direct conversation; the server conversation stays")
    alice.type("/query bob" + ENTER)
    await alice.sees(lambda p: p.state.current == "@bob", "the conversation with bob")
    alice.type("/close" + ENTER)
    await alice.sees(lambda p: "@bob" not in p.state.conversations, "@bob closed")


async def test_an_end_to_end_room_on_the_full_screen(
        clients: Clients, person: Callable[..., object], tmp_path: Path) -> None:
    bob = await bob_in(clients, "vault")
    await bob.command("/e2e on vault")
    bob_keys, _ = Keyring.open(tmp_path / "bob", "test")
    bob_session = ClientSession(bob, bob_keys)
    bob_session.user, bob_session.current_room = "bob", "vault"
    await bob_session.publish_key()
    alice: Person = await person("alice")  # type: ignore[misc]
    await alice.joins("vault")
    await settle(bob)
    alice.type("the code is 7419" + ENTER)
    # Alice's client hands bob her sender key first (a room_key message), then the
    # message itself: bob's session takes the key in on the way, as his client would.
    record = await next_message(bob_session)
    assert record["e2e"] and "text" not in record  # the server saw ciphertext only
    (shown,) = [line for line in await bob_session.show(record) if line.kind == "message"]
    assert shown.text == "the code is 7419" and shown.encrypted
    await bob_session.send_text("copy that")
    await alice.sees("copy that")
    assert "\N{LOCK}" in alice.text()


async def test_a_tab_in_an_end_to_end_message_loses_no_text_at_the_edge(
        clients: Clients, person: Callable[..., object], tmp_path: Path) -> None:
    # The server turns a plain message's TAB into a space; it cannot in ciphertext. A
    # TAB measured as no cell, yet drawn as ^I (two), pushed the row's end past the
    # edge, where it was cut off.
    bob = await bob_in(clients, "vault")
    await bob.command("/e2e on vault")
    bob_keys, _ = Keyring.open(tmp_path / "bob", "test")
    bob_session = ClientSession(bob, bob_keys)
    bob_session.user, bob_session.current_room = "bob", "vault"
    await bob_session.publish_key()
    alice: Person = await person("alice", columns=40)  # type: ignore[misc]
    await alice.joins("vault")
    await alice.sees("You joined #vault")  # the join's lines, before bob's message
    await settle(bob)
    alice.type("hello" + ENTER)  # her sender key reaches bob with it
    await bob_session.show(await next_message(bob_session))
    words = ["name\tsize\tkind\tdate", "alpha", "bravo", "charlie", "delta", "echo",
             "foxtrot", "golf", "hotel", "india", "juliet"]
    await bob_session.send_text(" ".join(words))
    await alice.sees("juliet", "the message")
    rows = [row.split("\N{BOX DRAWINGS LIGHT VERTICAL}", 1)[1] for row in alice.rows()
            if "\N{BOX DRAWINGS LIGHT VERTICAL}" in row]
    first = next(i for i, row in enumerate(rows) if "<bob>" in row)
    message = [rows[first].split("<bob>", 1)[1], *rows[first + 1:]]
    # Every word is on screen, the TAB a space as in a message the server could read.
    assert " ".join(" ".join(row.split()) for row in message if row.strip()) == " ".join(
        word.replace("\t", " ") for word in words), message


async def test_the_client_reconnects_after_a_restart(tmp_path: Path, person: Callable[..., object]
                                                     ) -> None:
    db = tmp_path / "restart.db"
    first = await start_server(db, clock=ManualClock())
    port = first.port
    bob = await Clients(first).user("bob")
    await bob.command("/create general")
    await (await Clients(first).user("alice")).close()  # an account: alice logs in
    alice: Person = await person("alice", register=False, port=port,  # type: ignore[misc]
                                 reconnect=True)
    session = alice.screen.controller.session
    issued = session.resume_token  # asked for at the password login, kept in memory
    assert issued is not None and issued.startswith("chatdr_")
    await alice.joins("general")
    await bob.close()
    await first.stop()
    await alice.sees("the server closed the connection")
    change_password_offline(db, "alice")  # only the resume token can log alice in now
    second = await start_server(db, clock=ManualClock(), listen__port=port)
    try:
        await alice.sees(lambda p: "reconnected." in p.text() and p.state.connection ==
                         "connected", "the reconnection")
        assert alice.state.current == "general"
        assert session.resume_token not in (None, issued)  # the rotated one
        anonymous = await ChatClient.connect("127.0.0.1", port)
        refused = await anonymous.command(f"/login --resume {issued}", check=False)
        assert refused.final["code"] == "auth-failed"  # used up by the reconnection
        refused = await anonymous.command(f"/login alice {PASSWORD}", check=False)
        assert refused.final["code"] == "auth-failed"  # so alice came back without it
        await anonymous.close()
        bob = await Clients(second).user("bob")
        await bob.command("/say general welcome back")
        await alice.sees("<bob> welcome back")
        await bob.close()
        assert await alice.quits() == 0
    finally:
        await second.stop()


async def test_chat_runs_the_whole_screen(server: ChatServer, tmp_path: Path) -> None:
    keyring, _ = Keyring.open(tmp_path / "zed", "test")
    client = await ChatClient.connect("127.0.0.1", server.port)
    session = ClientSession(client, keyring)
    said_at_login = await session.login("zed", PASSWORD, register=True)
    with create_pipe_input() as keys:
        running = asyncio.ensure_future(chat(session, said_at_login, None, color=False,
                                             input=keys, output=Terminal()))
        await asyncio.sleep(0.2)
        keys.send_text("/quit" + ENTER)
        assert await asyncio.wait_for(running, 8) is True
    await client.close()


async def test_the_mouse_scrolls_and_picks_a_room(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general", "dev")
    for n in range(30):
        await bob.command(f"/say general line {n}")
    alice: Person = await person("alice", mouse=True)  # type: ignore[misc]
    await alice.joins("dev")
    alice.type("/join general" + ENTER)
    await alice.sees("line 29")
    alice.type("\x1b[<64;40;5M")  # the wheel, up, over the messages (SGR mouse report)
    await alice.sees("rows below: PageDown")
    alice.type("\x1b[<65;40;5M")  # and down again
    await alice.sees(lambda p: "rows below" not in p.text(), "the bottom again")
    alice.type("\x1b[<0;3;2M\x1b[<0;3;2m")  # a click on the second entry of the room list
    await alice.sees(lambda p: p.state.current == "dev", "#dev picked with the mouse")


def test_full_screen_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[Line] = []

    class View:
        def show(self, lines: list[Line]) -> None:
            shown.extend(lines)

    view = View()
    plain = argparse.Namespace(plain=True)
    assert app._full_screen(plain, view) is False  # type: ignore[arg-type]
    terminal = argparse.Namespace(plain=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert app._full_screen(terminal, view) is True  # type: ignore[arg-type]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert app._full_screen(terminal, view) is False  # type: ignore[arg-type]
    assert "needs prompt_toolkit" in shown[0].text


async def test_a_refused_login_stops_the_reconnection(
        clients: Clients, person: Callable[..., object]) -> None:
    alice: Person = await person("alice", reconnect=True)  # type: ignore[misc]
    elsewhere = await clients.user("alice")
    await elsewhere.command(f"/passwd {PASSWORD} another-password")  # closes the screen's
    await alice.sees("auth-failed")
    await alice.sees(lambda p: "logged out" in p.status_row, "the status bar")
    assert await alice.quits() == 0


async def test_a_login_typed_after_a_refused_one_brings_the_screen_back(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general")
    await bob.command("/say general before")
    alice: Person = await person("alice", reconnect=True)  # type: ignore[misc]
    alice.type("/join general" + ENTER)
    await alice.sees("<bob> before")
    elsewhere = await clients.user("alice")
    await elsewhere.command(f"/passwd {PASSWORD} another-password")  # closes the screen's
    await alice.sees("auth-failed")
    await alice.sees(lambda p: "alice \N{MIDDLE DOT} logged out" in p.status_row, "logged out")
    alice.type("hello?" + ENTER)
    await alice.sees("you are logged out: /login <name> <password> first")
    await bob.command("/say general said while alice was logged out")
    alice.type("/login alice another-password" + ENTER)
    await alice.sees(lambda p: "alice \N{MIDDLE DOT} connected" in p.status_row, "connected")
    await alice.sees("<bob> said while alice was logged out")  # missed, then replayed
    await bob.command("/say general and live")
    await alice.sees("<bob> and live")  # the events come again
    assert alice.screen.controller.session.resume_token is not None  # asked for one


async def test_the_status_bar_says_logged_out_after_logout(
        clients: Clients, person: Callable[..., object]) -> None:
    alice: Person = await person("alice")  # type: ignore[misc]
    await alice.sees(lambda p: "alice \N{MIDDLE DOT} connected" in p.status_row, "connected")
    alice.type("/logout" + ENTER)
    await alice.sees(lambda p: "logged out" in p.status_row, "logged out in the status bar")
    alice.type("/whoami" + ENTER)
    await alice.sees("you are logged out: /login <name> <password> first")


# -- where a line goes --------------------------------------------------------------------------


async def test_a_plain_line_in_the_server_conversation_goes_nowhere(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "secret")
    alice: Person = await person("alice")  # type: ignore[misc]
    await alice.joins("secret")
    await settle(bob)
    alice.type("\x1b1")  # Alt-1: the server conversation
    await alice.sees(lambda p: p.input_row == "server>", "the server prompt")
    alice.type("typed in server view" + ENTER)
    await alice.sees("you are in no room here")
    assert not [e for e in await settle(bob) if e.get("type") == "message"]
    # A command about "the current room" means the conversation on screen, not #secret.
    alice.type("/query carol" + ENTER)
    await alice.sees(lambda p: p.input_row == "@carol>", "the conversation with carol")
    alice.type("/secure on" + ENTER)
    await alice.sees("usage (in a room): /secure on|off")
    assert "secret" not in alice.screen.controller.session.always_encrypt
    alice.type("\x1b2")  # back in #secret, where it applies
    await alice.sees(lambda p: p.input_row == "#secret>", "#secret again")
    alice.type("/secure on" + ENTER)
    await alice.sees("lines you type in #secret are now encrypted")


async def test_a_join_answered_late_files_its_lines_in_the_room_joined(
        server: ChatServer, clients: Clients, person: Callable[..., object]) -> None:
    await bob_in(clients, "secret")
    async with Relay(server.port, hold=b"/history secret") as relay:  # the join's last step
        alice: Person = await person("alice", port=relay.port)  # type: ignore[misc]
        alice.type("/join secret" + ENTER)
        await alice.sees(lambda p: p.state.current == "secret", "#secret shown")
        alice.type("\x1b1")  # Alt-1 while the join still waits for the room's history
        await alice.sees(lambda p: p.input_row == "server>", "the server prompt")
        relay.release()
        await alice.sees(lambda p: bool(_filed(p, "You joined #secret")), "the join's lines")
        assert _filed(alice, "You joined #secret") == ["secret"]  # the room it speaks of
        alice.type("\x1b2")
        await alice.sees("You joined #secret (2 members)")


async def test_a_line_typed_while_a_join_is_answered_goes_where_it_was_typed(
        server: ChatServer, clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general", "secret")
    async with Relay(server.port, hold=b"/history secret") as relay:
        alice: Person = await person("alice", port=relay.port)  # type: ignore[misc]
        await alice.joins("general")
        alice.type("/join secret" + ENTER)
        await alice.sees(lambda p: p.input_row == "#secret>", "#secret shown")
        alice.type("for secret only" + ENTER)  # waits for the join to be handled
        alice.type("\x1b2")  # #general, before the line is sent
        await alice.sees(lambda p: p.input_row == "#general>", "#general shown")
        await settle(bob)
        relay.release()
        assert (await said(bob, "for secret only"))["room"] == "secret"
        await alice.sees(lambda p: bool(_filed(p, "for secret only")), "the line sent")
        assert _filed(alice, "for secret only") == ["secret"]


def _filed(person: Person, text: str) -> list[str]:
    """The conversations holding a line with ``text``."""
    return [key for key, conversation in person.state.conversations.items()
            if any(text in line.text for line in conversation.lines)]


async def test_a_paste_of_several_lines_sends_each_to_the_conversation_on_screen(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general")
    alice: Person = await person("alice")  # type: ignore[misc]
    await alice.joins("general")  # the server's current room, once alice shows bob
    alice.type("/query bob" + ENTER)
    await alice.sees(lambda p: p.input_row == "@bob>", "the conversation with bob")
    await settle(bob)
    alice.type(PASTE_START + "private one\nprivate two\n/whoami" + PASTE_END)
    # The whole paste is in sight before it is sent, the prompt on its first line.
    await alice.sees(lambda p: p.rows()[-3:] == ["@bob> private one", "private two", "/whoami"],
                     "the pasted lines on the input line")
    assert "connected" in alice.rows()[-4]  # the status bar, above them
    alice.type(ENTER)
    await alice.sees(lambda p: p.input_row == "@bob>", "an empty input line again")
    await alice.sees("<alice -> bob> private two")
    messages = [e for e in await settle(bob) if e.get("type") == "message"]
    # Each pasted line is a direct message to bob, none went to #general; a pasted
    # command is a command, run as if typed.
    assert [(m.get("to"), m.get("text")) for m in messages] == [
        ("bob", "private one"), ("bob", "private two")]
    await alice.sees("You are alice")


# -- missing nothing across a reconnection --------------------------------------------------------


async def test_what_was_said_while_disconnected_is_shown_after_reconnecting(
        server: ChatServer, clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general")
    await bob.command("/say general before the cut")
    async with Relay(server.port, cut_at=b"cut-here") as relay:
        alice: Person = await person("alice", port=relay.port, reconnect=True,  # type: ignore[misc]
                                     backoff=fixed_backoff(0.5))
        alice.type("/join general" + ENTER)
        await alice.sees("<bob> before the cut")
        alice.type("cut-here" + ENTER)  # the relay drops the connection at this line
        await alice.sees(lambda p: p.state.connection != "connected", "the connection lost")
        await bob.command("/say general said while alice was away")
        await bob.command("/msg alice and a direct one")
        await alice.sees("reconnected.")
        await alice.sees("<bob> said while alice was away")
        general = alice.state.conversations["general"]
        texts = [line.text for line in general.lines]
        assert texts.count("said while alice was away") == 1, texts
        await until(lambda: "@bob" in alice.state.conversations, "the direct conversation")
        direct = [line.text for line in alice.state.conversations["@bob"].lines]
        assert direct == ["and a direct one"]
        await bob.command("/say general and live again")
        await alice.sees("<bob> and live again")
        assert "may be missing" not in alice.text()


async def test_a_room_without_messages_before_the_cut_misses_nothing_after_it(
        server: ChatServer, clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "fresh")  # a new room: nothing said in it yet
    async with Relay(server.port, cut_at=b"/ping cut-here") as relay:
        alice: Person = await person("alice", port=relay.port, reconnect=True,  # type: ignore[misc]
                                     backoff=fixed_backoff(0.5))
        await alice.joins("fresh")
        await alice.sees("this is the start of #fresh's history.")
        alice.type("/ping cut-here" + ENTER)  # the relay drops the connection at this line
        await alice.sees(lambda p: p.state.connection != "connected", "the connection lost")
        await bob.command("/say fresh the first words of #fresh")
        await bob.command("/msg alice and a direct one")
        await alice.sees("reconnected.")
        await alice.sees("<bob> the first words of #fresh")
        await until(lambda: "@bob" in alice.state.conversations, "the direct conversation")
        await bob.command("/say fresh and live again")
        await alice.sees("<bob> and live again")
        fresh = [line.text for line in alice.state.conversations["fresh"].lines]
        assert fresh.count("the first words of #fresh") == 1, fresh
        direct = [line.text for line in alice.state.conversations["@bob"].lines]
        assert direct == ["and a direct one"]
        assert "may be missing" not in alice.text()


async def test_a_room_lost_while_disconnected_is_said_after_reconnecting(
        server: ChatServer, clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general", "dev")
    async with Relay(server.port, cut_at=b"/ping cut-here") as relay:
        alice: Person = await person("alice", port=relay.port, reconnect=True,  # type: ignore[misc]
                                     backoff=fixed_backoff(0.5))
        await alice.joins("dev")
        await alice.joins("general")
        alice.type("/ping cut-here" + ENTER)  # the relay drops the connection at this line
        await alice.sees(lambda p: p.state.connection != "connected", "the connection lost")
        await bob.command("/kick alice dev not while you sleep")
        await alice.sees("reconnected.")
        await alice.sees(lambda p: "dev" not in p.state.conversations, "#dev closed")
        await alice.sees("you are no longer in #dev: it leaves the list")
        assert alice.state.current == "general"


async def test_a_gap_the_server_cannot_fill_is_announced(
        server: ChatServer, clients: Clients, person: Callable[..., object]) -> None:
    await bob_in(clients, "general")
    async with Relay(server.port, cut_at=b"cut-here") as relay:
        alice: Person = await person("alice", port=relay.port, reconnect=True)  # type: ignore[misc]
        await alice.joins("general")
        # An id this server never issued: a client of another server, or of a database
        # restored from an older backup.
        alice.screen.controller.catchup.last_id = 10**9
        alice.type("cut-here" + ENTER)
        await alice.sees("reconnected.")
        await alice.sees("messages sent while you were disconnected may be missing (")


async def test_a_line_typed_while_disconnected_is_sent_after_reconnecting(
        server: ChatServer, clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general")
    async with Relay(server.port, cut_at=b"cut-here") as relay:
        alice: Person = await person("alice", port=relay.port, reconnect=True,  # type: ignore[misc]
                                     backoff=fixed_backoff(0.5))
        await alice.joins("general")
        await settle(bob)
        alice.type("cut-here" + ENTER)  # in flight when the connection drops: said so
        await alice.sees("no answer from the server (connection closed): the line may not")
        alice.type("typed while away" + ENTER + "and another" + ENTER)
        await alice.sees("not sent yet")
        await alice.sees("(2 waiting)")
        first = await said(bob, "typed while away")
        second = await said(bob, "and another")
        assert (first["room"], second["room"]) == ("general", "general")
        assert int(str(first["id"])) < int(str(second["id"]))
        await alice.sees(lambda p: p.state.connection == "connected", "connected again")


async def test_without_reconnecting_a_line_typed_after_the_end_is_refused(
        server: ChatServer, clients: Clients, person: Callable[..., object]) -> None:
    await bob_in(clients, "general")
    async with Relay(server.port, cut_at=b"cut-here") as relay:
        alice: Person = await person("alice", port=relay.port)  # type: ignore[misc]
        await alice.joins("general")
        alice.type("cut-here" + ENTER)
        await alice.sees("the server closed the connection")
        alice.type("hello?" + ENTER)
        await alice.sees("not sent: disconnected, and the client does not connect again")


async def test_upload_is_refused_and_the_client_goes_on(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general")
    alice: Person = await person("alice")  # type: ignore[misc]
    await alice.joins("general")
    alice.type("/uplo" + TAB)
    await asyncio.sleep(0.2)
    assert alice.input_row == "#general> /uplo"  # not offered
    alice.type("\x15/upload notes.txt 12" + ENTER)
    await alice.sees("/upload is not sent from chatd-client")
    alice.type("still talking" + ENTER)
    assert (await said(bob, "still talking"))["room"] == "general"
    await alice.sees("<alice> still talking")
    assert "no answer from the server" not in alice.text()


async def test_replies_show_what_their_fields_say(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general")
    alice: Person = await person("alice")  # type: ignore[misc]
    await bob.command("/msg alice hi")
    alice.type("/help join" + ENTER)
    await alice.sees("/join <room> [key]")
    await alice.sees("* needs: logged in.")
    alice.type("/whois bob" + ENTER)
    await alice.sees(lambda p: any(r.split()[-2:] == ["rooms", "#general"] for r in
                                   [row.split("\N{BOX DRAWINGS LIGHT VERTICAL}")[-1]
                                    for row in p.rows()]), "bob's rooms")
    alice.type("/conversations" + ENTER)
    heads = (("with", "last message", "online"),)
    await alice.sees(lambda p: any(line.rows[:1] == heads for line in p.state.shown.lines),
                     "the conversations table")
    (listed,) = [line for line in alice.state.shown.lines if line.rows[:1] == heads]
    assert listed.rows[1][0] == "bob" and listed.rows[1][1][:2] == "20"  # a date, not 1.8e9
    alice.type("/stickers" + ENTER)
    await alice.sees(lambda p: any(line.rows[:2] == (("sticker", "size", "first line"),
                                                     ("bear", "6x1", "ʕ•ᴥ•ʔ"))
                                   for line in p.state.shown.lines), "the stickers table")
    alice.type("/help" + ENTER)
    await alice.sees("/help <command> shows one command.")
    assert "Join a room by name" in "".join(
        cell for line in alice.state.shown.lines for row in line.rows for cell in row)
    # Each form of a usage on a row of its own, and what the command does below it,
    # not pushed past the edge of the screen by the widest usage.
    alice.type(PAGE_UP)
    await alice.sees("/webhook revoke <id> [room]")
    rows = alice.rows()
    usage = next(at for at, row in enumerate(rows) if row.endswith("/webhook revoke <id> [room]"))
    assert rows[usage - 1].endswith("  /webhook list [room]")
    assert "\N{BOX DRAWINGS LIGHT VERTICAL}      Incoming webhooks of a room" in rows[usage + 1]


def test_times_in_tables_are_local_dates() -> None:
    (table, _) = from_ok({"command": "notifications", "message": "1 notification.",
                          "notifications": [{"id": 1, "kind": "mention",
                                             "ts_epoch": 1800000000.0, "text": "hi"}]})
    assert table.rows[0] == ("when", "kind", "what")
    assert table.rows[1] == (local_time(1800000000.0), "mention", "hi")
    assert local_time(1800000000.0)[:4] == "2027" and "." not in table.rows[1][0]


def test_a_message_shows_the_time_on_the_persons_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30, no summer time
    time.tzset()
    try:
        line = Line("message", "hi", room="general", sender="bob", ts="2026-12-07T14:00:33Z")
        assert ("class:time", "[19:30] ") in fragments(line, None)
        assert View(Console()).message(line).plain.startswith("[19:30] ")  # the line mode
    finally:
        monkeypatch.undo()
        time.tzset()


async def test_the_prompt_comes_back_after_a_line_wider_than_the_screen(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general")
    alice: Person = await person("alice")  # type: ignore[misc]
    await alice.joins("general")
    alice.type("x" * 120)
    await alice.sees(lambda p: p.input_row.endswith("x" * 20), "the long line")
    alice.type(ENTER)
    await said(bob, "x" * 120)
    await alice.sees(lambda p: p.input_row == "#general>", "the prompt again")
    alice.type("short")
    await alice.sees(lambda p: p.input_row == "#general> short", "a short line typed")


async def test_the_prompt_comes_back_after_a_wide_line_is_emptied_or_the_screen_widens(
        clients: Clients, person: Callable[..., object]) -> None:
    await bob_in(clients, "general")
    alice: Person = await person("alice")  # type: ignore[misc]
    await alice.joins("general")
    alice.type("x" * 120)
    await alice.sees(lambda p: p.input_row.endswith("x" * 20), "the long line")
    alice.type("\x15")  # Ctrl-U empties it, unsent
    await alice.sees(lambda p: p.input_row == "#general>", "the prompt after Ctrl-U")
    # A terminal narrower than the prompt scrolls the line sideways to its cursor;
    # widened again, it shows the prompt whole.
    terminal = alice.screen.app.output
    assert isinstance(terminal, Terminal)
    terminal.columns = 4
    alice.screen.app.invalidate()
    await alice.sees(lambda p: p.screen.app.renderer._last_size is not None
                     and p.screen.app.renderer._last_size.columns == 4, "the narrow screen")
    terminal.columns = COLUMNS
    alice.type("hi")
    await alice.sees(lambda p: p.input_row == "#general> hi", "the prompt, widened")


async def test_a_direct_conversation_is_one_whatever_the_case(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients)
    alice: Person = await person("alice")  # type: ignore[misc]
    alice.type("/query BOB" + ENTER)
    await alice.sees(lambda p: p.state.current.casefold() == "@bob", "the conversation")
    alice.type("hello bob" + ENTER)
    assert (await said(bob, "hello bob"))["to"] == "bob"
    await bob.command("/msg alice hi alice")
    await alice.sees("<bob -> alice> hi alice")
    alice.type("/query bob" + ENTER)
    await asyncio.sleep(0.1)
    people = [key for key in alice.state.conversations if key.startswith("@")]
    assert len(people) == 1, people
    texts = [line.text for line in alice.state.conversations[people[0]].lines]
    assert "hello bob" in texts and "hi alice" in texts


async def test_a_narrow_terminal_leaves_the_conversation_most_of_the_width(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general")
    alice: Person = await person("alice", columns=40)  # type: ignore[misc]
    await alice.joins("general")
    await bob.command("/say general hello narrow")
    # The list takes ten columns of forty: the message keeps to one row.
    await alice.sees(lambda p: any(row.endswith("] <bob> hello narrow") and
                                   "\N{BOX DRAWINGS LIGHT VERTICAL}[" in row
                                   for row in p.rows()), "the message on one row")
    assert "2:#general" in alice.room_list()


async def test_a_long_message_wraps_between_words(
        clients: Clients, person: Callable[..., object]) -> None:
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
             "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa"]
    bob = await bob_in(clients, "general")
    alice: Person = await person("alice", columns=40)  # type: ignore[misc]
    await alice.joins("general")
    # The join's own lines are added once the room is on screen (after its history is
    # asked for): before them, bob's message would not be the newest line.
    await alice.sees("You joined #general")
    await bob.command("/say general " + " ".join(words))
    await alice.sees("<bob> ", "the message")  # drawn whole, at once
    rows = [row.split("\N{BOX DRAWINGS LIGHT VERTICAL}", 1)[1] for row in alice.rows()
            if "\N{BOX DRAWINGS LIGHT VERTICAL}" in row]
    first = next(i for i, row in enumerate(rows) if "<bob> " in row)
    message = [rows[first].split("<bob> ", 1)[1], *rows[first + 1:]]  # the newest line
    shown = [row for row in message if row.strip()]
    # Each row holds whole words; each continued row is indented by two.
    assert [word for row in shown for word in row.split()] == words, shown
    assert len(shown) > 2 and all(row.startswith("  ") and not row.startswith("   ")
                                  for row in shown[1:]), shown


async def test_an_emoji_sequence_takes_the_cells_the_terminal_draws_it_in(
        clients: Clients, person: Callable[..., object]) -> None:
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"  # joined by ZERO WIDTH JOINERs
    flag = "\U0001F1EB\U0001F1F7"  # two regional indicators
    bob = await bob_in(clients, "general")
    alice: Person = await person("alice")  # type: ignore[misc]
    await alice.joins("general")
    await bob.command(f"/say general {family}{flag} end")
    await alice.sees("end", "the message")
    drawn = alice.screen.app.renderer._last_screen
    assert drawn is not None
    y = next(y for y, row in enumerate(alice.rows()) if row.endswith(" end"))
    cells = {x: cell.char for x, cell in drawn.data_buffer[y].items()}
    # Each sequence is one cell two columns wide, as the terminal draws it: the
    # renderer writes the text after them where the terminal's cursor is.
    at = [x for x, char in cells.items() if char == family]
    assert at, cells
    assert [cells[at[0] + 2], cells[at[0] + 4], cells[at[0] + 5]] == [flag, " ", "e"]


async def test_a_long_room_name_is_cut_and_its_count_kept(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "abcdefghijklmnopqrstuvw")
    alice: Person = await person("alice")  # type: ignore[misc]
    await alice.joins("abcdefghijklmnopqrstuvw")
    alice.type("\x1b1")
    await alice.sees(lambda p: p.state.current == "", "the server conversation")
    await bob.command("/say abcdefghijklmnopqrstuvw alice: look")
    await bob.command("/say abcdefghijklmnopqrstuvw and here")
    await alice.sees(lambda p: "2:#abcdefghijk\N{HORIZONTAL ELLIPSIS} (2!)" in p.room_list(),
                     "the cut name and its count")



async def test_history_stopped_by_the_cap_does_not_claim_the_start(
        clients: Clients, person: Callable[..., object],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(controller_module, "HISTORY_PAGE", 20)
    monkeypatch.setattr(controller_module, "HISTORY_MAX", 30)  # as the server's cap were 30
    bob = await bob_in(clients, "big")
    for n in range(40):
        await bob.command(f"/say big message number {n}")
    alice: Person = await person("alice")  # type: ignore[misc]
    alice.type("/join big" + ENTER)
    await alice.sees("message number 39")
    for _ in range(8):
        alice.type(PAGE_UP)
        await asyncio.sleep(0.05)
    await alice.sees("message number 10")
    await alice.sees("older messages of #big are beyond what the server's /history gives")
    assert "the start of #big's history" not in alice.text()


def conversation_rows(person: Person) -> list[str]:
    """The conversation's rows on screen, less the bottom one (where a view scrolled up
    says how far it is from the newest line)."""
    rows = person.rows()[:-2]  # not the status bar and the input line
    return [row.partition("\N{BOX DRAWINGS LIGHT VERTICAL}")[2] for row in rows[:-1]]


async def test_a_view_scrolled_up_stays_put_while_new_lines_arrive(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general")
    for n in range(40):
        await bob.command(f"/say general line {n}")
    alice: Person = await person("alice")  # type: ignore[misc]
    alice.type("/join general" + ENTER)
    await alice.sees("line 39")
    alice.type(PAGE_UP)
    await alice.sees("rows below: PageDown")
    reading = conversation_rows(alice)
    await bob.command("/say general a new one")
    await bob.command("/say general and a long one " + "that wraps " * 12)
    await alice.sees("2 new lines, ")
    assert conversation_rows(alice) == reading  # the lines read did not move
    alice.type(PAGE_DOWN + PAGE_DOWN)  # a page, then the rows the new lines take
    await alice.sees(lambda p: "that wraps" in p.text() and "rows below" not in p.text(),
                     "back at the bottom")
    await bob.command("/say general followed at the bottom")
    await alice.sees(lambda p: p.rows()[-3].endswith("<bob> followed at the bottom"),
                     "the newest line on the bottom row")
    assert "new line" not in alice.text()


async def test_commands_about_the_current_room_act_on_the_room_on_screen(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "secret", "dev")
    alice: Person = await person("alice")  # type: ignore[misc]
    await alice.joins("dev")
    await alice.joins("secret")  # the server's current room, shown last
    alice.type("\x1b1")  # Alt-1: the server conversation
    await alice.sees(lambda p: p.input_row == "server>", "the server prompt")
    alice.type("/leave" + ENTER)
    await alice.sees("/leave acts on a room, and this conversation is none")
    alice.type("/query carol" + ENTER)
    await alice.sees(lambda p: p.input_row == "@carol>", "the conversation with carol")
    alice.type("/part" + ENTER + "/me waves" + ENTER)
    await alice.sees("/part acts on a room")
    await alice.sees("/me acts on the room on screen")
    members = (await bob.command("/who secret"))["members"]
    assert "alice" in [member["user"] for member in members]  # never left #secret
    alice.type("\x1b2")  # #dev, while the server's current room is still #secret
    await alice.sees(lambda p: p.input_row == "#dev>", "#dev")
    alice.type("/leave" + ENTER)
    await alice.sees(lambda p: "dev" not in p.state.conversations, "#dev left")
    assert "secret" in alice.state.conversations


def test_a_command_without_a_room_names_the_room_on_screen() -> None:
    defaults = RoomDefaults()
    defaults.learn([
        {"name": "topic", "params": [{"name": "room", "type": "room", "optional": True,
                                      "default": "current-room"},
                                     {"name": "text", "type": "text", "optional": True}]},
        {"name": "kick", "params": [{"name": "user", "type": "user", "optional": False},
                                    {"name": "room", "type": "room", "optional": True,
                                     "default": "current-room"},
                                    {"name": "reason", "type": "text", "optional": True}]},
        {"name": "who", "aliases": ["names"],
         "params": [{"name": "room", "type": "room", "optional": True,
                     "default": "current-room"}]},
        {"name": "leave", "params": [{"name": "room", "type": "room", "optional": True,
                                      "default": "current-room", "first_word": True},
                                     {"name": "reason", "type": "text", "optional": True}]}])
    known = {"dev", "general"}
    assert defaults.aim("/topic hello all", "dev", known) == "/topic #dev hello all"
    assert defaults.aim("/topic general hello", "dev", known) == "/topic general hello"
    assert defaults.aim("/kick bob spam", "dev", known) == "/kick bob #dev spam"
    assert defaults.aim("/kick bob", "dev", known) == "/kick bob #dev"
    assert defaults.aim("/kick bob #other", "dev", known) == "/kick bob #other"
    assert defaults.aim("/names", "dev", known) == "/names #dev"
    assert defaults.aim("/leave", "dev", known) == "/leave #dev"
    assert defaults.aim("/leave typo bye", "dev", known) == "/leave typo bye"  # the server's
    assert defaults.aim("/who elsewhere", None, known) == "/who elsewhere"
    refused = defaults.aim("/topic hello", None, known)
    assert isinstance(refused, Line) and refused.kind == "error"
    assert defaults.aim("/whois bob", None, known) == "/whois bob"


async def test_a_room_named_after_its_place_is_sent_as_typed(
        clients: Clients, person: Callable[..., object]) -> None:
    # "/who 2 general" in #dev's view: the view's room put in first made it three
    # words, "too many arguments"; as typed, the server says the room goes first.
    bob = await bob_in(clients, "general", "dev")
    alice: Person = await person("alice")  # type: ignore[misc]
    await alice.joins("general")
    await alice.joins("dev")
    alice.type("/who 2 general" + ENTER)
    await alice.sees("the room comes first: /who general 2.")
    alice.type("/history 5 #general" + ENTER)
    await alice.sees("the room comes first: /history #general 5.")
    carol = await clients.user("carol")
    await carol.command("/join general")
    await carol.command("/join dev")
    await bob.command("/promote alice dev")
    await bob.command("/promote alice general")
    await alice.sees("bob made you an admin of #general.")
    alice.type("/kick carol spam general" + ENTER)  # a reason is free text: from #dev
    await alice.sees("carol was kicked from #dev by alice (spam general)")
    members = (await bob.command("/who general"))["members"]
    assert "carol" in [member["user"] for member in members]
    assert "too many arguments" not in alice.text()


async def test_a_bots_message_shows_its_sender_as_a_bot(
        clients: Clients, person: Callable[..., object]) -> None:
    bob = await bob_in(clients, "general")
    token = str((await bob.command("/bot create helper"))["token"])
    helper = await clients.anonymous()
    await helper.command(f"/auth {token}")
    await helper.command("/join general")
    await clients.user("alice")
    alice: Person = await person("alice", register=False)  # type: ignore[misc]
    await alice.joins("general")
    await helper.command("/say general beep")
    await alice.sees("<helper (bot)> beep")
    await bob.command("/say general a person")
    await alice.sees("<bob> a person")
    await helper.command("/msg alice psst")
    alice.type("/query helper" + ENTER)
    await alice.sees("<helper (bot) -> alice> psst")


# -- a room's decisions, told once -------------------------------------------------------------


async def told_after(alice: Person, line: str) -> list[str]:
    """Type ``line`` in the room on screen; the lines it added there once answered
    (/whoami, typed after it, is answered after it and after the events it caused)."""
    conversation = alice.state.shown
    last = conversation.lines[-1]  # (older lines may still come before it: history)

    def added() -> list[str]:
        held = list(conversation.lines)
        return [shown.text for shown in held[next(i for i, shown in enumerate(held)
                                                   if shown is last) + 1:]]

    alice.type(line + ENTER + "/whoami" + ENTER)
    await alice.sees(lambda p: any(text.startswith("You are alice") for text in added()),
                     f"the answers to {line}")
    lines = added()
    return lines[:next(i for i, text in enumerate(lines) if text.startswith("You are alice"))]


async def test_a_room_decision_shows_one_line_its_events_saying_what_the_reply_added(
        clients: Clients, person: Callable[..., object], clock: ManualClock) -> None:
    alice: Person = await person("alice")  # type: ignore[misc]
    alice.type("/create dev" + ENTER)
    await alice.sees(lambda p: p.state.current == "dev", "#dev shown")
    for name in ("bob", "carol", "dave"):
        client = await clients.user(name)
        await client.command("/join dev")
        await alice.sees(f"{name} joined #dev")
    now = clock.time()
    assert await told_after(alice, "/kick dave") == ["dave was kicked from #dev by alice"]
    # The ban's event names no end: its line is said again with the reply's.
    assert await told_after(alice, "/ban bob 2h spamming") == [
        f"bob was banned from #dev by alice until {local_time(now + 7200)} (spamming)"]
    await alice.sees(f"until {local_time(now + 7200)} (spamming)")
    assert await told_after(alice, "/unban bob") == ["bob was unbanned from #dev by alice"]
    # A mute's event names its end, as every member's screen shows.
    assert await told_after(alice, "/mute carol 10m") == [
        f"carol was muted in #dev by alice until {local_time(now + 600)}"]
    assert await told_after(alice, "/unmute carol") == ["carol was unmuted in #dev by alice"]
    assert await told_after(alice, "/promote carol") == ["carol is now an admin of #dev"]
    # Nothing changed, and no event told it: the reply says so.
    assert await told_after(alice, "/promote carol") == ["carol is already an admin of #dev."]
    assert await told_after(alice, "/demote carol") == ["carol is no longer an admin of #dev"]
    assert await told_after(alice, "/voice carol") == ["alice gave carol voice in #dev"]
    assert await told_after(alice, "/devoice carol") == [
        "alice took the voice of carol in #dev"]
    assert await told_after(alice, "/invite dave") == ["alice invited dave to #dev"]
    assert await told_after(alice, "/topic ship it") == ["alice set the topic of #dev: ship it"]
    assert await told_after(alice, "/topic") == ["#dev: ship it"]
    # Typed in another room's view, the reply is what its actor sees there.
    alice.type("/create den" + ENTER)
    await alice.sees("Plain lines now go to #den.")
    assert await told_after(alice, "/mute carol #dev") == ["carol is muted in #dev."]
