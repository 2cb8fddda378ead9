"""``chatctl top``: a live admin screen built with rich.

The top shows the daemon's status (connections, users, rooms, message rate,
event-loop lag) and, below, governance and presence events as they happen.
It redraws in place (no flicker) and quits on ``q`` or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import termios
import time
import tty
from collections import deque
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from collections.abc import Callable

    from chatd.ops.control_client import ControlClient

KEEP_EVENTS = 200
COLOURS = {"join": "green", "leave": "yellow", "kick": "red", "ban": "bold red",
           "mute": "magenta", "unmute": "magenta", "unban": "cyan", "promote": "cyan",
           "demote": "cyan", "login": "dim", "failed-login": "red"}


class TopScreen:
    """What the screen shows, rebuilt from the stream of status and events."""

    def __init__(self) -> None:
        self.status: dict[str, Any] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=KEEP_EVENTS)

    def feed(self, item: dict[str, Any]) -> None:
        if "status" in item:
            self.status = item["status"]
        elif "event" in item:
            self.events.appendleft(item["event"])

    def render(self, height: int = 40) -> Group:
        status = self.status
        events = Table(expand=True, box=None)
        for column in ("time", "action", "actor", "target", "room", "reason"):
            events.add_column(column)
        for entry in list(self.events)[:max(1, height - 8)]:
            action = str(entry.get("action", ""))
            # Text, never markup: a reason or a topic is anyone's words, and one
            # like "[/]" would stop the screen (rich cannot parse it) or restyle it.
            events.add_row(time.strftime("%H:%M:%S", time.localtime(entry.get("ts", 0))),
                           Text(action, style=COLOURS.get(action, "white")),
                           *(Text(str(entry.get(key) or ""))
                             for key in ("actor", "target", "room", "reason")))
        node = f" · node {status['node']}" if "node" in status else ""
        title = f"chatd {status.get('version', '')}{node} · q to quit"
        return Group(Panel(_head(status), title=title), events)


def _head(status: dict[str, Any]) -> Table:
    """The figures: in one row for a daemon, whose figures are all its own; on a
    cluster node, a row of this node's and a row of the whole cluster's, as its
    status says which is which (an operator adding up the nodes' screens must not
    count the cluster's users once per node)."""
    figures = {key: _figure(label, shown(status.get(key))) for key, label, shown in FIGURES}
    head = Table.grid(expand=True)
    if "node" not in status:
        for _ in figures:
            head.add_column()
        head.add_row(*figures.values())
        return head
    rows = [("this node", [figures[key] for key in status.get("node_figures", ())
                           if key in figures]),
            ("whole cluster", [figures[key] for key in status.get("cluster_figures", ())
                               if key in figures])]
    width = max(len(row) for _, row in rows)
    for _ in range(width + 1):
        head.add_column()
    for whose, row in rows:
        head.add_row(Text(whose, style="dim"), *row, *([""] * (width - len(row))))
    return head


def _count(value: object) -> str:
    return "-" if value is None else str(value)


def _rate(value: object) -> str:
    return f"{value if isinstance(value, (int, float)) else 0:.1f}"


def _lag(value: object) -> str:
    return f"{(value if isinstance(value, (int, float)) else 0) * 1000:.1f} ms"


# The head's figures: the status field, its label, how its value is shown.
FIGURES: tuple[tuple[str, str, Callable[[object], str]], ...] = (
    ("connections", "connections", _count), ("users_online", "online", _count),
    ("rooms", "rooms", _count), ("messages_per_second", "msg/s", _rate),
    ("loop_lag", "loop lag", _lag))


def _figure(label: str, value: object) -> Text:
    """``label`` and its value in bold."""
    figure = Text(f"{label} ")
    figure.append(str(value), style="bold")
    return figure


async def run_top(client: ControlClient, console: Console) -> None:
    """Run the live screen until ``q``, Ctrl-C or the daemon goes away."""
    screen = TopScreen()
    quit_pressed = asyncio.Event()
    with _keys(quit_pressed), Live(screen.render(console.height), console=console,
                                    auto_refresh=False, screen=True) as live:
        follower = asyncio.ensure_future(_pump(client, screen, live, console))
        waiter = asyncio.ensure_future(quit_pressed.wait())
        try:
            await asyncio.wait({follower, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when cancelled (Ctrl-C): leave no task or connection behind
            for task in (follower, waiter):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
    # Off the screen: the daemon going away is said (chatctl exits 1), a q is not.
    if follower.done() and not follower.cancelled() and follower.exception() is not None:
        raise follower.exception()  # type: ignore[misc]


async def _pump(client: ControlClient, screen: TopScreen, live: Live, console: Console) -> None:
    async for item in client.follow():
        screen.feed(item)
        live.update(screen.render(console.height), refresh=True)


@contextlib.contextmanager
def _keys(quit_pressed: asyncio.Event) -> Any:
    """Read single key presses (cbreak mode) while the screen runs."""
    if not sys.stdin.isatty():
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    loop = asyncio.get_running_loop()

    def on_key() -> None:
        if sys.stdin.read(1).lower() == "q":
            quit_pressed.set()

    tty.setcbreak(fd)
    loop.add_reader(fd, on_key)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
