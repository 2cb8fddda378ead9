"""Channel modes over IRC: keys, limits, moderation and voice, secret channels, n and t,
prefixes (multi-prefix, userhost-in-names), and rooms created by guests."""

from __future__ import annotations

import dataclasses

import pytest

from chatd.domain.accounts import User
from chatd.domain.room import Mode, Role
from chatd.errors import ChatError, Code
from chatd.irc.guests import GuestId
from storage.records import UserRecord
from tests.backends import both
from tests.helpers import PASSWORD, ChatServer, Clients
from tests.irc.conftest import IrcFactory
from tests.irc.helpers import IrcClient

# Modes, the voice role and guests' rooms are stored alike on both backends.
backend = both

GUESTS_CREATE = pytest.mark.server(accounts__guests=True, rooms__creation="everyone")


async def _room(owner: IrcClient, *others: IrcClient, name: str = "#m") -> None:
    owner.send(f"JOIN {name}")
    await owner.expect("366")
    for other in others:
        other.send(f"JOIN {name}")
        await other.expect("366")
        await owner.expect("JOIN")


async def _guest(irc: IrcFactory, nick: str, caps: tuple[str, ...] = ()) -> IrcClient:
    client = await irc()
    await client.register(nick, caps=caps)
    return client


async def test_modes_are_set_shown_and_told_to_the_room(server: ChatServer,
                                                        irc: IrcFactory) -> None:
    alice, bob, carol = await irc("alice"), await irc("bob"), await irc("carol")
    await _room(alice, bob)
    alice.send("MODE #m +klm-t sesame 5")
    change = await bob.expect("MODE")
    assert change.source == "alice!alice@chatd.local"
    assert change.params == ("#m", "+klm-t", "sesame", "5")
    bob.send("MODE #m")
    assert (await bob.expect("324")).params[1:] == ("#m", "+nklm", "sesame", "5")
    carol.send("MODE #m")
    assert (await carol.expect("324")).params[1:] == ("#m", "+nklm", "<key>", "5")
    alice.send("MODE #m -kl+s whatever")
    # k takes a parameter when unset too (a type B mode): "*" stands for the key.
    assert (await bob.expect("MODE")).params == ("#m", "-kl+s", "*")
    carol.send("MODE #m", "LIST")
    assert (await carol.expect("403")).params[1] == "#m"
    assert (await carol.expect("323", "322")).command == "323"
    room = server.services.rooms.find("m")
    assert room is not None and room.modes.secret and room.modes.key is None


async def test_at_most_four_changes_with_an_argument_per_mode(server: ChatServer,
                                                                irc: IrcFactory) -> None:
    alice, bob = await irc("alice"), await irc("bob")
    await _room(alice, bob)
    alice.send("MODE #m +klkll a 1 b 2 3")  # MODES=4: the fifth (+l 3) is left out
    assert (await bob.expect("MODE")).params == ("#m", "+kl", "b", "2")
    room = server.services.rooms.find("m")
    assert room is not None and (room.modes.key, room.modes.limit) == ("b", 2)
    # Long lists are split over lines that each fit, whole: MONITOR L and 319.
    nicks = [f"n{i:02d}" + "x" * 21 for i in range(40)]
    alice.send(*(f"MONITOR + {','.join(nicks[i:i + 10])}" for i in range(0, 40, 10)))
    for _ in range(4):
        await alice.expect("731")
    alice.send("MONITOR L")
    listed: list[str] = []
    while (reply := await alice.expect("732", "733")).command == "732":
        assert len(alice.lines[-1].encode()) <= 510  # and its CRLF: 512
        listed += reply.params[-1].split(",")
    assert sorted(listed) == nicks


async def test_mode_refusals(irc: IrcFactory) -> None:
    alice, bob = await irc("alice"), await irc("bob")
    await _room(alice, bob)
    bob.send("MODE #m +m")
    assert (await bob.expect("482")).params[1] == "#m"
    alice.send("MODE #m +k", "MODE #m +l many", "MODE #m +Z")
    assert (await alice.expect("461")).params[1] == "MODE"
    assert (await alice.expect("696")).params[1:4] == ("#m", "l", "many")
    assert (await alice.expect("472")).params[1] == "Z"


async def test_each_mode_missing_or_with_a_bad_argument_is_refused_alone(
        server: ChatServer, irc: IrcFactory) -> None:
    """MODE #m +klm without arguments applied +m and refused +k and +l, while a bad
    key refused every mode of the line: now each +k or +l whose argument is missing
    (461) or bad (696, ERR_INVALIDMODEPARAM) is refused on its own, and the MODE
    echo lists exactly the modes that took effect."""
    alice, bob = await irc("alice"), await irc("bob")
    await _room(alice, bob)
    alice.send("MODE #m +klm")
    refused = [await alice.expect("461") for _ in range(2)]
    assert [m.params[1:] for m in refused] == [("MODE", "+k needs an argument"),
                                              ("MODE", "+l needs an argument")]
    assert (await bob.expect("MODE")).params == ("#m", "+m")
    alice.send("MODE #m +kls sesame many")  # a good key, a bad limit
    bad = await alice.expect("696")
    assert bad.params[1:4] == ("#m", "l", "many") and "limit" in bad.params[4]
    assert (await bob.expect("MODE")).params == ("#m", "+ks", "sesame")
    alice.send("MODE #m +l-m :")  # an empty argument is a bad one, shown as *
    assert (await alice.expect("696")).params[1:4] == ("#m", "l", "*")
    assert (await bob.expect("MODE")).params == ("#m", "-m")
    room = server.services.rooms.find("m")
    assert room is not None and room.modes.key == "sesame" and room.modes.limit is None


async def test_join_with_keys_and_a_full_channel(server: ChatServer, irc: IrcFactory) -> None:
    alice, bob, carol = await irc("alice"), await irc("bob"), await irc("carol")
    await _room(alice)
    await _room(alice, name="#open")
    alice.send("MODE #m +kl sesame 2")
    await alice.expect("MODE")
    bob.send("JOIN #m")
    assert (await bob.expect("475")).params[1:] == (
        "#m", "needs a key to join, and you gave no key.")
    bob.send("JOIN #m,#open wrong")
    assert (await bob.expect("475", "JOIN")).command == "475"
    assert (await bob.expect("JOIN")).params == ("#open",)
    bob.send("JOIN #open,#m x,sesame")
    assert (await bob.expect("JOIN")).params == ("#m",)
    carol.send("JOIN #m sesame")
    assert (await carol.expect("471")).params[1] == "#m"


async def test_a_refusal_does_not_repeat_the_channel_its_numeric_names(
        irc: IrcFactory, clients: Clients) -> None:
    """404's channel parameter names the room: its text does not start with it again
    (irssi showed "#m #m is moderated..."); the line protocol's sentence keeps it."""
    alice, bob = await irc("alice"), await irc("bob")
    await _room(alice, bob)
    line = await clients.user("carol")
    await line.command("/join m")
    alice.send("MODE #m +m")
    await bob.expect("MODE")
    bob.send("PRIVMSG #m :hello?")
    refused = await bob.expect("404")
    assert refused.params[1] == "#m"
    assert refused.params[2].startswith("is moderated: only members with voice")
    said = await line.command("/say m hello?", check=False)
    assert said["code"] == "moderated" and said["message"].startswith("#m is moderated: ")


async def test_a_moderated_channel_and_voice(server: ChatServer, irc: IrcFactory,
                                             clients: Clients) -> None:
    alice, bob = await irc("alice"), await irc("bob", caps=("multi-prefix",))
    await _room(alice, bob)
    line = await clients.user("carol")
    await line.command("/join m")
    alice.send("MODE #m +m")
    await bob.expect("MODE")
    bob.send("PRIVMSG #m :hello?")
    assert (await bob.expect("404")).params[1] == "#m"
    alice.send("MODE #m +v bob")
    assert (await bob.expect("MODE")).params == ("#m", "+v", "bob")
    voiced = await line.next_event(lambda e: e.get("event") == "voice")
    assert voiced["user"] == "bob"
    bob.send("PRIVMSG #m :now I speak", "NAMES #m")
    heard = await line.next_event(lambda e: e.get("type") == "message")
    assert heard["text"] == "now I speak"
    assert (await bob.expect("353")).params[3] == "~@alice +bob carol"
    alice.send("MODE #m -v bob")
    assert (await bob.expect("MODE")).params == ("#m", "-v", "bob")
    room = server.services.rooms.find("m")
    assert room is not None and room.role_of(server.services.accounts.require("bob").id) \
        is Role.MEMBER
    # Voice is a role: promoting a voiced member ends it, and IRC is told so.
    alice.send("MODE #m +v bob", "MODE #m +o bob")
    assert (await bob.expect("MODE")).params == ("#m", "+v", "bob")
    assert (await bob.expect("MODE")).params == ("#m", "-v+o", "bob", "bob")
    alice.send("MODE #m -o bob")
    assert (await bob.expect("MODE")).params == ("#m", "-o", "bob")
    bob.send("NAMES #m")
    assert (await bob.expect("353")).params[3] == "~@alice bob carol"
    # So does succession: the owner leaves, and bob, voiced and the earliest joiner,
    # inherits the room.
    alice.send("MODE #m +v bob")
    assert (await bob.expect("MODE")).params == ("#m", "+v", "bob")
    alice.send("PART #m")
    await bob.expect("PART")
    assert (await bob.expect("MODE")).params == ("#m", "-v+qo", "bob", "bob", "bob")


async def test_n_and_t_are_toggles(irc: IrcFactory, clients: Clients) -> None:
    alice, bob, outsider = await irc("alice"), await irc("bob"), await irc("olga")
    await _room(alice, bob)
    outsider.send("PRIVMSG #m :knock knock")
    assert (await outsider.expect("404")).params[1] == "#m"
    bob.send("TOPIC #m :bob's topic")
    assert (await bob.expect("482")).params[1] == "#m"
    alice.send("MODE #m -nt")
    assert (await bob.expect("MODE")).params == ("#m", "-nt")
    outsider.send("PRIVMSG #m :knock knock")
    got = await bob.expect("PRIVMSG")
    assert got.source.startswith("olga!") and got.params == ("#m", "knock knock")
    bob.send("TOPIC #m :bob's topic")
    assert (await alice.expect("TOPIC")).params == ("#m", "bob's topic")


async def test_prefixes_for_each_client(irc: IrcFactory) -> None:
    alice = await irc("alice")
    plain, multi = await irc("bob"), await irc("carol", caps=("multi-prefix",))
    both = await irc("dave", caps=("multi-prefix", "userhost-in-names"))
    await _room(alice, plain, multi, both)
    alice.send("MODE #m +o bob")
    await alice.expect("MODE")
    plain.send("NAMES #m", "WHO #m")
    assert (await plain.expect("353")).params[3] == "@alice @bob carol dave"
    flags = [m.params[6] for m in await plain.until("315") if m.command == "352"]
    assert flags == ["H@", "H@", "H", "H"]
    multi.send("NAMES #m", "WHOIS alice")
    assert (await multi.expect("353")).params[3] == "~@alice @bob carol dave"
    assert (await multi.expect("319")).params[2] == "~@#m"
    both.send("NAMES #m")
    assert (await both.expect("353")).params[3].split()[:2] == [
        "~@alice!alice@chatd.local", "@bob!bob@chatd.local"]


async def test_userhost_in_names_shows_each_member_with_the_username_of_their_user(
        server: ChatServer, irc: IrcFactory, clients: Clients) -> None:
    await server.services.accounts.create("erin", PASSWORD)
    erin = await irc()
    erin.send(f"PASS erin:{PASSWORD}", "NICK erin", "USER ewok 0 * :Erin")
    await erin.expect("376", "422")
    line_user = await clients.user("frank")
    await line_user.command("/create m")
    client = await irc("gina", caps=("userhost-in-names",))
    await _room(erin, client)
    client.send("NAMES #m")
    assert (await client.expect("353")).params[3].split() == [
        "@frank!frank@chatd.local", "erin!ewok@chatd.local", "gina!gina@chatd.local"]


async def test_the_voice_notice_is_true_whether_or_not_the_room_is_moderated(
        irc: IrcFactory, clients: Clients) -> None:
    alice, bob = await irc("alice"), await irc("bob")
    await _room(alice, bob)
    told = "alice gave you voice in #m: you may speak there when it is moderated too."
    alice.send("MODE #m +v bob")  # #m is not moderated (-m)
    assert (await bob.expect("NOTICE")).params == ("bob", told)
    alice.send("MODE #m -v bob")
    assert (await bob.expect("NOTICE")).params == ("bob", "alice took your voice in #m.")
    alice.send("MODE #m +m", "MODE #m +v bob")
    assert (await bob.expect("NOTICE")).params == ("bob", told)


async def test_isupport_tells_each_client_the_prefixes_it_will_see(irc: IrcFactory) -> None:
    for caps, token in (((), "PREFIX=(ov)@+"), (("multi-prefix",), "PREFIX=(qov)~@+")):
        client = await irc(f"u{len(caps)}", caps=caps)
        isupport = [line for line in client.lines if " 005 " in line]
        assert any(token in line.split() for line in isupport), caps
        assert any("CHANMODES=b,k,l,imnstR" in line.split() for line in isupport)
    # Asked for after registration, multi-prefix brings the new PREFIX with it (and
    # taking it back, the old one): the client reads ~@alice right.
    late = await irc("late")
    for wanted, token in (("multi-prefix", "PREFIX=(qov)~@+"), ("-multi-prefix",
                                                                  "PREFIX=(ov)@+")):
        late.send(f"CAP REQ :{wanted}")
        await late.expect("CAP")
        assert token in (await late.expect("005")).params


async def test_a_transfer_reads_as_q_and_o(server: ChatServer, irc: IrcFactory,
                                           clients: Clients) -> None:
    plain, multi = await irc("bob"), await irc("carol", caps=("multi-prefix",))
    alice = await clients.user("alice")
    await alice.command("/create m")
    for client in (plain, multi):
        client.send("JOIN #m")
        await client.expect("366")
    await alice.command("/transfer bob m")
    assert (await plain.expect("MODE")).params == ("#m", "+o", "bob")
    assert (await multi.expect("MODE")).params == ("#m", "-q+qo", "alice", "bob", "bob")


@GUESTS_CREATE
async def test_a_guest_creates_a_channel_and_runs_it(server: ChatServer, irc: IrcFactory,
                                                     clients: Clients) -> None:
    visitor = await _guest(irc, "visitor", caps=("multi-prefix",))
    visitor.send("JOIN #new")
    assert (await visitor.expect("353")).params[3] == "~@visitor"
    room = server.services.rooms.find("new")
    assert room is not None and room.owner is not None and room.owner.name == "visitor"
    assert await server.services.storage.load_members() == []
    other = await _guest(irc, "passer")
    bob = await clients.user("bob")
    other.send("JOIN #new")
    assert (await other.expect("353")).params[3] == "@visitor passer"
    await bob.command("/join new")
    visitor.send("MODE #new +mv passer")
    assert (await other.expect("MODE")).params == ("#new", "+m")
    assert (await other.expect("MODE")).params == ("#new", "+v", "passer")
    other.send("PRIVMSG #new :voiced guest")
    assert (await bob.next_event(lambda e: e.get("type") == "message"))["text"] == \
        "voiced guest"
    visitor.send("MODE #new +o bob")
    assert (await other.expect("MODE")).params == ("#new", "+o", "bob")
    # The guest goes: the admin it made inherits the room.
    visitor.send("QUIT")
    owner = await bob.next_event(lambda e: e.get("event") == "owner")
    assert owner["user"] == "bob"
    assert room.owner is not None and room.owner.name == "bob"


@pytest.mark.server(accounts__guests=True)
async def test_by_default_guests_do_not_create_and_a_reload_lets_them(
        server: ChatServer, irc: IrcFactory) -> None:
    visitor = await _guest(irc, "visitor")
    visitor.send("JOIN #new")
    assert (await visitor.expect("403")).params[1:] == (
        "#new", "No such channel (guests cannot create rooms)")
    server.apply(dataclasses.replace(server.config, rooms=dataclasses.replace(
        server.config.rooms, creation="everyone")))
    visitor.send("JOIN #new")
    assert (await visitor.expect("353")).params[3] == "@visitor"


@GUESTS_CREATE
async def test_a_guest_left_alone_in_its_channel_ends_it(server: ChatServer,
                                                        irc: IrcFactory) -> None:
    visitor = await _guest(irc, "visitor")
    passer = await _guest(irc, "passer")
    visitor.send("JOIN #solo")
    await visitor.expect("366")
    passer.send("JOIN #solo,#two sesame")
    await passer.expect("366")
    await passer.expect("366")
    passer.send("MODE #two +k sesame")
    await passer.expect("MODE")
    visitor.send("JOIN #two", "PART #solo")
    assert (await visitor.expect("475")).params[1] == "#two"
    # The one plain member left behind is removed with the room (termination).
    assert (await passer.expect("PART")).params[0] == "#solo"
    assert server.services.rooms.find("solo") is None


@pytest.mark.server(accounts__guests=True)
async def test_guests_and_accounts_racing_for_the_last_places(server: ChatServer,
                                                              irc: IrcFactory) -> None:
    alice = await irc("alice")
    racers = [await irc("bob"), await irc("carol"), await _guest(irc, "gina"),
              await _guest(irc, "gus")]
    for number in range(10):
        name = f"#r{number}"
        await _room(alice, name=name)
        alice.send(f"MODE {name} +l 3")
        await alice.expect("MODE")
        for client in racers:
            client.send(f"JOIN {name}")
        outcomes = [(await client.expect("366", "471")).command for client in racers]
        assert sorted(outcomes) == ["366", "366", "471", "471"], number
        room = server.services.rooms.find(name)
        assert room is not None and len(room.members) == 3
        for client in racers:
            client.send(f"PART {name}")


async def test_the_domain_itself_refuses_rooms_to_guests_by_default(server: ChatServer) -> None:
    guest = User(UserRecord(GuestId(-5), "ghost", b"", False, 0.0))
    assert not guest.has_account
    with pytest.raises(ChatError) as caught:
        await server.services.rooms.create(guest, "nope", Mode.OPEN)
    assert caught.value.code is Code.NOT_PERMITTED
    assert server.services.rooms.find("nope") is None
