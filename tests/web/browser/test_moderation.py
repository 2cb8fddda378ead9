"""Moderating from the web client in chromium: a decision the room is told of by its
event shows once to its actor, not again as the command's reply."""

from __future__ import annotations

from typing import Any

from tests.web.browser.conftest import Daemon
from tests.web.browser.pages import enter_room, register, type_line


async def test_a_kick_and_an_invitation_show_one_line_to_their_actor(
        daemon: Daemon, browser: Any) -> None:
    bob = await daemon.tcp_user("bob")
    await daemon.tcp_user("carol")
    page = await browser("alice")
    await register(page, daemon.url, "alice")
    await enter_room(page, "/create dev", "dev")
    await enter_room(page, "/create den", "den")
    await bob.command("/join dev")
    await bob.command("/join den")
    await page.get_by_role("button", name="#dev", exact=True).click()
    await page.locator("#view-title").filter(has_text="#dev").wait_for()
    await page.locator("#log li").filter(has_text="bob joined #dev").wait_for()
    await type_line(page, "/kick bob")
    await type_line(page, "/invite carol")
    # Typed in another room's screen, the reply is what the actor sees there.
    await type_line(page, "/kick bob den")
    # Answered after the lines before it, which are handled by then.
    await type_line(page, "/whoami")
    log = page.locator("#log li")
    await log.filter(has_text="You are alice").wait_for()
    lines = await log.all_inner_texts()
    assert [line for line in lines if "bob" in line and "kick" in line] == [
        "bob was kicked from #dev by alice", "bob was kicked from #den."]
    assert [line for line in lines if "carol" in line] == ["alice invited carol"]
    assert page.script_errors == []
