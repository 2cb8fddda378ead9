"""Messages from bot accounts carry "bot": true, live, in history, over HTTP and in the
SDK, so that two bots can tell not to answer each other; a person's carry no mark."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chatd.client import ChatClient
from chatd.client.sdk import Bot, Message
from tests.client.helpers import started, stopped, until
from tests.helpers import ChatServer, Clients
from tests.web.helpers import http, token_for


def _message(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("type") == "message" and e.get("text") == text


async def _bot(clients: Clients, owner: ChatClient, name: str) -> tuple[ChatClient, str]:
    """A bot account of ``owner``'s, logged in and in #den; its token."""
    token = str((await owner.command(f"/bot create {name}"))["token"])
    bot = await clients.anonymous()
    await bot.command(f"/auth {token}")
    await bot.command("/join den")
    return bot, token


async def test_a_bots_messages_are_marked_for_people_and_bots(
        server: ChatServer, clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create den")
    helper, _ = await _bot(clients, alice, "helper")
    echo, _ = await _bot(clients, alice, "echo")

    await helper.command("/say den beep")
    for reader in (alice, echo):  # a person and another bot
        seen = await reader.next_event(_message("beep"))
        assert seen["from"] == "helper" and seen["bot"] is True
    await helper.command("/me whirrs")
    assert (await alice.next_event(_message("whirrs")))["bot"] is True
    await helper.command("/msg alice psst")
    direct = await alice.next_event(_message("psst"))
    assert direct["to"] == "alice" and direct["bot"] is True

    await alice.command("/say den hello")
    assert "bot" not in await helper.next_event(_message("hello"))
    await alice.command("/msg helper hi")
    assert "bot" not in await helper.next_event(_message("hi"))
    history = (await alice.command("/history den"))["messages"]
    assert {m["text"]: m.get("bot") for m in history} == {
        "beep": True, "whirrs": True, "hello": None}


async def test_the_http_history_marks_a_bots_messages_and_says_so(
        server: ChatServer, clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create den")
    helper, _ = await _bot(clients, alice, "helper")
    await helper.command("/say den beep")
    await alice.command("/say den hello")
    async with http(server, await token_for(server, "alice")) as client:
        messages = (await client.get("/api/v1/rooms/den/messages")).json()["messages"]
        document = (await client.get("/api/v1/openapi.json")).json()
    assert [(m["text"], m.get("bot")) for m in messages] == [("beep", True), ("hello", None)]
    answer = document["paths"]["/api/v1/rooms/{room}/messages"]["get"]["responses"]["200"]
    schema = answer["content"]["application/json"]["schema"]["properties"]["messages"]
    assert schema["items"]["properties"]["bot"]["type"] == "boolean"


async def test_the_sdk_tells_a_bots_message_from_a_persons(
        server: ChatServer, clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create den")
    helper, _ = await _bot(clients, alice, "helper")
    _echo, token = await _bot(clients, alice, "echo")
    bot = Bot("127.0.0.1", server.port, user="echo", token=token, rooms=["den"])
    seen: list[Message] = []

    @bot.on_message
    async def heard(message: Message) -> None:
        seen.append(message)

    task = await started(bot)
    await helper.command("/say den beep")
    await alice.command("/say den hello")
    await until(lambda: len(seen) == 2, "both messages")
    assert [(m.sender, m.bot) for m in seen] == [("helper", True), ("alice", False)]
    await stopped(bot, task)
