"""The notifications panel in chromium: what the server dropped past its bound is
said there, since the page's own reading of the list is the one the server tells."""

from __future__ import annotations

from typing import Any

from tests.helpers import PASSWORD
from tests.web.browser.conftest import Daemon


async def test_the_panel_says_how_many_notifications_the_server_dropped(
        daemon: Daemon, browser: Any) -> None:
    await daemon.stop()
    await daemon.start(limits__max_notifications=3)
    await daemon.tcp_user("alice")
    assert daemon.server is not None
    services = daemon.server.services
    for n in range(5):
        await services.notifier.notify(services.accounts.require("alice"), "test", f"note {n}")
    page = await browser("alice")
    await page.goto(daemon.url + "/")
    await page.get_by_label("Name").fill("alice")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.locator("#notification-count").filter(has_text="3").wait_for()
    await page.get_by_role("button", name="Notifications").click()
    dropped = page.locator("#notifications-dropped")
    await dropped.filter(has_text="2 older notifications were dropped").wait_for()
    # The page's reading took the count: the server tells it to nobody again.
    assert await services.notifier.take_dropped(services.accounts.require("alice")) == 0
    await page.get_by_role("button", name="Clear all").click()
    await dropped.wait_for(state="hidden")
    assert page.script_errors == []
