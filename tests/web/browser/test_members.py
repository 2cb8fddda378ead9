"""The web client's member list, in chromium: Connection.members asks for every page of
/who, each member once, whatever the command rate and the room do meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tests.helpers import PASSWORD
from tests.web.browser.conftest import Daemon

# alice (on a connection of the page's own), then every member of #crowd as
# members() gives them, or the error it gives; CHANGE runs after the first page.
WALK = """async ([password, change]) => {
    const {Connection} = await import("/static/connection.js");
    const conn = new Connection("walker");
    const login = await conn.login("alice", password, false);
    if (login.type !== "ok") return login;
    const command = conn.command.bind(conn);
    let changed = false;
    conn.command = async (line) => {
        const reply = await command(line);
        if (change && !changed && line === "/who #crowd 1") {
            changed = true;
            await command(change);
        }
        return reply;
    };
    const reply = await conn.members("crowd");
    return reply.type === "ok" ? reply.members.map((m) => [m.user, m.role]) : reply;
}"""


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
        members = await page.evaluate(WALK, [PASSWORD, None])
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
    members = await page.evaluate(WALK, [PASSWORD, "/promote erin crowd"])
    assert members == [["alice", "owner"], ["erin", "admin"], ["bob", "member"],
                       ["carol", "member"], ["dave", "member"]]
    assert page.script_errors == []
