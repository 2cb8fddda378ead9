"""``chatctl top``: the screen model, and the live screen against a daemon."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console

from chatd import __version__
from chatd.ops.control_client import ControlClient, ControlError
from chatd.ops.nodes import CLUSTER_FIGURES, NODE_FIGURES
from chatd.ops.top import KEEP_EVENTS, TopScreen, run_top
from tests.helpers import Clients
from tests.operations import ChatdProcess, running_daemon, wait_for, write_config

STATUS = {"version": "9.9.9", "connections": 17, "users_online": 12, "rooms": 5,
          "messages_per_second": 42.25, "loop_lag": 0.0031}


def printed(screen: TopScreen, height: int = 40) -> str:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(screen.render(height))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return text


def test_render_before_anything_arrives() -> None:
    text = printed(TopScreen())
    assert "connections -" in text and "q to quit" in text


def test_render_status_and_events() -> None:
    screen = TopScreen()
    screen.feed({"status": STATUS})
    ts = time.mktime((2024, 5, 6, 7, 8, 9, 0, 0, -1))
    screen.feed({"event": {"ts": ts, "action": "join", "actor": "alice", "room": "lounge"}})
    screen.feed({"event": {"ts": ts + 1, "action": "ban", "actor": "carol", "target": "bob",
                           "room": "lounge", "reason": "spamming"}})
    screen.feed({"other": "ignored"})
    text = printed(screen)
    for shown in ("chatd 9.9.9", "connections 17", "online 12", "rooms 5", "msg/s 42.2",
                  "loop lag 3.1 ms", "07:08:09", "07:08:10", "spamming"):
        assert shown in text, shown
    rows = [line for line in text.splitlines() if "lounge" in line]
    assert len(rows) == 2
    # The newest event comes first.
    assert "ban" in rows[0] and "bob" in rows[0] and "carol" in rows[0]
    assert "join" in rows[1] and "alice" in rows[1]


def test_a_cluster_nodes_figures_say_whose_they_are() -> None:
    """A cluster node's status names the node and which figures are its own: the
    screen shows them in a row of this node's and a row of the whole cluster's."""
    screen = TopScreen()
    screen.feed({"status": {**STATUS, "node": "n1", "node_figures": list(NODE_FIGURES),
                            "cluster_figures": list(CLUSTER_FIGURES)}})
    text = printed(screen)
    assert "chatd 9.9.9 · node n1 · q to quit" in text
    node_row = next(line for line in text.splitlines() if "this node" in line)
    cluster_row = next(line for line in text.splitlines() if "whole cluster" in line)
    for shown in ("connections 17", "msg/s 42.2", "loop lag 3.1 ms"):
        assert shown in node_row and shown not in cluster_row, shown
    for shown in ("online 12", "rooms 5"):
        assert shown in cluster_row and shown not in node_row, shown
    # A daemon's own figures are all its own: one row, no labels.
    alone = TopScreen()
    alone.feed({"status": STATUS})
    text = printed(alone)
    assert "this node" not in text and "whole cluster" not in text and "node n1" not in text


def test_words_of_users_are_shown_as_text_never_as_markup() -> None:
    # A reason like "[/]" is not markup rich could parse: it stopped the screen.
    screen = TopScreen()
    screen.feed({"status": STATUS})
    screen.feed({"event": {"ts": 0, "action": "kick", "actor": "[bold]alice",
                           "target": "bob", "room": "lounge", "reason": "[/] bye"}})
    text = printed(screen)
    assert "[/] bye" in text and "[bold]alice" in text and "connections 17" in text


def test_the_screen_keeps_what_fits() -> None:
    screen = TopScreen()
    for n in range(KEEP_EVENTS + 50):
        screen.feed({"event": {"ts": 0, "action": "login", "actor": f"user{n}"}})
    assert len(screen.events) == KEEP_EVENTS
    text = printed(screen, height=12)
    shown = [line for line in text.splitlines() if "login" in line]
    assert len(shown) == 4  # height - 8 rows
    assert f"user{KEEP_EVENTS + 49}" in shown[0]


def live_console() -> tuple[Console, io.StringIO]:
    """A console that redraws as a terminal would, into a string."""
    output = io.StringIO()
    return Console(file=output, width=100, height=30, color_system=None,
                   force_terminal=True), output


@pytest.fixture
def fast_follow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO())  # not a terminal: no key reading
    monkeypatch.setattr("chatd.ops.control.FOLLOW_STATUS_INTERVAL", 0.05)


@pytest.fixture
def keyboard(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bytes], None]]:
    """A terminal as standard input (a pty): the returned function types into it."""
    master, slave = os.openpty()
    terminal = open(slave, encoding="utf-8")  # noqa: SIM115 - closed below
    monkeypatch.setattr("sys.stdin", terminal)
    try:
        yield lambda keys: os.write(master, keys) and None
    finally:
        terminal.close()
        os.close(master)


async def ended(top: asyncio.Future[None], timeout: float) -> bool:
    """Whether ``top`` ends by itself within ``timeout``."""
    await asyncio.wait({top}, timeout=timeout)
    return top.done()


async def cancel(top: asyncio.Future[None]) -> None:
    top.cancel()
    with contextlib.suppress(asyncio.CancelledError, ControlError):
        await top


def said_it_ended(top: asyncio.Future[None]) -> bool:
    """The screen ended by itself, saying the daemon ended the stream (chatctl exits
    1 with that line)."""
    error = top.exception() if top.done() and not top.cancelled() else None
    return isinstance(error, ControlError) and "ended the stream" in str(error)


async def test_run_top_shows_a_live_daemon_and_quits_on_q(
        tmp_path: Path, fast_follow: None, keyboard: Callable[[bytes], None]) -> None:
    console, output = live_console()
    async with running_daemon(tmp_path) as daemon:
        clients = Clients(daemon)
        listeners = daemon.services.audit.listeners
        top = asyncio.ensure_future(run_top(ControlClient(daemon.control.path), console))
        try:
            await wait_for(lambda: listeners)
            alice = await clients.user("alice")
            await alice.command("/create lounge")
            await wait_for(lambda: "lounge" in output.getvalue())
            await wait_for(lambda: "connections 1" in output.getvalue())
            await wait_for(lambda: f"chatd {__version__}" in output.getvalue())
            keyboard(b"x")
            await asyncio.sleep(0.05)
            assert not top.done()
            keyboard(b"q")
            assert await ended(top, 5.0)
            assert top.exception() is None
        finally:
            await clients.close()
            await cancel(top)
            # The daemon notices the screen went away (at its next status line).
            await wait_for(lambda: not listeners)
    text = output.getvalue()
    assert "create" in text and "alice" in text and "online 1" in text


async def test_run_top_ends_when_the_daemon_process_exits(tmp_path: Path,
                                                          fast_follow: None) -> None:
    console, output = live_console()
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml")) as daemon:
        await daemon.ready()
        top = asyncio.ensure_future(run_top(ControlClient(daemon.control_path), console))
        try:
            await wait_for(lambda: "connections 0" in output.getvalue())
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait(5.0) == 0
            assert await ended(top, 5.0)
        finally:
            await cancel(top)
    assert said_it_ended(top)


async def test_run_top_ends_when_the_in_process_daemon_stops(
        tmp_path: Path, fast_follow: None, keyboard: Callable[[bytes], None]) -> None:
    console, _ = live_console()
    async with running_daemon(tmp_path) as daemon:
        listeners = daemon.services.audit.listeners
        top = asyncio.ensure_future(run_top(ControlClient(daemon.control.path), console))
        try:
            await wait_for(lambda: listeners)
            await daemon.stop()
            assert await ended(top, 2.0), "chatctl top still running after the daemon stopped"
            assert said_it_ended(top)
        finally:
            keyboard(b"q")
            await ended(top, 5.0)
            await cancel(top)
            await wait_for(lambda: not listeners)


async def test_cancelling_run_top_stops_following(tmp_path: Path, fast_follow: None) -> None:
    console, _ = live_console()
    async with running_daemon(tmp_path) as daemon:
        listeners = daemon.services.audit.listeners
        top = asyncio.ensure_future(run_top(ControlClient(daemon.control.path), console))
        try:
            await wait_for(lambda: listeners)
            await cancel(top)
            await wait_for(lambda: not listeners, timeout=1.0)
        finally:
            for task in asyncio.all_tasks():  # what run_top left behind
                if task.get_coro().__qualname__ == "_pump":  # type: ignore[union-attr]
                    await cancel(task)
            await wait_for(lambda: not listeners)
