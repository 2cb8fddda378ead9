"""Leaving a room by someone else's decision, in chromium: a kick is shown once, and a
room taken away from the screen is no longer claimed to be on it."""

from __future__ import annotations

from typing import Any

from tests.helpers import PASSWORD
from tests.web.browser.conftest import Daemon
from tests.web.browser.pages import enter_room, websockets


async def test_a_login_sent_twice_opens_one_connection_and_shows_a_kick_once(
        daemon: Daemon, browser: Any) -> None:
    alice = await daemon.tcp_user("alice")
    await daemon.tcp_user("dave")
    await alice.command("/create lounge")
    dave = await browser("dave")
    sockets = websockets(dave)
    await dave.goto(daemon.url + "/")
    await dave.get_by_label("Name").fill("dave")
    await dave.get_by_label("Password").fill(PASSWORD)
    # Enter, then a click on Log in before the first login is answered.
    await dave.evaluate("""() => {
        document.getElementById("login-form").requestSubmit();
        document.getElementById("login-button").click();
    }""")
    await dave.locator("#me").filter(has_text="dave").wait_for()
    await enter_room(dave, "/join lounge", "lounge")
    await alice.command("/kick dave lounge bye from alice")
    kicked = dave.locator("#log li.event").filter(
        has_text="dave was kicked from #lounge by alice (bye from alice)")
    await kicked.first.wait_for()
    # Said after the kick: by the time it is listed, every socket told its kick.
    await alice.command("/msg dave after the kick")
    await dave.get_by_role("button", name="alice, 1 unread").wait_for()
    assert await kicked.count() == 1
    assert len(sockets) == 1
    assert dave.script_errors == []


async def test_a_connection_opened_twice_at_once_is_one_socket(
        daemon: Daemon, browser: Any) -> None:
    page = await browser("probe")
    sockets = websockets(page)
    await page.goto(daemon.url + "/")
    same = await page.evaluate("""async () => {
        const {Connection} = await import("/static/connection.js");
        const conn = new Connection("probe");
        const [first, second] = await Promise.all([conn.open(), conn.open()]);
        return first === second && conn.ws.readyState === WebSocket.OPEN;
    }""")
    assert same is True
    assert len(sockets) == 1
    assert page.script_errors == []
