"""Every bad-arguments refusal of a command ends with how the command is written.

The usage is added in one place for every command (chatd.protocol.hints), so these
tests walk the whole command table rather than a few commands picked by hand.
"""

from __future__ import annotations

import asyncio

import pytest

import commands
from chatd.client import ChatClient, Reply
from chatd.protocol.registry import FORMS_SEPARATOR, Command, Need
from tests.helpers import PASSWORD, Clients, error_of, text_client, text_run

# A bare line, a word nothing takes, a number out of every range, and too many words.
TRIES = ("", "zz9", "0", " ".join(["zz9"] * 40))


def ends_with_its_usage(cmd: Command, message: str) -> bool:
    """The message ends with the command's usage, or with a narrower one of its own
    (``/keys get <user>``), which the refusal names."""
    said, _, usage = message.rpartition(" Usage: ")
    return bool(said) and (usage == cmd.usage or usage.startswith(f"/{cmd.name} "))


async def sent(client: ChatClient, cmd: Command, line: str) -> Reply:
    """``line``'s reply; the "." that ends the data lines of a command that reads them
    (/upload) follows it, as a client that was refused still sends."""
    task = asyncio.create_task(client.command(line, check=False))
    await asyncio.sleep(0)  # the command's line is written before the "."
    if cmd.data_lines:
        client.send_line(".")
    return await task


async def connection_for(clients: Clients, cmd: Command) -> ChatClient:
    """A connection the command's state check lets through to its arguments: before
    login for /register and /login, else a server admin in a current room."""
    if cmd.need is Need.ANONYMOUS:
        return await clients.anonymous()
    accounts = clients.server.services.accounts
    if accounts.find("root") is None:
        await accounts.create("root", PASSWORD, is_admin=True)
    client = await clients.user("root")
    await client.command("/create general", check=False)
    await client.command("/switch general", check=False)
    return client


@pytest.mark.parametrize("cmd", commands.load().all(), ids=lambda cmd: cmd.name)
async def test_every_bad_arguments_refusal_ends_with_the_usage(clients: Clients,
                                                               cmd: Command) -> None:
    refused = []
    for words in TRIES:
        # A fresh connection each time: a try may log it out or end it (/quit).
        client = await connection_for(clients, cmd)
        reply = await sent(client, cmd, f"/{cmd.name} {words}".strip())
        if reply.get("code") == "bad-arguments":
            assert ends_with_its_usage(cmd, reply["message"]), (words, reply["message"])
            refused.append(words)
        await client.close()
    if not any(param.rest for param in cmd.params):
        assert TRIES[-1] in refused, f"/{cmd.name} took 40 words"


@pytest.mark.parametrize(("line", "usage"), [
    ("/create open general", "/create <room> [open|request|private]"),
    ("/set volume on", "/set <format|color|timestamps|theme> <value>"),
    ("/notifications x", "/notifications [clear] [page]"),
    ("/token revoke", "/token revoke <name>"),
])
async def test_the_refusals_that_went_without_a_usage_end_with_it(
        clients: Clients, line: str, usage: str) -> None:
    # "expected format, color, timestamps or theme, not "volume"." said what was wrong
    # but not how /set is written, while "/rooms 1 2" did.
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    [error] = await text_run(alice, line)
    assert error.startswith("! bad-arguments: ") and error.endswith(f". Usage: {usage}"), error
    json = await clients.user("alice")
    assert (await error_of(json, line))["message"].endswith(f". Usage: {usage}")


async def test_a_refusal_other_than_bad_arguments_has_no_usage(clients: Clients) -> None:
    alice = await clients.user("alice")
    assert "Usage:" not in (await error_of(alice, "/join nosuchroom"))["message"]
    assert "Usage:" not in (await error_of(alice, "/msg nobody hi"))["message"]


SUB_COMMANDED = [cmd for cmd in commands.load().all() if cmd.sub_command_forms]


def test_the_commands_written_with_sub_commands_are_known() -> None:
    # A usage whose forms stopped beginning with their word would quietly lose the
    # narrower usage: the commands known to have them are listed here.
    assert {cmd.name: sorted(cmd.sub_command_forms) for cmd in SUB_COMMANDED} == {
        "bot": ["create", "delete", "list", "revoke", "token", "tokens"],
        "keys": ["get", "publish", "room"],
        "ratelimit": ["off"],
        "token": ["create", "list", "revoke", "revoke-resume"],
        "webhook": ["create", "list", "revoke"]}


@pytest.mark.parametrize("cmd", SUB_COMMANDED, ids=lambda cmd: cmd.name)
async def test_a_sub_commands_refusal_ends_with_its_own_usage(clients: Clients,
                                                             cmd: Command) -> None:
    # "/token revoke a b" ended with every form of /token (and spoke of create's
    # scopes and lifetimes): each sub-command's refusal names its own form alone.
    for word, form in cmd.sub_command_forms.items():
        for words in TRIES:
            client = await connection_for(clients, cmd)
            reply = await sent(client, cmd, f"/{cmd.name} {word.upper()} {words}".strip())
            if reply.get("code") == "bad-arguments":
                assert reply["message"].rpartition(" Usage: ")[2] == form, (word, words, reply)
            await client.close()


@pytest.mark.parametrize(("line", "usage"), [
    ("/token revoke a b", "/token revoke <name>"),
    ("/token revoke a read", "/token revoke <name>"),
    ("/token revoke a 1d", "/token revoke <name>"),
    ("/token list x", "/token list"),
    ("/token revoke-resume x", "/token revoke-resume"),
    ("/token create a read 1d x", "/token create [name] [scopes] [ttl] [--session]"),
    ("/bot list 1 x", "/bot list [page]"),
    ("/bot tokens helper read", "/bot tokens <name>"),
    ("/bot delete helper x", "/bot delete <name>"),
    ("/bot revoke helper default x", "/bot revoke <name> <token-name>"),
    ("/bot token helper read 1d x", "/bot token <name> [scopes] [ttl]"),
    ("/webhook revoke 1 general x", "/webhook revoke <id> [room]"),
    ("/webhook list general general", "/webhook list [room]"),
    ("/keys get alice x", "/keys get <user>"),
    # After off a word is the room (by name or id), never a burst.
    ("/ratelimit off general 2", "/ratelimit off [room]"),
])
async def test_a_word_beyond_a_sub_commands_own_is_one_too_many(
        clients: Clients, line: str, usage: str) -> None:
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    await text_run(alice, "/bot create helper")
    assert await text_run(alice, line) == [f"! bad-arguments: too many arguments. Usage: {usage}"]


def _sub_command_forms_missing_a_word() -> list[tuple[str, str, str]]:
    """(line, form, first required word) for each sub-command form that needs a word
    after its sub-command: ``/keys get``, ``<user>``."""
    found = []
    for cmd in commands.load().all():
        for word, forms in cmd.sub_command_forms.items():
            for form in forms.split(FORMS_SEPARATOR):
                needed = [w for w in form.split()[2:] if w.startswith("<")]
                if needed:
                    found.append((f"/{cmd.name} {word}", forms, needed[0]))
    return found


@pytest.mark.parametrize(("line", "usage", "word"), _sub_command_forms_missing_a_word(),
                         ids=lambda value: value)
async def test_a_sub_command_without_its_word_names_it_as_every_command_does(
        clients: Clients, line: str, usage: str, word: str) -> None:
    # "missing <x>. Usage: ..." (PROTOCOL.md §2), not "missing user." or "/bot delete
    # needs the bot's name.", each sub-command worded its own way.
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    assert await text_run(alice, line) == [f"! bad-arguments: missing {word}. Usage: {usage}"]


@pytest.mark.parametrize(("line", "error"), [
    ("/bot revoke helper", "missing <token-name>. Usage: /bot revoke <name> <token-name>"),
    ("/bot delete", "missing <name>. Usage: /bot delete <name>"),
    ("/webhook create", "missing <name>. Usage: /webhook create <name> [room]"),
    ("/webhook revoke x", 'a webhook is revoked by its id (a number: /webhook list shows '
                          'them), not "x". Usage: /webhook revoke <id> [room]'),
    ("/token frobnicate", 'expected create, list, revoke or revoke-resume, not "frobnicate". '
                          "Usage: /token create [name] [scopes] [ttl] [--session]  |  "
                          "/token list  |  /token revoke <name>  |  /token revoke-resume"),
])
async def test_each_sub_command_words_its_refusal_itself(clients: Clients, line: str,
                                                         error: str) -> None:
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    await text_run(alice, "/ratelimit 2 general")
    await text_run(alice, "/bot create helper")
    room = clients.server.services.rooms.find("general")
    assert room is not None
    kept = dict(room.settings)
    assert await text_run(alice, line) == [f"! bad-arguments: {error}"]
    # Nothing was done: the room's rate, the bot and its token are as they were.
    assert room.settings == kept
    tokens = (await (await clients.user("alice")).command("/bot tokens helper"))["tokens"]
    assert [t["name"] for t in tokens] == ["default"]
