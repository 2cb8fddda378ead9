"""A browser tab's own API token: a session token, which what the tab makes outlives."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from tests.helpers import PASSWORD
from tests.web.browser.conftest import Daemon
from tests.web.browser.pages import enter_room, register, type_line

STORAGE_KEY = "chatd.session"
HOOK_PATH = re.compile(r"/hooks/\d+/[A-Za-z0-9_-]+")


async def log_in(page: Any, url: str, name: str) -> None:
    """Open the client and log ``name`` in with the form; wait for the chat screen."""
    await page.goto(url + "/")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.locator("#app").wait_for(state="visible")
    await page.locator("#me").filter(has_text=name).wait_for()


async def test_a_webhook_made_in_a_duplicated_tab_outlives_the_tab_logging_out(
        daemon: Daemon, browser: Any) -> None:
    """The duplicate's resume token was used by the original, so it logs in with the
    tab's API token: a session token, which a webhook made there is not tied to. The
    original logging out revokes that token; the webhook goes on posting."""
    await daemon.tcp_user("alice")  # the account, registered elsewhere
    first = await browser("alice")
    await log_in(first, daemon.url, "alice")
    await enter_room(first, "/create den", "den")
    assert daemon.server is not None
    services = daemon.server.services
    alice = services.accounts.require("alice")
    [tab_token] = services.tokens.of(alice)
    assert tab_token.name.startswith("web-")
    copied = await first.evaluate(f"sessionStorage.getItem({json.dumps(STORAGE_KEY)})")
    await first.reload()  # the first tab logs in again: its resume token is used up
    await first.locator("#me").filter(has_text="alice").wait_for()

    second = await duplicate_of(first, daemon.url, copied)
    # The copy's resume token was used up: it logged in with the tab's API token.
    # (The others: the TCP client's and the first tab's, both of a password.)
    logged_with = [s.token_id for s in services.presence.sessions if s.user is alice]
    assert sorted(logged_with, key=lambda i: i or 0) == [None, None, tab_token.id]
    await enter_room(second, "/join den", "den")
    await type_line(second, "/webhook create deploy den")
    made = second.locator("#log li").filter(has_text="/hooks/")
    await made.first.wait_for()
    found = HOOK_PATH.search(await made.first.inner_text())
    assert found is not None and "lives as long as" not in await made.first.inner_text()
    [hook] = await services.storage.list_webhooks(services.rooms.require("den").id)
    assert hook.token_id is None

    await first.get_by_role("button", name="Log out").click()
    await first.locator("#login").wait_for(state="visible")
    assert services.tokens.of(alice) == []  # the tabs' token is revoked
    async with httpx.AsyncClient(base_url=daemon.url) as client:
        posted = await client.post(found.group(0), json={"text": "after the logout"})
    assert posted.status_code == 201, posted.text
    assert tab_token.kind == "session"  # made by the tab with --session
    assert first.script_errors == [] and second.script_errors == []


async def duplicate_of(page: Any, url: str, kept: str) -> Any:
    """A new tab of ``page``'s profile that starts with ``kept`` as what the tab kept
    (sessionStorage), as the browser's Duplicate tab makes it."""
    copy = await page.context.new_page()
    errors: list[str] = []
    copy.on("pageerror", lambda exc: errors.append(str(exc)))
    copy.script_errors = errors
    await copy.add_init_script(f"sessionStorage.setItem({json.dumps(STORAGE_KEY)}, "
                               f"{json.dumps(kept)})")
    await copy.goto(url + "/")
    await copy.locator("#me").filter(has_text=json.loads(kept)["user"]).wait_for()
    return copy


async def test_logging_out_while_the_server_is_away_says_the_token_lives_on(
        daemon: Daemon, browser: Any) -> None:
    page = await browser("erin")
    await register(page, daemon.url, "erin")
    saved = json.loads(await page.evaluate(f"sessionStorage.getItem('{STORAGE_KEY}')"))
    await daemon.stop()
    await page.locator("#connection").filter(has_text="reconnecting").wait_for()
    await page.get_by_role("button", name="Log out").click()
    await page.locator("#login").wait_for(state="visible")
    # The tab forgot its tokens, and says which one the server still holds.
    said = await page.locator("#login-error").text_content()
    assert f"/token revoke {saved['tokenName']}" in said
    assert await page.evaluate(f"sessionStorage.getItem('{STORAGE_KEY}')") is None
    await daemon.start()
    assert daemon.server is not None
    services = daemon.server.services
    erin = services.accounts.require("erin")
    assert [token.name for token in services.tokens.of(erin)] == [saved["tokenName"]]
    assert page.script_errors == []
