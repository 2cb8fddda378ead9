"""Hostile or broken bytes on the socket: long lines, bad UTF-8, telnet, controls, garbage."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from chatd.client import ChatClient, LineClient
from tests.helpers import (
    PASSWORD,
    Clients,
    error_of,
    settle,
    start_server,
    text_client,
    text_run,
)

MAX_LINE = 4096
CONTROLS = [chr(c) for c in [*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0)]]


def is_message(event: dict[str, Any]) -> bool:
    return event.get("type") == "message"








async def listening_room(clients: Clients) -> tuple[ChatClient, LineClient]:
    """bob (JSON) and a text-mode alice, both in #general (alice's current room)."""
    bob = await clients.user("bob")
    await bob.command("/create general")
    alice = await text_client(clients, "alice")
    await text_run(alice, "/join general")
    await settle(bob)
    return bob, alice


# -- long lines ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [MAX_LINE + 1, MAX_LINE * 3, 100_000])
async def test_an_over_long_line_is_refused_and_the_connection_survives(
        clients: Clients, size: int) -> None:
    client = await text_client(clients)
    lines = await text_run(client, "/" + "x" * (size - 1))
    assert len(lines) == 1 and lines[0].startswith("! line-too-long:")
    assert await text_run(client, "/ping") == ["* pong"]


async def test_a_framing_error_names_the_limit_and_what_to_do(db_path: Path) -> None:
    """A person reads what went wrong and what to do next: the connection's own limit
    (as configured), shorter lines or a file; text encoded as UTF-8."""
    server = await start_server(db_path, listen__max_line=100)
    clients = Clients(server)
    try:
        client = await text_client(clients)
        assert await text_run(client, "x" * 101) == [
            "! line-too-long: that line was over the limit of 100 bytes and was dropped: "
            "send shorter lines, or share a long text as a file with /upload."]
        assert await text_run(client, b"caf\xe9\r\n") == [
            "! invalid-utf8: that line was not valid UTF-8 and was dropped: send text "
            "encoded as UTF-8."]
    finally:
        await clients.close()
        await server.stop()


async def test_an_over_long_message_reaches_nobody(clients: Clients) -> None:
    bob, alice = await listening_room(clients)
    [error] = await text_run(alice, "y" * (MAX_LINE + 10))
    assert error.startswith("! line-too-long:")
    assert [e for e in await settle(bob) if is_message(e)] == []
    alice.send("short one")
    assert (await bob.next_event(is_message, timeout=5))["text"] == "short one"


async def test_a_line_of_exactly_the_limit_is_accepted(clients: Clients) -> None:
    bob, alice = await listening_room(clients)
    text = "z" * MAX_LINE
    alice.send(text)  # 4096 bytes plus CRLF
    assert await alice.line() == f"<alice> {text}"
    assert (await bob.next_event(is_message, timeout=5))["text"] == text
    [error] = await text_run(alice, "z" * (MAX_LINE + 1))
    assert error.startswith("! line-too-long:")


async def test_the_limit_counts_bytes_not_characters(clients: Clients) -> None:
    bob, alice = await listening_room(clients)
    fits = "é" * (MAX_LINE // 2)  # two bytes each
    alice.send(fits)
    assert await alice.line() == f"<alice> {fits}"
    assert (await bob.next_event(is_message, timeout=5))["text"] == fits
    [error] = await text_run(alice, fits + "é")
    assert error.startswith("! line-too-long:")


async def test_an_over_long_line_in_pieces_is_reported_once(clients: Clients) -> None:
    client = await text_client(clients)
    for _ in range(50):
        client.send(b"w" * 2000)  # 100 kB without a newline
        await client.writer.drain()
    client.send(b"\r\n")
    lines = await text_run(client, "/ping")
    assert len(lines) == 2 and lines[0].startswith("! line-too-long:") and lines[1] == "* pong"


async def test_an_over_long_line_in_json_mode(clients: Clients) -> None:
    client = await clients.user("alice")
    client.send_line("/ping " + "p" * MAX_LINE)
    error = await client.next_event(lambda e: e.get("type") == "error", timeout=5)
    assert error["code"] == "line-too-long"
    assert (await client.command("/whoami"))["user"] == "alice"


# -- UTF-8 --------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"\xc3\x28 hello", b"\x80abc", b"/ping \xe2\x82",
                                 b"\xed\xa0\x80 surrogate", b"\xc0\xaf overlong", b"\xfe"])
async def test_invalid_utf8_is_refused_and_the_connection_survives(
        clients: Clients, raw: bytes) -> None:
    client = await text_client(clients)
    lines = await text_run(client, raw + b"\r\n")
    assert len(lines) == 1 and lines[0].startswith("! invalid-utf8:")
    assert await text_run(client, "/ping") == ["* pong"]


async def test_invalid_utf8_in_json_mode_and_nothing_reaches_the_room(
        clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    bob = await text_client(clients, "bob")
    await text_run(bob, "/join general")
    bob.send("/format json")
    assert json.loads(await bob.line())["type"] == "ok"
    await settle(alice)
    bob.send(b"caf\xe9 au lait\r\n")  # Latin-1, not UTF-8
    error = json.loads(await bob.line())
    assert error["type"] == "error" and error["code"] == "invalid-utf8"
    assert [e for e in await settle(alice) if is_message(e)] == []
    bob.send("café au lait")
    echo = json.loads(await bob.line())
    assert echo["type"] == "message" and echo["text"] == "café au lait"


# -- telnet -------------------------------------------------------------------------

IAC_WILL_TTYPE = b"\xff\xfb\x18"
IAC_DO_ECHO = b"\xff\xfd\x01"
IAC_SB_TTYPE = b"\xff\xfa\x18\x00xterm-256color\xff\xf0"
IAC_NOP = b"\xff\xf1"


async def test_telnet_negotiation_is_ignored(clients: Clients) -> None:
    client = await text_client(clients)
    client.send(IAC_WILL_TTYPE + IAC_DO_ECHO + IAC_SB_TTYPE + b"/ping\r\n")
    assert await client.line() == "* pong"
    client.send(b"/pi" + IAC_DO_ECHO + b"ng" + IAC_NOP + b"\r\n")
    assert await client.line() == "* pong"
    # Negotiation alone, even split across writes, produces no reply at all.
    client.send(IAC_SB_TTYPE[:5])
    await client.writer.drain()
    client.send(IAC_SB_TTYPE[5:] + IAC_WILL_TTYPE)
    assert await text_run(client, None) == []


async def test_telnet_bytes_do_not_reach_the_room(clients: Clients) -> None:
    bob, alice = await listening_room(clients)
    alice.send(b"hel" + IAC_WILL_TTYPE + b"lo" + IAC_SB_TTYPE + b" there\r\n")
    assert await alice.line() == "<alice> hello there"
    assert (await bob.next_event(is_message, timeout=5))["text"] == "hello there"


async def test_telnet_login(clients: Clients) -> None:
    client = await text_client(clients)
    client.send(IAC_WILL_TTYPE + f"/register alice {PASSWORD}\r\n".encode() + IAC_DO_ECHO)
    assert (await client.line()).startswith("* ")
    assert clients.server.services.accounts.find("alice") is not None


# -- control characters ---------------------------------------------------------------


async def test_nul_and_esc_never_reach_another_user(clients: Clients) -> None:
    bob, alice = await listening_room(clients)
    reader = await text_client(clients, "carol")
    await text_run(reader, "/join general")
    alice.send("hi\x00there \x1b[31mred\x1b[0m \x07bell\x9b2J\rend")
    own = await alice.line()
    got_json = await bob.next_event(is_message, timeout=5)
    raw = await reader.reader.readline()
    for control in CONTROLS:
        assert control not in got_json["text"]
        assert control.encode() not in raw[:-2]
        assert control not in own
    assert got_json["text"] == "hithere [31mred[0m bell2Jend"
    assert raw == b"<alice> hithere [31mred[0m bell2Jend\r\n"


@pytest.mark.parametrize("line", ["/topic \x1b]0;owned\x07 topic", "/msg bob \x1b[2Jwipe",
                                  "/me \x1b[5mblinks", "/say general \x00\x1b[1mbold"])
async def test_controls_are_removed_from_command_text(clients: Clients, line: str) -> None:
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    reader = await text_client(clients, "bob")
    await settle(bob)
    await text_run(alice, line)
    received = await text_run(reader, None)
    json_side = [e for e in await settle(bob) if e.get("type") in ("message", "event")]
    assert len(received) == 1 and len(json_side) == 1
    for text in [*received, *map(str, json_side[0].values())]:
        assert not any(control in text for control in CONTROLS), text


# -- empty lines and garbage ----------------------------------------------------------


async def test_thousands_of_empty_lines_are_ignored(clients: Clients) -> None:
    bob, alice = await listening_room(clients)
    alice.send(b"\r\n" * 5000 + b"\n" * 2000 + b"   \t  \r\n" * 500)
    assert await text_run(alice, None) == []
    assert [e for e in await settle(bob) if is_message(e)] == []
    alice.send("still here")
    assert await alice.line() == "<alice> still here"


def garbage(seed: int, size: int, allow_iac: bool) -> bytes:
    data = random.Random(seed).randbytes(size)
    return data if allow_iac else data.replace(b"\xff", b"?")


async def test_garbage_without_telnet_bytes_leaves_the_connection_usable(
        clients: Clients) -> None:
    client = await text_client(clients)
    client.send(garbage(7, 64_000, allow_iac=False) + b"\r\n")
    replies = await text_run(client, "/ping")
    assert replies[-1] == "* pong"
    assert all(line.startswith("! ") for line in replies[:-1])


async def test_binary_garbage_does_not_hurt_the_server(clients: Clients) -> None:
    bystander = await clients.user("bob")
    await bystander.command("/create general")
    attackers = []
    for seed in range(3):
        attacker = await text_client(clients)
        attacker.send(garbage(seed, 200_000, allow_iac=True))
        attackers.append(attacker)
    for attacker in attackers:
        await attacker.writer.drain()
    assert (await bystander.command("/ping"))["command"] == "ping"
    newcomer = await clients.user("carol")
    await newcomer.command("/join general")
    echo = await newcomer.say("the server is fine")
    assert (await bystander.next_event(is_message, timeout=5))["id"] == echo["id"]
    for attacker in attackers:
        await attacker.close()
    assert (await bystander.command("/whoami"))["user"] == "bob"


@pytest.mark.parametrize(("line", "message"), [
    ("/rooms x", 'page must be a whole number from 1 to 1,000,000, not "x". '
                 "Usage: /rooms [page]"),
    ("/rooms 0", 'page must be a whole number from 1 to 1,000,000, not "0".'),
    ("/useradd frank pw123456 superuser", 'expected admin, not "superuser".'),
    ("/passwd a", "missing <new>. Usage: /passwd <old> <new>"),
    ("/download abc", 'id must be a whole number of 1 or more, not "abc".'),
    ("/format xml", 'expected text or json, not "xml".'),
    ("/rooms 1 2", "too many arguments. Usage: /rooms [page]"),
    # A word passed over by one parameter but taken by the next is not to blame.
    ("/ratelimit 5 general extra", "too many arguments."),
    ("/mute bob general 10m extra", "too many arguments."),
    ("/mute bob 10m extra", "too many arguments."),
    ("/history 5 extra", "too many arguments."),
    # Before any name is looked up (docs/PROTOCOL.md): not no-such-room.
    ("/join nosuchroom key extra", "too many arguments. Usage: /join"),
])
async def test_argument_errors_say_what_was_wrong(clients: Clients, line: str,
                                                  message: str) -> None:
    admin = await clients.user("root")
    clients.server.services.accounts.require("root").is_admin = True
    await admin.command("/create general")
    await clients.user("bob")
    error = await error_of(admin, line)
    assert error["code"] == "bad-arguments"
    assert message in error["message"], error["message"]


@pytest.mark.parametrize("line", ["/rooms ²", "/download ²", "/history general ²",
                                  "/join ²", "/switch ²", "/audit ²", "/mode +l ² general",
                                  "/audit general ²", "/rooms " + "9" * 4000])
async def test_digits_int_does_not_take_are_refused_not_failures(clients: Clients,
                                                                  line: str) -> None:
    """"²" is a digit to str.isdigit but not to int(): a clear refusal, never an
    internal error."""
    admin = await clients.user("root")
    clients.server.services.accounts.require("root").is_admin = True
    await admin.command("/create general")
    error = await error_of(admin, line)
    assert error["code"] in ("bad-arguments", "no-such-room"), error
    assert (await admin.command("/whoami"))["user"] == "root"


async def test_an_unknown_room_among_optional_words_is_still_no_such_room(
        clients: Clients) -> None:
    alice = await clients.user("alice")
    error = await error_of(alice, "/history nosuchroom")
    assert error["code"] == "no-such-room" and "Usage" not in error["message"]


# -- lines in pieces, on many connections at once --------------------------------------


async def test_lines_sent_in_pieces_on_interleaved_connections_stay_apart(
        clients: Clients) -> None:
    """Connections between lines share one framer (SharedAtRest): a connection's
    unfinished line, an over-long line's rest and a telnet sequence cut in two are
    its own, whatever the others send meanwhile."""
    bob, alice = await listening_room(clients)
    carol = await text_client(clients, "carol")
    await text_run(carol, "/join general")
    await settle(bob)
    alice.send(b"hel")
    carol.send(b"wor")
    alice.send(b"lo from al")
    carol.send(b"x" * (MAX_LINE + 5))  # over-long: refused, its rest skipped
    alice.send(b"ice\r\nsecond \xff")  # a telnet command cut after its IAC
    carol.send(b"still the long line\nld from carol\n")
    alice.send(b"\xfb\x01line\n")
    carol_lines = await text_run(carol, None)
    await text_run(alice, None)
    assert [line for line in carol_lines if line.startswith("!")] == [
        "! line-too-long: that line was over the limit of 4096 bytes and was dropped: "
        "send shorter lines, or share a long text as a file with /upload."]
    assert "<carol> ld from carol" in carol_lines
    texts = [e["text"] for e in await settle(bob) if is_message(e)]
    assert sorted(texts) == ["hello from alice", "ld from carol", "second line"]


# -- mistyped durations ---------------------------------------------------------------


@pytest.mark.parametrize(("line", "word"), [
    ("/mute bob 1x", "1x"),
    ("/mute bob general 10min", "10min"),
    ("/ban bob 1x spam", "1x"),
    ("/ban bob general 2hrs too loud", "2hrs"),
    ("/ban bob 1.5h", "1.5h"),
    ("/token create ci read 1x", "1x"),
    ("/token create 3days", "3days"),
    ("/bot create helper 10M", "10M"),
    ("/ban bob " + "1s" * 41 + " spam", "1s" * 41),  # too long to be checked as one
    ("/mute bob -5m", "-5m"),
    ("/mute bob .5h", ".5h"),
])
async def test_a_mistyped_duration_is_named_as_no_duration(clients: Clients, line: str,
                                                           word: str) -> None:
    """Not a room that does not exist, nor the start of a reason (a ban for ever)."""
    admin = await clients.user("root")
    await admin.command("/create general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    error = await error_of(admin, line)
    assert error["code"] == "bad-arguments", error
    assert f'"{word}" is not a duration: use a number and a unit' in error["message"]
    assert "30s, 10m, 2h, 7d" in error["message"]
    room = clients.server.services.rooms.require("general")
    assert not room.bans and not room.mutes
    assert (await admin.command("/token list"))["tokens"] == []


async def test_no_room_is_named_like_a_duration(clients: Clients) -> None:
    """An optional room before a duration takes a word naming an existing room
    first: a room named "10m" would turn a moderator's ten-minute ban in the current
    room into a ban from #10m for good."""
    alice = await clients.user("alice")
    for name in ("10m", "#1x", "2HRS", "1h30m"):
        error = await error_of(alice, f"/create {name}")
        assert error["code"] == "invalid-name" and "reads as a duration" in error["message"]
    assert (await alice.command("/create 1x-team"))["room"] == "1x-team"
    await alice.command("/create general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    banned = await alice.command("/ban bob 10m spam")
    assert banned["room"] == "general" and banned["until"] is not None


async def test_a_reason_that_only_starts_with_a_digit_is_a_reason(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    await clients.user("bob")
    banned = await alice.command("/ban bob 2nd warning")
    assert banned["until"] is None
    room = clients.server.services.rooms.require("general")
    assert room.bans[clients.server.services.accounts.require("bob").id].reason == "2nd warning"
