"""A bot's message in the browser: a small "bot" badge beside its sender's name, with a
title saying what it means, drawn in the muted colour of the light and dark themes."""

from __future__ import annotations

from typing import Any

from chatd.client import ChatClient
from tests.web.browser.conftest import Daemon, screenshot
from tests.web.browser.pages import enter_room, log_text, register, see

TITLE = "sent by a bot (a bot account or a webhook)"
# The badge's colour and its border's, and the theme's muted colour, as drawn.
_COLOURS = """(badge) => {
    const probe = document.createElement("span");
    probe.style.color = "var(--muted)";
    document.body.append(probe);
    const muted = getComputedStyle(probe).color;
    probe.remove();
    const drawn = getComputedStyle(badge);
    return [drawn.color, drawn.borderTopColor, muted];
}"""


async def _colours(badge: Any) -> list[str]:
    return [str(colour) for colour in await badge.evaluate(_COLOURS)]


async def test_a_bots_message_carries_a_bot_badge_in_both_themes(daemon: Daemon,
                                                                  browser: Any) -> None:
    alice = await daemon.tcp_user("alice")
    await alice.command("/create lobby")
    token = str((await alice.command("/bot create helper"))["token"])
    helper = await ChatClient.connect("127.0.0.1", daemon.tcp_port)
    try:
        await helper.command(f"/auth {token}")
        await helper.command("/join lobby")
        dave = await browser("dave")
        await register(dave, daemon.url, "dave")
        await enter_room(dave, "/join lobby", "lobby")
        await helper.command("/say lobby beep")
        await helper.command("/me whirrs")
        await alice.command("/say lobby a person")
        await see(dave, "a person")
    finally:
        await helper.close()

    for text in ("beep", "whirrs"):
        badge = log_text(dave, text).locator(".bot-mark")
        assert await badge.count() == 1
        assert await badge.text_content() == "bot"
        assert await badge.get_attribute("title") == TITLE
    assert await log_text(dave, "a person").locator(".bot-mark").count() == 0
    # Beside the name, not in it: the name reads as the name alone.
    assert await log_text(dave, "beep").locator(".from").text_content() == "helper"

    badge = log_text(dave, "beep").locator(".bot-mark")
    light = await _colours(badge)
    assert light[0] == light[1] == light[2]
    await screenshot(dave, "bot-mark-light")
    await dave.get_by_role("button", name="Dark theme").click()
    await dave.locator("html[data-theme='dark']").wait_for(state="attached")
    dark = await _colours(badge)
    assert dark[0] == dark[1] == dark[2] and dark[0] != light[0]
    await screenshot(dave, "bot-mark-dark")
    assert dave.script_errors == []
