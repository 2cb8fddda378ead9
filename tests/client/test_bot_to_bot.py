"""Two SDK bots in one room of a real server: a bot's command is no cue for another bot."""

from __future__ import annotations

from typing import Any

import pytest

from chatd.client.sdk import Bot, Message
from tests.client.helpers import said, started, stopped, until
from tests.helpers import ChatServer, Clients


async def _bot_account(clients: Clients, owner: str, name: str) -> str:
    """A bot account of ``owner``'s; its token."""
    made = await (await clients.user(owner)).command(f"/bot create {name}")
    return str(made["token"])


@pytest.mark.parametrize("answer_bots", [False, True])
async def test_a_bots_command_and_mention_are_answered_only_when_the_bot_answers_bots(
        server: ChatServer, clients: Clients, answer_bots: bool) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    caller = Bot("127.0.0.1", server.port, user="pinger", rooms=["general"],
                 token=await _bot_account(clients, "alice", "pinger"))
    # The default is what is under test when answer_bots is off: not given at all.
    options: dict[str, Any] = {"answer_bots": True} if answer_bots else {}
    answerer = Bot("127.0.0.1", server.port, user="ponger", rooms=["general"],
                   token=await _bot_account(clients, "alice", "ponger"), **options)
    answered: list[str] = []
    mentioned: list[str] = []
    heard: list[tuple[str, bool]] = []

    @answerer.on_message  # the hook for every message: bots' too, marked
    async def message(event: Message) -> None:
        heard.append((event.sender, event.bot))

    @answerer.command("ping")
    async def ping(message: Message, args: str) -> None:
        answered.append(message.sender)
        await answerer.reply(message, f"pong to {message.sender}")

    @answerer.on_mention
    async def mention(message: Message) -> None:
        mentioned.append(message.sender)

    tasks = [await started(caller), await started(answerer)]
    await caller.say("general", "!ping")
    await caller.say("general", "ponger: are you there?")
    # A person's command and mention come after the bot's, and the answerer handles
    # events in order: once the person is answered, the bot's turn has passed.
    await alice.command("/say general !ping")
    await said(alice, "pong to alice")
    await alice.command("/say general ponger: and you?")
    await until(lambda: "alice" in mentioned, "the person's mention")
    expected = ["pinger", "alice"] if answer_bots else ["alice"]
    assert answered == expected and mentioned == expected
    assert heard == [("pinger", True), ("pinger", True), ("alice", False), ("alice", False)]
    for bot, task in zip((caller, answerer), tasks, strict=True):
        await stopped(bot, task)

