"""The web client reads every page of the lists it shows whole (its rooms, direct
conversations, stickers and notifications), one walk of a list at a time, as its
member list does of /who."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from tests.helpers import PASSWORD
from tests.web.browser.conftest import Daemon
from tests.web.browser.pages import Between, connection_calls, overlapping, register, type_line


async def alice_with_pages_of_everything(daemon: Daemon) -> None:
    """alice (over TCP) in three rooms and out of one, who wrote to three people and
    has five notifications: two to a page, each list takes two pages or more."""
    await daemon.stop()
    await daemon.start(rooms__page_size=2, limits__max_connections_per_ip=100)
    alice = await daemon.tcp_user("alice")
    for room in ("r1", "r2", "r3", "gone"):
        await alice.command(f"/create {room}")
    await alice.command("/leave gone")
    for name in ("bob", "carol", "dave"):
        await daemon.tcp_user(name)
        await alice.command(f"/msg {name} hi")
    assert daemon.server is not None
    services = daemon.server.services
    for n in range(5):
        await services.notifier.notify(services.accounts.require("alice"), "test", f"note {n}")


async def log_in(page: Any, daemon: Daemon) -> None:
    await page.goto(daemon.url + "/")
    await page.get_by_label("Name").fill("alice")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.locator("#me").filter(has_text="alice").wait_for()


async def test_walk_reads_every_page_of_each_list(daemon: Daemon, browser: Any) -> None:
    await alice_with_pages_of_everything(daemon)
    page = await browser("alice")
    await page.goto(daemon.url + "/")
    mine, talks, notes, stickers = await connection_calls(page, "alice", [
        ("walk", ["/myrooms", {"rooms": "id", "past": "id"}]),
        ("walk", ["/conversations", {"conversations": "user"}]),
        ("walk", ["/notifications", {"notifications": "id"}]),
        ("walk", ["/stickers", {"stickers": "name"}])])
    walked = {"rooms": [r["name"] for r in mine["rooms"]],
              "past": [r["name"] for r in mine["past"]],
              "with": [c["user"] for c in talks["conversations"]],
              "notes": [n["text"] for n in notes["notifications"]],
              "stickers": len(stickers["stickers"]), "pages": notes["pages"]}
    assert daemon.server is not None
    assert walked == {"rooms": ["r1", "r2", "r3"], "past": ["gone"],
                      "with": ["dave", "carol", "bob"],
                      # The newest page first, each page the oldest first.
                      "notes": ["note 3", "note 4", "note 1", "note 2", "note 0"],
                      "stickers": len(daemon.server.services.stickers.all()), "pages": 3}
    assert page.script_errors == []


async def test_the_client_shows_every_page_of_its_lists(daemon: Daemon, browser: Any) -> None:
    # Its first pages only: #r3 was listed as a room alice is not in, @bob was no
    # conversation, the count said 2 notifications of 5, and 2 stickers were offered.
    await alice_with_pages_of_everything(daemon)
    page = await browser("alice")
    await log_in(page, daemon)
    for room in ("#r1", "#r2", "#r3"):
        await page.get_by_role("button", name=room, exact=True).wait_for()
    for name in ("bob", "carol", "dave"):
        await page.get_by_role("button", name=name, exact=True).wait_for()
    await page.locator("#notification-count").filter(has_text="5").wait_for()
    await page.get_by_role("button", name="Notifications").click()
    listed = page.locator("#notification-list li")
    assert [text.split("note ")[-1] for text in await listed.all_text_contents()] == [
        str(n) for n in range(5)]  # the oldest first, as they came
    await page.get_by_role("button", name="Close").click()
    await page.get_by_role("button", name="Stickers").click()
    assert daemon.server is not None
    picks = page.locator(".sticker-pick")
    await picks.nth(len(daemon.server.services.stickers.all()) - 1).wait_for()
    assert await picks.count() == len(daemon.server.services.stickers.all())
    assert page.script_errors == []


async def test_notifications_asked_for_at_once_are_walked_one_walk_at_a_time(
        daemon: Daemon, browser: Any) -> None:
    # Each /notifications typed reloads the panel with a walk of every page: three in
    # a row started three walks at once, their pages interleaved, spending the tab's
    # command budget. One asked for during a walk is one more walk after it.
    await alice_with_pages_of_everything(daemon)
    page = await browser("alice")
    overlaps = overlapping(page, lambda line: line.startswith("/notifications ")
                           and line.split()[-1].isdigit())
    await log_in(page, daemon)
    await page.locator("#notification-count").filter(has_text="5").wait_for()
    for _ in range(3):
        await type_line(page, "/notifications")
    assert daemon.server is not None
    services = daemon.server.services
    await services.notifier.notify(services.accounts.require("alice"), "test", "note 5")
    await page.locator("#notification-count").filter(has_text="6").wait_for()
    await type_line(page, "/notifications")
    await page.locator("#log").get_by_text("6 notifications;").last.wait_for()
    assert overlaps == []
    assert await page.locator("#notification-count").text_content() == "6"
    assert page.script_errors == []




async def test_a_room_left_during_a_walk_of_myrooms_is_walked_again(
        daemon: Daemon, browser: Any) -> None:
    # r1, left after the first page, became a room before on the second: the count came
    # out right, so the walk stood, with r1 both in and out and r3 nowhere (the page
    # then listed #r3 as a room bob is not in).
    await daemon.stop()
    await daemon.start(rooms__page_size=2, limits__max_connections_per_ip=100)
    alice = await daemon.tcp_user("alice")
    bob = await daemon.tcp_user("bob")
    for room in ("r1", "r2", "r3"):
        await alice.command(f"/create {room}")
        await bob.command(f"/join {room}")
    page = await browser("bob")
    await page.goto(daemon.url + "/")
    # bob's rooms walked, r1 left (on the same connection) once the first page is read.
    [mine] = await connection_calls(page, "bob", [
        ("walk", ["/myrooms", {"rooms": "id", "past": "id"}])], "/myrooms 1", "/leave r1")
    walked = {"rooms": [r["name"] for r in mine["rooms"]],
              "past": [r["name"] for r in mine["past"]]}
    assert walked == {"rooms": ["r2", "r3"], "past": ["r1"]}
    assert page.script_errors == []


async def test_a_clear_answered_during_a_walk_of_notifications_stays_cleared(
        daemon: Daemon, browser: Any) -> None:
    # The walk's last page, answered before the clear, reached the page after the
    # clear's answer: the walk then put every cleared notification back in the panel.
    await alice_with_pages_of_everything(daemon)
    page = await browser("alice")
    between = Between()
    await page.route_web_socket(re.compile(r"/ws"), between.route)
    await log_in(page, daemon)
    count = page.locator("#notification-count")
    await count.filter(has_text="5").wait_for()
    between.hold("/notifications 3")
    await type_line(page, "/notifications")
    await asyncio.wait_for(between.answered.wait(), 15)
    await page.get_by_role("button", name="Notifications").click()
    await page.get_by_role("button", name="Clear all").click()
    await count.filter(has_text="0").wait_for()
    await page.keyboard.press("Escape")  # the dialog is modal: the composer waits for it
    between.release()
    # A command sent after the release is answered after the page read the held page.
    await type_line(page, "/whoami")
    await page.locator("#log").get_by_text("You are alice").last.wait_for()
    assert await count.text_content() == "0"
    assert await page.locator("#notification-list li").count() == 0
    # One that comes after the clear is listed.
    assert daemon.server is not None
    services = daemon.server.services
    await services.notifier.notify(services.accounts.require("alice"), "test", "after")
    await count.filter(has_text="1").wait_for()
    await page.get_by_role("button", name="Notifications").click()
    await page.locator("#notification-list li").filter(has_text="after").wait_for()
    assert page.script_errors == []


async def test_stickers_that_failed_to_load_are_asked_for_again(
        daemon: Daemon, browser: Any) -> None:
    # A failed walk of /stickers was kept as no stickers: the panel stayed empty until
    # the page was loaded again.
    page = await browser("alice")
    between = Between()
    await page.route_web_socket(re.compile(r"/ws"), between.route)
    await register(page, daemon.url, "alice")
    between.refuse("/stickers 1")
    button = page.get_by_role("button", name="Stickers")
    await button.click()
    await page.locator("#log li.error").filter(has_text="busy").wait_for()
    assert await page.locator("#stickers").is_hidden()
    assert await button.get_attribute("aria-expanded") == "false"
    await button.click()
    assert daemon.server is not None
    picks = page.locator(".sticker-pick")
    await picks.first.wait_for()
    assert await picks.count() == len(daemon.server.services.stickers.all())
    assert page.script_errors == []
