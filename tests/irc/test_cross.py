"""Everything crosses between the listeners: an IRC client and a line-protocol
``ChatClient`` in one room see each other's messages, joins, parts, kicks, bans,
topics and direct messages."""

from __future__ import annotations

import asyncio

from chatd.client import ChatClient
from tests.helpers import PASSWORD, ChatServer, Clients, holding, settle
from tests.irc.conftest import IrcFactory
from tests.irc.helpers import IrcClient


def _is(kind: str, **fields: object):  # type: ignore[no-untyped-def]
    return lambda e: e.get("event", e.get("type")) == kind and all(
        e.get(k) == v for k, v in fields.items())


async def _together(irc: IrcFactory, clients: Clients) -> tuple[IrcClient, object]:
    alice = await clients.user("alice")
    await alice.command("/create general")
    bob = await irc("bob")
    bob.send("JOIN #general")
    await bob.expect("366")
    await alice.next_event(_is("join", user="bob"))
    return bob, alice


async def test_messages_both_ways(irc: IrcFactory, clients: Clients) -> None:
    bob, alice = await _together(irc, clients)
    await alice.say("hello from the line protocol")
    message = await bob.expect("PRIVMSG")
    assert message.source == "alice!alice@chatd.local"
    assert message.params == ("#general", "hello from the line protocol")
    bob.send("PRIVMSG #general :hello from irc", "PRIVMSG #general :\x01ACTION waves\x01")
    got = await alice.next_event(_is("message", room="general"))
    assert got["from"] == "bob" and got["text"] == "hello from irc" and isinstance(got["id"], int)
    action = await alice.next_event(_is("message", room="general"))
    assert action["text"] == "waves" and action["action"] is True
    await alice.command("/me nods")
    nod = await bob.expect("PRIVMSG")
    assert nod.params == ("#general", "\x01ACTION nods\x01")
    # Without echo-message, the IRC sender does not see its own messages.
    bob.send("PING x")
    assert (await bob.expect("PRIVMSG", "PONG")).command == "PONG"


async def test_long_and_multi_line_text_is_split_for_irc(irc: IrcFactory,
                                                         clients: Clients) -> None:
    bob, alice = await _together(irc, clients)
    await alice.say(" ".join(["word"] * 300))
    pieces = [await bob.expect("PRIVMSG") for _ in range(4)]
    assert all(len(line.encode()) <= 510 for line in bob.lines)
    assert " ".join(p.params[1] for p in pieces).split() == ["word"] * 300


async def test_formatting_and_controls_are_removed(irc: IrcFactory, clients: Clients) -> None:
    bob, alice = await _together(irc, clients)
    bob.send("PRIVMSG #general :\x02bold\x02 \x1b[31mred\x03")
    got = await alice.next_event(_is("message", room="general"))
    assert got["text"] == "bold [31mred"
    # A colour code goes with its numbers.
    bob.send("PRIVMSG #general :c \x0304,12red\x03 \x04ff0000hex\x04")
    got = await alice.next_event(_is("message", room="general"))
    assert got["text"] == "c red hex"


async def test_joins_and_parts_both_ways(irc: IrcFactory, clients: Clients) -> None:
    bob, alice = await _together(irc, clients)
    carol = await clients.user("carol")
    await carol.command("/join general")
    assert (await bob.expect("JOIN")).source == "carol!carol@chatd.local"
    await carol.command("/leave general")
    part = await bob.expect("PART")
    assert part.source == "carol!carol@chatd.local" and part.params == ("#general",)
    bob.send("PART #general :bye")
    event = await alice.next_event(_is("leave", user="bob"))
    assert event["reason"] == "bye"


async def test_a_leave_with_a_reason_is_a_part_with_that_message(irc: IrcFactory,
                                                                 clients: Clients) -> None:
    bob, alice = await _together(irc, clients)
    await alice.command("/create open2")
    bob.send("JOIN #open2")
    await bob.expect("366")
    carol = await clients.user("carol")
    await carol.command("/join open2")
    await carol.command("/join general")  # the current room: #general
    await bob.expect("JOIN")
    await bob.expect("JOIN")
    # A first word naming a room is the room; the rest is the reason.
    left = await carol.command("/leave open2 bored")
    assert left.ok and left["room"] == "open2"
    part = await bob.expect("PART")
    assert part.source == "carol!carol@chatd.local" and part.params == ("#open2", "bored")
    event = await alice.next_event(_is("leave", user="carol", room="open2"))
    assert event["reason"] == "bored"
    # The room is always named when a reason is given (a typo leaves nothing).
    assert (await carol.command("/leave #general so long, all"))["room"] == "general"
    assert (await bob.expect("PART")).params == ("#general", "so long, all")
    event = await alice.next_event(_is("leave", user="carol", room="general"))
    assert event["reason"] == "so long, all"


async def test_kicks_and_bans_both_ways(server: ChatServer, irc: IrcFactory,
                                        clients: Clients) -> None:
    bob, alice = await _together(irc, clients)
    await alice.command("/kick bob general too loud")
    kick = await bob.expect("KICK")
    assert kick.source == "alice!alice@chatd.local"
    assert kick.params == ("#general", "bob", "too loud")
    assert "kicked you" in (await bob.expect("NOTICE")).params[1]
    bob.send("JOIN #general")
    await bob.expect("366")
    await alice.command("/ban bob general 1h spam")
    assert (await bob.expect("MODE")).params == ("#general", "+b", "bob!*@*")
    assert (await bob.expect("KICK")).params == ("#general", "bob", "spam")
    bob.send("JOIN #general", "PRIVMSG #general :let me in")
    await bob.expect("474")
    await bob.expect("404")
    await alice.command("/unban bob general")
    assert (await bob.expect("MODE")).params == ("#general", "-b", "bob!*@*")
    # And the other way: an IRC owner kicks and bans a line-protocol member.
    carol = await clients.user("carol")
    await carol.command("/create den")
    await alice.command("/join den")
    await carol.command("/promote alice den")
    bob.send("JOIN #den")
    await bob.expect("366")
    alice_irc = await irc("alice")  # alice's second connection, on IRC
    alice_irc.send("KICK #den bob :out")
    assert (await bob.expect("KICK")).params == ("#den", "bob", "out")
    event = await carol.next_event(_is("kick", user="bob"))
    assert event["actor"] == "alice" and event["reason"] == "out"


async def test_topic_both_ways(irc: IrcFactory, clients: Clients) -> None:
    bob, alice = await _together(irc, clients)
    await alice.command("/topic general Say hello!")
    topic = await bob.expect("TOPIC")
    assert topic.source == "alice!alice@chatd.local" and topic.params == ("#general",
                                                                          "Say hello!")
    await alice.command("/promote bob general")
    await bob.expect("MODE")
    bob.send("TOPIC #general :from irc")
    event = await alice.next_event(_is("topic", actor="bob"))
    assert event["topic"] == "from irc"


async def test_direct_messages_both_ways(server: ChatServer, irc: IrcFactory,
                                         clients: Clients) -> None:
    alice = await clients.user("alice")
    bob = await irc("bob", caps=("echo-message", "labeled-response", "batch"))
    await alice.command("/msg bob psst")
    dm = await bob.expect("PRIVMSG")
    assert dm.source == "alice!alice@chatd.local" and dm.params == ("bob", "psst")
    bob.send("@label=d1 PRIVMSG alice :hi alice", "PRIVMSG alice :\x01ACTION waves\x01")
    echo = await bob.expect("PRIVMSG")
    assert echo.tags == {"label": "d1"} and echo.params == ("alice", "hi alice")
    got = await alice.next_event(_is("message", to="alice"))
    assert got["from"] == "bob" and got["text"] == "hi alice"
    assert (await alice.next_event(_is("message", to="alice")))["text"] == "* bob waves"
    bob.send("PRIVMSG ghost :anyone?", "PRIVMSG #nowhere :x", "PRIVMSG", "PRIVMSG alice")
    assert (await bob.expect("401")).params[1] == "ghost"
    assert (await bob.expect("403")).params[1] == "#nowhere"
    await bob.expect("411")
    await bob.expect("412")


async def test_offline_direct_messages_replay_after_the_welcome(server: ChatServer,
                                                                irc: IrcFactory,
                                                                clients: Clients) -> None:
    await server.services.accounts.create("bob", PASSWORD)
    alice = await clients.user("alice")
    await alice.command("/msg bob while you were away")
    bob = await irc("bob")
    dm = await bob.expect("PRIVMSG")
    assert dm.params == ("bob", "while you were away")
    assert bob.lines.index(next(line for line in bob.lines if " 001 " in line)) == 1


async def test_rooms_of_the_account_are_joined_at_login_and_from_other_connections(
        server: ChatServer, irc: IrcFactory, clients: Clients) -> None:
    bob_line = await clients.user("bob")
    await bob_line.command("/create mine")
    bob = await irc("bob")
    assert (await bob.expect("JOIN")).params == ("#mine",)
    assert (await bob.expect("353")).params[3] == "@bob"
    await bob_line.command("/create other")
    await bob_line.say("first words")
    assert (await bob.expect("JOIN")).params == ("#other",)
    await bob.expect("366")
    assert (await bob.expect("PRIVMSG")).params == ("#other", "first words")
    await bob_line.command("/leave other")
    assert (await bob.expect("PART")).params == ("#other",)


async def test_a_room_created_on_one_connection_shows_at_once_on_the_others(
        irc: IrcFactory, clients: Clients) -> None:
    """Before, the other IRC connections saw the channel only when something
    happened in it, and then showed its next joiner twice (in NAMES and as a JOIN)."""
    first, second = await irc("mem"), await irc("mem")
    line = await clients.user("mem")
    first.send("JOIN #dup")
    await first.expect("366")
    assert (await second.expect("JOIN")).params == ("#dup",)
    assert (await second.expect("353")).params[3] == "@mem"
    await second.expect("366")
    joined = [e for e in await settle(line) if e.get("event") == "join"]
    assert [(e["room"], e["user"]) for e in joined] == [("dup", "mem")]
    await line.command("/create dup2")
    for client in (first, second):
        assert (await client.expect("JOIN")).params == ("#dup2",)
        await client.expect("366")
    other = await clients.user("other")
    await other.command("/join dup2")
    for client in (first, second):
        join = await client.expect("JOIN")
        assert join.params == ("#dup2",) and join.source.startswith("other!")
        client.send("PING :after")
        later = await client.until("PONG")
        assert [m.command for m in later] == ["PONG"]  # no second JOIN


async def test_a_line_protocol_user_sees_an_irc_user_in_who(irc: IrcFactory,
                                                            clients: Clients) -> None:
    _bob, alice = await _together(irc, clients)
    who = await alice.command("/who general")
    assert {(m["user"], m["online"]) for m in who["members"]} == {("alice", True),
                                                                  ("bob", True)}


async def test_one_away_state_for_both_protocols(irc: IrcFactory, clients: Clients) -> None:
    bob, joined = await _together(irc, clients)
    assert isinstance(joined, ChatClient)
    alice = joined
    bob.send("AWAY :on the phone")
    await bob.expect("306")
    sent = await alice.command("/msg bob hello?")
    assert sent["away"] == "on the phone"
    assert (await alice.command("/whois bob"))["away"] == "on the phone"
    bob.send("AWAY")
    await bob.expect("305")
    assert (await alice.command("/whois bob"))["away"] is None

    await alice.command("/away in a meeting")
    bob.send("WHOIS alice")
    assert (await bob.expect("301")).params[1:] == ("alice", "in a meeting")
    bob.send("PRIVMSG alice :still there?")
    assert (await bob.expect("301")).params[1:] == ("alice", "in a meeting")
    bob.send("WHO #general")
    rows = [await bob.expect("352") for _ in range(2)]
    flags = {row.params[5]: row.params[6] for row in rows}
    assert flags["alice"].startswith("G") and flags["bob"].startswith("H")


async def test_refusals_name_no_line_protocol_command(irc: IrcFactory, clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create vault")
    await alice.command("/e2e on vault")
    bob = await irc("bob")
    bob.send("JOIN #vault")
    await bob.expect("366")
    bob.send("PRIVMSG #vault :in the clear")
    refused = await bob.expect("404")
    # The line protocol says "send with /emsg from ..."; IRC has no /emsg.
    assert refused.params[1:] == ("#vault", "is end-to-end encrypted: send from a "
                                  "client that encrypts (chatd-client).")


async def test_an_irc_join_behind_the_same_accounts_line_join_is_no_error(
        server: ChatServer, irc: IrcFactory, clients: Clients) -> None:
    """The IRC JOIN finds the account in the room when its turn comes: the channel,
    not 443 on top of the announcement the line join's event made."""
    owner = await clients.user("owner")
    await owner.command("/create both")
    room = server.services.rooms.require("both")
    line, bob = await clients.user("bob"), await irc("bob")
    async with holding(server, room) as queued:
        joining = asyncio.create_task(line.command("/join both"))
        await queued(1)
        bob.send("JOIN #both")
        await queued(2)
    await joining
    bob.send("PING :done")
    seen = [m.command for m in await bob.until("PONG")]
    assert seen.count("JOIN") == 1 and "443" not in seen and "366" in seen
