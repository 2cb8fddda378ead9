"""Colour themes in text mode; JSON is never coloured; user content carries no escapes."""

from __future__ import annotations

import re

import pytest

from chatd.protocol.render import THEMES, Style, render
from tests.content import image, member_of, text_client, text_run, upload
from tests.governance import error_of
from tests.helpers import Clients

SGR = re.compile(r"\x1b\[[0-9;]*m")
RECORD = {"type": "message", "room": "general", "from": "bob", "text": "hi", "id": 1,
          "ts": "2026-11-21T10:00:00.000Z"}


def test_there_are_themes_beyond_mono() -> None:
    assert {"default", "mono", "dark", "light"} <= set(THEMES)


@pytest.mark.parametrize("theme", sorted(THEMES))
def test_each_theme_colours_text_only_with_sgr(theme: str) -> None:
    records = [RECORD, {"type": "error", "code": "muted", "message": "no"},
               {"type": "notice", "text": "hello"},
               {"type": "event", "event": "join", "room": "general", "user": "bob"}]
    for record in records:
        coloured = render(record, Style(color=True, theme=theme)).decode()
        assert "\x1b[" in coloured
        # Only whole SGR sequences: removing them leaves the plain rendering.
        assert "\x1b" not in SGR.sub("", coloured)
        assert SGR.sub("", coloured) == render(record, Style()).decode()
        assert b"\x1b" not in render(record, Style(fmt="json", color=True, theme=theme))


def test_a_users_colour_is_stable_and_themes_differ() -> None:
    def colour_of(name: str, theme: str) -> str:
        line = render({**RECORD, "from": name}, Style(color=True, theme=theme), True).decode()
        return line.split("m", 1)[0]

    assert colour_of("bob", "dark") == colour_of("BOB", "dark")
    assert {colour_of("bob", t) for t in ("default", "dark", "light")} != {colour_of("bob",
                                                                                     "dark")}


async def test_set_theme_is_kept_with_the_account(clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    assert await text_run(alice, "/set theme light") == ["* theme is now light."]
    await text_run(alice, "/set color on", "/create general")
    # A new connection gets the account's colours and theme at login.
    again = await text_client(clients, "alice")
    line = (await text_run(again, "hello"))[-1]
    light = THEMES["light"]
    assert line.startswith("<\x1b[") and line.endswith("> hello")
    assert line.split("m", 1)[0][3:] in light.names
    json_alice = await clients.user("alice")
    assert (await error_of(json_alice, "/set theme neon"))["code"] == "bad-arguments"
    assert "\x1b" not in str((await json_alice.command("/history general")).final)


async def test_stickers_and_previews_bring_no_escapes_into_coloured_text(
        clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    await text_run(alice, "/set color on", "/set theme dark", "/create general")
    bob = await clients.user("bob")
    await member_of(bob, "dev")
    await bob.command("/join general")
    await upload(bob, "evil.txt", "\x1b]0;owned\x07\x1b[2J\x9b31mtext\n".encode(), "general")
    await upload(bob, "pic.png", image("PNG"), "general")
    await bob.command("/sticker tableflip general")
    lines = await text_run(alice)
    shown = "\n".join(lines)
    assert "]0;owned" in shown and "[2J" in shown  # the text survives, the escapes do not
    plain = SGR.sub("", shown)
    assert "\x1b" not in plain and "\x9b" not in plain and "\x07" not in plain
    assert "(╯°□°)╯︵ ┻━┻" in plain
