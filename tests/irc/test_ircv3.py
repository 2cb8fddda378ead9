"""IRCv3 capabilities on the wire: labeled-response with batch, echo-message,
server-time, message-tags (msgid, typing)."""

from __future__ import annotations

import pytest

from chatd.domain.clock import ManualClock, iso_ts
from chatd.irc.codec import parse
from tests.helpers import PASSWORD, ChatServer, Clients, settle
from tests.irc.conftest import IrcFactory
from tests.irc.helpers import IrcClient

ALL_CAPS = ("batch", "echo-message", "labeled-response", "message-tags", "server-time")


async def test_labeled_response_single_batched_and_ack(irc: IrcFactory) -> None:
    bob = await irc("bob", caps=ALL_CAPS)
    bob.send("@label=p1 PING x")
    pong = await bob.read()
    assert pong.tags == {"label": "p1"} and pong.command == "PONG"
    bob.send("@label=j1 JOIN #lab")
    start = await bob.read()
    assert start.command == "BATCH" and start.tags == {"label": "j1"}
    ref = start.params[0].removeprefix("+")
    assert start.params[1] == "labeled-response"
    inside = await bob.until("BATCH")
    assert [m.command for m in inside] == ["JOIN", "353", "366", "BATCH"]
    # The JOIN is an event: with server-time, its time too.
    assert set(inside[0].tags) == {"batch", "time"} and inside[0].tags["batch"] == ref
    assert all(m.tags == {"batch": ref} for m in inside[1:-1])
    assert inside[-1].params == (f"-{ref}",)
    bob.send("@label=n1 PONG x")
    ack = await bob.read()
    assert ack.command == "ACK" and ack.tags == {"label": "n1"}


async def test_labels_without_the_capability_are_ignored(irc: IrcFactory) -> None:
    bob = await irc("bob")
    bob.send("@label=p1 PING x")
    assert await bob.raw() == ":chatd.local PONG chatd.local :x"


async def test_without_batch_a_label_tags_the_first_line_of_a_reply_only(
        irc: IrcFactory) -> None:
    """A label tags one message; several need batch, which this client did not ask."""
    bob = await irc("bob", caps=("labeled-response",))
    bob.send("JOIN #lab")
    await bob.expect("366")
    bob.send("@label=n1 NAMES #lab")
    names, end = await bob.read(), await bob.read()
    assert (names.command, names.tags) == ("353", {"label": "n1"})
    assert (end.command, end.tags) == ("366", {})


async def test_echo_message_with_time_and_msgid(irc: IrcFactory, clients: Clients) -> None:
    bob = await irc("bob", caps=ALL_CAPS)
    bob.send("JOIN #echo")
    await bob.expect("366")
    bob.send("PRIVMSG #echo :to myself")
    echo = await bob.expect("PRIVMSG")
    assert echo.params == ("#echo", "to myself")
    assert set(echo.tags) == {"time", "msgid"} and echo.tags["time"].endswith("Z")
    carol = await clients.user("carol")
    await carol.command("/join echo")
    await carol.say("hello bob")
    heard = await bob.expect("PRIVMSG")
    assert heard.tags["msgid"] == str((await carol.command("/history echo"))["messages"][-1]
                                      ["id"])


async def test_typing_crosses_both_ways(irc: IrcFactory, clients: Clients) -> None:
    bob = await irc("bob", caps=("message-tags",))
    bob.send("JOIN #t")
    await bob.expect("366")
    carol = await clients.user("carol")
    await carol.command("/join t")
    await carol.command("/typing t")
    typing = await bob.expect("TAGMSG")
    assert typing.tags == {"+typing": "active"} and typing.source.startswith("carol!")
    bob.send("@+typing=active TAGMSG #t", "@+typing=paused TAGMSG #t", "TAGMSG #nope")
    event = await carol.next_event(lambda e: e.get("event") == "typing")
    assert event["user"] == "bob"
    bob.send("PING z")
    assert (await bob.expect("PONG", "403")).command == "PONG"  # TAGMSG is quiet
    # With echo-message the sender hears its TAGMSG back, typing included.
    echoed = await irc("dave", caps=("message-tags", "echo-message"))
    echoed.send("JOIN #t")
    await echoed.expect("366")
    echoed.send("@+typing=active TAGMSG #t")
    back = await echoed.expect("TAGMSG")
    assert back.tags == {"+typing": "active"} and back.source.startswith("dave!")
    # To a user too (the sender is not among the receivers), and labelled: the echo
    # is the labelled response, with no ACK beside it.
    labelled = await irc("erin", caps=("message-tags", "echo-message", "labeled-response"))
    labelled.send("@label=t1;+react=yes TAGMSG bob")
    back = await labelled.expect("TAGMSG", "ACK")
    assert back.command == "TAGMSG" and back.tags == {"label": "t1", "+react": "yes"}
    while (relayed := await bob.expect("TAGMSG")).tags.get("+typing"):
        pass  # dave's typing in #t comes first
    assert relayed.tags == {"+react": "yes"} and relayed.params == ("bob",)


async def test_a_muted_member_tagmsg_reaches_nobody(irc: IrcFactory,
                                                    clients: Clients) -> None:
    """Client tags show the room something: a muted member's TAGMSG is dropped, as
    its PRIVMSG is refused; typing included."""
    carol = await clients.user("carol")
    await carol.command("/create t")
    watcher = await irc("dave", caps=("message-tags",))
    watcher.send("JOIN #t")
    await watcher.expect("366")
    bob = await irc("bob", caps=("message-tags",))
    bob.send("JOIN #t")
    await bob.expect("366")
    await carol.command("/mute bob t")
    bob.send("@+typing=active TAGMSG #t", "@+react=no TAGMSG #t", "PRIVMSG #t :hush")
    refused = await bob.expect("404")  # the PRIVMSG's; a TAGMSG is quiet
    assert refused.params[1] == "#t"
    await carol.command("/unmute bob t")
    bob.send("@+react=yes TAGMSG #t")
    relayed = await watcher.expect("TAGMSG")
    assert relayed.tags == {"+react": "yes"} and relayed.source.startswith("bob!")
    assert not [e for e in await settle(carol) if e.get("event") == "typing"]


async def test_notice_is_a_message_and_never_answers_errors(irc: IrcFactory,
                                                            clients: Clients) -> None:
    bob = await irc("bob")
    bob.send("JOIN #n")
    await bob.expect("366")
    carol = await clients.user("carol")
    await carol.command("/join n")
    bob.send("NOTICE #n :a notice", "NOTICE #nowhere :x", "NOTICE ghost :x", "NOTICE")
    got = await carol.next_event(lambda e: e.get("type") == "message")
    assert got["text"] == "a notice"
    bob.send("PING done")
    assert (await bob.expect("PONG", "401", "403", "404", "411")).command == "PONG"


async def test_several_targets_and_ctcp(irc: IrcFactory, clients: Clients) -> None:
    bob = await irc("bob")
    alice = await irc("alice")
    for client in (bob, alice):
        client.send("JOIN #a")
        await client.expect("366")
    bob.send("PRIVMSG #a,alice :to both", "PRIVMSG alice :\x01VERSION\x01",
             "PRIVMSG #a :\x02\x03")
    assert (await alice.expect("PRIVMSG")).params == ("#a", "to both")
    assert (await alice.expect("PRIVMSG")).params == ("alice", "to both")
    assert (await bob.expect("412")).params[1] == "No text to send"
    await alice.nothing()
    # Past TARGMAX's 4 targets, the first one left out is named, once; NOTICE is quiet.
    bob.send("PRIVMSG #a,alice,alice,alice,carol,dave :five", "NOTICE #a,a,b,c,d :quiet",
             "PING barrier")
    refused = await bob.expect("407")
    assert refused.params[1:] == ("carol", "Too many targets: at most 4; this one and the "
                                  "ones after it were not sent")
    await bob.expect("PONG")
    assert [line.split()[1] for line in bob.lines].count("407") == 1
    assert (await alice.expect("PRIVMSG")).params == ("#a", "five")


async def test_a_target_named_twice_gets_the_message_once(irc: IrcFactory,
                                                         clients: Clients) -> None:
    """Targets repeated in one PRIVMSG (in any case) are sent to once, as other
    servers do: the room and the person get one message, not one per mention."""
    bob = await irc("bob")
    alice = await clients.user("alice")
    await alice.command("/create a")
    bob.send("JOIN #a")
    await bob.expect("366")
    bob.send("PRIVMSG #a,#A,alice,ALICE :once", "PRIVMSG #a :after")
    got = [await alice.next_event(lambda e: e.get("type") == "message") for _ in range(3)]
    assert [(m.get("room"), m.get("to"), m["text"]) for m in got] == [
        ("a", None, "once"), (None, "alice", "once"), ("a", None, "after")]


async def _tagged_alike(sender: IrcClient, other: IrcClient, command: str) -> None:
    """The sender's own line of ``command`` is the line another member got: tagged."""
    own = await _line_of(sender, command)
    assert own.startswith("@time=") and own == await _line_of(other, command)


async def _line_of(client: IrcClient, command: str) -> str:
    """The next raw line of ``command`` (others are skipped)."""
    while True:
        line = await client.raw()
        if parse(line).command == command:
            return line


@pytest.mark.server(accounts__guests=True)
async def test_a_clients_own_joins_parts_and_nicks_are_tagged_as_others_see_them(
        server: ChatServer, irc: IrcFactory) -> None:
    assert server.irc is not None
    carol = await irc("carol", caps=("server-time",))
    carol.send("JOIN #lounge")
    await carol.expect("366")
    bob = await irc("bob", caps=("server-time",))
    # The manual clock stands still: the same event has the same time for everyone.
    bob.send("JOIN #lounge")
    await _tagged_alike(bob, carol, "JOIN")
    carol.send("TOPIC #lounge :new topic")
    await _tagged_alike(carol, bob, "TOPIC")
    carol.send("KICK #lounge bob :out")
    await _tagged_alike(carol, bob, "KICK")
    bob.send("JOIN #lounge")
    await carol.expect("JOIN")
    bob.send("PART #lounge :bored")
    await _tagged_alike(bob, carol, "PART")

    guest = await IrcClient.connect(server.irc.port)
    try:
        await guest.register("visitor", caps=("server-time",))
        guest.send("JOIN #lounge")
        await _tagged_alike(guest, carol, "JOIN")
        guest.send("NICK wanderer")
        await _tagged_alike(guest, carol, "NICK")
        guest.send("QUIT :bye")
        assert (await _line_of(carol, "QUIT")).startswith("@time=")
    finally:
        await guest.close()
    # Without server-time, none of them carries a tag.
    plain = await irc("dave")
    plain.send("JOIN #lounge", "PART #lounge")
    assert not (await _line_of(plain, "JOIN")).startswith("@")
    assert not (await _line_of(plain, "PART")).startswith("@")


def _stamped(line: str, clock: ManualClock) -> str:
    """``line`` as a server-time client gets it: the time of now (the manual clock
    stands still) before it."""
    return f"@time={iso_ts(clock.time())} {line}"


async def test_away_setname_wallops_and_user_modes_carry_the_time_of_their_event(
        server: ChatServer, irc: IrcFactory, clock: ManualClock) -> None:
    """Lines that are not the domain's events (AWAY, SETNAME, WALLOPS, a user mode
    change) are tagged as its events are: with server-time, the time they happened,
    the same for every client shown them; without it, no tag."""
    await server.services.accounts.create("root", PASSWORD, is_admin=True)
    caps = ("away-notify", "setname")
    bob = await irc("bob", caps=("server-time", *caps))
    carol = await irc("carol", caps=("server-time", *caps))
    dave = await irc("dave", caps=caps)
    for client in (bob, carol, dave):
        client.send("JOIN #den")
        await client.expect("366")
    clock.advance(1.5)
    carol.send("SETNAME :Carol C.")
    await _tagged_alike(carol, bob, "SETNAME")
    assert bob.lines[-1] == _stamped(":carol!carol@chatd.local SETNAME :Carol C.", clock)
    assert await _line_of(dave, "SETNAME") == ":carol!carol@chatd.local SETNAME :Carol C."
    clock.advance(2)
    carol.send("AWAY :brb")
    assert await _line_of(bob, "AWAY") == _stamped(":carol!carol@chatd.local AWAY :brb", clock)
    assert await _line_of(dave, "AWAY") == ":carol!carol@chatd.local AWAY :brb"
    clock.advance(3)
    bob.send("MODE bob +w")
    assert await _line_of(bob, "MODE") == _stamped(":bob!bob@chatd.local MODE bob +w", clock)
    dave.send("MODE dave +w")
    assert await _line_of(dave, "MODE") == ":dave!dave@chatd.local MODE dave +w"
    root = await irc("root", caps=("server-time",))
    clock.advance(4)
    root.send(f"OPER root {PASSWORD}")
    assert await _line_of(root, "MODE") == _stamped(":root!root@chatd.local MODE root +o",
                                                    clock)
    clock.advance(5)
    root.send("WALLOPS :maintenance at noon")
    wallops = ":root!root@chatd.local WALLOPS :maintenance at noon"
    assert await _line_of(bob, "WALLOPS") == _stamped(wallops, clock)
    assert await _line_of(dave, "WALLOPS") == wallops


async def test_invitations_and_server_notices_carry_the_time_of_their_event(
        irc: IrcFactory, clients: Clients, clock: ManualClock) -> None:
    """The INVITE an invitee is shown, the notices of the server (its notifications, a
    command's notice) and those told to a channel carry the time they happened."""
    bob = await irc("bob", caps=("server-time",))
    carol = await irc("carol", caps=("server-time",))
    dave = await irc("dave")
    bob.send("JOIN #vault", "MODE #vault +i", "JOIN #hall", "MODE #hall +R")
    await bob.expect("MODE")
    await bob.expect("MODE")
    clock.advance(1.5)
    bob.send("INVITE carol #vault")
    assert await _line_of(carol, "INVITE") == _stamped(
        ":bob!bob@chatd.local INVITE carol #vault", clock)
    # Its channel's operators are told as a NOTICE of the server, at the same time.
    told = await _line_of(bob, "NOTICE")
    assert told.startswith(_stamped(":chatd.local NOTICE #vault :", clock))
    bob.send("INVITE dave #vault")
    assert await _line_of(dave, "INVITE") == ":bob!bob@chatd.local INVITE dave #vault"
    # The notice a JOIN of a request room answers, and the notification of a kick.
    clock.advance(2)
    carol.send("JOIN #hall")
    filed = await _line_of(carol, "NOTICE")
    assert filed.startswith(_stamped(":chatd.local NOTICE carol :#hall admits by request", clock))
    dave.send("JOIN #hall")
    assert (await _line_of(dave, "NOTICE")).startswith(":chatd.local NOTICE dave :#hall admits")
    alice = await clients.user("alice")
    await alice.command("/create lounge")
    carol.send("JOIN #lounge")
    await carol.expect("366")
    clock.advance(3)
    await alice.command("/kick carol lounge out")
    await carol.expect("KICK")
    assert await _line_of(carol, "NOTICE") == _stamped(
        ":chatd.local NOTICE carol :alice kicked you from #lounge (out).", clock)
