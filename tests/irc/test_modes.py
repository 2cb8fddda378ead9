"""MODE over real sockets: roles, bans, private and request rooms, user modes."""

from __future__ import annotations

import asyncio

from chatd.domain.room import Mode, Role
from tests.helpers import ChatServer, Clients, holding
from tests.irc.conftest import IrcFactory
from tests.irc.helpers import IrcClient


async def _room(owner: IrcClient, *others: IrcClient, name: str = "#m") -> None:
    owner.send(f"JOIN {name}")
    await owner.expect("366")
    for other in others:
        other.send(f"JOIN {name}")
        await other.expect("366")
        await owner.expect("JOIN")


async def test_mode_query(irc: IrcFactory, server: ChatServer) -> None:
    alice = await irc("alice")
    await _room(alice)
    alice.send("MODE #m")
    assert (await alice.expect("324")).params[1:] == ("#m", "+nt")
    created = await alice.expect("329")
    assert created.params[2] == str(int(server.services.clock.time()))
    alice.send("MODE #none")
    await alice.expect("403")


async def test_op_promotes_and_deops_demotes(server: ChatServer, irc: IrcFactory) -> None:
    alice, bob = await irc("alice"), await irc("bob")
    await _room(alice, bob)
    bob.send("MODE #m +o bob")
    assert (await bob.expect("482")).params[1] == "#m"
    alice.send("MODE #m +o bob")
    change = await bob.expect("MODE")
    assert change.source == "alice!alice@chatd.local" and change.params == ("#m", "+o", "bob")
    room = server.services.rooms.find("m")
    assert room is not None
    assert room.role_of(server.services.accounts.require("bob").id) is Role.ADMIN
    alice.send("MODE #m -o bob")
    assert (await bob.expect("MODE")).params == ("#m", "-o", "bob")
    alice.send("MODE #m +o ghost", "MODE #m +o", "MODE #m +q bob")
    assert (await alice.expect("401")).params[1] == "ghost"
    assert (await alice.expect("461")).params[1] == "MODE"
    assert (await alice.expect("400")).params[2] == "ownership passes only by succession"
    await server.services.accounts.create("carol", "carol-pw")
    alice.send("MODE #m +o carol")
    assert (await alice.expect("441")).params[1:3] == ("carol", "#m")


async def test_ban_kicks_lists_and_unban_lifts(server: ChatServer, irc: IrcFactory,
                                               clients: Clients) -> None:
    alice, bob = await irc("alice"), await irc("bob")
    await _room(alice, bob)
    carol = await clients.user("carol")
    await carol.command("/join m")
    alice.send("MODE #m +b bob!*@*")
    ban = await bob.expect("MODE")
    assert ban.params == ("#m", "+b", "bob!*@*")
    assert (await bob.expect("KICK")).params[:2] == ("#m", "bob")
    event = await carol.next_event(lambda e: e.get("event") == "ban")
    assert event["user"] == "bob" and event["actor"] == "alice"
    bob.send("JOIN #m")
    assert (await bob.expect("474")).params[1] == "#m"
    alice.send("MODE #m +b")
    assert (await alice.expect("367")).params[1:4] == ("#m", "bob!*@*", "alice")
    await alice.expect("368")
    alice.send("MODE #m -b bob")
    assert (await alice.expect("MODE")).params == ("#m", "-b", "bob!*@*")
    bob.send("JOIN #m")
    assert (await bob.expect("JOIN")).params == ("#m",)
    alice.send("MODE #m -b bob", "MODE #m +b *!*@host")
    assert (await alice.expect("400")).params[1] == "MODE"
    assert (await alice.expect("400")).params[2] == "a ban names one user: +b nick"


async def test_the_ban_list_of_a_hidden_channel_is_403_to_strangers(
        server: ChatServer, irc: IrcFactory) -> None:
    """A private or secret channel is 403 to those outside it for MODE #room, and
    so for its ban list: no nick, setter or time of its bans reaches them."""
    alice, bob = await irc("alice"), await irc("bob")
    await server.services.accounts.create("dave", "dave-pw")
    for name, mode in (("#p", "+i"), ("#s", "+s")):
        await _room(alice, name=name)
        alice.send(f"MODE {name} {mode}", f"MODE {name} +b dave")
        assert (await alice.expect("MODE")).params[1].startswith(mode)
        assert (await alice.expect("MODE")).params == (name, "+b", "dave!*@*")
        for query in ("b", "+b"):
            bob.send(f"MODE {name} {query}")
            refused = await bob.expect("403", "367", "368")
            assert (refused.command, refused.params[1]) == ("403", name)
    # A channel anyone sees lists its bans to anyone, as before.
    await _room(alice, name="#o")
    alice.send("MODE #o +b dave")
    await alice.expect("MODE")
    bob.send("MODE #o b")
    assert (await bob.expect("367")).params[1:3] == ("#o", "dave!*@*")


async def test_a_hidden_channel_is_403_to_strangers_whatever_they_ask(
        server: ChatServer, irc: IrcFactory) -> None:
    """KICK, INVITE and a MODE change from outside a private or secret channel are
    403, as MODE #room and TOPIC are: 482 or 442 would tell a stranger it exists."""
    alice, bob = await irc("alice"), await irc("bob")
    for name, mode in (("#p", "+i"), ("#s", "+s")):
        await _room(alice, name=name)
        alice.send(f"MODE {name} {mode}")
        assert (await alice.expect("MODE")).params[1].startswith(mode)
        for line in (f"KICK {name} alice", f"INVITE alice {name}", f"MODE {name} +m",
                     f"TOPIC {name} :mine"):
            bob.send(line)
            refused = await bob.expect("403", "482", "442", "443")
            assert (refused.command, refused.params[1]) == ("403", name), line
    # In a channel anyone sees, the stranger learns what it may not do, as before.
    await _room(alice, name="#o")
    bob.send("KICK #o alice")
    assert (await bob.expect("403", "482", "442")).command in ("482", "442")


async def test_ban_of_a_non_member_is_not_a_kick(server: ChatServer, irc: IrcFactory) -> None:
    alice = await irc("alice")
    await _room(alice)
    await server.services.accounts.create("dave", "dave-pw")
    alice.send("MODE #m +b dave")
    assert (await alice.expect("MODE")).params == ("#m", "+b", "dave!*@*")
    alice.send("PING done")
    assert (await alice.expect("PONG", "KICK")).command == "PONG"


async def test_private_and_request_modes(server: ChatServer, irc: IrcFactory,
                                         clients: Clients) -> None:
    alice = await irc("alice")
    await _room(alice)
    room = server.services.rooms.find("m")
    assert room is not None
    alice.send("MODE #m +R")
    assert (await alice.expect("MODE")).params == ("#m", "+R-i")
    assert room.mode is Mode.REQUEST
    bob = await irc("bob")
    bob.send("JOIN #m")
    notice = await bob.expect("NOTICE")
    assert "your request is filed" in notice.params[1]
    request = await alice.expect("NOTICE")
    assert request.params == ("#m", "bob asks to join #m")
    alice.send("MODE #m -i")  # not private: nothing changes
    alice.send("MODE #m +i")
    assert (await alice.expect("MODE")).params == ("#m", "+i-R")
    assert room.mode is Mode.PRIVATE
    alice.send("MODE #m")
    assert (await alice.expect("324")).params[2] == "+nti"
    alice.send("MODE #m -i+nt")
    assert (await alice.expect("MODE")).params == ("#m", "-iR")
    assert room.mode is Mode.OPEN
    line = await clients.user("carol")
    await line.command("/join m")
    await line.command("/mode private m", check=False)  # carol is no owner
    alice.send("MODE #m +x", "MODE alice", "MODE bob +i")
    assert (await alice.expect("472")).params[1] == "x"
    await alice.expect("221")
    await alice.expect("502")


async def test_mode_from_the_line_protocol_reaches_irc(irc: IrcFactory,
                                                       clients: Clients) -> None:
    owner = await clients.user("owner")
    await owner.command("/create lp")
    bob = await irc("bob")
    bob.send("JOIN #lp")
    await bob.expect("366")
    await owner.command("/mode private lp")
    assert (await bob.expect("MODE")).params == ("#lp", "+i-R")
    await owner.command("/promote bob lp")
    change = await bob.expect("MODE")
    assert change.source == "owner!owner@chatd.local" and change.params == ("#lp", "+o", "bob")


async def test_modes_of_another_nick_are_502_and_of_no_one_401(irc: IrcFactory) -> None:
    """The modern client protocol: MODE of a nick that does not exist is 401
    ERR_NOSUCHNICK; of another user's, 502 ERR_USERSDONTMATCH."""
    bob = await irc("bob")
    await irc("carol")
    bob.send("MODE carol", "MODE nobody", "MODE nobody +i")
    assert (await bob.read()).command == "502"
    assert (await bob.read()).params[1:] == ("nobody", "No such nick/channel")
    assert (await bob.read()).params[1:] == ("nobody", "No such nick/channel")


async def test_user_modes(irc: IrcFactory) -> None:
    bob = await irc("bob")
    bob.send("MODE bob")
    assert (await bob.expect("221")).params == ("bob", "+")
    bob.send("MODE bob +iwx")
    assert await bob.raw() == ":bob!bob@chatd.local MODE bob +iw"
    assert (await bob.expect("501")).command == "501"
    bob.send("MODE bob -w+o")
    assert await bob.raw() == ":bob!bob@chatd.local MODE bob -w"
    bob.send("MODE bob")
    assert (await bob.expect("221")).params == ("bob", "+i")


async def test_minus_i_queued_behind_a_change_to_request_leaves_it(
        server: ChatServer, irc: IrcFactory, clients: Clients) -> None:
    """-i opens a private room; decided when it runs, under the room's lock, not
    from the mode it saw when it arrived: a change to request made meanwhile (here
    from the owner's other connection) stays."""
    alice = await irc("alice")
    await _room(alice)
    alice.send("MODE #m +i")
    await alice.expect("MODE")
    room = server.services.rooms.require("m")
    line = await clients.user("alice")
    async with holding(server, room) as queued:
        request = asyncio.create_task(line.command("/mode request m"))
        await queued(1)
        alice.send("MODE #m -i")
        await queued(2)
    await request
    alice.send("MODE #m")
    assert (await alice.expect("324")).params[2] == "+ntR"
    assert room.mode is Mode.REQUEST


async def test_minus_i_plus_r_is_one_change_a_join_behind_it_finds_request(
        server: ChatServer, irc: IrcFactory, clients: Clients) -> None:
    """MODE -i+R takes a private room to request without opening it on the way."""
    alice = await irc("alice")
    await _room(alice)
    alice.send("MODE #m +i")
    await alice.expect("MODE")
    room = server.services.rooms.require("m")
    outsider = await clients.user("outsider")
    async with holding(server, room) as queued:
        alice.send("MODE #m -i+R")
        await queued(1)
        joining = asyncio.create_task(outsider.command("/join m"))
        await queued(2)
    assert (await joining)["requested"] is True
    assert (await alice.expect("MODE")).params == ("#m", "+R-i")
    assert room.mode is Mode.REQUEST and not room.is_member(outsider_id(server))


def outsider_id(server: ChatServer) -> int:
    return server.services.accounts.require("outsider").id


async def test_a_host_mask_that_names_one_member_bans_that_member(irc: IrcFactory) -> None:
    """irssi's /ban nick sends MODE +b *!*user@host, WeeChat's *!user@host, from the
    masks they were shown: a mask matching exactly one member of the channel bans
    that member (shown as the ban chatd keeps, nick!*@*); one matching several is
    refused, as a ban names one user."""
    alice, bob = await irc("alice"), await irc("bob")
    await _room(alice, bob)
    alice.send("MODE #m +b *!*@chatd.local")
    refused = await alice.expect("400")
    assert refused.params[1:] == ("MODE", "*!*@chatd.local matches 2 members of #m: a ban "
                                  "names one user: +b nick")
    alice.send("MODE #m +b *!*bob@chatd.local")
    assert (await bob.expect("MODE")).params == ("#m", "+b", "bob!*@*")
    assert (await bob.expect("KICK")).params[:2] == ("#m", "bob")
    assert (await alice.expect("MODE")).params == ("#m", "+b", "bob!*@*")
    alice.send("MODE #m -b bob!*@*", "MODE #m +b *!BOB@*")  # WeeChat's, any case
    assert (await alice.expect("MODE")).params == ("#m", "-b", "bob!*@*")
    assert (await alice.expect("400", "MODE")).params[1] == "MODE"  # bob is gone: no match


async def test_a_role_the_nick_has_already_is_no_error(server: ChatServer,
                                                       irc: IrcFactory) -> None:
    # "MODE #m +v bob" of a voiced bob was "400 ... only a member can be voiced":
    # as other servers do, a mode the nick has already changes nothing, silently.
    alice, bob, carol = await irc("alice"), await irc("bob"), await irc("carol")
    await _room(alice, bob, carol)
    alice.send("MODE #m +v bob", "MODE #m +o carol")
    assert (await alice.expect("MODE")).params == ("#m", "+v", "bob")
    assert (await alice.expect("MODE")).params == ("#m", "+o", "carol")
    alice.send("MODE #m +v bob", "MODE #m +o carol", "MODE #m -v dave", "PING :done")
    answered = await alice.until("PONG")
    assert [m.command for m in answered] == ["401", "PONG"]  # dave: no such nick
    alice.send("MODE #m -v bob", "MODE #m -v bob", "MODE #m -o carol", "MODE #m -o carol",
               "PING :done")
    shown = [m for m in await alice.until("PONG") if m.command != "PONG"]
    assert [m.params for m in shown] == [("#m", "-v", "bob"), ("#m", "-o", "carol")]
    room = server.services.rooms.find("m")
    assert room is not None
    assert room.role_of(server.services.accounts.require("bob").id) is Role.MEMBER


async def test_voicing_an_operator_is_no_error(server: ChatServer, irc: IrcFactory) -> None:
    # "MODE #m +v carol" of an operator was "400 ... only a member can be voiced" (and
    # an op voicing the owner, or itself, 482): a "voice everyone" script meets every
    # op. An op speaks in a +m channel already, so +v and -v of one change nothing,
    # silently, as of a nick that has the voice already; bob's +v beside it applies.
    alice, bob, carol = await irc("alice"), await irc("bob"), await irc("carol")
    await _room(alice, bob, carol)
    alice.send("MODE #m +o carol")
    assert (await alice.expect("MODE")).params == ("#m", "+o", "carol")
    assert (await carol.expect("MODE")).params == ("#m", "+o", "carol")
    alice.send("MODE #m +v carol", "MODE #m -v carol", "MODE #m +v alice", "PING :done")
    assert [m.command for m in await alice.until("PONG")] == ["PONG"]
    carol.send("MODE #m +vvv alice carol bob", "MODE #m -v alice", "PING :done")
    # (the NOTICE of carol's promotion may come among them)
    shown = [m for m in await carol.until("PONG") if m.command not in ("PONG", "NOTICE")]
    assert [m.params for m in shown] == [("#m", "+v", "bob")]
    room = server.services.rooms.find("m")
    assert room is not None
    roles = {name: room.role_of(server.services.accounts.require(name).id)
             for name in ("alice", "bob", "carol")}
    assert roles == {"alice": Role.OWNER, "bob": Role.VOICE, "carol": Role.ADMIN}
