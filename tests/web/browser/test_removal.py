"""Leaving a room by someone else's decision, in chromium: a kick is shown once, and a
room taken away from the screen is no longer claimed to be on it."""

from __future__ import annotations

from typing import Any

from tests.helpers import PASSWORD
from tests.web.browser.conftest import Daemon
from tests.web.browser.pages import enter_room, register, type_line, websockets


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
    await dave.locator("#log li.removed").filter(has_text="You were kicked").wait_for()
    # Said after the kick: by the time it is listed, every socket told its kick.
    await alice.command("/msg dave after the kick")
    await dave.get_by_role("button", name="alice, 1 unread").wait_for()
    await dave.get_by_role("button", name="#lounge, not a member").click()
    kicked = dave.locator("#log li.event").filter(
        has_text="dave was kicked from #lounge by alice (bye from alice)")
    await kicked.first.wait_for()
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


async def test_kicked_banned_or_ended_on_screen_the_screen_shows_none_and_says_why(
        daemon: Daemon, browser: Any) -> None:
    alice = await daemon.tcp_user("alice")
    dave = await browser("dave")
    await register(dave, daemon.url, "dave")
    composer_label = dave.locator("#composer-label")
    cases = [("lounge", "/kick dave lounge bye from alice",
              "You were kicked from #lounge by alice (bye from alice)."),
             ("hall", "/ban dave hall spam", "You were banned from #hall by alice (spam)."),
             # alice leaves dave, a plain member, alone: the room ends.
             ("duo", "/leave duo", "#duo ended: you were its last member.")]
    for room, line, why in cases:
        await alice.command(f"/create {room}")
        await enter_room(dave, f"/join {room}", room)
        assert await composer_label.text_content() == f"Message #{room}"
        await alice.command(line)
        await shows_no_room(dave, room, why)
        assert await dave.locator("#log li.error").filter(has_text="no-room").count() == 0
    # Opened again to read it: the room is named, and what the composer would do.
    await dave.get_by_role("button", name="#lounge, not a member").click()
    await dave.locator("#view-title").filter(has_text="#lounge").wait_for()
    assert await composer_label.text_content() == "Not in #lounge: /join lounge to go back"
    await dave.locator("#log li.event").filter(has_text="dave was kicked").wait_for()
    await type_line(dave, "kept for later")
    await dave.locator("#log li.error").filter(has_text="You are not in #lounge").wait_for()
    assert await dave.locator("#composer-input").input_value() == "kept for later"
    assert dave.script_errors == []


async def test_removed_while_away_the_screen_shows_none_once_back_and_says_why(
        daemon: Daemon, browser: Any) -> None:
    dave = await browser("dave")
    await register(dave, daemon.url, "dave")
    composer_label = dave.locator("#composer-label")
    cases = [("lounge", "alice", "/kick dave lounge bye from alice",
              "You were kicked from #lounge by alice (bye from alice)."),
             ("hall", "alice", "/ban dave hall spam",
              "You were banned from #hall by alice (spam)."),
             # alice leaves dave, a plain member, alone: the room ends.
             ("duo", "alice", "/leave duo", "#duo ended: you were its last member."),
             # Left over TCP: no notification says so, and the page says what it knows.
             ("yard", "dave", "/leave yard", "You are no longer in #yard")]
    for room, actor, line, why in cases:
        alice = await daemon.tcp_user("alice")
        await alice.command(f"/create {room}")
        await enter_room(dave, f"/join {room}", room)
        assert await composer_label.text_content() == f"Message #{room}"
        # The page's socket is gone while it happens: the daemon is back without its
        # web listener, and the sanction is given over TCP.
        await daemon.stop()
        await dave.locator("#connection").filter(has_text="reconnecting").wait_for()
        await daemon.start(web=False)
        await (await daemon.tcp_user(actor)).command(line)
        await daemon.stop()
        await daemon.start()
        await dave.locator("#connection").filter(has_text="Reconnected").wait_for()
        await shows_no_room(dave, room, why)
    # Opened again, the room tells what happened to it, as after a kick seen live.
    await dave.get_by_role("button", name="#lounge, not a member").click()
    await dave.locator("#view-title").filter(has_text="#lounge").wait_for()
    assert await composer_label.text_content() == "Not in #lounge: /join lounge to go back"
    await dave.locator("#log li.event").filter(
        has_text="dave was kicked from #lounge by alice (bye from alice)").wait_for()
    assert dave.script_errors == []


async def shows_no_room(page: Any, room: str, why: str) -> None:
    """The page, taken out of ``room``, says ``why``, shows no room and its list keeps
    the room as one it is not a member of; a plain line has nowhere to go, and the
    page says so itself."""
    await page.locator("#log li.removed").filter(has_text=why).wait_for()
    await page.locator("#view-title").filter(has_text="No room yet").wait_for()
    assert await page.locator("#composer-label").text_content() == "Message"
    assert await page.locator("#member-list li").count() == 0
    await page.get_by_role("button", name=f"#{room}, not a member").wait_for()
    await type_line(page, "still here?")
    nowhere = page.locator("#log li.error").filter(has_text="join or create a room first")
    await nowhere.wait_for()


async def test_an_unban_from_a_room_one_is_not_in_lists_it_as_not_a_member(
        daemon: Daemon, browser: Any) -> None:
    alice = await daemon.tcp_user("alice")
    await daemon.tcp_user("dave")
    await alice.command("/create hall")
    await alice.command("/ban dave hall spam")
    dave = await browser("dave")
    await dave.goto(daemon.url + "/")
    await dave.get_by_label("Name").fill("dave")
    await dave.get_by_label("Password").fill(PASSWORD)
    await dave.get_by_role("button", name="Log in").click()
    await dave.locator("#me").filter(has_text="dave").wait_for()
    await alice.command("/unban dave hall")
    # The unban reaches dave, who is in no room for it: #hall is one to /join.
    await dave.get_by_role("button", name="#hall, not a member").click()
    await dave.locator("#view-title").filter(has_text="#hall").wait_for()
    await dave.locator("#log li.event").filter(has_text="dave was unbanned by alice").wait_for()
    assert await dave.locator("#composer-label").text_content() == \
        "Not in #hall: /join hall to go back"
    assert await dave.locator("#log li.error").count() == 0
    await enter_room(dave, "/join hall", "hall")
    # The title showed #hall before the join: wait for the join's own change.
    joined = dave.locator("#composer-label").filter(has_text="Message #hall")
    await joined.wait_for()
    assert await dave.locator("#composer-label").text_content() == "Message #hall"
    assert dave.script_errors == []
