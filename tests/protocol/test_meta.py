"""The connection's own commands: help, ping, format, set; unknown and malformed commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chatd.domain.clock import ManualClock
from chatd.protocol.registry import Command, Need
from tests.helpers import (
    PASSWORD,
    ChatServer,
    Clients,
    error_of,
    start_server,
    text_client,
    text_run,
)

ESC = "\x1b"
TIMESTAMPED = re.compile(r"^\[\d\d:\d\d\] ")








def commands_of(server: ChatServer) -> list[Command]:
    return server.services.commands.all()


# -- /help --------------------------------------------------------------------------


async def test_help_lists_every_command(clients: Clients) -> None:
    client = await clients.anonymous()
    reply = await client.command("/help")
    assert reply["command"] == "help"
    listed = reply["commands"]
    assert [c["name"] for c in listed] == [c.name for c in commands_of(clients.server)]
    for entry in listed:
        assert entry["usage"].split()[0] == "/" + entry["name"]
        assert entry["help"].strip(), entry
        assert entry["group"], entry


async def test_help_in_text_mode_shows_every_command_in_80_columns(clients: Clients) -> None:
    client = await text_client(clients)
    lines = await text_run(client, "/help")
    assert max(map(len, lines)) <= 79, max(lines, key=len)
    words = " ".join(lines).split()
    for cmd in commands_of(clients.server):
        # Every word of the usage and the summary, in order (lines may wrap).
        for part in (cmd.usage, cmd.summary):
            expected = [w for w in part.split() if w not in ("|", "or")]
            found = iter(words)
            assert all(w in found for w in expected), (cmd.name, part)
    short = next(c for c in commands_of(clients.server) if c.name == "ping")
    assert any(line.startswith(f"  {short.usage} ") and short.summary in line for line in lines)
    assert lines[-1].startswith("* ")


async def test_help_for_each_command(clients: Clients) -> None:
    client = await clients.user("alice")
    for cmd in commands_of(clients.server):
        reply = await client.command(f"/help {cmd.name}")
        assert reply["command"] == "help" and reply["name"] == cmd.name
        assert reply["usage"] == cmd.usage and reply["usage"].startswith(f"/{cmd.name}")
        assert reply["help"].strip() and reply["needs"].strip()


async def test_help_states_no_figure_the_configuration_sets(tmp_path: Path) -> None:
    """A help text is written once, and the figures it could quote (how many
    messages /history shows) are the configuration's: a server set otherwise
    would be described wrongly, so no summary states a number."""
    server = await start_server(tmp_path / "set.db", rooms__history_default=5,
                                rooms__history_max=50)
    opened = Clients(server)
    try:
        client = await opened.anonymous()
        listed = (await client.command("/help"))["commands"]
        said = (await client.command("/help history"))["help"]
    finally:
        await opened.close()
        await server.stop()
    assert not [(c["name"], c["help"]) for c in listed if re.search(r"\b\d+\b", c["help"])]
    assert "default" in said and "cap" in said


async def test_help_for_one_command(clients: Clients) -> None:
    client = await clients.anonymous()
    reply = await client.command("/help join")
    assert reply["usage"] == "/join <room> [key]"
    assert reply["help"] and reply["needs"]
    assert (await client.command("/help /JOIN"))["usage"] == "/join <room> [key]"
    text = await text_client(clients)
    usage, needs, *_ = await text_run(text, "/help join")
    assert usage.startswith("  /join <room>")
    assert needs.startswith("  Needs:")


async def test_help_for_kick_says_what_it_needs(clients: Clients) -> None:
    client = await clients.anonymous()
    reply = await client.command("/help kick")
    assert reply["command"] == "help" and reply["name"] == "kick"
    assert reply["usage"].startswith("/kick <user>")
    assert reply["help"].strip() and reply["needs"].strip()
    assert reply["needs"] != (await client.command("/help ping"))["needs"]


async def test_help_for_an_unknown_command(clients: Clients) -> None:
    client = await clients.anonymous()
    error = await error_of(client, "/help nosuchcommand")
    assert error["code"] == "unknown-command"


# -- /ping --------------------------------------------------------------------------


async def test_ping_answers_before_and_after_login(clients: Clients, clock: ManualClock) -> None:
    client = await clients.anonymous()
    reply = await client.command("/ping")
    assert reply["command"] == "ping" and reply["time"] == clock.time()
    await client.command(f"/register alice {PASSWORD}")
    clock.advance(5)
    assert (await client.command("/ping"))["time"] == clock.time()
    text = await text_client(clients)
    assert await text_run(text, "/ping") == ["* pong"]


# -- /format ------------------------------------------------------------------------


async def test_format_switches_between_text_and_json(clients: Clients) -> None:
    client = await text_client(clients)
    client.send("/format json")
    switched = json.loads(await client.line())
    assert switched["type"] == "ok" and switched["command"] == "format"
    client.send("/nosuchcommand")
    error = json.loads(await client.line())
    assert error["type"] == "error" and error["code"] == "unknown-command"
    client.send("/format text")
    assert (await client.line()).startswith("* ")
    client.send("/set format JSON")
    assert json.loads(await client.line())["command"] == "set"
    client.send("/format TEXT")
    assert (await client.line()).startswith("* ")
    assert (await text_run(client, "/format xml"))[0].startswith("! bad-arguments:")
    assert (await text_run(client, "/format"))[0].startswith("! bad-arguments:")


# -- /set ---------------------------------------------------------------------------


async def test_color_on_adds_escapes_and_off_removes_them(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    bob = await text_client(clients, "bob")
    await text_run(bob, "/join general")

    async def sample() -> list[str]:
        await alice.say("hello bob")
        lines = await text_run(bob, None)
        lines += await text_run(bob, "/whoami")
        lines += await text_run(bob, "/join nosuchroom")
        return lines

    plain = await sample()
    assert len(plain) == 3 and not any(ESC in line for line in plain)
    switched = await text_run(bob, "/set color on")
    assert ESC in switched[0]
    colored = await sample()
    assert len(colored) == 3 and all(ESC + "[" in line for line in colored)
    # Stripped of escapes, the lines are the same as before.
    assert [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in colored] == plain
    await text_run(bob, "/set color off")
    assert not any(ESC in line for line in await sample())


async def test_color_does_not_touch_json(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/set color on")
    reply = await alice.command("/whoami")
    assert ESC not in json.dumps(reply.final)


async def test_timestamps_on_prefix_message_lines(clients: Clients, clock: ManualClock) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    bob = await text_client(clients, "bob")
    await text_run(bob, "/join general")
    await alice.say("no stamp")
    assert await text_run(bob, None) == ["<alice> no stamp"]
    reply = await text_run(bob, "/set timestamps on")
    assert reply[0].startswith("* ")
    await alice.say("stamped")
    assert await text_run(bob, None) == ["[08:00] <alice> stamped"]
    clock.advance(125)
    await alice.say("later")
    assert await text_run(bob, None) == ["[08:02] <alice> later"]
    await text_run(bob, "/set timestamps off")
    await alice.say("plain again")
    assert await text_run(bob, None) == ["<alice> plain again"]


@pytest.mark.parametrize("line", ["/set color maybe", "/set timestamps yes",
                                  "/set volume on", "/set color", "/set"])
async def test_set_with_bad_values(clients: Clients, line: str) -> None:
    client = await clients.anonymous()
    assert (await error_of(client, line))["code"] == "bad-arguments"


async def test_colour_is_taken_for_color(clients: Clients) -> None:
    """The British spelling sets the same setting, and the reply names it as stored."""
    bob = await text_client(clients, "bob")
    switched = await text_run(bob, "/set colour on")
    assert ESC in switched[0] and "color is now on" in switched[0]
    client = await clients.anonymous()
    reply = await client.command("/set COLOUR off")
    assert reply["setting"] == "color" and reply["value"] == "off"


async def test_set_replies_with_the_setting(clients: Clients) -> None:
    client = await clients.anonymous()
    reply = await client.command("/set timestamps ON")
    assert reply["setting"] == "timestamps" and reply["value"] == "on"


async def test_settings_persist_across_logins(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    first = await text_client(clients, "bob")
    await text_run(first, "/join general")
    await text_run(first, "/set timestamps on")
    await text_run(first, "/set color on")
    first.send("/quit")
    await first.line()
    second = await text_client(clients)
    welcome = await text_run(second, f"/login bob {PASSWORD}")
    assert ESC in welcome[0]
    await alice.say("welcome back")
    [line] = await text_run(second, None)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
    assert ESC in line and plain == "[08:00] <alice> welcome back"
    # Settings chosen before login are not saved to anybody's account.
    third = await text_client(clients)
    await text_run(third, "/set color on")
    await text_run(third, f"/register carol {PASSWORD}")
    user = clients.server.services.accounts.find("carol")
    assert user is not None and user.settings == {}


async def test_login_keeps_the_format_the_connection_chose(clients: Clients) -> None:
    person = await text_client(clients, "alice")
    person.send("/format json")
    assert json.loads(await person.line())["command"] == "format"
    person.send("/format text")  # saved with the account: alice prefers text
    assert (await person.line()).startswith("* ")
    bot = await text_client(clients)
    bot.send("/format json")
    assert json.loads(await bot.line())["command"] == "format"
    bot.send(f"/login alice {PASSWORD}")
    line = await bot.line()
    assert line.startswith("{"), line
    reply = json.loads(line)
    assert reply["type"] == "ok" and reply["command"] == "login"


# -- unknown and malformed commands -------------------------------------------------


@pytest.mark.parametrize("line", ["/nosuchcommand", "/nosuchcommand with args", "/",
                                  "/kic bob", "/sayhello"])
async def test_unknown_command(clients: Clients, line: str) -> None:
    anonymous = await clients.anonymous()
    assert (await error_of(anonymous, line))["code"] == "unknown-command"
    alice = await clients.user("alice")
    assert (await error_of(alice, line))["code"] == "unknown-command"
    text = await text_client(clients)
    [shown] = await text_run(text, line)
    assert shown.startswith("! unknown-command:")


def needs_an_argument(cmd: Command) -> bool:
    return bool(cmd.params) and not cmd.params[0].optional and not cmd.server_admin


async def test_missing_arguments_give_the_usage(clients: Clients) -> None:
    anonymous = await clients.anonymous()
    alice = await clients.user("alice")
    checked = []
    for cmd in filter(needs_an_argument, commands_of(clients.server)):
        client = anonymous if cmd.need is Need.ANONYMOUS else alice
        error = await error_of(client, f"/{cmd.name}")
        assert error["code"] == "bad-arguments", cmd.name
        assert cmd.usage in error["message"], cmd.name
        checked.append(cmd.name)
    assert {"register", "login", "join", "msg", "say", "create"} <= set(checked)


@pytest.mark.parametrize(("line", "usage"), [
    ("/register alice", "/register <name> <password>"),
    ("/passwd only-one", "/passwd <old> <new>"),
    ("/msg alice", "/msg <user> <text>"),
    ("/create", "/create <room> [open|request|private]"),
    ("/ping now", "/ping"),
    ("/whoami please", "/whoami"),
])
async def test_bad_arguments_message_shows_the_usage(
        clients: Clients, line: str, usage: str) -> None:
    client = await clients.user("alice") if not line.startswith("/register") else \
        await clients.anonymous()
    error = await error_of(client, line)
    assert error["code"] == "bad-arguments" and usage in error["message"]
    text = await text_client(clients, None if line.startswith("/register") else "alice")
    [shown] = await text_run(text, line)
    assert shown.startswith("! bad-arguments:") and usage in shown


@pytest.mark.parametrize("line", ["/PING", "/Ping", "/HELP JOIN", "/WhoAmI", "/JOIN general",
                                  "/Rooms"])
async def test_command_names_are_case_insensitive(clients: Clients, line: str) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    reply = await alice.command(line)
    assert reply.ok


async def test_every_command_has_usage_summary_and_needs(clients: Clients) -> None:
    for cmd in commands_of(clients.server):
        assert cmd.usage.startswith(f"/{cmd.name}")
        assert cmd.summary.strip(), cmd.name
        assert cmd.needs_text.strip(), cmd.name


async def test_every_commands_help_is_a_whole_sentence(clients: Clients) -> None:
    # A summary is its docstring's first paragraph, however many lines it takes.
    client = await clients.anonymous()
    listed = (await client.command("/help"))["commands"]
    cut = [c["name"] for c in listed if not c["help"].endswith((".", ".)", "?"))]
    assert listed and cut == []
    topic = await client.command("/help topic")
    assert topic["help"].endswith("any member when the topic lock is off, /mode -t).")
