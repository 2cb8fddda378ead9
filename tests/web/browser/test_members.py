"""The web client's member list, in chromium: Connection.members asks for every page of
/who, each member once, whatever the command rate and the room do meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tests.web.browser.conftest import Daemon, screenshot
from tests.web.browser.pages import (
    connection_calls,
    enter_room,
    overlapping,
    register,
    see,
)


async def members_walked(page: Any, change: str | None = None) -> Any:
    """Every member of #crowd as alice's Connection.members() gives them, [user, role]
    each, or the error it gives; ``change`` runs after the first page."""
    [reply] = await connection_calls(page, "alice", [("members", ["crowd"])],
                                     "/who #crowd 1", change)
    if reply["type"] != "ok":
        return reply
    return [[member["user"], member["role"]] for member in reply["members"]]


async def crowd(daemon: Daemon) -> None:
    """alice, owner of #crowd, where bob, carol, dave and erin joined after her."""
    await (await daemon.tcp_user("alice")).command("/create crowd")
    for name in ("bob", "carol", "dave", "erin"):
        await (await daemon.tcp_user(name)).command("/join crowd")


async def test_members_waits_out_the_command_rate(daemon: Daemon, browser: Any) -> None:
    # Three pages of /who, and three commands at once (login and its token spent
    # two): the second page was refused rate-limited, and the list was that error.
    await daemon.stop()
    await daemon.start(rooms__page_size=2, limits__command_rate=20, limits__command_burst=3)
    await crowd(daemon)

    async def time_passes() -> None:  # the daemon's clock is the test's
        while True:
            await asyncio.sleep(0.02)
            daemon.clock.advance(0.05)

    ticking = asyncio.ensure_future(time_passes())
    try:
        page = await browser("alice")
        await page.goto(daemon.url + "/")
        members = await members_walked(page)
    finally:
        ticking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticking
    assert isinstance(members, list), members
    assert [user for user, _ in members] == ["alice", "bob", "carol", "dave", "erin"]
    assert page.script_errors == []


async def test_members_are_each_once_when_a_role_changes_between_pages(
        daemon: Daemon, browser: Any) -> None:
    # erin, promoted after page 1, moves before bob: page 2 showed bob again and
    # nobody showed erin.
    await daemon.stop()
    await daemon.start(rooms__page_size=2)
    await crowd(daemon)
    page = await browser("alice")
    await page.goto(daemon.url + "/")
    members = await members_walked(page, "/promote erin crowd")
    assert members == [["alice", "owner"], ["erin", "admin"], ["bob", "member"],
                       ["carol", "member"], ["dave", "member"]]
    assert page.script_errors == []


# Users who join #crowd at once.
JOINS = 24


async def test_a_burst_of_joins_walks_the_member_list_one_walk_at_a_time(
        daemon: Daemon, browser: Any) -> None:
    # Each join refreshed the member column with a walk of every /who page, however
    # many walks were already under way: a burst of joins into a room of pages had
    # dozens of walks going at once, hundreds of /who, spending the tab's command
    # budget (its own lines then came back rate-limited). A join while a walk is
    # under way now asks for one more after it: a /who is only sent once the one
    # before it was answered.
    await daemon.stop()
    await daemon.start(rooms__page_size=2, limits__max_connections_per_ip=100)
    await (await daemon.tcp_user("bob")).command("/create crowd")
    page = await browser("alice")
    overlaps = overlapping(page, lambda line: line.startswith("/who "))
    await register(page, daemon.url, "alice")
    await enter_room(page, "/join crowd", "crowd")
    members = page.locator("#member-list")
    await members.get_by_role("button", name="bob, ").wait_for()
    joining = [await daemon.tcp_user(f"user{n:02d}") for n in range(JOINS)]
    await asyncio.gather(*(user.command("/join crowd") for user in joining))
    await members.get_by_role("button", name=f"user{JOINS - 1:02d}, ").wait_for()
    await members.get_by_role("button").nth(JOINS + 1).wait_for()
    assert await members.get_by_role("button").count() == JOINS + 2
    assert overlaps == []
    assert page.script_errors == []


async def test_a_member_listed_offline_who_speaks_is_listed_online(
        daemon: Daemon, browser: Any) -> None:
    # The list is read when the room opens (and every 30 s): bob, offline then, stayed
    # "offline" while he talked, as everyone did after a restart until the next read.
    page = await browser("alice")
    await register(page, daemon.url, "alice")
    await enter_room(page, "/create hall", "hall")
    bob = await daemon.tcp_user("bob")
    await bob.command("/join hall")
    await bob.close()
    await page.reload()
    members = page.locator("#member-list")
    await members.get_by_role("button", name="bob, member, offline").wait_for()
    bob = await daemon.tcp_user("bob")
    await bob.command("/say hall back again")
    await see(page, "back again")
    await members.get_by_role("button", name="bob, member, online").wait_for(timeout=5000)
    assert page.script_errors == []


async def test_presence_is_unknown_while_disconnected_and_read_again_after(
        daemon: Daemon, browser: Any) -> None:
    # The page is dimmed while the connection is away, and the member list went on
    # showing everyone online as it was: nobody can know that then.
    page = await browser("alice")
    await register(page, daemon.url, "alice")
    await enter_room(page, "/create lobby", "lobby")
    bob = await daemon.tcp_user("bob")
    await bob.command("/join lobby")
    members = page.locator("#member-list")
    await members.get_by_role("button", name="bob, member, online").wait_for()
    await daemon.stop()
    await page.locator("#connection").filter(has_text="reconnecting").wait_for()
    await members.get_by_role("button", name="bob, member, presence unknown").wait_for()
    await members.get_by_role("button", name="alice, owner, presence unknown").wait_for()
    assert await members.locator(".dot.online").count() == 0
    assert await members.locator(".dot.unknown").count() == 2
    await screenshot(page, "client-presence-unknown")
    # Back: the list is read again. bob's connection ended with the daemon.
    await daemon.start()
    await members.get_by_role("button", name="alice, owner, online").wait_for()
    await members.get_by_role("button", name="bob, member, offline").wait_for()
    assert await members.locator(".dot.unknown").count() == 0
    assert page.script_errors == []
