"""The composer against the server's line limit (bytes of UTF-8), in chromium: it says
the limit before sending, and a line that is not taken stays in it."""

from __future__ import annotations

from typing import Any

from tests.web.browser.conftest import Daemon
from tests.web.browser.pages import enter_room, register, see, type_line


async def test_an_over_long_line_is_not_sent_and_stays_in_the_composer(
        daemon: Daemon, browser: Any) -> None:
    carol = await daemon.tcp_user("carol")
    await carol.command("/create yard")
    bob = await browser("bob")
    await register(bob, daemon.url, "bob")
    await enter_room(bob, "/join yard", "yard")
    composer = bob.locator("#composer-input")
    hint = bob.locator("#composer-limit")
    # 2,100 characters, 4,200 bytes: the limit is in bytes.
    too_long = "é" * 2100
    await composer.fill(too_long)
    await hint.filter(has_text="4200 bytes: over the").wait_for()
    assert await composer.get_attribute("aria-invalid") == "true"
    await composer.press("Enter")
    await bob.locator("#log li.error").filter(has_text="line-too-long").wait_for()
    assert await composer.input_value() == too_long
    # Cut to what fits, it goes, and the composer empties.
    fits = "é" * 2000
    await composer.fill(fits)
    await hint.filter(has_text="4000 of").wait_for()
    assert await composer.get_attribute("aria-invalid") == "false"
    await composer.press("Enter")
    await see(bob, fits)
    assert await composer.input_value() == ""
    assert await hint.is_hidden()
    heard = await carol.next_event(lambda e: e.get("type") == "message")
    assert heard["text"] == fits
    assert daemon.server is not None
    await daemon.server.services.writer.flush()
    shown = await carol.command("/history yard 10")
    assert [m["text"] for m in shown["messages"]] == [fits]
    # A line the server refuses is kept too.
    await carol.command("/mute bob yard 10m")
    await type_line(bob, "let me speak")
    await bob.locator("#log li.error").filter(has_text="muted").wait_for()
    assert await composer.input_value() == "let me speak"
    assert bob.script_errors == []


async def test_a_line_a_stricter_server_drops_stays_in_the_composer(
        daemon: Daemon, browser: Any) -> None:
    await daemon.stop()
    await daemon.start(listen__max_line=200)
    bob = await browser("bob")
    await register(bob, daemon.url, "bob")
    await enter_room(bob, "/create yard", "yard")
    line = "x" * 300
    await type_line(bob, line)
    await bob.locator("#log li.error").filter(has_text="line-too-long").wait_for()
    composer = bob.locator("#composer-input")
    assert await composer.input_value() == line
    # The connection goes on: a shorter line is sent.
    await type_line(bob, "short enough")
    await see(bob, "short enough")
    assert bob.script_errors == []
