"""Rate limits on IRC are delays (fakelag), never errors: IRC cannot say "retry later"."""

from __future__ import annotations

import pytest

from chatd.domain.clock import ManualClock
from chatd.irc import commands
from tests.helpers import ChatServer, Clients
from tests.irc.conftest import IrcFactory


def _message(event: dict) -> bool:
    return event.get("type") == "message" and event.get("room") == "general"


async def _together(irc: IrcFactory, clients: Clients):  # type: ignore[no-untyped-def]
    alice = await clients.user("alice")
    await alice.command("/create general")
    bob = await irc("bob")
    bob.send("JOIN #general")
    await bob.expect("366")
    return bob, alice


@pytest.mark.server(limits__message_rate=20, limits__message_burst=2)
async def test_messages_over_the_rate_wait_and_are_not_refused(
        server: ChatServer, clock: ManualClock, irc: IrcFactory, clients: Clients) -> None:
    bob, alice = await _together(irc, clients)
    bob.send(*(f"PRIVMSG #general :m{i}" for i in range(30)), "PING after")
    assert [(await alice.next_event(_message))["text"] for _ in range(2)] == ["m0", "m1"]
    # The third waits for a token, and the lines after it (the PING) wait too.
    await bob.nothing(0.3)
    assert not [e for e in alice.pending_events() if _message(e)]
    clock.advance(2)  # 40 tokens' worth, capped at the burst: refilled as they go
    for i in range(2, 30):
        if i % 2 == 0:
            clock.advance(0.1)
        assert (await alice.next_event(_message))["text"] == f"m{i}"
    assert (await bob.expect("PONG")).params[1] == "after"
    assert not [line for line in bob.lines if " 400 " in line or " 404 " in line]
    room = server.services.rooms.find("general")
    assert room is not None and not room.mutes  # waiting is no refusal: no flood mute


@pytest.mark.server(limits__command_rate=20, limits__command_burst=3)
async def test_commands_over_the_rate_are_delayed(clock: ManualClock, irc: IrcFactory) -> None:
    client = await irc()
    client.send(*(f"PING {i}" for i in range(5)))
    assert [(await client.expect("PONG")).params[1] for _ in range(3)] == ["0", "1", "2"]
    await client.nothing(0.2)
    clock.advance(1)
    assert [(await client.expect("PONG")).params[1] for _ in range(2)] == ["3", "4"]


async def test_a_room_rate_refusal_is_waited_out(server: ChatServer, clock: ManualClock,
                                                 irc: IrcFactory, clients: Clients) -> None:
    bob, alice = await _together(irc, clients)
    await alice.command("/ratelimit 20 1 general")
    bob.send("PRIVMSG #general :one", "PRIVMSG #general :two")
    assert (await alice.next_event(_message))["text"] == "one"
    await bob.nothing(0.2)
    clock.advance(1)
    assert (await alice.next_event(_message))["text"] == "two"
    assert not [line for line in bob.lines if " 400 " in line]


async def test_a_muted_member_gets_404_not_a_delay(irc: IrcFactory, clients: Clients) -> None:
    bob, alice = await _together(irc, clients)
    await alice.command("/mute bob general 10m")
    bob.send("PRIVMSG #general :can you hear me", "NOTICE #general :quiet errors")
    cannot = await bob.expect("404")
    assert cannot.params[1] == "#general" and "muted" in cannot.params[2]
    bob.send("PING x")
    assert (await bob.expect("404", "PONG")).command == "PONG"


@pytest.mark.server(limits__message_rate=20, limits__message_burst=2)
async def test_client_tags_wait_for_the_message_bucket(
        clock: ManualClock, irc: IrcFactory) -> None:
    """A TAGMSG with tags other than typing (a reaction, any client tag of up to
    4 KiB) shows every member something, as a PRIVMSG does: it waits on the same
    bucket, or one client could flood a channel at the command rate."""
    bob = await irc("bob", caps=("message-tags",))
    watcher = await irc("dave", caps=("message-tags",))
    for client in (bob, watcher):
        client.send("JOIN #general")
        await client.expect("366")
    bob.send(*(f"@+draft/react=r{i} TAGMSG #general" for i in range(5)), "PING after")
    assert [(await watcher.expect("TAGMSG")).tags["+draft/react"] for _ in range(2)] == [
        "r0", "r1"]
    await watcher.nothing(0.3)  # the third waits for a token, and the PING behind it
    for i in range(2, 5):
        clock.advance(0.05)  # a token at the message rate of 20 a second
        assert (await watcher.expect("TAGMSG")).tags["+draft/react"] == f"r{i}"
    assert (await bob.expect("PONG")).params[1] == "after"


async def test_every_typing_state_is_under_the_typing_limit(
        clock: ManualClock, irc: IrcFactory) -> None:
    """paused and done show as much as active does, to a channel or a nick: each
    takes a typing token (a burst of two, then limits.typing_rate), and one over the
    limit is dropped (TAGMSG is quiet), not relayed."""
    bob = await irc("bob", caps=("message-tags",))
    watcher = await irc("dave", caps=("message-tags",))
    for client in (bob, watcher):
        client.send("JOIN #general")
        await client.expect("366")
    bob.send("@+typing=paused TAGMSG #general", "@+typing=paused TAGMSG #general",
             "@+typing=done TAGMSG dave", "PING after")
    assert (await bob.expect("PONG")).params[1] == "after"
    for _ in range(2):
        assert (await watcher.expect("TAGMSG")).tags == {"+typing": "paused"}
    await watcher.nothing(0.3)
    clock.advance(1)
    bob.send("@+typing=done TAGMSG dave")
    assert (await watcher.expect("TAGMSG")).tags == {"+typing": "done"}


@pytest.mark.server(limits__command_rate=20, limits__command_burst=5)
async def test_each_channel_of_a_join_takes_a_command_token(
        server: ChatServer, clock: ManualClock, irc: IrcFactory) -> None:
    """A JOIN line names up to some 90 channels, each a room made when missing: at a
    token per line, one client made rooms 90 times as fast as the line protocol's
    /create allows. Each channel after the first takes a token of its own."""
    bob = await irc("bob")  # PASS, NICK and USER took 3 of the 5
    bob.send("JOIN #a,#b,#c,#d", "PING after")
    await bob.nothing(0.3)  # the JOIN's replies go out together, once it is done
    assert [server.services.rooms.find(name) is not None for name in "abcd"] == [
        True, True, False, False]
    clock.advance(1)
    assert [(await bob.expect("JOIN")).params[0] for _ in range(4)] == [
        "#a", "#b", "#c", "#d"]
    clock.advance(1)
    assert (await bob.expect("PONG")).params[1] == "after"


@pytest.mark.server(accounts__guests=True, limits__message_rate=20, limits__message_burst=2)
async def test_nick_and_setname_changes_wait_for_the_message_bucket(
        clock: ManualClock, irc: IrcFactory) -> None:
    """A guest's NICK and anyone's SETNAME are shown in every channel they share, as
    a message is: at a command token each, one client could fill those channels
    (and a guest the WHOWAS memory of everyone) at the command rate."""
    watcher = await irc("dave", caps=("setname",))
    watcher.send("JOIN #general")
    await watcher.expect("366")
    guest = await irc()
    await guest.register("visitor", caps=("setname",))
    guest.send("JOIN #general")
    await guest.expect("366")
    guest.send(*(f"NICK visitor{i}" for i in range(4)), "PING after")
    assert [(await watcher.expect("NICK")).params[0] for _ in range(2)] == [
        "visitor0", "visitor1"]
    await watcher.nothing(0.3)
    for i in range(2, 4):
        clock.advance(0.05)  # a token at the message rate of 20 a second
        assert (await watcher.expect("NICK")).params[0] == f"visitor{i}"
    assert (await guest.expect("PONG")).params[1] == "after"
    clock.advance(0.1)
    guest.send(*(f"SETNAME :name {i}" for i in range(3)))
    assert [(await watcher.expect("SETNAME")).params[0] for _ in range(2)] == [
        "name 0", "name 1"]
    await watcher.nothing(0.3)
    clock.advance(0.05)
    assert (await watcher.expect("SETNAME")).params[0] == "name 2"


@pytest.mark.server(limits__message_rate=20, limits__message_burst=2)
async def test_away_changes_wait_for_the_message_bucket(
        clock: ManualClock, irc: IrcFactory) -> None:
    """An AWAY is shown to every away-notify client sharing a channel: at a command
    token each, toggling it flooded them at the command rate."""
    watcher = await irc("dave", caps=("away-notify",))
    bob = await irc("bob")
    for client in (watcher, bob):
        client.send("JOIN #general")
        await client.expect("366")
    bob.send("AWAY :one", "AWAY", "AWAY :two", "AWAY")
    assert [(await watcher.expect("AWAY")).params for _ in range(2)] == [("one",), ()]
    await watcher.nothing(0.3)
    for params in (("two",), ()):
        clock.advance(0.05)  # a token at the message rate of 20 a second
        assert (await watcher.expect("AWAY")).params == params
    assert [(await bob.expect("305", "306")).command for _ in range(4)] == [
        "306", "305", "306", "305"]


@pytest.mark.server(limits__command_rate=20, limits__command_burst=5)
async def test_a_long_reply_costs_command_tokens_by_its_lines(
        clock: ManualClock, irc: IrcFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A LIST of thousands of rooms (or a WHO of a big channel) is thousands of lines
    formatted for one line received: at a token each, one client kept a core busy.
    Each REPLY_LINES_PER_TOKEN lines of a reply past its first REPLY_LINES_PER_TOKEN
    cost a token more, waited for before the connection's next line (here a line a
    token, so LIST's 323 after its 321 costs one)."""
    bob = await irc("bob")  # PASS, NICK and USER took 3 of the 5
    monkeypatch.setattr(commands, "REPLY_LINES_PER_TOKEN", 1, raising=False)
    bob.send("LIST", "PING after")
    assert [(await bob.read()).command for _ in range(2)] == ["321", "323"]
    await bob.nothing(0.3)  # LIST took its token and the one its reply cost
    clock.advance(0.05)
    assert (await bob.expect("PONG")).params[1] == "after"


@pytest.mark.server(limits__command_rate=20, limits__command_burst=3,
                    limits__message_burst=200)
async def test_a_full_chathistory_batch_costs_its_line_alone(
        clock: ManualClock, irc: IrcFactory, clients: Clients) -> None:
    """A full batch (100 messages, ISUPPORT CHATHISTORY=100) costs the one command token
    of its line, as IRC.md promises: its 100 messages and BATCH lines are not a long
    reply. (They cost a token more, so a web client catching up 50 channels waited
    for 50 tokens: some 3 s at 20 a second once its burst was spent.)"""
    alice = await clients.user("alice")
    clock.advance(1)  # her log-in took command tokens
    await alice.command("/create den")
    for number in range(100):
        clock.advance(1)  # alice's command and message tokens
        await alice.say(f"m{number}")
    bob = await irc("bob")  # PASS, NICK and USER took the 3
    clock.advance(1)
    bob.send("CAP REQ :batch draft/chathistory labeled-response", "JOIN #den")
    await bob.expect("366")
    clock.advance(1)  # bob's bucket full: 3 tokens
    bob.send("PING first", "@label=up CHATHISTORY LATEST #den * 100", "PING after")
    reply = await bob.until("BATCH")
    assert reply[-1].params[1] == "labeled-response"
    reply = await bob.until("PONG")
    assert [m.command for m in reply].count("PRIVMSG") == 100
    assert reply[-1].params[1] == "after"  # at once: the bucket still had its token
    bob.send("PING later")  # and now it is empty
    await bob.nothing(0.3)
    clock.advance(0.05)
    assert (await bob.expect("PONG")).params[1] == "later"


@pytest.mark.server(limits__message_rate=20, limits__message_burst=2)
async def test_parts_wait_for_the_message_bucket(clock: ManualClock, irc: IrcFactory) -> None:
    """A PART is shown to every member, with a text of the client's choosing: at a
    command token each (and one for a whole list of channels), JOIN and PART in turn
    flooded a channel at the command rate. Each channel's PART waits for a token of
    the user's message bucket, as a PRIVMSG does."""
    bob = await irc("bob")
    watcher = await irc("dave")
    for client in (watcher, bob):
        client.send("JOIN #a,#b,#c")
        for _ in range(3):
            await client.expect("366")
    bob.send("PART #a,#b,#c :flap", "PING after")
    assert [(await watcher.expect("PART")).params[0] for _ in range(2)] == ["#a", "#b"]
    await watcher.nothing(0.3)  # the third waits for a token, and the PING behind it
    assert "PONG" not in " ".join(bob.lines)
    clock.advance(0.05)  # a token at the message rate of 20 a second
    assert (await watcher.expect("PART")).params == ("#c", "flap")
    assert (await bob.expect("PONG")).params[1] == "after"
