"""What a person does in the browser client and on the admin page, step by step."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from tests.helpers import PASSWORD


async def register(page: Any, url: str, name: str) -> None:
    """Open the client and register ``name``; wait for the chat screen."""
    await page.goto(url + "/")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Register").click()
    await page.locator("#app").wait_for(state="visible")
    await page.locator("#me").filter(has_text=name).wait_for()


async def type_line(page: Any, line: str) -> None:
    """Type ``line`` into the composer and press Enter, as a keyboard user does."""
    composer = page.locator("#composer-input")
    await composer.fill(line)
    await composer.press("Enter")


async def enter_room(page: Any, line: str, room: str) -> None:
    """Run ``/join room`` or ``/create room`` and wait until the room is on screen."""
    await type_line(page, line)
    await page.locator("#view-title").filter(has_text=f"#{room}").wait_for()


def log_text(page: Any, text: str) -> Any:
    """The messages of the room on screen holding ``text``."""
    return page.locator("#log li.message").filter(has_text=text)


async def see(page: Any, text: str) -> None:
    await log_text(page, text).first.wait_for()


async def messages(page: Any) -> list[str]:
    """The text of every message of the room on screen, in order."""
    return [str(t) for t in await page.locator("#log li.message .text").all_inner_texts()]


def websockets(page: Any) -> list[Any]:
    """The WebSockets ``page`` opens from now on (a list that grows)."""
    opened: list[Any] = []

    def note(socket: Any) -> None:  # Playwright calls Python functions, not builtins
        opened.append(socket)

    page.on("websocket", note)
    return opened


def overlapping(page: Any, picked: Callable[[str], bool]) -> list[str]:
    """The commands ``picked`` chooses that the page sent over its WebSocket while
    another of them was still unanswered (a walk that overlapped one under way); the
    list fills as the page runs. Watch before the page opens its socket."""
    asking: set[str] = set()  # the labels of the commands sent and not yet answered
    overlaps: list[str] = []

    def sent(frame: str) -> None:
        label, _, line = frame.partition(" ")
        if picked(line):
            if asking:
                overlaps.append(line)
            asking.add(label.removeprefix("@"))

    def received(frame: str) -> None:
        record = json.loads(frame)
        if record.get("type") in ("ok", "error"):
            asking.discard(record.get("label", ""))

    def watch(socket: Any) -> None:
        socket.on("framesent", sent)
        socket.on("framereceived", received)

    page.on("websocket", watch)
    return overlaps


# A Connection of the page's own, logged in as ``user``; each [method, args] of
# ``calls`` called on it in turn, their replies returned (the login's alone when it
# fails). ``change`` is sent once, right after the reply to ``after``: a list that
# changes between two of its pages.
_CONNECTION_CALLS = """async ([password, user, calls, after, change]) => {
    const {Connection} = await import("/static/connection.js");
    const conn = new Connection("walker");
    const login = await conn.login(user, password, false);
    if (login.type !== "ok") return [login];
    const ask = conn.command.bind(conn);
    let changed = false;
    conn.command = async (line) => {
        const reply = await ask(line);
        if (change && !changed && line === after) {
            changed = true;
            await ask(change);
        }
        return reply;
    };
    const replies = [];
    for (const [method, args] of calls) replies.push(await conn[method](...args));
    return replies;
}"""


async def connection_calls(page: Any, user: str, calls: list[tuple[str, list[Any]]],
                           after: str | None = None,
                           change: str | None = None) -> list[dict[str, Any]]:
    """The replies of ``calls`` made on a connection.js Connection in ``page``, as
    ``user`` (see _CONNECTION_CALLS); the page must be on the daemon's site."""
    replies: list[dict[str, Any]] = await page.evaluate(
        _CONNECTION_CALLS, [PASSWORD, user, calls, after, change])
    return replies


class Between:
    """Stands between a page and the daemon on its /ws (give ``route`` to
    page.route_web_socket before the page connects). Once told a command line
    (``hold(line)``, ``refuse(line)``), it keeps back the server's answer to the next
    such line the page sends, to deliver it later (``release()``) as if the server had
    answered it after what came meanwhile; or it answers that line with an error in
    the server's place."""

    def __init__(self) -> None:
        self._held_line: str | None = None
        self._refused_line: str | None = None
        self._label: str | None = None  # the label of the line whose answer is kept back
        self._held: list[str] = []
        self._page_side: Any = None
        self.answered = asyncio.Event()  # set once the answer kept back came from the server

    def hold(self, line: str) -> None:
        self._held_line, self._label = line, None
        self.answered.clear()

    def refuse(self, line: str) -> None:
        self._refused_line = line

    def release(self) -> None:
        for message in self._held:
            self._page_side.send(message)
        self._held.clear()
        self._held_line = self._label = None

    def route(self, route: Any) -> None:
        self._page_side = route
        server = route.connect_to_server()

        def from_page(message: str | bytes) -> None:
            label, _, line = str(message).partition(" ")
            if line == self._refused_line:
                self._refused_line = None
                route.send(json.dumps({"type": "error", "code": "busy", "retry_ms": 100,
                                       "message": "the server is busy; try again.",
                                       "label": label.removeprefix("@")}))
                return
            if line == self._held_line and self._label is None:
                self._label = label.removeprefix("@")
            server.send(message)

        def from_server(message: str | bytes) -> None:
            if self._label is not None and isinstance(message, str):
                record = json.loads(message)
                if record.get("label") == self._label and record.get("type") in ("ok", "error"):
                    self._held.append(message)
                    self.answered.set()
                    return
            route.send(message)

        route.on_message(from_page)
        server.on_message(from_server)
