"""End to end with a standard IRC client library (``irc`` from PyPI) talking to a
line-protocol user in one room."""

from __future__ import annotations

import asyncio
from typing import Any

import irc.client
import irc.client_aio

from tests.helpers import PASSWORD, ChatServer, Clients


async def test_irc_library_client_joins_and_exchanges_messages(server: ChatServer,
                                                               clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    await server.services.accounts.create("ircbob", PASSWORD)
    assert server.irc is not None

    loop = asyncio.get_running_loop()
    events: asyncio.Queue[irc.client.Event] = asyncio.Queue()
    reactor = irc.client_aio.AioReactor(loop=loop)

    def queue(_connection: Any, event: irc.client.Event) -> None:
        events.put_nowait(event)

    for kind in ("welcome", "join", "pubmsg", "privmsg", "namreply", "kick"):
        reactor.add_global_handler(kind, queue)

    async def next_event(kind: str) -> irc.client.Event:
        async with asyncio.timeout(5):
            while (event := await events.get()).type != kind:
                pass
        return event

    connection = reactor.server()
    await connection.connect("127.0.0.1", server.irc.port, "ircbob",
                             password=f"ircbob:{PASSWORD}")
    try:
        assert (await next_event("welcome")).target == "ircbob"
        connection.join("#general")
        assert (await next_event("join")).target == "#general"
        names = await next_event("namreply")
        assert names.arguments[-1].split() == ["@alice", "ircbob"]
        await alice.next_event(lambda e: e.get("event") == "join")

        await alice.say("hi library")
        message = await next_event("pubmsg")
        assert (message.source.nick, message.target, message.arguments) == (
            "alice", "#general", ["hi library"])

        connection.privmsg("#general", "hello from irc.client")
        got = await alice.next_event(lambda e: e.get("type") == "message")
        assert (got["from"], got["text"]) == ("ircbob", "hello from irc.client")

        await alice.command("/msg ircbob direct")
        direct = await next_event("privmsg")
        assert (direct.source.nick, direct.arguments) == ("alice", ["direct"])

        await alice.command("/kick ircbob general enough")
        kick = await next_event("kick")
        assert kick.arguments == ["ircbob", "enough"]
    finally:
        connection.disconnect("bye")
