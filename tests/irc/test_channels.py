"""Channels over real sockets: JOIN, PART, TOPIC, NAMES, WHO, WHOIS, LIST, KICK,
INVITE, AWAY and their error numerics."""

from __future__ import annotations

from chatd.domain.room import Mode
from tests.helpers import ChatServer, Clients, settle, text_client, text_run
from tests.irc.conftest import IrcFactory


async def test_join_creates_a_missing_room_with_the_joiner_as_owner(
        server: ChatServer, irc: IrcFactory) -> None:
    bob = await irc("bob")
    bob.send("JOIN #Fresh")
    assert await bob.raw() == ":bob!bob@chatd.local JOIN #fresh"
    assert await bob.raw() == ":chatd.local 353 bob = #fresh :@bob"
    assert await bob.raw() == ":chatd.local 366 bob #fresh :End of /NAMES list"
    room = server.services.rooms.find("fresh")
    assert room is not None and room.mode is Mode.OPEN
    assert room.owner is not None and room.owner.name == "bob"


async def test_join_several_shows_topic_and_names_and_others_see_it(irc: IrcFactory) -> None:
    alice = await irc("alice")
    alice.send("JOIN #one,#two", "TOPIC #one :all about one")
    await alice.expect("TOPIC")
    bob = await irc("bob")
    bob.send("JOIN #one,#two")
    assert (await bob.expect("JOIN")).params == ("#one",)
    assert (await bob.read()).params == ("bob", "#one", "all about one")
    assert (await bob.read()).params == ("bob", "=", "#one", "@alice bob")
    await bob.expect("366")
    assert (await bob.expect("JOIN")).params == ("#two",)
    await bob.expect("366")
    joined = await alice.expect("JOIN")
    assert joined.source == "bob!bob@chatd.local" and joined.params == ("#one",)
    bob.send("JOIN #one")  # already there: nothing more to say
    await bob.nothing()


async def test_join_errors(server: ChatServer, irc: IrcFactory) -> None:
    bob = await irc("bob")
    bob.send("JOIN nohash", "JOIN #bad!name", "JOIN", "JOIN ,,,", "JOIN :")
    assert (await bob.expect("403")).params[1] == "nohash"
    assert (await bob.expect("476")).params[1] == "#bad!name"
    for _ in range(3):  # commas alone, or an empty list, name no channel either
        assert (await bob.expect("461")).params[1] == "JOIN"


async def test_join_zero_leaves_every_channel(server: ChatServer, irc: IrcFactory) -> None:
    bob = await irc("bob")
    await irc("alice")
    for name in ("a", "b"):
        bob.send(f"JOIN #{name}")
        await bob.expect("366")
    bob.send("JOIN 0")
    assert (await bob.expect("PART")).params == ("#a",)
    assert (await bob.expect("PART")).params == ("#b",)
    assert server.services.rooms.of_user(server.services.accounts.require("bob")) == []


async def test_part_and_its_errors(irc: IrcFactory, clients: Clients) -> None:
    carol = await clients.user("carol")
    await carol.command("/create hall")
    bob = await irc("bob")
    bob.send("JOIN #hall")
    await bob.expect("366")
    await carol.next_event(lambda e: e.get("event") == "join")
    bob.send("PART #hall :gone fishing")
    assert await bob.raw() == ":bob!bob@chatd.local PART #hall :gone fishing"
    event = await carol.next_event(lambda e: e.get("event") == "leave")
    assert event["user"] == "bob" and event["reason"] == "gone fishing"
    bob.send("PART #hall", "PART #nowhere", "PART", "PART ,,")
    assert (await bob.expect("442")).params[1] == "#hall"
    assert (await bob.expect("403")).params[1] == "#nowhere"
    await bob.expect("461")
    assert (await bob.expect("461")).params[1] == "PART"


async def test_a_part_reason_is_shown_only_from_who_may_speak(
        irc: IrcFactory, clients: Clients) -> None:
    carol = await clients.user("carol")
    await carol.command("/create hall")
    await carol.command("/mode +m hall")
    bob, dave = await irc("bob"), await irc("dave")
    for member in (bob, dave):
        member.send("JOIN #hall")
        await member.expect("366")
    await carol.command("/voice dave hall")
    await settle(carol)
    # In a moderated room an unvoiced member's PART reason would be a message past
    # the moderation: it goes without it. Its own echo keeps what it said.
    bob.send("PART #hall :unmoderated words")
    assert (await bob.expect("PART")).params == ("#hall", "unmoderated words")
    left = await carol.next_event(lambda e: e.get("event") == "leave")
    assert left["user"] == "bob" and not left.get("reason")
    dave.send("PART #hall :voiced words")
    left = await carol.next_event(lambda e: e.get("event") == "leave")
    assert left["user"] == "dave" and left["reason"] == "voiced words"


async def test_a_member_who_may_not_speak_sets_no_topic(
        irc: IrcFactory, clients: Clients) -> None:
    carol = await clients.user("carol")
    await carol.command("/create hall")
    await carol.command("/mode -t+m hall")
    bob = await irc("bob")
    bob.send("JOIN #hall")
    await bob.expect("366")
    bob.send("TOPIC #hall :unvoiced words")
    assert (await bob.expect("404")).params[1] == "#hall"
    await carol.command("/voice bob hall")
    bob.send("TOPIC #hall :voiced words")
    assert (await bob.expect("TOPIC")).params == ("#hall", "voiced words")


async def test_topic_show_set_and_refusals(irc: IrcFactory) -> None:
    alice = await irc("alice")
    alice.send("JOIN #t", "TOPIC #t")
    assert (await alice.expect("331")).params[1:] == ("#t", "No topic is set")
    bob = await irc("bob")
    bob.send("TOPIC #t :mine now", "JOIN #t")
    assert (await bob.expect("442")).params[1] == "#t"
    await bob.expect("366")
    bob.send("TOPIC #t :mine now")
    assert (await bob.expect("482")).params[1] == "#t"
    alice.send("TOPIC #t :the topic")
    topic = await alice.expect("TOPIC")
    assert topic.source == "alice!alice@chatd.local" and topic.params == ("#t", "the topic")
    assert (await bob.expect("TOPIC")).params == ("#t", "the topic")
    bob.send("TOPIC #t", "TOPIC #none")
    assert (await bob.expect("332")).params[1:] == ("#t", "the topic")
    await bob.expect("403")


async def test_clearing_no_topic_tells_no_one(irc: IrcFactory) -> None:
    """As InspIRCd: a TOPIC that changes nothing is not echoed to the channel."""
    alice = await irc("alice")
    alice.send("JOIN #t")
    bob = await irc("bob")
    bob.send("JOIN #t")
    await bob.expect("366")
    alice.send("TOPIC #t :", "PRIVMSG #t :after")
    assert (await bob.expect("PRIVMSG", "TOPIC")).command == "PRIVMSG"


async def test_a_topic_over_topiclen_is_cut_to_it(irc: IrcFactory) -> None:
    """ISUPPORT says TOPICLEN; a longer topic is cut to it, as IRC servers do."""
    alice = await irc("alice")
    alice.send("JOIN #t", "TOPIC #t :" + "a" * 389 + "bcd")
    assert (await alice.expect("TOPIC")).params == ("#t", "a" * 389 + "b")


async def test_topic_of_a_hidden_room_is_no_such_channel_to_outsiders(irc: IrcFactory) -> None:
    """As MODE answers: 442 would tell an outsider that a secret or private room
    exists; 403 is what a room that does not exist gets."""
    alice = await irc("alice")
    alice.send("JOIN #hidden", "MODE #hidden +s", "JOIN #closed", "MODE #closed +i")
    await alice.expect("MODE")
    await alice.expect("MODE")
    bob = await irc("bob")
    for name in ("#hidden", "#closed", "#none"):
        bob.send(f"TOPIC {name}", f"TOPIC {name} :mine")
        for _ in range(2):
            reply = await bob.expect("403")
            assert reply.params[1:] == (name, "No such channel")


async def test_a_topic_cleared_over_irc_reaches_text_json_and_irc_members(
        irc: IrcFactory, clients: Clients) -> None:
    """IRC's TOPIC #room : clears the topic; every member is told, in its own form
    (the text sentence once failed on the missing field, and told nobody)."""
    alice = await irc("alice")
    alice.send("JOIN #t", "TOPIC #t :before")
    await alice.expect("TOPIC")
    text = await text_client(clients, "tess")
    await text_run(text, "/join t")
    jay = await clients.user("jay")
    await jay.command("/join t")
    alice.send("TOPIC #t :")
    assert (await alice.expect("TOPIC")).params == ("#t", "")
    told = await jay.next_event(lambda e: e.get("event") == "topic")
    assert (told["actor"], told["topic"]) == ("alice", "")
    assert "* alice cleared the topic of #t" in await text_run(text, None)
    alice.send("TOPIC #t")
    assert (await alice.expect("331")).params[1:] == ("#t", "No topic is set")
    await alice.nothing()  # no error numeric came with the clearing


async def test_a_whois_or_whowas_of_no_nick_is_431(irc: IrcFactory) -> None:
    """"WHOIS :" and "WHOIS ,bob" name no nick first: 431 ERR_NONICKNAMEGIVEN,
    where they were "401 * :No such nick/channel" and a 318 of "*" (WHOWAS: 406
    and 369 of "*")."""
    alice = await irc("alice")
    alice.send("WHOIS :", "WHOIS ,bob", "PING done")
    said = await alice.until("PONG")
    assert [m.command for m in said] == ["431", "431", "PONG"]
    assert said[0].params[1:] == ("No nickname given",)
    alice.send("WHOWAS :", "WHOWAS ,bob", "PING done")
    assert [m.command for m in await alice.until("PONG")] == ["431", "431", "PONG"]


async def test_names_who_whois_list(server: ChatServer, irc: IrcFactory,
                                    clients: Clients) -> None:
    alice = await irc("alice")
    alice.send("JOIN #room", "AWAY :lunch")
    await alice.expect("306")
    bob = await irc("bob")
    bob.send("JOIN #room")
    await bob.expect("366")
    alice.send("MODE #room +o bob")
    await alice.expect("MODE")
    carol = await clients.user("carol")
    await carol.command("/join room")
    await carol.close()
    bob.send("NAMES #room,#nope", "NAMES")
    assert (await bob.expect("353")).params == ("bob", "=", "#room", "@alice @bob carol")
    assert (await bob.expect("366")).params[1] == "#room"
    assert (await bob.expect("366")).params[1] == "#nope"
    assert (await bob.expect("366")).params[1] == "*"
    # A list of empty elements names no channel: the end of an empty list, as for
    # NAMES alone, not silence (a client waiting for 366 would wait for ever).
    bob.send("NAMES ,,,", "NAMES :", "PING after")
    assert [m.command for m in await bob.until("366")] == ["366"]
    assert (await bob.read()).params[1:] == ("*", "End of /NAMES list")
    assert (await bob.read()).command == "PONG"
    bob.send("WHO #room")
    rows = [(await bob.expect("352")).params for _ in range(3)]
    assert [(r[5], r[6]) for r in rows] == [("alice", "G@"), ("bob", "H@"), ("carol", "G")]
    assert (await bob.expect("315")).params[1] == "#room"
    bob.send("WHO alice", "WHO nobody")
    assert (await bob.expect("352")).params[1] == "*"
    await bob.expect("315")
    assert (await bob.expect("315")).params[1] == "nobody"
    bob.send("WHOIS alice")
    whois = await bob.until("318")
    by_code = {m.command: m.params for m in whois}
    assert by_code["311"][1:4] == ("alice", "alice", "chatd.local")
    assert by_code["319"][2] == "@#room"
    assert by_code["301"][2] == "lunch"
    assert by_code["330"][1:3] == ("alice", "alice")
    bob.send("WHOIS ghost")
    assert (await bob.expect("401")).params[1] == "ghost"
    await bob.expect("318")
    bob.send("LIST")
    listed = await bob.until("323")
    assert [m.params[1:] for m in listed if m.command == "322"] == [("#room", "3", "[+nt] ")]


async def test_whois_of_an_offline_account_and_a_server_admin(server: ChatServer,
                                                              irc: IrcFactory) -> None:
    await server.services.accounts.create("root", "root-pw", is_admin=True)
    bob = await irc("bob")
    bob.send("WHOIS root")
    by_code = {m.command: m.params for m in await bob.until("318")}
    assert by_code["313"][1] == "root" and by_code["301"][2] == "offline"


async def test_kick_and_its_errors(server: ChatServer, irc: IrcFactory,
                                   clients: Clients) -> None:
    alice = await irc("alice")
    alice.send("JOIN #k")
    await alice.expect("366")
    bob = await irc("bob")
    bob.send("JOIN #k")
    await bob.expect("366")
    carol = await clients.user("carol")
    await carol.command("/join k")
    bob.send("KICK #k carol :no")
    assert (await bob.expect("482")).params[1] == "#k"
    alice.send("KICK #k bob,ghost,dave :behave")
    kick = await bob.expect("KICK")
    assert kick.source == "alice!alice@chatd.local" and kick.params == ("#k", "bob", "behave")
    event = await carol.next_event(lambda e: e.get("event") == "kick")
    assert event["user"] == "bob" and event["actor"] == "alice"
    assert (await alice.expect("401")).params[1] == "ghost"
    await server.services.accounts.create("dave", "dave-pw")
    alice.send("KICK #k dave", "KICK #none bob", "KICK #k")
    assert (await alice.expect("441")).params[1:3] == ("dave", "#k")
    assert (await alice.expect("403")).params[1] == "#none"
    await alice.expect("461")
    room = server.services.rooms.find("k")
    assert room is not None and not room.is_member(server.services.accounts.require("bob").id)


async def test_a_kick_that_names_no_nick_is_461(irc: IrcFactory) -> None:
    """"KICK #k ," and "KICK #k :" name no one: 461, as "KICK #k" is, where they
    were answered with nothing at all."""
    alice = await irc("alice")
    alice.send("JOIN #k")
    await alice.expect("366")
    alice.send("KICK #k ,", "KICK #k :", "KICK #k ,, :reason")
    for _ in range(3):
        assert (await alice.expect("461")).params[1] == "KICK"


async def test_invite_lets_a_user_into_a_private_room(server: ChatServer,
                                                      irc: IrcFactory) -> None:
    alice = await irc("alice")
    alice.send("JOIN #secret", "MODE #secret +i")
    assert (await alice.expect("MODE")).params == ("#secret", "+i-R")
    bob = await irc("bob")
    bob.send("JOIN #secret")
    assert (await bob.expect("473")).params[1] == "#secret"
    alice.send("INVITE bob #secret")
    assert (await alice.expect("341")).params[1:] == ("bob", "#secret")
    invite = await bob.expect("INVITE")
    assert invite.source == "alice!alice@chatd.local" and invite.params == ("bob", "#secret")
    bob.send("JOIN #secret")
    assert (await bob.expect("JOIN")).params == ("#secret",)
    alice.send("INVITE bob #secret", "INVITE ghost #secret", "INVITE bob #none")
    assert (await alice.expect("443")).params[1:3] == ("bob", "#secret")
    assert (await alice.expect("401")).params[1] == "ghost"
    assert (await alice.expect("403")).params[1] == "#none"
    await server.services.accounts.create("carol", "carol-pw")
    bob.send("INVITE carol #secret")
    assert (await bob.expect("482")).params[1] == "#secret"


async def test_names_marks_a_channel_secret_only_when_it_is_plus_s(irc: IrcFactory) -> None:
    """353's "@" means +s: irssi adds s to the modes it shows on reading it, and no
    324 removes it. A private room (+i) is "=", as on other servers."""
    alice = await irc("alice")
    alice.send("JOIN #closed", "MODE #closed +i")
    await alice.expect("MODE")
    alice.send("NAMES #closed")
    assert (await alice.expect("353")).params[1:3] == ("=", "#closed")
    alice.send("MODE #closed +s", "NAMES #closed")
    await alice.expect("MODE")
    assert (await alice.expect("353")).params[1:3] == ("@", "#closed")


async def test_away_and_rpl_away_on_privmsg(irc: IrcFactory) -> None:
    alice = await irc("alice")
    bob = await irc("bob")
    alice.send("AWAY :back soon")
    assert (await alice.expect("306")).command == "306"
    bob.send("PRIVMSG alice :hello?")
    assert (await bob.expect("301")).params[1:] == ("alice", "back soon")
    assert (await alice.expect("PRIVMSG")).params == ("alice", "hello?")
    alice.send("AWAY")
    await alice.expect("305")
    bob.send("PRIVMSG alice :now?")
    await alice.expect("PRIVMSG")
    await bob.nothing()


async def test_an_outsider_learns_nothing_of_a_secret_channel_but_its_name_taken(
        irc: IrcFactory) -> None:
    """IRC's +s: hidden from LIST and WHOIS, and NAMES and WHO of it from outside
    are empty, as of a channel with nobody in it; TOPIC is 403. Its name is no
    secret (JOIN of it cannot create it): a private one answers 473, a full one
    471 without its limit."""
    alice, bob = await irc("alice"), await irc("bob")
    alice.send("JOIN #den", "MODE #den +sl 2", "TOPIC #den :the plan",
               "JOIN #vault", "MODE #vault +si")
    bob.send("JOIN #den")
    await bob.expect("366")
    alice.send("PRIVMSG #den :psst")
    await bob.expect("PRIVMSG")
    carol = await irc("carol")
    carol.lines.clear()
    carol.send("LIST", "WHOIS alice", "WHO #den", "NAMES #den", "TOPIC #den",
               "JOIN #vault", "JOIN #den", "PING :done")
    said = await carol.until("PONG")
    told = [line for line in carol.lines if " PONG " not in line]
    codes = [m.command for m in said]
    # No 322 (LIST), 319 (WHOIS's channels), 352 (WHO), 353 (NAMES) or 332 (topic).
    assert not {"322", "319", "352", "353", "332"} & set(codes), told
    assert [c for c in codes if c in ("323", "318", "315", "366", "403", "473", "471")] == [
        "323", "318", "315", "366", "403", "473", "471"], told
    assert not [line for line in told if any(word in line for word in (
        "bob", "the plan", "psst", " 2 "))], told
    assert said[-2].command == "471" and said[-2].params[1:] == ("#den", "is full.")
