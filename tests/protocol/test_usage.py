"""Every bad-arguments refusal of a command ends with how the command is written.

The usage is added in one place for every command (chatd.protocol.hints), so these
tests walk the whole command table rather than a few commands picked by hand.
"""

from __future__ import annotations

import asyncio

import pytest

import commands
from chatd.client import ChatClient, Reply
from chatd.protocol.registry import Command, Need
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
