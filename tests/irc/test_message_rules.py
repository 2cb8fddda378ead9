"""Messages as IRC servers relay them: one line each (cut to fit, never split),
notices that stay notices, echoes of messages to oneself, msgid and time on
every message, client-only tags, the bot mode, and what ISUPPORT claims."""

from __future__ import annotations

import pytest

from chatd.irc.codec import MAX_BODY
from chatd.protocol.render import Style, render
from tests.helpers import ChatServer, Clients, settle
from tests.irc.conftest import IrcFactory
from tests.irc.helpers import IrcClient

GUESTS = pytest.mark.server(accounts__guests=True)
TAGS = ("message-tags", "server-time")


async def _joined(irc: IrcFactory, name: str, room: str = "#den", **kwargs: object) -> IrcClient:
    client = await irc(name, **kwargs)
    client.send(f"JOIN {room}")
    await client.expect("366")
    return client


async def test_a_message_that_no_longer_fits_is_cut_not_split(irc: IrcFactory,
                                                              clients: Clients) -> None:
    bob = await _joined(irc, "bob")
    carol = await _joined(irc, "carol")
    await bob.expect("JOIN")
    # The longest text a client can send to #den in a 512-byte line...
    text = "x" * (MAX_BODY - len("PRIVMSG #den :"))
    bob.send(f"PRIVMSG #den :{text}")
    got = await carol.expect("PRIVMSG")
    raw = carol.lines[-1]
    assert len(raw.encode()) <= MAX_BODY and got.params[1] == text[:len(got.params[1])]
    # ... arrives as one line, cut where the server's prefix takes its room.
    await carol.nothing()
    alice = await clients.user("alice")
    await alice.command("/join den")
    bob.send(f"PRIVMSG #den :{text}")
    stored = await alice.next_event(lambda e: e.get("type") == "message")
    assert stored["text"] == got.params[1]


async def test_notice_stays_a_notice(irc: IrcFactory, clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create den")
    bob = await _joined(irc, "bob")
    carol = await _joined(irc, "carol")
    await bob.expect("JOIN")
    bob.send("NOTICE #den :heads up", "NOTICE alice :psst", "NOTICE #nowhere :x")
    assert (await carol.expect("NOTICE", "PRIVMSG")).command == "NOTICE"
    room = await alice.next_event(lambda e: e.get("type") == "message")
    assert room["notice"] is True and room["room"] == "den" and room["text"] == "heads up"
    direct = await alice.next_event(lambda e: e.get("type") == "message")
    assert direct["notice"] is True and direct["to"] == "alice"
    await bob.nothing()  # NOTICE never answers with an error
    await alice.command("/history den")
    history = await alice.command("/history den")
    assert history.final["messages"][-1]["notice"] is True
    text = render(room, Style(), current_room=True).decode()
    assert text == "-bob- heads up\r\n"
    assert render(direct, Style()).decode() == "-bob -> alice- psst\r\n"


async def test_a_message_to_a_list_of_no_target_is_411(irc: IrcFactory) -> None:
    """"PRIVMSG , :hi" names no recipient, as "PRIVMSG" alone does: 411, where it
    was answered with nothing, as though sent. A NOTICE stays unanswered."""
    bob = await _joined(irc, "bob")
    bob.send("PRIVMSG , :hi", "PRIVMSG ,,, :hi", "NOTICE , :hi", "PING done")
    said = await bob.until("PONG")
    assert [m.command for m in said] == ["411", "411", "PONG"]
    assert said[0].params[1:] == ("No recipient given (PRIVMSG)",)


async def test_a_message_to_oneself_is_echoed_and_received(irc: IrcFactory) -> None:
    plain = await irc("bob")
    plain.send("PRIVMSG bob :note to self")
    assert (await plain.expect("PRIVMSG")).params == ("bob", "note to self")
    await plain.nothing()
    echoing = await irc("carol", caps=("echo-message", "message-tags"))
    echoing.send("PRIVMSG carol :note to self")
    first, second = await echoing.expect("PRIVMSG"), await echoing.expect("PRIVMSG")
    assert first.params == second.params == ("carol", "note to self")
    assert first.tags["msgid"] == second.tags["msgid"]


@GUESTS
async def test_direct_messages_between_guests_have_msgid_and_time(irc: IrcFactory) -> None:
    one = await irc()
    await one.register("one", caps=TAGS)
    two = await irc()
    await two.register("two", caps=TAGS)
    one.send("PRIVMSG two :hello")
    got = await two.expect("PRIVMSG")
    assert got.tags["msgid"].isdigit() and got.tags["time"].endswith("Z")


async def test_client_only_tags_reach_clients_that_take_them(irc: IrcFactory,
                                                             clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create den")
    bob = await _joined(irc, "bob", caps=TAGS)
    carol = await _joined(irc, "carol", caps=TAGS)
    dave = await _joined(irc, "dave")
    bob.send("@+draft/reply=7;+example.com/x=a\\sb;label=1 PRIVMSG #den :answer")
    got = await carol.expect("PRIVMSG")
    assert got.tags["+draft/reply"] == "7" and got.tags["+example.com/x"] == "a b"
    assert "+draft/reply" not in (await dave.expect("PRIVMSG")).tags
    message = await alice.next_event(lambda e: e.get("type") == "message")
    assert message["text"] == "answer" and "+draft/reply" not in message
    bob.send("@+draft/react=\U0001F44D TAGMSG #den", "@+draft/react=x TAGMSG carol")
    react = await carol.expect("TAGMSG")
    assert react.params == ("#den",) and react.tags["+draft/react"] == "\U0001F44D"
    assert (await carol.expect("TAGMSG")).params == ("carol",)
    await dave.nothing()
    bob.send("@+typing=active TAGMSG #den")
    assert (await carol.expect("TAGMSG")).tags["+typing"] == "active"
    typing = await alice.next_event(lambda e: e.get("event") == "typing")
    assert typing["user"] == "bob"
    bob.send("@+x=" + "y" * 4100 + " PRIVMSG #den :too many tags")
    assert (await bob.expect("417")).command == "417"
    bob.send("@+typing=active TAGMSG #elsewhere")
    await bob.nothing()


async def test_client_tags_of_exactly_4094_bytes_are_relayed(irc: IrcFactory) -> None:
    """IRCv3 bounds a client's tag data at 4094 bytes, the tag section's "@" and
    closing space not counted: 4094 bytes of them pass, one more is 417."""
    bob = await _joined(irc, "bob")
    carol = await _joined(irc, "carol", caps=TAGS)
    longest = "+x=" + "y" * (4094 - len("+x="))
    bob.send(f"@{longest} PRIVMSG #den :at the bound")
    got = await carol.expect("PRIVMSG")
    assert got.params == ("#den", "at the bound") and got.tags["+x"] == longest[3:]
    bob.send(f"@{longest}y PRIVMSG #den :past it")
    assert (await bob.expect("417")).params[-1] == "Input line was too long (client tags)"
    await carol.nothing()


async def test_the_bot_mode(irc: IrcFactory) -> None:
    robot = await _joined(irc, "robot")
    carol = await _joined(irc, "carol", caps=TAGS)
    robot.send("MODE robot +B")
    assert (await robot.expect("MODE")).params == ("robot", "+B")
    robot.send("PRIVMSG #den :beep")
    assert "bot" in (await carol.expect("PRIVMSG")).tags
    carol.send("WHOIS robot", "WHO #den")
    whois = {m.command: m.params for m in await carol.until("318")}
    assert whois["335"][1:] == ("robot", "is a bot")
    flags = {m.params[5]: m.params[6] for m in await carol.until("315") if m.command == "352"}
    assert "B" in flags["robot"] and "B" not in flags["carol"]
    robot.send("MODE robot -B", "PRIVMSG #den :human now")
    assert "bot" not in (await carol.expect("PRIVMSG")).tags


async def test_isupport_tells_the_truth(server: ChatServer) -> None:
    assert server.irc is not None
    client = await IrcClient.connect(server.irc.port)
    await server.services.accounts.create("bob", "bob-password-1")
    lines = await client.register("bob", password="bob:bob-password-1")
    tokens = {t.partition("=")[0]: t.partition("=")[2]
              for m in lines if m.command == "005" for t in m.params[1:-1]}
    targmax = dict(item.split(":") for item in tokens["TARGMAX"].split(","))
    assert targmax["KICK"] == "" and targmax["PRIVMSG"] == "4"
    assert {"WHOX", "ELIST", "BOT", "CHATHISTORY", "MONITOR"} <= tokens.keys()
    assert tokens["BOT"] == "B" and tokens["CHATHISTORY"] == "100"
    await client.close()


async def test_an_end_to_end_room_relays_no_client_tag_but_typing(irc: IrcFactory,
                                                                  clients: Clients) -> None:
    """The server carries only ciphertext into an end-to-end room: a reaction's or a
    reply's tags are held back and the sender told (FAIL with message-tags, 404
    without); a typing notice, which the line protocol sends there too, goes on."""
    alice = await clients.user("alice")
    await alice.command("/create den")
    bob = await _joined(irc, "bob", caps=(*TAGS, "echo-message"))
    carol = await _joined(irc, "carol", caps=TAGS)
    dave = await _joined(irc, "dave")
    await alice.command("/e2e on den")
    bob.send("@+draft/react=SECRETWORD;+typing=active TAGMSG #den")
    answer = {m.command: m for m in [await bob.expect("FAIL", "TAGMSG") for _ in range(2)]}
    refused, echo = answer["FAIL"], answer["TAGMSG"]
    assert refused.params[:3] == ("TAGMSG", "E2E_REQUIRED", "#den")
    assert "+draft/react" in refused.params[-1]
    assert echo.tags.get("+typing") == "active" and "+draft/react" not in echo.tags
    typing = await carol.expect("TAGMSG")
    assert typing.tags.get("+typing") == "active" and "+draft/react" not in typing.tags
    heard = await alice.next_event(lambda e: e.get("event") == "typing")
    assert heard["user"] == "bob"
    bob.send("@+draft/react=SECRETWORD TAGMSG #den")
    assert (await bob.expect("FAIL")).params[1] == "E2E_REQUIRED"
    bob.send("@+draft/reply=1;+draft/react=SECRETWORD PRIVMSG #den :SECRETWORD")
    assert (await bob.expect("404")).params[1] == "#den"
    # A typing notice is one of the spec's three words: not a channel for text.
    bob.send("@+typing=SECRETWORD TAGMSG #den")
    assert (await bob.expect("FAIL")).params[-1].endswith("(+typing).")
    dave.send("@+draft/react=SECRETWORD TAGMSG #den")
    refused = await dave.expect("404")
    assert refused.params[1] == "#den" and "end-to-end" in refused.params[-1]
    await carol.nothing()
    assert not any("SECRETWORD" in line for line in carol.lines + dave.lines)
    assert not any("SECRETWORD" in str(e) for e in await settle(alice))
    # Tags to a person are not the room's: they still go.
    bob.send("@+draft/react=yes TAGMSG carol")
    assert (await carol.expect("TAGMSG")).tags["+draft/react"] == "yes"


async def test_client_tags_cannot_break_the_lines_of_others(irc: IrcFactory) -> None:
    """A tag key is letters, digits and hyphens after an optional vendor/ (IRCv3
    message-tags), and no tag value holds NUL. A CR in a key reached other clients
    raw, in the middle of a line (many clients end a line there, so the rest read as
    a command of the sender's making), and a NUL cut the line short in clients
    written in C. Such tags are dropped; the message and its other tags go."""
    alice = await irc("alice", caps=("message-tags",))
    bob = await irc("bob", caps=("message-tags",))
    for client in (alice, bob):
        client.send("JOIN #tags")
        await client.expect("366")
    alice.send_raw(b"@+a\rNOTICE=x;+ok=1 TAGMSG #tags\r\n"
                   b"@+b=1\x00;+c\x00=2;+ok=2 TAGMSG #tags\r\n"
                   b"@+d\x07=1;+example.com/ok-3=yes;+=4 PRIVMSG #tags :hi\r\n")
    first = await bob.expect("TAGMSG")
    second = await bob.expect("TAGMSG")
    message = await bob.expect("PRIVMSG")
    assert (first.tags, second.tags) == ({"+ok": "1"}, {"+ok": "2"})
    assert message.tags["+example.com/ok-3"] == "yes" and message.params == ("#tags", "hi")
    assert set(message.tags) == {"msgid", "+example.com/ok-3"}
    assert not [line for line in bob.lines if "\r" in line or "\0" in line or "\x07" in line]
