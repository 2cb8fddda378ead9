"""The live admin page in chromium: figures, who is online, and governance as it happens."""

from __future__ import annotations

from typing import Any

from tests.helpers import PASSWORD
from tests.web.browser.conftest import Daemon, screenshot


async def open_admin(page: Any, url: str, name: str) -> None:
    await page.goto(url + "/admin")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()


def feed_row(page: Any, action: str, text: str) -> Any:
    return page.locator(f"#feed tr.audit-{action}").filter(has_text=text)


async def test_a_kick_is_seen_live_and_the_admin_acts(daemon: Daemon, browser: Any) -> None:
    await daemon.admin_account("root")
    admin = await browser("root")
    alice = await daemon.tcp_user("alice")
    bob = await daemon.tcp_user("bob")
    # Made while the page logs in and reads the past: each shown once all the same.
    await open_admin(admin, daemon.url, "root")
    await alice.command("/create den")
    await bob.command("/join den")
    await admin.locator("#feed[data-live]").wait_for(state="attached")
    await feed_row(admin, "create", "den").wait_for()
    await feed_row(admin, "join", "bob").wait_for()
    assert await feed_row(admin, "create", "den").count() == 1
    assert await feed_row(admin, "join", "bob").count() == 1
    online = admin.locator("#online-list")
    for name in ("alice", "bob", "root"):
        await online.get_by_text(name, exact=True).wait_for()

    await alice.command("/kick bob den too loud")
    kick = feed_row(admin, "kick", "too loud")
    await kick.wait_for()
    cells = await kick.locator("td").all_inner_texts()
    assert cells[1:] == ["alice", "kick", "bob", "#den", "too loud"]
    connections = admin.locator("[data-figure=connections] dd")
    await connections.filter(has_text="3").wait_for()
    await screenshot(admin, "admin-kick-live")

    # The admin's own actions run the line protocol's commands.
    await bob.command("/join den")
    await admin.get_by_role("form", name="Mute").get_by_label("User").fill("bob")
    await admin.get_by_role("form", name="Mute").get_by_label("Room").fill("den")
    await admin.get_by_role("form", name="Mute").get_by_label("Duration").fill("10m")
    await admin.get_by_role("button", name="Mute").click()
    await feed_row(admin, "mute", "bob").wait_for()
    await admin.get_by_role("form", name="Ban").get_by_label("User").fill("bob")
    await admin.get_by_role("form", name="Ban").get_by_label("Room").fill("#den")
    await admin.get_by_role("form", name="Ban").get_by_label("Reason").fill("spam")
    await admin.get_by_role("button", name="Ban", exact=True).click()
    await feed_row(admin, "ban", "spam").wait_for()
    banned = await bob.next_event(lambda e: e.get("event") == "ban")
    assert (banned["actor"], banned["room"]) == ("root", "den")
    await admin.get_by_label("Notice").fill("maintenance at noon")
    await admin.get_by_role("button", name="Broadcast to everyone").click()
    notice = await alice.next_event(lambda e: e.get("broadcast") is True)
    assert notice["text"] == "[server] maintenance at noon"
    await bob.close()
    await feed_row(admin, "offline", "bob").wait_for()
    await online.get_by_text("bob", exact=True).wait_for(state="detached")
    await screenshot(admin, "admin-actions")
    assert admin.script_errors == []


async def test_the_admin_page_follows_again_after_a_restart(daemon: Daemon,
                                                           browser: Any) -> None:
    await daemon.admin_account("root")
    admin = await browser("root")
    await open_admin(admin, daemon.url, "root")
    await admin.locator("#feed[data-live]").wait_for(state="attached")
    # The tab keeps a resume token (and an API token that may do what the password
    # session may): the reconnection logs in with it, the admin scope included.
    first = await kept(admin)
    assert first["resume"].startswith("chatdr_") and first["token"]
    await daemon.stop()
    reconnecting = admin.locator("#connection").filter(has_text="reconnecting")
    await reconnecting.wait_for()
    await daemon.start()
    await reconnecting.wait_for(state="detached")
    alice = await daemon.tcp_user("alice")
    await alice.command("/create after")
    await feed_row(admin, "create", "after").wait_for()
    assert await feed_row(admin, "create", "after").count() == 1
    assert await admin.locator("#admin").is_visible()
    assert (await kept(admin))["resume"] not in ("", first["resume"])  # used, and replaced
    assert admin.script_errors == []


async def test_a_ban_for_good_whose_reason_reads_as_a_duration_is_not_sent(
        daemon: Daemon, browser: Any) -> None:
    await daemon.admin_account("root")
    alice = await daemon.tcp_user("alice")
    await alice.command("/create den")
    await daemon.tcp_user("carol")
    admin = await browser("root")
    await open_admin(admin, daemon.url, "root")
    await admin.locator("#feed[data-live]").wait_for(state="attached")
    ban = admin.get_by_role("form", name="Ban")
    await ban.get_by_label("User").fill("carol")
    await ban.get_by_label("Room").fill("den")
    await ban.get_by_label("Reason").fill("2d ago he spammed the room")
    await admin.get_by_role("button", name="Ban", exact=True).click()
    await admin.locator("#action-result.error").filter(has_text="starts with a duration").wait_for()
    assert daemon.server is not None
    assert daemon.server.services.rooms.require("den").bans == {}
    await ban.get_by_label("Reason").fill("he spammed the room 2d ago")
    await admin.get_by_role("button", name="Ban", exact=True).click()
    await feed_row(admin, "ban", "he spammed the room 2d ago").wait_for()
    [record] = daemon.server.services.rooms.require("den").bans.values()
    assert record.until is None  # for good
    assert admin.script_errors == []


async def kept(page: Any) -> dict[str, Any]:
    """What the admin page's tab keeps in its sessionStorage."""
    saved: dict[str, Any] = await page.evaluate(
        "JSON.parse(sessionStorage.getItem('chatd.admin') || '{}')")
    return saved


async def test_the_admin_page_refuses_other_users(daemon: Daemon, browser: Any) -> None:
    await daemon.tcp_user("mallory")
    page = await browser("mallory")
    await open_admin(page, daemon.url, "mallory")
    await page.get_by_role("alert").filter(has_text="Only server admins").wait_for()
    assert await page.locator("#admin").is_hidden()
