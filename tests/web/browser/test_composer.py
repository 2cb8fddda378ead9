"""The composer against the server's line limit (bytes of UTF-8), in chromium: it says
the limit before sending, and a line that is not taken stays in it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
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


async def test_the_composer_counts_against_the_limit_the_server_announces(
        daemon: Daemon, browser: Any) -> None:
    await daemon.stop()
    await daemon.start(listen__max_line=200)
    bob = await browser("bob")
    frames = sent_frames(bob)
    await register(bob, daemon.url, "bob")
    await enter_room(bob, "/create yard", "yard")
    composer = bob.locator("#composer-input")
    hint = bob.locator("#composer-limit")
    # Below the default of 4096 bytes, over this server's 200 (with "@cN /say yard ").
    line = "x" * 300
    await composer.fill(line)
    await hint.filter(has_text="300 bytes: over the").wait_for()
    assert await composer.get_attribute("aria-invalid") == "true"
    await composer.press("Enter")
    refused = bob.locator("#log li.error").filter(has_text="the server takes at most 200")
    await refused.wait_for()
    assert await composer.input_value() == line
    # Refused by the page itself: never sent, so the server had nothing to drop.
    assert not [frame for frame in frames if line in frame]
    assert await bob.locator("#log li.error").count() == 1
    await composer.fill("x" * 150)
    await hint.filter(has_text="150 of").wait_for()
    assert await composer.get_attribute("aria-invalid") == "false"
    await composer.press("Enter")
    await see(bob, "x" * 150)

    # Back with a higher limit: the new connection's banner raises the page's.
    await daemon.stop()
    await bob.locator("#connection").filter(has_text="reconnecting").wait_for()
    await daemon.start(listen__max_line=8192)
    await bob.locator("#connection").filter(has_text="Reconnected").wait_for()
    long = "y" * 7000
    await composer.fill(long)
    await hint.filter(has_text="7000 of").wait_for()
    assert await composer.get_attribute("aria-invalid") == "false"
    await composer.press("Enter")
    await see(bob, long)
    assert await composer.input_value() == ""
    assert bob.script_errors == []


async def test_a_line_a_server_announcing_no_limit_drops_stays_in_the_composer(
        daemon: Daemon, browser: Any) -> None:
    await daemon.stop()
    await daemon.start(listen__max_line=200)
    bob = await browser("bob")
    # A server from before the announcement: its banner has no max_line, and the page
    # counts against the default (4096), which this server's 200 is below.
    await bob.route_web_socket(re.compile(r"/ws"), without_max_line)
    await register(bob, daemon.url, "bob")
    await enter_room(bob, "/create yard", "yard")
    line = "x" * 300
    composer = bob.locator("#composer-input")
    await composer.fill(line)
    assert await bob.locator("#composer-limit").is_hidden()  # far from 4096
    await composer.press("Enter")
    # The server's own refusal (asynchronous, unlabelled), as the line's answer.
    dropped = bob.locator("#log li.error").filter(has_text="line-too-long")
    await dropped.wait_for()
    assert "the server takes at most" not in str(await dropped.text_content())
    assert await composer.input_value() == line
    # The connection goes on: a shorter line is sent.
    await type_line(bob, "short enough")
    await see(bob, "short enough")
    assert bob.script_errors == []


def sent_frames(page: Any) -> list[str]:
    """The text of every WebSocket message ``page`` sends from now on (a list that grows)."""
    sent: list[str] = []

    def socket(ws: Any) -> None:
        def frame(payload: str | bytes) -> None:
            sent.append(payload if isinstance(payload, str) else payload.decode(errors="replace"))

        ws.on("framesent", frame)

    page.on("websocket", socket)
    return sent


def without_max_line(route: Any) -> None:
    """Pass a /ws through, taking max_line out of what the server sends."""
    server = route.connect_to_server()

    def from_server(message: str | bytes) -> None:
        if isinstance(message, str) and message.startswith("{"):
            record = json.loads(message)
            record.pop("max_line", None)
            message = json.dumps(record)
        route.send(message)

    server.on_message(from_server)


async def test_a_quick_run_of_lines_arrives_whole_and_in_order(daemon: Daemon,
                                                               browser: Any) -> None:
    # Past the message burst, each line was refused rate-limited and lost; twenty
    # refusals in ten seconds would have muted the sender for flooding.
    await daemon.stop()
    await daemon.start(limits__message_rate=5, limits__message_burst=3)
    carol = await daemon.tcp_user("carol")
    await carol.command("/create yard")
    bob = await browser("bob")
    await register(bob, daemon.url, "bob")
    await enter_room(bob, "/join yard", "yard")

    async def time_passes() -> None:  # the daemon's clock is the test's
        while True:
            await asyncio.sleep(0.02)
            daemon.clock.advance(0.05)

    lines = [f"line {n}" for n in range(12)]
    ticking = asyncio.ensure_future(time_passes())
    try:
        composer = bob.locator("#composer-input")
        for line in lines:
            await composer.fill(line)
            await composer.press("Enter")
        await see(bob, lines[-1])
    finally:
        ticking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticking
    said = await carol.command("/history yard 50")
    assert [m["text"] for m in said["messages"]] == lines
    assert await bob.locator("#log li.error").count() == 0
    assert await composer.input_value() == ""
    assert bob.script_errors == []
