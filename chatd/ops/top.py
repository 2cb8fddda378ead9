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
        head = Table.grid(expand=True)
        for _ in range(5):
            head.add_column()
        head.add_row(_figure("connections", status.get("connections", "-")),
                     _figure("online", status.get("users_online", "-")),
                     _figure("rooms", status.get("rooms", "-")),
                     _figure("msg/s", f"{status.get('messages_per_second', 0):.1f}"),
                     _figure("loop lag", f"{status.get('loop_lag', 0) * 1000:.1f} ms"))
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
        title = f"chatd {status.get('version', '')} · q to quit"
        return Group(Panel(head, title=title), events)


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
