"""The bot SDK (chatd.client.sdk) against a real server over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatd.client import ChatClient
from chatd.client.sdk import (
    Bot,
    ClientError,
    FileResumeTokens,
    Invite,
    Join,
    Leave,
    LoginRefused,
    MemoryResumeTokens,
    Message,
    RoomEvent,
    Typing,
)
from chatd.domain.clock import ManualClock
from tests.client.helpers import (
    WAIT,
    bot_token,
    change_password_offline,
    fixed_backoff,
    quick_backoff,
    said,
    started,
    stopped,
    until,
)
from tests.helpers import PASSWORD, ChatServer, Clients, settle, start_server
from tests.relay import Relay


async def test_handlers_get_typed_events(server: ChatServer, clients: Clients) -> None:
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    await alice.command("/create general")
    bot = Bot("127.0.0.1", server.port, user="helper", token=token, rooms=["#General"])
    seen: dict[str, list[object]] = {"message": [], "mention": [], "join": [], "leave": [],
                                      "topic": [], "typing": [], "invite": []}

    @bot.on_message
    async def message(event: Message) -> None:
        seen["message"].append(event)

    @bot.on_mention
    async def mention(event: Message) -> None:
        seen["mention"].append(event)

    @bot.on_join
    async def join(event: Join) -> None:
        seen["join"].append(event)

    @bot.on_leave
    async def leave(event: Leave) -> None:
        seen["leave"].append(event)

    @bot.on(RoomEvent)
    async def other(event: RoomEvent) -> None:
        seen["topic"].append(event)

    @bot.on(Typing)
    async def typing(event: Typing) -> None:
        seen["typing"].append(event)

    @bot.on_invite
    async def invited(event: Invite) -> None:
        seen["invite"].append(event)
        await bot.join(event.room)

    task = await started(bot)
    assert bot.rooms == {"general"}
    await alice.command("/say general hello all")
    await alice.command("/say general helper: are you there?")
    await alice.command("/topic general Bots welcome")
    await alice.command("/typing general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    await bob.command("/leave general")
    await alice.command("/create den private")
    await alice.command("/invite helper den")
    await until(lambda: "den" in bot.rooms, "the bot to accept the invitation")
    await bot.say("general", "done")  # its own echo reaches no handler
    await until(lambda: len(seen["leave"]) == 1, "the leave event")

    texts = [m.text for m in seen["message"]]  # type: ignore[attr-defined]
    assert texts == ["hello all", "helper: are you there?"]
    (named,) = seen["mention"]
    assert isinstance(named, Message) and named.room == "general" and named.id > 0
    assert named.sender == "alice" and not named.is_direct and not named.replayed
    assert seen["join"] == [Join("general", "bob")]
    assert seen["leave"] == [Leave("general", "bob", "bob")]
    assert seen["typing"] == [Typing("general", "alice")]
    topic = seen["topic"][0]
    assert isinstance(topic, RoomEvent) and (topic.event, topic.actor) == ("topic", "alice")
    assert topic.raw["topic"] == "Bots welcome"
    (invite,) = seen["invite"]
    assert isinstance(invite, Invite) and (invite.room, invite.actor) == ("den", "alice")
    await stopped(bot, task)
    assert not bot.connected.is_set()


async def test_requests_are_labelled_awaitables(server: ChatServer, clients: Clients) -> None:
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    for room in ("one", "two", "three"):
        await alice.command(f"/create {room}")
    bot = Bot("127.0.0.1", server.port, user="helper", token=token,
              rooms=["one", "two", "three"])
    task = await started(bot)
    # Many at once: each await gets the reply to its own command, whatever the order.
    replies = await asyncio.gather(*(bot.request(f"/who {room}")
                                     for room in ("one", "two", "three") * 5))
    assert [r["room"] for r in replies] == ["one", "two", "three"] * 5
    with pytest.raises(ClientError) as refused:
        await bot.request("/join nosuchroom")
    assert refused.value.code == "no-such-room"
    assert not (await bot.request("/join nosuchroom", check=False)).ok
    sent = await bot.say("one", "first line\nsecond line")  # one protocol line
    got = await said(alice, "first line")
    assert got["id"] == sent and got["text"] == "first line second line"
    await bot.direct("alice", "psst")
    assert (await said(alice, "psst"))["to"] == "alice"
    await bot.leave("#three")
    assert bot.rooms == {"one", "two"}
    await stopped(bot, task)
    with pytest.raises(ConnectionError):
        await bot.request("/ping")


async def test_direct_messages_kept_while_away_are_replayed(
        server: ChatServer, clients: Clients) -> None:
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    await alice.command("/msg helper are you up?")
    bot = Bot("127.0.0.1", server.port, user="helper", token=token)
    mentions: list[Message] = []
    bot.on_mention(_append(mentions))
    task = await started(bot)
    await until(lambda: len(mentions) == 1, "the replayed direct message")
    assert mentions[0].is_direct and mentions[0].replayed and mentions[0].text == "are you up?"
    await stopped(bot, task)


def _append(into: list[Message]):  # type: ignore[no-untyped-def]
    async def handler(message: Message) -> None:
        into.append(message)
    return handler


async def test_a_failing_handler_does_not_stop_the_bot(
        server: ChatServer, clients: Clients, caplog: pytest.LogCaptureFixture) -> None:
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    await alice.command("/create general")
    bot = Bot("127.0.0.1", server.port, user="helper", token=token, rooms=["general"])
    got: list[str] = []

    @bot.command("boom")
    async def boom(message: Message, args: str) -> None:
        raise RuntimeError("handler bug")

    @bot.command("fail")
    async def fail(message: Message, args: str) -> None:
        await bot.request("/join nosuchroom")

    @bot.command("slow")
    async def slow(message: Message, args: str) -> None:
        await asyncio.wait_for(asyncio.Event().wait(), 0.01)  # its own call timed out

    @bot.command("echo")
    async def echo(message: Message, args: str) -> None:
        got.append(args)

    @bot.on_connect
    async def connected() -> None:
        raise RuntimeError("on_connect bug")

    with caplog.at_level(logging.WARNING, logger="chatd.client.sdk.bot"):
        task = await started(bot)
        for line in ("!boom", "!fail", "!slow", "!unknown", "!ECHO  still here "):
            await alice.command(f"/say general {line}")
        await until(lambda: got == ["still here"], "the bot to go on")
    assert "a handler failed" in caplog.text and "no-such-room" in caplog.text
    assert "on_connect bug" in caplog.text and "got no answer" in caplog.text
    # Not one of them cost the connection.
    assert bot.connections == 1 and not task.done()
    await stopped(bot, task)


async def test_a_notice_is_never_answered_automatically(server: ChatServer,
                                                         clients: Clients) -> None:
    token = await bot_token(clients, "helper")
    bot = Bot("127.0.0.1", server.port, user="helper", token=token)
    seen: list[Message] = []
    answered: list[str] = []
    bot.on_message(_append(seen))

    @bot.on_mention
    async def mentioned(message: Message) -> None:
        answered.append("mention")

    @bot.command("ping")
    async def ping(message: Message, args: str) -> None:
        answered.append("command")

    for text in ("helper: a notice", "!ping"):
        await bot.dispatch({"type": "message", "room": "general", "from": "bob", "id": 7,
                            "text": text, "notice": True})
        await bot.dispatch({"type": "message", "to": "helper", "from": "bob", "id": 8,
                            "text": text, "notice": True})
    assert answered == [] and len(seen) == 4 and all(m.notice for m in seen)
    await bot.dispatch({"type": "message", "room": "general", "from": "bob", "id": 9,
                        "text": "!ping"})
    assert answered == ["command"] and not seen[-1].notice


async def test_reconnects_after_a_restart_and_joins_again(tmp_path: Path,
                                                          clients: Clients) -> None:
    db = tmp_path / "restart.db"
    first = await start_server(db, clock=ManualClock())
    port = first.port
    setup = Clients(first)
    token = await bot_token(setup, "helper")
    alice = await setup.user("alice")
    await alice.command("/create general")
    bot = Bot("127.0.0.1", port, user="helper", token=token, rooms=["general"],
              backoff=quick_backoff())
    pings: list[str] = []

    @bot.command("ping")
    async def ping(message: Message, args: str) -> None:
        pings.append(message.sender)
        await bot.reply(message, "pong")

    reconnected: list[int] = []

    @bot.on_connect
    async def connected() -> None:
        reconnected.append(bot.connections)

    task = await started(bot)
    await alice.command("/say general !ping")
    await said(alice, "pong")
    await setup.close()
    await first.stop()
    await until(lambda: not bot.connected.is_set(), "the bot to notice")
    second = await start_server(db, clock=ManualClock(), listen__port=port)
    try:
        await until(bot.connected.is_set, "the bot to reconnect")
        again = await Clients(second).user("alice")
        await again.command("/switch general")
        await again.say("!ping")
        assert (await said(again, "pong"))["room"] == "general"
        assert pings == ["alice", "alice"] and reconnected == [1, 2]
        assert bot.last_id > 0  # where a /resume would start
        await again.close()
        await stopped(bot, task)
    finally:
        await second.stop()


async def test_refused_credentials_end_the_bot(server: ChatServer, clients: Clients) -> None:
    await clients.user("helper")
    bot = Bot("127.0.0.1", server.port, user="helper", password="wrong-password")
    with pytest.raises(LoginRefused) as refused:
        await asyncio.wait_for(bot.run(), 8)
    assert refused.value.reply["code"] == "auth-failed"
    with pytest.raises(ValueError, match="token or a password"):
        Bot(user="x")


async def test_reconnects_after_a_restart_with_its_resume_token(tmp_path: Path) -> None:
    db = tmp_path / "restart.db"
    first = await start_server(db, clock=ManualClock())
    port = first.port
    setup = Clients(first)
    await (await setup.user("helper")).command("/create general")
    await setup.close()
    tokens = MemoryResumeTokens()
    bot = Bot("127.0.0.1", port, user="helper", password=PASSWORD, rooms=["general"],
              backoff=quick_backoff(), resume_tokens=tokens)
    task = await started(bot)
    issued = tokens.get()  # asked for at the password login
    assert issued is not None and issued.startswith("chatdr_")
    await first.stop()
    await until(lambda: not bot.connected.is_set(), "the bot to notice")
    change_password_offline(db, "helper")  # the bot's password no longer logs in
    second = await start_server(db, clock=ManualClock(), listen__port=port)
    try:
        await until(bot.connected.is_set, "the bot to reconnect")
        assert bot.connections == 2 and bot.rooms == {"general"}
        rotated = tokens.get()
        assert rotated is not None and rotated != issued  # each one works once
        check = Clients(second)
        anonymous = await check.anonymous()
        by_password = await anonymous.command(f"/login helper {PASSWORD}", check=False)
        assert by_password.final["code"] == "auth-failed"  # so the bot resumed
        used = await anonymous.command(f"/login --resume {issued}", check=False)
        assert used.final["code"] == "auth-failed"  # the first token was used up
        alice = await check.user("alice")
        members = (await alice.command("/who general"))["members"]
        assert ("helper", True) in {(m["user"], m["online"]) for m in members}
        await check.close()
        await stopped(bot, task)
    finally:
        await second.stop()


async def test_a_refused_resume_token_falls_back_to_the_api_token(
        server: ChatServer, clients: Clients, caplog: pytest.LogCaptureFixture) -> None:
    token = await bot_token(clients, "helper")
    tokens = MemoryResumeTokens()
    tokens.put("chatdr_stale")  # used, revoked or from another server
    bot = Bot("127.0.0.1", server.port, user="helper", token=token, resume_tokens=tokens)
    with caplog.at_level(logging.INFO, logger="chatd.client.sdk.bot"):
        task = await started(bot)
    assert "resume token refused (auth-failed); logging in with the token" in caplog.text
    fresh = tokens.get()  # the token login asked for a new one
    assert fresh is not None and fresh != "chatdr_stale" and bot.connections == 1
    await stopped(bot, task)
    # Without resume tokens the bot asks for none and keeps none.
    bot = Bot("127.0.0.1", server.port, user="helper", token=token, resume=False)
    task = await started(bot)
    assert bot.resume_tokens is None and bot.connections == 1
    await stopped(bot, task)


def test_resume_tokens_in_a_file_only_their_owner_reads(tmp_path: Path) -> None:
    kept = FileResumeTokens(tmp_path / "helper.resume")
    assert kept.get() is None
    kept.put("chatdr_one")
    kept.put("chatdr_two")
    assert kept.get() == "chatdr_two"
    assert stat.S_IMODE(os.stat(kept.path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["helper.resume"]
    kept.put(None)
    assert kept.get() is None and not kept.path.exists()
    kept.put(None)  # forgetting twice is fine


async def test_the_bot_stops_while_connecting(server: ChatServer, clients: Clients) -> None:
    alice = await clients.user("alice")
    await settle(alice)
    bot = Bot("127.0.0.1", 1, user="helper", password="x", backoff=quick_backoff())
    task = asyncio.ensure_future(bot.run())
    await until(lambda: bot.backoff.attempts >= 2, "two refused connections")
    assert not task.done()
    await bot.stop()
    await asyncio.wait_for(task, 8)


async def test_a_bot_that_saw_no_message_yet_still_gets_what_it_missed(
        server: ChatServer, clients: Clients) -> None:
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    await alice.command("/create general")
    before = await alice.command("/say general said before the bot came")
    got: list[Message] = []
    bot = Bot("127.0.0.1", server.port, user="helper", token=token, rooms=["general"],
              backoff=fixed_backoff(0.5))
    bot.on_message(_append(got))
    task = asyncio.ensure_future(bot.run())
    await asyncio.wait_for(bot.connected.wait(), WAIT)
    # Where a resume starts is known once the bot says it is connected: a connection
    # lost at once (a busy machine) must not cost it what is said meanwhile.
    assert bot.last_id == before["id"]
    assert bot.client is not None
    await bot.client.close()
    await alice.command("/say general during")
    await alice.command("/say general !ping")
    await until(lambda: len(got) >= 2, "the missed messages")
    await alice.command("/say general after")
    await until(lambda: len(got) >= 3, "the live message")
    # What came before its first login is not replayed; what it missed is, once.
    assert [(m.text, m.replayed) for m in got] == [
        ("during", True), ("!ping", True), ("after", False)]
    await stopped(bot, task)


async def test_a_reconnected_bot_gets_what_it_missed_once_through_resume(
        server: ChatServer, clients: Clients) -> None:
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    await alice.command("/create general")
    # Waits long enough to post while the bot is away.
    bot = Bot("127.0.0.1", server.port, user="helper", token=token, rooms=["general"],
              backoff=fixed_backoff(0.5))
    got: list[tuple[int, bool]] = []

    @bot.on_message
    async def message(event: Message) -> None:
        got.append((event.id, event.replayed))

    task = await started(bot)
    first = (await alice.command("/say general before"))["id"]
    await until(lambda: [i for i, _ in got] == [first], "the first message")
    assert bot.client is not None
    await bot.client.close()
    missed = [(await alice.command(f"/say general missed {n}"))["id"] for n in range(3)]
    missed.append((await alice.command("/msg helper and a direct one"))["id"])
    await until(lambda: len(got) >= 5, "the missed messages")
    after = (await alice.command("/say general after"))["id"]
    await until(lambda: len(got) >= 6, "the live message")
    assert got[1:] == [*((i, True) for i in missed), (after, False)]
    await stopped(bot, task)


async def test_a_bot_ahead_of_the_servers_ids_goes_on_from_the_servers_latest(
        server: ChatServer, clients: Clients) -> None:
    """A bot that saw ids the server never issued (a database restored from an older
    backup) resumes once from the server's latest id, then misses nothing."""
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    await alice.command("/create general")
    bot = Bot("127.0.0.1", server.port, user="helper", token=token, rooms=["general"],
              backoff=fixed_backoff(0.2))
    got: list[int] = []

    @bot.on_message
    async def message(event: Message) -> None:
        got.append(event.id)

    task = await started(bot)
    first = (await alice.command("/say general before"))["id"]
    await until(lambda: got == [first], "the first message")
    assert bot.client is not None
    connections = bot.connections
    bot.last_id = first + 1_000_000  # what it saw of the other timeline
    await bot.client.close()
    await until(lambda: bot.connections == connections + 1 and bot.last_id == first,
                "the bot to reconnect and go on from the server's latest id")
    assert bot.client is not None
    await bot.client.close()
    missed = (await alice.command("/say general missed"))["id"]
    await until(lambda: got == [first, missed], "the missed message, replayed")
    await stopped(bot, task)


async def test_say_returns_the_echo_of_a_line_the_server_cleaned(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    echoed = await alice.say("tab\there, bell\x07 and trailing  ", timeout=5)
    assert echoed["type"] == "message" and echoed["text"] == "tab here, bell and trailing"


@contextlib.asynccontextmanager
async def relayed_bot(server: ChatServer, clients: Clients,
                      alice: ChatClient) -> AsyncIterator[tuple[Bot, Relay]]:
    """A bot "helper" for #general (made by ``alice``), reaching the server through a
    relay the test can freeze; not started."""
    token = await bot_token(clients, "helper")
    await alice.command("/create general")
    async with Relay(server.port) as relay:
        yield Bot("127.0.0.1", relay.port, user="helper", token=token, rooms=["general"],
                  backoff=quick_backoff()), relay


async def test_a_connection_that_stops_answering_is_dropped_and_made_again(
        server: ChatServer, clients: Clients, caplog: pytest.LogCaptureFixture) -> None:
    alice = await clients.user("alice")
    async with relayed_bot(server, clients, alice) as (bot, relay):
        bot.alive_timeout = 0.2

        @bot.command("slow")
        async def slow(message: Message, args: str) -> None:
            relay.freeze()  # the peer is gone from here on, without a word
            await bot.request("/ping", timeout=0.2)

        task = await started(bot)
        await alice.command("/say general !slow")
        await until(lambda: bot.connections == 2, "the bot to give the connection up and "
                                                  "make a new one")
        await stopped(bot, task)


async def test_a_bot_that_knows_no_message_resumes_nothing_rather_than_everything(
        server: ChatServer, clients: Clients) -> None:
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    await alice.command("/msg helper read long ago")
    first = Bot("127.0.0.1", server.port, user="helper", token=token)
    got: list[Message] = []
    first.on_message(_append(got))
    await stopped(first, await started(first))
    assert [m.text for m in got] == ["read long ago"]  # kept while away, shown at login
    # A new process: no room, no message seen; its reconnection must not ask
    # for /resume 0 (every message of the account).
    again = Bot("127.0.0.1", server.port, user="helper", token=token,
                backoff=fixed_backoff(0.3))
    again.on_message(_append(got))
    task = await started(again)
    assert again.client is not None
    await again.client.close()
    await until(lambda: again.connections == 2, "the bot to reconnect")
    await alice.command("/msg helper now")
    await until(lambda: [m.text for m in got[-1:]] == ["now"], "the live message")
    assert [m.text for m in got] == ["read long ago", "now"]
    await stopped(again, task)


async def test_an_idle_bot_notices_a_connection_gone_silent_and_resumes(
        server: ChatServer, clients: Clients, caplog: pytest.LogCaptureFixture) -> None:
    alice = await clients.user("alice")
    async with relayed_bot(server, clients, alice) as (bot, relay):
        bot.keepalive, bot.alive_timeout = 0.3, 0.2  # seconds, not the default minute
        got: list[Message] = []
        bot.on_message(_append(got))
        with caplog.at_level(logging.INFO, logger="chatd.client.sdk.bot"):
            task = await started(bot)
            seen = (await alice.command("/say general seen"))["id"]
            await until(lambda: [m.id for m in got] == [seen], "the first message")
            relay.freeze()  # a NAT forgot the connection: no FIN, no RST, nothing
            lost = (await alice.command("/say general said into the void"))["id"]
            await until(lambda: bot.connections == 2, "the keepalive to give the "
                                                      "connection up and make a new one")
            await until(lambda: [m.id for m in got] == [seen, lost], "the resumed message")
        assert got[1].replayed and "no answer to a keepalive ping" in caplog.text
        await stopped(bot, task)


async def test_a_request_that_would_change_the_format_is_refused_before_sending(
        server: ChatServer, clients: Clients) -> None:
    token = await bot_token(clients, "helper")
    bot = Bot("127.0.0.1", server.port, user="helper", token=token)
    task = await started(bot)
    for line in ("/format text", "/FORMAT json", "/set format text", "/quote format text",
                 "/quote /quote set FORMAT text", "hello", "//format text"):
        with pytest.raises(ValueError):
            await bot.request(line)
    # Nothing was sent: the connection still reads, and answers at once.
    assert (await bot.request("/ping", timeout=2)).ok
    assert (await bot.request("/set timestamps on", timeout=2)).ok
    assert bot.connections == 1
    await stopped(bot, task)


async def test_a_request_is_judged_as_the_server_reads_it_without_control_characters(
        server: ChatServer, clients: Clients) -> None:
    # The server removes control characters before it reads a line: "/form\x00at text"
    # is /format text there, and a NEL (U+0085, which str.split takes for a space)
    # vanishes from "/\x85format text". Either would have left the bot reading text.
    token = await bot_token(clients, "helper")
    bot = Bot("127.0.0.1", server.port, user="helper", token=token)
    task = await started(bot)
    for line in ("/form\x00at text", "/\x85format text", "/set for\x7fmat text",
                 "/up\x1bload notes.txt 3", "\x00/format text"):
        with pytest.raises(ValueError):
            await bot.request(line, timeout=2)
    assert (await bot.request("/ping", timeout=2)).ok  # still reading JSON
    assert bot.connections == 1
    await stopped(bot, task)


async def test_a_request_with_a_line_break_is_refused_before_sending(
        server: ChatServer, clients: Clients) -> None:
    # What follows a line break reached the server as a command of its own, unlabelled:
    # "/format text" there left the bot reading lines it cannot parse.
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    await alice.command("/create general")
    bot = Bot("127.0.0.1", server.port, user="helper", token=token, rooms=["general"])
    task = await started(bot)
    for line in ("/ping\n/format text", "/ping\r/format text", "/topic general a\r\nb"):
        with pytest.raises(ValueError, match="line break"):
            await bot.request(line)
    with pytest.raises(ValueError, match="line break"):
        await bot.say("general\n/format text", "hi")
    assert (await bot.request("/ping", timeout=2)).ok  # still reading JSON
    said_id = await bot.say("general", "one\ntwo")  # a message's text is made one line
    heard = await alice.next_event(lambda e: e.get("type") == "message")
    assert (heard["id"], heard["text"]) == (said_id, "one two")
    await stopped(bot, task)


async def test_an_upload_request_is_refused_before_sending(server: ChatServer,
                                                           clients: Clients) -> None:
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    await alice.command("/create general")
    bot = Bot("127.0.0.1", server.port, user="helper", token=token, rooms=["general"])
    task = await started(bot)
    for line in ("/upload notes.txt 3 general", "/UPLOAD notes.txt 3",
                 "/quote upload notes.txt 3"):
        with pytest.raises(ValueError, match=r"cannot upload.*HTTP API"):
            await bot.request(line, timeout=1)
    # Nothing was sent: the next request is a command again, not the file's data.
    said_id = (await bot.request("/say general still a command", timeout=2))["id"]
    heard = await alice.next_event(lambda e: e.get("type") == "message")
    assert (heard["id"], heard["text"]) == (said_id, "still a command")
    assert bot.connections == 1
    await stopped(bot, task)


async def test_a_room_the_bot_was_removed_from_is_not_joined_again(
        server: ChatServer, clients: Clients, caplog: pytest.LogCaptureFixture) -> None:
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    for room in ("general", "den", "pub", "temp"):
        await alice.command(f"/create {room}")
    bot = Bot("127.0.0.1", server.port, user="helper", token=token, rooms=["general"],
              backoff=quick_backoff())
    task = await started(bot)
    for room in ("den", "pub", "temp"):
        await bot.join(room)
    assert bot.rooms == {"general", "den", "pub", "temp"}
    await alice.command("/kick helper den")
    await alice.command("/ban helper pub")
    await alice.command("/leave temp")  # a plain member left alone: the room ends
    await until(lambda: bot.rooms == {"general"}, lambda: f"the rooms to go: {bot.rooms}")
    await alice.command("/unban helper pub")
    with caplog.at_level(logging.INFO, logger="chatd.client.sdk.bot"):
        assert bot.client is not None
        await bot.client.close()
        await until(lambda: bot.connections == 2, "the bot to reconnect")
    assert "could not join" not in caplog.text and bot.rooms == {"general"}
    members = (await alice.command("/who den"))["members"]
    assert "helper" not in {m["user"] for m in members}  # kicked stays out
    await bot.join("pub")  # until the bot's own code asks again
    assert bot.rooms == {"general", "pub"}
    await stopped(bot, task)


async def test_a_bot_that_only_reads_is_in_the_rooms_its_account_is_in(
        server: ChatServer, clients: Clients, caplog: pytest.LogCaptureFixture) -> None:
    # A read-only token cannot /join (post), but needs not: the account is in #general
    # already, and its messages come. The bot must not call it a room it could not join.
    alice = await clients.user("alice")
    await alice.command("/create general")
    reader = await clients.user("reader")
    await reader.command("/join general")
    token = (await reader.command("/token create logger read"))["token"]
    await reader.command("/logout")
    bot = Bot("127.0.0.1", server.port, user="reader", token=token, rooms=["general"],
              backoff=quick_backoff())
    got: list[Message] = []

    @bot.on_message
    async def message(event: Message) -> None:
        got.append(event)

    with caplog.at_level(logging.INFO, logger="chatd.client.sdk.bot"):
        task = await started(bot)
        await alice.command("/say general for the record")
        await until(lambda: len(got) == 1, "the bot to read the message")
        assert bot.client is not None
        await bot.client.close()  # and again after a reconnection, resume token and all
        await until(lambda: bot.connections == 2, "the bot to reconnect")
    assert "could not join" not in caplog.text
    assert caplog.text.count("in #general") == 2 and bot.rooms == {"general"}
    assert (got[0].room, got[0].text) == ("general", "for the record")
    await stopped(bot, task)


async def test_a_room_that_ended_while_the_bot_was_away_is_dropped_once(
        server: ChatServer, clients: Clients, caplog: pytest.LogCaptureFixture) -> None:
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    await alice.command("/create temp")
    bot = Bot("127.0.0.1", server.port, user="helper", token=token, rooms=["temp"],
              backoff=fixed_backoff(0.5))
    task = await started(bot)
    assert bot.client is not None
    await bot.client.close()
    await alice.command("/leave temp")  # the bot, a plain member left alone: the room ends
    with caplog.at_level(logging.INFO, logger="chatd.client.sdk.bot"):
        await until(lambda: bot.connections == 2, "the bot to reconnect")
        assert bot.rooms == set() and "no longer joining #temp: there is no room" in caplog.text
        await bot.client.close()
        await until(lambda: bot.connections == 3, "the bot to reconnect again")
    assert caplog.text.count("#temp") == 1
    await stopped(bot, task)


async def test_a_command_is_not_also_a_mention_and_a_mention_is_the_name_as_a_word(
        server: ChatServer, clients: Clients) -> None:
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    await alice.command("/create general")
    bot = Bot("127.0.0.1", server.port, user="helper", token=token, rooms=["general"])
    commands: list[str] = []
    mentions: list[Message] = []
    bot.on_mention(_append(mentions))

    @bot.command("ping")
    async def ping(message: Message, args: str) -> None:
        commands.append(message.text)

    task = await started(bot)
    await alice.command("/msg helper !ping")
    await alice.command("/msg helper !nosuchcommand")  # no handler took it
    named = ["helper: hi", "@helper hi", "Helper, hi", "thanks, helper.", "is helper up?"]
    unnamed = ["mail helper@example.com", "ask alice@helper", "see helper.py",
               "helper-2 is another", "my_helper is mine", "!ping helper"]
    for text in (*unnamed, *named):
        await alice.command(f"/say general {text}")
    await until(lambda: len(mentions) == 1 + len(named), "the mentions")
    await alice.command("/say general !ping last")
    await until(lambda: len(commands) == 3, "the commands")
    assert commands == ["!ping", "!ping helper", "!ping last"]
    assert [m.text for m in mentions] == ["!nosuchcommand", *named]
    await stopped(bot, task)


async def test_a_client_learns_the_servers_line_limit_as_it_asks_for_json(
        tmp_path: Path) -> None:
    # The banner says it in text; the /format answer says it to a program.
    server = await start_server(tmp_path / "limit.db", listen__max_line=300)
    try:
        client = await ChatClient.connect("127.0.0.1", server.port)
        assert client.max_line == 300
        answer = await client.command("/set format json")
        assert answer["max_line"] == 300
        assert (await client.command("/set timestamps on")).get("max_line") is None
        # A labelled line over it would be dropped with an unlabelled error, and its
        # answer waited for in vain: it is refused here, at once.
        refused = await client.command("/say hall " + "x" * 400, check=False, timeout=1)
        assert (refused["code"], refused.lines) == ("line-too-long", [])
        assert "over the server's limit of 300" in refused["message"]
        with pytest.raises(ClientError, match="line-too-long"):
            await client.command("/say hall " + "x" * 400, timeout=1)
        assert (await client.command("/ping")).ok  # the connection is as it was
        await client.close()
    finally:
        await server.stop()


async def test_a_command_asked_once_the_connection_is_gone_fails_at_once(
        tmp_path: Path) -> None:
    # Typed as the server stopped: the terminal client waited the command's whole
    # timeout before it went on to reconnect.
    server = await start_server(tmp_path / "gone.db")
    client = await ChatClient.connect("127.0.0.1", server.port)
    await server.stop()
    while (await client.next_event())["type"] != "closed":
        pass
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(client.command("/ping", timeout=60), 10)
    await client.close()


async def test_the_login_line_names_only_the_rooms_the_bot_joined(
        server: ChatServer, clients: Clients, caplog: pytest.LogCaptureFixture) -> None:
    # A read-only token cannot /join: the bot says so, and its login line must not
    # then claim that it is in the room.
    token = await bot_token(clients, "helper", "read")
    alice = await clients.user("alice")
    await alice.command("/create general")
    bot = Bot("127.0.0.1", server.port, user="helper", token=token, rooms=["general"],
              backoff=quick_backoff())
    with caplog.at_level(logging.INFO, logger="chatd.client.sdk.bot"):
        task = await started(bot)
    assert "could not join #general" in caplog.text
    [login] = [r.getMessage() for r in caplog.records if "logged in as" in r.getMessage()]
    assert login.endswith(", in no room"), login
    await stopped(bot, task)


async def test_a_resume_file_that_cannot_be_written_does_not_stop_the_bot(
        server: ChatServer, clients: Clients, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    # The login succeeded: failing to keep its resume token is said, not taken for a
    # lost connection (which logged in again and again, never running the bot).
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    await alice.command("/create general")
    for path in (tmp_path / "missing" / "helper.resume", tmp_path):  # no directory; one
        bot = Bot("127.0.0.1", server.port, user="helper", token=token, rooms=["general"],
                  resume_tokens=FileResumeTokens(path), backoff=quick_backoff())
        with caplog.at_level(logging.INFO, logger="chatd.client.sdk.bot"):
            caplog.clear()
            task = await started(bot)
            said_id = await bot.say("general", "still here")
        assert said_id > 0 and bot.connections == 1
        assert "could not keep the resume token" in caplog.text, caplog.text
        assert "connection lost" not in caplog.text
        await stopped(bot, task)


async def test_members_walks_every_page_of_who(tmp_path: Path) -> None:
    # /who answers two members to a page here: bot.members asks for each page.
    server = await start_server(tmp_path / "paged.db", clock=ManualClock(),
                                rooms__page_size=2)
    clients = Clients(server)
    try:
        token = await bot_token(clients, "helper")
        alice = await clients.user("alice")
        await alice.command("/create crowd")
        for name in ("bob", "carol"):
            await (await clients.user(name)).command("/join crowd")
        bot = Bot("127.0.0.1", server.port, user="helper", token=token, rooms=["crowd"])
        task = await started(bot)
        members = await bot.members("crowd")
        assert [(m["user"], m["role"]) for m in members] == [
            ("alice", "owner"), ("bob", "member"), ("carol", "member"), ("helper", "member")]
        assert all(m["online"] for m in members)
        with pytest.raises(ClientError) as refused:
            await bot.members("nosuchroom")
        assert refused.value.code == "no-such-room"
        await stopped(bot, task)
        with pytest.raises(ConnectionError):
            await bot.members("crowd")
    finally:
        await clients.close()
        await server.stop()


async def test_a_server_that_dies_in_the_middle_of_its_first_reply_is_reconnected_to(
        server: ChatServer, clients: Clients) -> None:
    # The first connection gets the banner and half of the /format ok, then the
    # socket closes (a server killed while writing); later ones reach the server.
    token = await bot_token(clients, "helper")
    half = b"* chatd test\r\n{\"type\":\"ok\",\"command\":\"for"
    async with Relay(server.port, broken_first=half) as relay:
        bot = Bot("127.0.0.1", relay.port, user="helper", token=token,
                  backoff=quick_backoff())
        task = await started(bot)
        assert relay.connections == 2 and bot.connections == 1
        await stopped(bot, task)


# Records a server of another version, or a broken one, might send: a message whose
# id is no number, or none at all; JSON that is no object; a label that is no string.
ODD_LINES = (b'{"type":"message","id":"seven","from":"alice","room":"general","text":"x"}\r\n'
             b'{"type":"message","id":null,"from":"alice","room":"general","text":"y"}\r\n'
             b'{"type":"event","event":"join","room":"general","user":"bob","label":["c1"]}\r\n'
             b'[1, 2]\r\n')


async def test_odd_records_from_the_server_are_skipped_not_fatal(
        server: ChatServer, clients: Clients, caplog: pytest.LogCaptureFixture) -> None:
    # A relay to the real server slips the odd lines in after the bot's login reply.
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    await alice.command("/create general")
    async with Relay(server.port, inject=(b'"command":"login"', ODD_LINES)) as relay:
        bot = Bot("127.0.0.1", relay.port, user="helper", token=token, rooms=["general"],
                  backoff=quick_backoff())
        task = await _still_answering(bot, alice)
        assert "cannot read" in caplog.text
        await stopped(bot, task)


async def test_a_server_that_stops_answering_at_the_login_is_left_within_the_bots_timeout(
        caplog: pytest.LogCaptureFixture) -> None:
    # It answers /format json, then nothing: the login waited ten seconds (the client's
    # default), whatever Bot(timeout=...) said, and the drop was logged with no reason.
    accepted: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        writer.write(b'* chatd test\r\n{"type":"ok","command":"format"}\r\n')
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        writer.close()

    caplog.set_level(logging.INFO, "chatd.client.sdk.bot")
    silent = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    bot = Bot("127.0.0.1", port, user="helper", token="chatd_x", timeout=0.2,
              backoff=quick_backoff())
    task = asyncio.ensure_future(bot.run())
    try:
        await until(lambda: len(accepted) >= 3, "the bot to give up and try again", 3)
        assert "did not answer within 0.2s" in caplog.text
    finally:
        await stopped(bot, task)
        silent.close()
        for writer in accepted:
            writer.close()
        await silent.wait_closed()


async def _still_answering(bot: Bot, alice: ChatClient) -> asyncio.Task[None]:
    """Run ``bot`` answering ``!ping`` in #general; once it has answered alice's, on its
    first connection, its task (the odd lines it read before did not end it)."""

    @bot.command("ping")
    async def ping(message: Message, args: str) -> None:
        await bot.reply(message, "pong")

    task = await started(bot)
    await alice.command("/say general !ping")
    assert (await said(alice, "pong"))["from"] == "helper"
    assert not task.done() and bot.connections == 1
    return task


def _odd_history(line: bytes) -> bytes:
    """The bot's /history reply at its first login, its messages preceded by odd ones:
    ids that are no number (one JSON reads as infinity), and items that are no object."""
    if b'"command":"history"' not in line:
        return line
    reply = json.loads(line)
    odd = [{**message, "id": value} for message in reply["messages"][:1]
           for value in ("seven", None, [1], {"n": 1}, float("inf"))]
    reply["messages"] = [*odd, None, "x", *reply["messages"]]
    return json.dumps(reply).encode() + b"\r\n"


async def test_odd_records_in_the_first_history_are_skipped_not_fatal(
        server: ChatServer, clients: Clients, caplog: pytest.LogCaptureFixture) -> None:
    # At its first login the bot reads the newest message of its rooms (/history
    # room 1), where a later resume starts: an id that was no number ended run().
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    await alice.command("/create general")
    newest = (await alice.command("/say general before the bot"))["id"]
    async with Relay(server.port, rewrite=_odd_history) as relay:
        bot = Bot("127.0.0.1", relay.port, user="helper", token=token, rooms=["general"],
                  backoff=quick_backoff())
        task = await _still_answering(bot, alice)
        assert bot.last_id >= newest  # the good record was read
        assert caplog.text.count("cannot read") == 7
        await stopped(bot, task)


def _odd_welcome(line: bytes) -> bytes:
    """The login's ok, after a direct message kept for the bot whose id is a list (no
    number, and no key of a set either)."""
    if b'"command":"login"' not in line:
        return line
    label = json.loads(line)["label"]
    odd = {"type": "message", "to": "helper", "from": "alice", "text": "odd", "id": [1],
           "ts": "2026-12-07T08:00:00Z", "offline": True, "label": label}
    return json.dumps(odd).encode() + b"\r\n" + line


async def test_an_odd_record_in_the_logins_replay_is_skipped_not_fatal(
        server: ChatServer, clients: Clients, caplog: pytest.LogCaptureFixture) -> None:
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    await alice.command("/create general")
    async with Relay(server.port, rewrite=_odd_welcome) as relay:
        bot = Bot("127.0.0.1", relay.port, user="helper", token=token, rooms=["general"],
                  backoff=quick_backoff())
        got: list[str] = []

        @bot.on_message
        async def message(event: Message) -> None:
            got.append(event.text)

        task = await started(bot)
        await alice.command("/say general hello")
        await until(lambda: "hello" in got, "the live message")
        assert not task.done() and bot.connections == 1 and "odd" not in got
        assert "cannot read" in caplog.text
        await stopped(bot, task)


async def test_a_refused_leave_keeps_the_room_the_bot_is_still_in(tmp_path: Path) -> None:
    """A leave takes a message token and may be refused (rate-limited): the bot is
    then still in the room, so it must stay in bot.rooms (joined again after a
    reconnection), not be forgotten as if it had left."""
    clock = ManualClock()
    server = await start_server(tmp_path / "leave.db", clock=clock, limits__message_rate=1,
                                limits__message_burst=1)
    clients = Clients(server)
    try:
        token = await bot_token(clients, "helper")
        alice = await clients.user("alice")
        for room in ("one", "two"):
            await alice.command(f"/create {room}")
        bot = Bot("127.0.0.1", server.port, user="helper", token=token, rooms=["one", "two"])
        task = await started(bot)
        await bot.say("one", "spends the only token")
        with pytest.raises(ClientError) as refused:
            await bot.leave("two")
        assert refused.value.code == "rate-limited"
        room = server.services.rooms.find("two")
        assert room is not None and room.is_member(server.services.accounts.require("helper").id)
        assert bot.rooms == {"one", "two"}
        clock.advance(1)
        await bot.leave("#two")
        assert bot.rooms == {"one"}
        await stopped(bot, task)
    finally:
        await clients.close()
        await server.stop()


async def test_direct_messages_past_what_a_login_replays_reach_the_handlers(
        tmp_path: Path) -> None:
    # A login replays only the newest ones and marks the older ones delivered too:
    # a bot's first login handed its handlers those, and the rest were lost.
    server = await start_server(tmp_path / "chatd.db", rooms__offline_replay_max=2)
    clients = Clients(server)
    try:
        token = await bot_token(clients, "helper")
        alice = await clients.user("alice")
        for n in range(5):
            await alice.command(f"/msg helper job {n}")
        await alice.command("/create elsewhere")
        await alice.command("/say elsewhere not for the bot")
        bot = Bot("127.0.0.1", server.port, user="helper", token=token)
        seen: list[Message] = []
        bot.on_message(_append(seen))
        task = await started(bot)
        await until(lambda: len(seen) == 5, "every direct message kept while away")
        assert [m.text for m in seen] == [f"job {n}" for n in range(5)]
        assert all(m.is_direct and m.replayed for m in seen)
        await stopped(bot, task)
    finally:
        await clients.close()
        await server.stop()
