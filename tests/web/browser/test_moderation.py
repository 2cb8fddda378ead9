"""Moderating from the web client in chromium: a decision the room is told of by its
event shows once to its actor, in its event's line, not again as the command's reply."""

from __future__ import annotations

from datetime import datetime
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


def moment(epoch: float) -> str:
    """``epoch`` as the page writes a moment (its time zone is this process's)."""
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M")


async def room_lines_after(page: Any, line: str) -> list[str]:
    """Type ``line``, then the lines of the log once it is answered (/whoami, typed
    after it, is answered after it and the events it caused)."""
    await type_line(page, line)
    await type_line(page, "/whoami")
    log = page.locator("#log li")
    await log.filter(has_text="You are alice").last.wait_for()
    lines = [str(text) for text in await log.all_inner_texts()]
    await page.evaluate("document.getElementById('log').replaceChildren()")
    return lines[:next(i for i, text in enumerate(lines) if text.startswith("You are alice"))]


async def moderator_in_dev(daemon: Daemon, browser: Any) -> Any:
    """alice's page on #dev, which she owns, with bob and carol members."""
    page = await browser("alice")
    await register(page, daemon.url, "alice")
    await enter_room(page, "/create dev", "dev")
    for name in ("bob", "carol"):
        client = await daemon.tcp_user(name)
        await client.command("/join dev")
        await page.locator("#log li").filter(has_text=f"{name} joined #dev").wait_for()
    await page.evaluate("document.getElementById('log').replaceChildren()")
    return page


async def test_a_ban_and_a_mute_show_one_line_saying_until_when(
        daemon: Daemon, browser: Any) -> None:
    page = await moderator_in_dev(daemon, browser)
    now = daemon.clock.time()
    # The ban's event names no end: its line takes it from the reply.
    assert await room_lines_after(page, "/ban bob 2h spamming") == [
        f"bob was banned from #dev by alice until {moment(now + 7200)} (spamming)"]
    assert await room_lines_after(page, "/unban bob") == ["bob was unbanned by alice"]
    # A ban for good says no end, as its reply did not either.
    assert await room_lines_after(page, "/ban bob") == ["bob was banned from #dev by alice"]
    # The mute's event names its end, as every member's page shows it.
    assert await room_lines_after(page, "/mute carol 10m") == [
        f"carol was muted by alice until {moment(now + 600)}"]
    assert await room_lines_after(page, "/unmute carol") == ["carol was unmuted by alice"]
    assert await room_lines_after(page, "/mute carol") == ["carol was muted by alice"]
    assert page.script_errors == []


async def test_a_change_of_role_shows_one_line_and_a_change_of_none_its_reply(
        daemon: Daemon, browser: Any) -> None:
    page = await moderator_in_dev(daemon, browser)
    assert await room_lines_after(page, "/promote carol") == ["carol is now admin by alice"]
    # Nothing changed, so no event told it: the reply says so.
    assert await room_lines_after(page, "/promote carol") == [
        "carol is already an admin of #dev."]
    assert await room_lines_after(page, "/demote carol") == ["carol is now member by alice"]
    assert await room_lines_after(page, "/voice bob") == ["bob is now voice by alice"]
    assert await room_lines_after(page, "/devoice bob") == ["bob is now member by alice"]
    assert page.script_errors == []


async def test_a_topic_set_shows_one_line_and_a_topic_asked_its_reply(
        daemon: Daemon, browser: Any) -> None:
    page = await moderator_in_dev(daemon, browser)
    assert await room_lines_after(page, "/topic release on friday") == [
        "alice set the topic: release on friday"]
    assert await room_lines_after(page, "/topic") == ["#dev: release on friday"]
    # The same topic again changes nothing and tells the room nothing: the reply does.
    assert await room_lines_after(page, "/topic release on friday") == [
        "The topic of #dev is now: release on friday"]
    # Typed on another room's screen, the reply is what its actor sees there.
    await enter_room(page, "/create den", "den")
    # The title shows #den before the creation's own line is in the log: wait for it.
    await page.locator("#log li").filter(has_text="You created #den").wait_for()
    await page.evaluate("document.getElementById('log').replaceChildren()")
    assert await room_lines_after(page, "/topic dev ship it") == [
        "The topic of #dev is now: ship it"]
    assert page.script_errors == []
