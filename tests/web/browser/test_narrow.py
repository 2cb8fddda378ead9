"""The browser client in a phone's narrow window, and long words: nothing wider than the
screen, or than the panel it is in."""

from __future__ import annotations

from typing import Any

from tests.web.browser.conftest import Daemon, screenshot
from tests.web.browser.pages import enter_room, register, see, type_line

# A small phone's window, in CSS pixels.
PHONE = {"width": 360, "height": 740}


async def wider_than_the_window(page: Any) -> list[str]:
    """The elements of the client that reach past the window's right edge."""
    return list(await page.evaluate("""() => {
        const out = [];
        for (const el of document.querySelectorAll('#app *')) {
            const box = el.getBoundingClientRect();
            if (box.width > 0 && box.right > window.innerWidth + 1)
                out.push(`${el.id || el.className || el.tagName}: ${Math.round(box.right)}`);
        }
        return out;
    }"""))


async def test_a_narrow_window_scrolls_no_sideways_and_keeps_room_for_messages(
        daemon: Daemon, browser: Any) -> None:
    page = await browser("nadia")
    await page.set_viewport_size(PHONE)
    await register(page, daemon.url, "nadia")
    await enter_room(page, "/create pocket", "pocket")
    await type_line(page, "small screens count too")
    await see(page, "small screens count too")
    await screenshot(page, "client-narrow")
    # The top bar's buttons once made the one column 443 pixels wide on a 360 one:
    # the whole page then scrolled sideways and the buttons' edge was off screen.
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert await wider_than_the_window(page) == []
    # The rooms and members above and below leave the messages a fair share of it.
    log = await page.locator("#log").bounding_box()
    assert log is not None and log["height"] >= PHONE["height"] * 0.25, log
    assert page.script_errors == []


async def test_a_long_word_in_a_notification_wraps_inside_the_panel(
        daemon: Daemon, browser: Any) -> None:
    alice = await daemon.tcp_user("alice")
    await alice.command("/create yard")
    page = await browser("nadia")
    await register(page, daemon.url, "nadia")
    await enter_room(page, "/join yard", "yard")
    reason = "R" * 300
    await alice.command(f"/kick nadia yard {reason}")
    await page.locator("#notification-count").filter(has_text="1").wait_for()
    await page.locator("#notifications-button").click()
    panel = page.locator("#notifications")
    await panel.filter(has_text=reason).wait_for()
    # The reason is read where the panel shows it: not cut off at its right edge.
    assert await panel.evaluate("p => p.scrollWidth <= p.clientWidth")
    entry = await page.locator("#notification-list li").bounding_box()
    box = await panel.bounding_box()
    assert entry is not None and box is not None
    assert entry["x"] + entry["width"] <= box["x"] + box["width"]
    await screenshot(page, "notification-long-word")
    assert page.script_errors == []


async def test_a_topic_of_one_long_word_wraps_and_the_page_keeps_its_width(
        daemon: Daemon, browser: Any) -> None:
    alice = await daemon.tcp_user("alice")
    await alice.command("/create yard")
    topic = "T" * 380
    await alice.command(f"/topic yard {topic}")
    page = await browser("nadia")
    await register(page, daemon.url, "nadia")
    await enter_room(page, "/join yard", "yard")
    await page.locator("#view-topic").filter(has_text=topic).wait_for()
    # Unbroken, the topic made the room's column three times the window's width:
    # the composer and its Send button were off screen.
    assert await page.evaluate("document.documentElement.scrollWidth") <= 1200
    assert await wider_than_the_window(page) == []
    send = await page.get_by_role("button", name="Send", exact=True).bounding_box()
    assert send is not None and send["x"] + send["width"] <= 1200
    await screenshot(page, "topic-long-word")
    assert page.script_errors == []


async def test_a_long_away_message_wraps_inside_the_members_column(
        daemon: Daemon, browser: Any) -> None:
    alice = await daemon.tcp_user("alice")
    away = "A" * 190
    await alice.command(f"/away {away}")
    page = await browser("nadia")
    await register(page, daemon.url, "nadia")
    await page.fill("#direct-name", "alice")
    await page.press("#direct-name", "Enter")
    await page.locator("#view-title").filter(has_text="alice").wait_for()
    members = page.locator(".members")
    await members.filter(has_text=away).wait_for()
    # The away message is read in the column: not cut off at its right edge.
    assert await members.evaluate("m => m.scrollWidth <= m.clientWidth")
    assert page.script_errors == []
