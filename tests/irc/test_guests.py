"""Guests (accounts.guests): a free nick, open rooms, and nothing kept but messages
and audit entries."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import commands
from chatd.client.api import ChatClient
from chatd.domain import hashing
from chatd.domain.clock import ManualClock
from chatd.domain.room import Mode, Role, Room
from chatd.domain.transactions import LocalTransactions
from chatd.protocol.params import UserOrGuest, UserRef
from tests.helpers import PASSWORD, ChatServer, Clients, error_of, eventually, holding
from tests.irc.conftest import IrcFactory
from tests.irc.helpers import IrcClient

GUESTS = pytest.mark.server(accounts__guests=True)


async def _guest(irc: IrcFactory, nick: str) -> IrcClient:
    client = await irc()
    await client.register(nick)
    return client


async def test_without_the_switch_a_nick_alone_is_refused(irc: IrcFactory) -> None:
    client = await irc()
    client.send("NICK visitor", "USER v 0 * :V")
    assert any(" 464 " in line for line in await client.closed())


@GUESTS
async def test_a_guest_uses_open_rooms_and_only_messages_and_audit_persist(
        server: ChatServer, irc: IrcFactory, clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    visitor = await _guest(irc, "visitor")
    visitor.send("JOIN #general")
    assert (await visitor.expect("353")).params[3] == "@alice visitor"
    assert (await alice.next_event(lambda e: e.get("event") == "join"))["user"] == "visitor"
    visitor.send("PRIVMSG #general :hello, I am passing by")
    got = await alice.next_event(lambda e: e.get("type") == "message")
    assert got["from"] == "visitor" and got["text"] == "hello, I am passing by"
    await alice.say("welcome")
    assert (await visitor.expect("PRIVMSG")).params == ("#general", "welcome")
    visitor.send("QUIT")
    left = await alice.next_event(lambda e: e.get("event") == "leave")
    assert left["user"] == "visitor" and left["reason"] == "Quit: Client Quit"
    storage = server.services.storage
    await server.services.writer.flush()
    history = await alice.command("/history general")
    assert [(m["from"], m["text"]) for m in history["messages"]] == [
        ("visitor", "hello, I am passing by"), ("alice", "welcome")]
    assert await storage.get_user_by_name("visitor") is None
    assert {m.user_id for m in await storage.load_members()} == {
        server.services.accounts.require("alice").id}
    assert {e.action for e in await server.services.audit.entries(50)
            if e.actor == "visitor"} >= {"login", "join", "leave"}
    room = server.services.rooms.find("general")
    assert room is not None and len(room.members) == 1 \
        and len(server.services.bus.in_room(room)) == 1


@GUESTS
async def test_a_guest_cannot_create_or_enter_closed_rooms(server: ChatServer,
                                                           irc: IrcFactory) -> None:
    owner = await irc("owner")
    owner.send("JOIN #private,#request,#open", "MODE #private +i", "MODE #request +R")
    await owner.expect("MODE")
    await owner.expect("MODE")
    visitor = await _guest(irc, "visitor")
    visitor.send("JOIN #private,#request,#brandnew", "INVITE owner #open",
                 "INVITE owner #private")
    assert (await visitor.expect("473")).params[1] == "#private"
    assert (await visitor.expect("477")).params[1] == "#request"
    assert (await visitor.expect("403")).params[1] == "#brandnew"
    assert (await visitor.expect("400")).params[1] == "INVITE"
    # A private room is no channel to a stranger, whatever it asks of it.
    assert (await visitor.expect("403")).params[1] == "#private"
    assert server.services.rooms.find("brandnew") is None


@GUESTS
async def test_a_guest_needs_a_free_nick(server: ChatServer, irc: IrcFactory) -> None:
    await server.services.accounts.create("alice", "alice-pw")
    first = await _guest(irc, "visitor")
    client = await irc()
    client.send("NICK alice", "USER a 0 * :A")
    assert (await client.expect("433")).params[1] == "alice"
    client.send("NICK Visitor")
    assert (await client.expect("433")).params[1] == "Visitor"
    client.send("NICK other")
    assert (await client.expect("001")).params[0] == "other"
    await first.close()


@GUESTS
async def test_no_one_takes_the_nick_of_an_irc_service(irc: IrcFactory, clients: Clients) -> None:
    """chatd runs no services, yet IRC clients send passwords to NickServ out of
    habit: a guest or an account named so would collect them."""
    client = await irc()
    client.send("NICK NickServ", "USER n 0 * :N")
    assert (await client.expect("433")).params[1] == "NickServ"
    client.send("NICK visitor")
    await client.expect("001")
    client.send("NICK chanserv")
    assert (await client.expect("433")).params[1:] == ("chanserv", "Nickname is already in use")
    client.send("PRIVMSG NickServ :IDENTIFY visitor hunter2")
    assert (await client.expect("401")).params[1] == "NickServ"
    newcomer = await clients.anonymous()
    refused = await newcomer.command("/register nickserv some-password", check=False)
    assert refused.final["code"] == "name-taken" and "IRC services" in refused.final["message"]


@GUESTS
async def test_numerics_before_registration_address_the_client_by_an_accepted_nick_or_star(
        server: ChatServer, irc: IrcFactory) -> None:
    await server.services.accounts.create("alice", "alice-pw")
    client = await irc()
    client.send("NICK <b>x")
    assert await client.raw() == ":chatd.local 432 * <b>x :Erroneous nickname"
    # A nick refused when registration would complete is not the client's: "*".
    client.send("NICK alice", "USER a 0 * :A")
    assert await client.raw() == ":chatd.local 433 * alice :Nickname is already in use"
    client.send("NICK 9abc!")
    assert await client.raw() == ":chatd.local 432 * 9abc! :Erroneous nickname"
    client.send("NICK guest9")
    assert (await client.expect("001")).params[0] == "guest9"
    # A nick accepted before registration addresses the client, as on other servers.
    late = await irc()
    late.send("NICK 9abc", "NICK <b>x")
    assert await late.raw() == ":chatd.local 432 9abc <b>x :Erroneous nickname"


@GUESTS
async def test_a_guest_nick_follows_the_user_name_rule(irc: IrcFactory) -> None:
    """RFC 2812 nicks may hold [ ] \\ ` ^ { | }; a guest's nick is a chatd user name
    (letters, digits, _ and -), for the line protocol names guests by that rule
    (/kick, /ban) and name[bot] must stay a webhook's alone (IRC.md section 3)."""
    client = await irc()
    for nick in ("deploy[bot]", "bob|away", "bob^", "{bob}", "bob`", "bob\\"):
        client.send(f"NICK {nick}")
        assert (await client.expect("432")).params[1:] == (nick, "Erroneous nickname")
    client.send("NICK bob_away-2", "USER b 0 * :B")
    assert (await client.expect("001")).params[0] == "bob_away-2"


@GUESTS
async def test_guests_are_kicked_and_banned_by_room_admins(server: ChatServer,
                                                           irc: IrcFactory) -> None:
    owner = await irc("owner")
    owner.send("JOIN #hall")
    await owner.expect("366")
    visitor = await _guest(irc, "visitor")
    visitor.send("JOIN #hall")
    await visitor.expect("366")
    owner.send("MODE #hall +o visitor", "INVITE visitor #hall", "KICK #hall visitor :out")
    assert (await owner.expect("400")).params[2] == "guests cannot be room admins"
    assert (await owner.expect("400")).params[1] == "INVITE"
    assert (await visitor.expect("KICK")).params == ("#hall", "visitor", "out")
    visitor.send("JOIN #hall")
    await visitor.expect("366")
    owner.send("MODE #hall +b visitor")
    assert (await visitor.expect("MODE")).params == ("#hall", "+b", "visitor!*@*")
    assert (await visitor.expect("KICK")).params[:2] == ("#hall", "visitor")
    visitor.send("JOIN #hall")
    await visitor.expect("474")
    # The ban holds the address too: a new nick from there is refused as well.
    await visitor.close()
    again = await _guest(irc, "newname")
    again.send("JOIN #hall")
    await again.expect("474")
    owner.send("MODE #hall b")
    assert (await owner.expect("367")).params[1:4] == ("#hall", "visitor!*@*", "owner")
    owner.send("MODE #hall -b visitor")
    assert (await owner.expect("MODE")).params == ("#hall", "-b", "visitor!*@*")
    again.send("JOIN #hall")
    await again.expect("366")
    assert await server.services.storage.load_sanctions("ban") == []


@pytest.mark.server(accounts__guests=True, limits__message_rate=0.001,
                    limits__message_burst=2)
async def test_a_guest_connecting_again_finds_its_address_s_message_bucket_as_it_left_it(
        server: ChatServer, clock: ManualClock, irc: IrcFactory, clients: Clients) -> None:
    """A guest is new at each connection: with a bucket of its own, each reconnection
    (and each guest opened beside it) had a full burst again. Its address's bucket
    is shared by the guests from there; an account's stays its own."""
    alice = await clients.user("alice")
    await alice.command("/create hall")
    first = await _guest(irc, "first")
    first.send("JOIN #hall", "PRIVMSG #hall :one", "PRIVMSG #hall :two")
    for text in ("one", "two"):
        assert (await alice.next_event(lambda e: e.get("type") == "message"))["text"] == text
    await first.close()
    second = await _guest(irc, "second")
    await _guest(irc, "beside")  # connected at once from the same address
    assert server.irc is not None
    guests, protection = server.irc.front.guests, server.services.protection
    for nick in ("second", "beside"):
        user = guests.find(nick)
        assert user is not None and protection.message_wait(user, None) > 0, nick
    assert protection.message_wait(server.services.accounts.require("alice"), None) == 0
    # It waits for the token the address gets back, as any message over the rate.
    second.send("JOIN #hall", "PRIVMSG #hall :three")
    await second.expect("366")
    clock.advance(1000)
    assert (await alice.next_event(lambda e: e.get("type") == "message"))["text"] == "three"


@GUESTS
async def test_a_banned_guest_cannot_send_to_a_room_that_takes_outside_messages(
        irc: IrcFactory, clients: Clients) -> None:
    """A -n room takes messages from outside, but not from those it bans: a guest
    banned by nick, or by address under another nick, gets 404 as an account does."""
    alice = await clients.user("alice")
    await alice.command("/create hall")
    await alice.command("/mode -n")
    visitor = await _guest(irc, "visitor")
    visitor.send("JOIN #hall")
    await visitor.expect("366")
    await alice.command("/ban visitor")
    visitor.send("PRIVMSG #hall :still here")
    assert (await visitor.expect("404")).params[1:] == ("#hall", "you are banned from #hall.")
    visitor.send("NICK other", "PRIVMSG #hall :under another nick")
    assert (await visitor.expect("404")).params[1] == "#hall"
    # (A guest from the same address is banned too: an account shows what goes through.)
    bob = await irc("bob")
    bob.send("PRIVMSG #hall :welcome from outside")
    got = await alice.next_event(lambda e: e.get("type") == "message")
    assert (got["from"], got["text"]) == ("bob", "welcome from outside")


@GUESTS
async def test_a_guest_left_last_in_a_room_is_told_it_ended(irc: IrcFactory,
                                                            clients: Clients) -> None:
    """The owner leaves a guest alone in the room: the room ends and takes the guest
    out, whose client sees it PART, as an account's does, not a channel it is
    still shown in."""
    alice = await clients.user("alice")
    await alice.command("/create hall")
    visitor = await _guest(irc, "visitor")
    visitor.send("JOIN #hall")
    await visitor.expect("366")
    await alice.command("/leave hall")
    left = await visitor.expect("PART")
    assert (left.source or "").startswith("alice!") and left.params == ("#hall",)
    ended = await visitor.expect("PART")
    assert (ended.source or "").startswith("visitor!")
    assert ended.params == ("#hall", "#hall was terminated")


async def _refused(client: ChatClient, line: str, code: str, *words: str) -> None:
    """``line`` is refused with ``code``, in a sentence holding ``words``."""
    reply = await client.command(line, check=False)
    assert reply["code"] == code, reply.final
    assert all(word in reply["message"] for word in words), reply.final


@GUESTS
async def test_line_protocol_commands_find_a_guest_and_act_on_it_as_irc_does(
        server: ChatServer, irc: IrcFactory, clients: Clients) -> None:
    """/whois, /kick, /ban and the rest name a guest online as IRC's commands do:
    what can be done to a user without an account is done (as KICK and MODE +b do
    it), the rest refused with not-permitted, saying why; never no-such-user."""
    alice = await clients.user("alice")
    await alice.command("/create general")
    await alice.command("/create attic")
    bob = await clients.user("bob")
    await bob.command("/join general")
    visitor = await _guest(irc, "visitor")
    guest = server.services.accounts.guest("visitor")
    assert guest is not None
    visitor.send("JOIN #general,#attic", "AWAY :looking around")
    await visitor.expect("306")
    await alice.command("/mode +s attic")
    whois = await bob.command("/whois visitor")
    assert (whois["user"], whois["guest"], whois["online"], whois["away"]) == (
        "visitor", True, True, "looking around")
    # Its rooms as far as the asker sees them: #attic is secret.
    assert whois["rooms"] == ["general"] and not whois["admin"] and not whois["bot"]
    assert "IRC guest" in whois["message"]
    assert (await alice.command("/whois visitor"))["rooms"] == ["attic", "general"]
    assert (await alice.command("/whois bob"))["guest"] is False

    # A room admin kicks it (a plain member may not); it is told by its KICK alone.
    await _refused(bob, "/kick visitor general", "not-permitted", "admin")
    await alice.command("/kick visitor general not now")
    assert (await visitor.expect("KICK")).params == ("#general", "visitor", "not now")
    visitor.send("JOIN #general")
    assert "NOTICE" not in [m.command for m in await visitor.until("366")]
    # What needs an account is refused as such.
    await _refused(alice, "/mute visitor general", "not-permitted", "IRC guest", "mute")
    await _refused(alice, "/invite visitor attic", "not-permitted", "IRC guest")
    await _refused(alice, "/promote visitor general", "not-permitted", "room admins")
    await _refused(alice, "/transfer visitor general", "not-permitted", "IRC guest")
    await alice.command("/voice visitor general")
    assert (await visitor.expect("MODE")).params == ("#general", "+v", "visitor")
    await alice.command("/mode -v visitor general")
    assert (await visitor.expect("MODE")).params == ("#general", "-v", "visitor")
    await _refused(alice, "/unban visitor general", "bad-arguments", "not banned")

    # A ban is IRC's MODE +b of a guest: its nick and its address, until lifted.
    reply = await alice.command("/ban visitor general spam")
    assert (reply["user"], reply["until"]) == ("visitor", None)
    assert (await visitor.expect("MODE")).params == ("#general", "+b", "visitor!*@*")
    assert (await visitor.expect("KICK")).params == ("#general", "visitor", "spam")
    visitor.send("JOIN #general")
    await visitor.expect("474")
    await visitor.close()
    await eventually(lambda: server.services.accounts.guest("visitor") is None)
    again = await _guest(irc, "wanderer")
    again.send("JOIN #general")
    await again.expect("474")
    # Gone, it is still unbanned by its nick, as with MODE -b; then it is nobody.
    await alice.command("/unban visitor general")
    again.send("JOIN #general")
    await again.expect("366")
    await _refused(alice, "/unban visitor general", "no-such-user")
    await _refused(alice, "/whois visitor", "no-such-user")
    storage = server.services.storage
    assert await storage.load_sanctions("ban") == []
    assert await storage.list_notifications(guest.id) == []


@GUESTS
async def test_a_guest_ban_with_a_duration_holds_until_it_runs_out(
        server: ChatServer, irc: IrcFactory, clients: Clients) -> None:
    clock = server.clock
    assert isinstance(clock, ManualClock)
    alice = await clients.user("alice")
    await alice.command("/create general")
    visitor = await _guest(irc, "visitor")
    visitor.send("JOIN #general")
    await visitor.expect("366")
    reply = await alice.command("/ban visitor general 10m spam")
    assert (reply["user"], reply["until"]) == ("visitor", clock.time() + 600)
    assert (await visitor.expect("KICK")).params == ("#general", "visitor", "spam")
    visitor.send("JOIN #general")
    await visitor.expect("474")
    clock.advance(599)
    visitor.send("JOIN #general")
    await visitor.expect("474")
    clock.advance(1)
    # Run out, it holds nobody, is listed nowhere and has nothing left to lift.
    visitor.send("JOIN #general")
    await visitor.expect("366")
    await _refused(alice, "/unban visitor general", "bad-arguments", "not banned")
    assert server.irc is not None
    assert server.irc.front.guests.bans(server.services.rooms.require("general")) == []


@GUESTS
async def test_direct_messages_with_a_guest(server: ChatServer, irc: IrcFactory,
                                            clients: Clients) -> None:
    alice = await clients.user("alice")
    bob = await irc("bob")
    visitor = await _guest(irc, "visitor")
    bob.send("PRIVMSG visitor :hi guest")
    dm = await visitor.expect("PRIVMSG")
    assert dm.source == "bob!bob@chatd.local" and dm.params == ("visitor", "hi guest")
    visitor.send("PRIVMSG alice :hi alice", "WHOIS visitor")
    got = await alice.next_event(lambda e: e.get("type") == "message")
    assert got["from"] == "visitor" and got["to"] == "alice"
    whois = {m.command: m.params for m in await visitor.until("318")}
    assert whois["311"][2] == "visitor" and "330" not in whois
    # Guests are reachable over IRC only: the refusal says so, rather than
    # denying that a user seen in the room exists.
    reply = await alice.command("/msg visitor hello", check=False)
    assert reply["code"] == "not-permitted"
    assert "visitor is an IRC guest" in reply["message"] and "PRIVMSG" in reply["message"]
    reply = await alice.command("/emsg @visitor AAAA", check=False)
    assert reply["code"] == "not-permitted" and "IRC guest" in reply["message"]
    reply = await alice.command("/msg nobody hello", check=False)
    assert reply["code"] == "no-such-user"


@GUESTS
async def test_who_shows_a_connected_guest_online_before_and_after_a_nick_change(
        irc: IrcFactory, clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    visitor = await _guest(irc, "visitor")
    visitor.send("JOIN #general")
    await visitor.expect("366")

    async def online() -> dict[str, bool]:
        who = await alice.command("/who general")
        return {m["user"]: m["online"] for m in who["members"]}

    assert await online() == {"alice": True, "visitor": True}
    visitor.send("NICK wanderer")
    await visitor.expect("NICK")
    assert await online() == {"alice": True, "wanderer": True}
    visitor.send("QUIT")
    await alice.next_event(lambda e: e.get("event") == "leave")
    assert await online() == {"alice": True}


@GUESTS
async def test_a_guest_in_a_room_going_private_is_still_listed(server: ChatServer,
                                                               irc: IrcFactory) -> None:
    owner = await irc("owner")
    owner.send("JOIN #r")
    await owner.expect("366")
    visitor = await _guest(irc, "visitor")
    visitor.send("JOIN #r")
    await visitor.expect("366")
    room = server.services.rooms.find("r")
    assert room is not None
    await server.services.moderation.set_mode(server.services.accounts.require("owner"), room,
                                              Mode.PRIVATE)
    visitor.send("NAMES #r", "WHOIS visitor")
    assert (await visitor.expect("353")).params[3] == "@owner visitor"
    assert (await visitor.expect("319")).params[2] == "#r"


def _room_lock(server: ChatServer) -> LocalTransactions:
    """The room transactions of the test server (this process's locks), whose
    queue a test watches to line decisions up."""
    transactions = server.services.transactions
    assert isinstance(transactions, LocalTransactions)
    return transactions


async def _hall(server: ChatServer, irc: IrcFactory) -> tuple[IrcClient, Room]:
    owner = await irc("owner")
    owner.send("JOIN #hall")
    await owner.expect("366")
    room = server.services.rooms.find("hall")
    assert room is not None
    return owner, room


@GUESTS
async def test_a_guest_join_queued_behind_a_mode_change_is_decided_after_it(
        server: ChatServer, irc: IrcFactory) -> None:
    """A guest's JOIN is checked in the room's lock: a MODE +i queued before it (both
    waiting for a decision that holds the room, as a ban writing its row) applies
    to it."""
    owner, room = await _hall(server, irc)
    visitor = await _guest(irc, "visitor")
    transactions = _room_lock(server)
    async with transactions.room(room):
        owner.send("MODE #hall +i")
        await eventually(lambda: transactions.queued(room) == 1)
        visitor.send("JOIN #hall")
        await eventually(lambda: transactions.queued(room) == 2)
    assert (await visitor.expect("473", "366")).command == "473"
    guest = server.irc.front.guests.find("visitor") if server.irc else None
    assert guest is not None and not room.is_member(guest.id)
    owner.send("NAMES #hall")
    assert (await owner.expect("353")).params[3] == "@owner"


@GUESTS
async def test_a_guest_gone_while_its_join_waited_is_not_left_in_the_room(
        server: ChatServer, irc: IrcFactory, caplog: pytest.LogCaptureFixture) -> None:
    """The connection of a guest ends while its JOIN waits for the room: the JOIN
    adds nobody, and ends quietly (the disconnection took the guest out of the
    rooms it was in then; nothing would take it out of this one, and a new guest
    with its nick would be listed twice)."""
    owner, room = await _hall(server, irc)
    assert server.irc is not None
    guests = server.irc.front.guests
    ghost = await _guest(irc, "ghost")
    transactions = _room_lock(server)
    async with transactions.room(room):
        ghost.send("JOIN #hall")
        await eventually(lambda: transactions.queued(room) == 1)
        ghost.reset()
        await eventually(lambda: guests.find("ghost") is None)
    again = await _guest(irc, "ghost")
    again.send("JOIN #hall")
    assert (await again.expect("353")).params[3] == "@owner ghost"
    owner.send("NAMES #hall")
    assert (await owner.expect("353")).params[3] == "@owner ghost"
    assert len(room.members) == 2 and len(server.services.bus.in_room(room)) == 2
    assert not [r.message for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.server(accounts__guests=True, rooms__creation="everyone")
async def test_a_guest_gone_while_its_channel_was_made_does_not_own_it(
        server: ChatServer, irc: IrcFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection of a guest ends while its JOIN #new stores the room: the guest
    leaves it as its disconnection would have (the room, left empty, ends), not
    its owner for good."""
    assert server.irc is not None
    guests, storage = server.irc.front.guests, server.services.storage
    storing, stored = asyncio.Event(), asyncio.Event()
    create = storage.create_unowned_room
    join: list[asyncio.Task[Any]] = []

    async def slow_create(*args: Any) -> Any:
        task = asyncio.current_task()  # the connection's command: its JOIN
        assert task is not None
        join.append(task)
        storing.set()
        await stored.wait()
        return await create(*args)

    monkeypatch.setattr(storage, "create_unowned_room", slow_create)
    ghost = await _guest(irc, "ghost")
    ghost.send("JOIN #new")
    await storing.wait()
    ghost.reset()
    await eventually(lambda: guests.find("ghost") is None)
    stored.set()
    await asyncio.wait(join)
    assert server.services.rooms.find("new") is None
    owner = await irc("owner")
    owner.send("JOIN #new")
    assert (await owner.expect("353")).params[3] == "@owner"


@GUESTS
async def test_no_account_takes_the_name_of_a_guest_online(server: ChatServer, irc: IrcFactory,
                                                           clients: Clients) -> None:
    """Every way an account is made refuses the name of a guest online (in any case):
    two users would answer to it (KICK, WHOIS, the members of a room)."""
    assert server.irc is not None
    guests = server.irc.front.guests
    await server.services.accounts.create("root", PASSWORD, is_admin=True)
    visitor = await _guest(irc, "visitor")
    newcomer = await clients.anonymous()
    for name in ("visitor", "VISITOR"):
        taken = await error_of(newcomer, f"/register {name} {PASSWORD}")
        assert taken["code"] == "name-taken" and "guest" in taken["message"]
    root = await clients.user("root")
    for line in (f"/useradd visitor {PASSWORD}", "/bot create Visitor"):
        assert (await error_of(root, line))["code"] == "name-taken"
    assert server.services.accounts.find("visitor") is None
    visitor.send("QUIT")
    await visitor.closed()
    await eventually(lambda: guests.find("visitor") is None)
    await newcomer.command(f"/register visitor {PASSWORD}")


@GUESTS
async def test_a_guest_cannot_take_a_name_while_its_account_is_being_made(
        server: ChatServer, irc: IrcFactory, clients: Clients,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """From the check of a new account's name to its arrival (the bcrypt hash and
    the write between), no guest takes the name, by registering or by NICK."""
    other = await _guest(irc, "other")
    hashing_started, hashed = asyncio.Event(), asyncio.Event()
    make = hashing.make

    async def slow_make(*args: Any) -> bytes:
        hashing_started.set()
        await hashed.wait()
        return await make(*args)

    monkeypatch.setattr(hashing, "make", slow_make)
    newcomer = await clients.anonymous()
    registering = asyncio.ensure_future(newcomer.command(f"/register visitor {PASSWORD}"))
    await hashing_started.wait()
    client = await irc()
    client.send("NICK visitor", "USER v 0 * :V")
    assert (await client.expect("433", "001")).params[1] == "visitor"
    other.send("NICK Visitor")
    assert (await other.expect("433", "NICK")).params[1] == "Visitor"
    hashed.set()
    assert (await registering).ok
    client.send("NICK guest2")
    assert (await client.expect("001")).params[0] == "guest2"


@GUESTS
async def test_commands_that_take_accounts_only_say_a_guest_has_none(
        irc: IrcFactory, clients: Clients) -> None:
    # /block, /userdel, /keys and the like act on accounts: a guest's name, visibly in
    # use, is refused as such rather than answered "no such user".
    alice = await clients.user("alice")
    await _guest(irc, "visitor")
    for line in ("/block visitor", "/unblock visitor", "/accept visitor general",
                 "/keys get visitor"):
        await _refused(alice, line, "not-permitted", "IRC guest, without an account")
    refused = await alice.command("/block nobody", check=False)
    assert refused["code"] == "no-such-user"


async def _general_with_guest(server: ChatServer, irc: IrcFactory, clients: Clients
                              ) -> tuple[ChatClient, ChatClient, IrcClient, Room]:
    """#general: alice its owner, bob an admin, and the guest visitor a member."""
    alice = await clients.user("alice")
    await alice.command("/create general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    await alice.command("/promote bob general")
    visitor = await _guest(irc, "visitor")
    visitor.send("JOIN #general")
    await visitor.expect("366")
    await alice.next_event(lambda e: e.get("event") == "join" and e["user"] == "visitor")
    return alice, bob, visitor, server.services.rooms.require("general")


async def _events_until_said(speaker: ChatClient, listener: ChatClient, text: str
                             ) -> list[dict[str, Any]]:
    """The events ``listener`` receives up to ``speaker``'s message ``text`` (a marker)."""
    await speaker.say(text)
    seen = []
    while (event := await listener.next_event())["type"] != "message" or event["text"] != text:
        seen.append(event)
    return seen


@GUESTS
async def test_a_guest_ban_refused_behind_a_demotion_leaves_nothing_done(
        server: ChatServer, irc: IrcFactory, clients: Clients) -> None:
    """bob's /ban of a guest waits for the room behind his demotion: it is refused
    there, and leaves no ban (no entry, no event, the guest still in and let in
    again)."""
    alice, bob, visitor, room = await _general_with_guest(server, irc, clients)
    async with holding(server, room) as queued:
        demoting = asyncio.create_task(alice.command("/demote bob general"))
        await queued(1)
        banning = asyncio.create_task(bob.command("/ban visitor general", check=False))
        await queued(2)
    assert (await demoting).ok
    refused = (await banning).final
    assert refused["code"] == "not-permitted" and "can ban" in refused["message"], refused
    assert server.irc is not None and server.irc.front.guests.bans(room) == []
    guest = server.services.accounts.guest("visitor")
    assert guest is not None and room.is_member(guest.id)
    assert "ban" not in [e.get("event") for e in await _events_until_said(bob, alice, "mark")]
    assert [m.params for m in await visitor.until("PRIVMSG") if m.command == "MODE"] == [
        ("#general", "-o", "bob")]
    visitor.send("PART #general", "JOIN #general")
    assert (await visitor.expect("366", "474")).command == "366"
    visitor.send("MODE #general b")
    assert (await visitor.expect("367", "368")).command == "368"


@GUESTS
async def test_a_guest_mode_plus_b_refused_behind_a_demotion_leaves_nothing_done(
        server: ChatServer, irc: IrcFactory, clients: Clients) -> None:
    """IRC's MODE +b of a guest is the same ban: decided in the room's turn."""
    alice, _, visitor, room = await _general_with_guest(server, irc, clients)
    bob = await irc("bob")
    bob.send("JOIN #general")
    await bob.expect("366")
    async with holding(server, room) as queued:
        demoting = asyncio.create_task(alice.command("/demote bob general"))
        await queued(1)
        bob.send("MODE #general +b visitor")
        await queued(2)
    assert (await demoting).ok
    assert (await bob.expect("482")).params[1] == "#general"
    assert server.irc is not None and server.irc.front.guests.bans(room) == []
    guest = server.services.accounts.guest("visitor")
    assert guest is not None and room.is_member(guest.id)
    visitor.send("PART #general", "JOIN #general")
    assert (await visitor.expect("366", "474")).command == "366"


@GUESTS
async def test_a_guest_renamed_while_its_ban_waited_is_banned_under_its_new_nick(
        server: ChatServer, irc: IrcFactory, clients: Clients) -> None:
    """The guest's NICK comes while a /ban of it waits for the room: the ban holds
    the nick it has when the ban is decided, and the reply, the MODE +b line and
    the ban list name that one; /unban of it lifts the ban."""
    alice, _, visitor, room = await _general_with_guest(server, irc, clients)
    async with holding(server, room) as queued:
        banning = asyncio.create_task(alice.command("/ban visitor general"))
        await queued(1)
        visitor.send("NICK wanderer")
        await visitor.expect("NICK")
    assert (await banning)["user"] == "wanderer"
    assert (await visitor.expect("MODE")).params == ("#general", "+b", "wanderer!*@*")
    assert server.irc is not None
    assert [b.nick for b in server.irc.front.guests.bans(room)] == ["wanderer"]
    assert (await alice.command("/unban wanderer general"))["user"] == "wanderer"
    visitor.send("JOIN #general")
    assert (await visitor.expect("366", "474")).command == "366"


async def _paused(monkeypatch: pytest.MonkeyPatch, owner: object, method: str,
                  when: Callable[..., bool]) -> tuple[asyncio.Event, asyncio.Event]:
    """Make ``owner.method`` wait, on a call whose arguments ``when`` picks, until the
    second event is set; the first is set when it starts waiting."""
    paused, resume = asyncio.Event(), asyncio.Event()
    original = getattr(owner, method)

    async def waiting(*args: Any, **kwargs: Any) -> Any:
        if when(*args, **kwargs):
            paused.set()
            await resume.wait()
        return await original(*args, **kwargs)

    monkeypatch.setattr(owner, method, waiting)
    return paused, resume


@GUESTS
@pytest.mark.parametrize(("step", "banned"), [("departure", "wanderer"), ("audit", "visitor")])
async def test_a_guest_renamed_while_its_ban_is_applied_is_named_as_the_room_was_told(
        server: ChatServer, irc: IrcFactory, clients: Clients,
        monkeypatch: pytest.MonkeyPatch, step: str, banned: str) -> None:
    """A NICK while the ban of a guest member is being stored (the guest still in
    the room) is followed by the ban, which the room is told under the new nick;
    one after the guest is out (its audit entry being written) is not: the ban,
    the reply and the ban list keep the nick the room was told."""
    alice, bob, visitor, room = await _general_with_guest(server, irc, clients)
    storage, audit = server.services.storage, server.services.audit
    paused, resume = (
        await _paused(monkeypatch, storage, "remove_member", lambda _room, user: user < 0)
        if step == "departure" else
        await _paused(monkeypatch, audit, "record", lambda action, *_, **__: action == "ban"))
    banning = asyncio.create_task(alice.command("/ban visitor general"))
    await paused.wait()
    visitor.send("NICK wanderer")
    await visitor.expect("NICK")
    resume.set()
    assert (await banning)["user"] == banned
    told = await bob.next_event(lambda e: e.get("event") == "ban")
    assert told["user"] == banned
    assert server.irc is not None
    assert [b.nick for b in server.irc.front.guests.bans(room)] == [banned]
    await alice.command(f"/unban {banned} general")
    visitor.send("JOIN #general")
    assert (await visitor.expect("366", "474")).command == "366"


@GUESTS
async def test_a_guest_unban_refused_behind_a_demotion_lifts_nothing(
        server: ChatServer, irc: IrcFactory, clients: Clients) -> None:
    """bob's /unban of a guest, and his MODE -b, wait for the room behind his
    demotion: refused there, the ban stays."""
    alice, bob, visitor, room = await _general_with_guest(server, irc, clients)
    await alice.command("/ban visitor general")
    bob_irc = await irc("bob")
    bob_irc.send("JOIN #general")
    await bob_irc.expect("366")
    async with holding(server, room) as queued:
        demoting = asyncio.create_task(alice.command("/demote bob general"))
        await queued(1)
        unbanning = asyncio.create_task(bob.command("/unban visitor general", check=False))
        await queued(2)
        bob_irc.send("MODE #general -b visitor")
        await queued(3)
    assert (await demoting).ok
    refused = (await unbanning).final
    assert refused["code"] == "not-permitted" and "can unban" in refused["message"], refused
    assert (await bob_irc.expect("482")).params[1] == "#general"
    assert server.irc is not None
    assert [b.nick for b in server.irc.front.guests.bans(room)] == ["visitor"]
    visitor.send("JOIN #general")
    assert (await visitor.expect("366", "474")).command == "474"


@GUESTS
@pytest.mark.parametrize("via", ["line", "irc"])
async def test_a_guest_ban_of_a_nick_that_is_an_account_now_is_lifted_by_it(
        server: ChatServer, irc: IrcFactory, clients: Clients, via: str) -> None:
    """The guests eve and zed are banned, then gone, and accounts take their names:
    /unban and MODE -b of the name find the account, and lift the guest's ban of
    that nick as well as (zed) the account's own, saying which."""
    alice = await clients.user("alice")
    await alice.command("/create general")
    alice_irc = await irc("alice")
    alice_irc.send("JOIN #general")
    await alice_irc.expect("366")
    guests = [await _guest(irc, nick) for nick in ("eve", "zed")]
    for guest in guests:
        guest.send("JOIN #general")
        await guest.expect("366")
    for guest, nick in zip(guests, ("eve", "zed"), strict=True):
        await alice.command(f"/ban {nick} general")
        await guest.expect("KICK")
        await guest.close()
    accounts = server.services.accounts
    await eventually(lambda: accounts.guest("eve") is None and accounts.guest("zed") is None)
    await clients.user("eve")
    zed = await clients.user("zed")
    await alice.command("/ban zed general")
    alice_irc.send("MODE #general b")
    assert sorted(m.params[2] for m in await alice_irc.until("368") if m.command == "367") \
        == ["eve!*@*", "zed!*@*", "zed!*@*"]
    for nick, lifted in (("eve", ["guest"]), ("zed", ["account", "guest"])):
        if via == "line":
            reply = await alice.command(f"/unban {nick} general")
            assert (reply["user"], reply["lifted"]) == (nick, lifted)
            assert f"IRC guest {nick}" in reply["message"]
        else:
            alice_irc.send(f"MODE #general -b {nick}")
        assert (await alice_irc.expect("MODE")).params == ("#general", "-b", f"{nick}!*@*")
    alice_irc.send("MODE #general b")
    assert [m.command for m in await alice_irc.until("368")] == ["368"]
    wanderer = await _guest(irc, "wanderer")  # from the address the guests' bans held
    wanderer.send("JOIN #general")
    assert (await wanderer.expect("366", "474")).command == "366"
    assert (await zed.command("/join general")).ok
    assert server.irc is not None and server.irc.front.guests.bans(
        server.services.rooms.require("general")) == []
    # Only an account that was banned is told its ban was lifted.
    storage = server.services.storage
    told = {name: [n.kind for n in await storage.list_notifications(accounts.require(name).id)]
            for name in ("eve", "zed")}
    assert "unbanned" not in told["eve"] and "unbanned" in told["zed"]


@GUESTS
async def test_the_guest_bans_of_a_room_end_with_it(server: ChatServer, irc: IrcFactory,
                                                     clients: Clients) -> None:
    """#general ends with the ban of visitor (gone since) in it: the ban goes too. A
    new #general is another room: /unban visitor there is a nick no ban holds."""
    alice = await clients.user("alice")
    await alice.command("/create general")
    visitor = await _guest(irc, "visitor")
    visitor.send("JOIN #general")
    await visitor.expect("366")
    await alice.command("/ban visitor general")
    await visitor.close()
    await eventually(lambda: server.services.accounts.guest("visitor") is None)
    assert server.irc is not None
    guests = server.irc.front.guests
    assert guests.banned_nick("visitor")
    await alice.command("/leave general")
    assert server.services.rooms.find("general") is None
    await alice.command("/create general")
    await _refused(alice, "/unban visitor general", "no-such-user")
    again = await _guest(irc, "visitor")
    again.send("JOIN #general")
    assert (await again.expect("366", "474")).command == "366"
    assert not guests.banned_nick("visitor")


@GUESTS
async def test_a_guest_asking_for_sasl_after_registering_is_told_how_to_log_in(
        irc: IrcFactory) -> None:
    """It never authenticated: not 907, which would say it had."""
    visitor = await _guest(irc, "visitor")
    visitor.send("AUTHENTICATE PLAIN")
    refused = await visitor.expect("904", "907")
    assert refused.command == "904" and "connecting again" in refused.params[-1]


@pytest.mark.server(accounts__guests=True, rooms__creation="everyone")
async def test_a_guest_owner_handed_over_becomes_a_member(server: ChatServer, irc: IrcFactory,
                                                          clients: Clients) -> None:
    """Guests cannot be room admins: a transfer away from a guest that made the room
    leaves it a member, as everyone is shown, not an admin."""
    visitor = await _guest(irc, "visitor")
    visitor.send("JOIN #own")
    await visitor.expect("366")
    alice, root = await clients.user("alice"), await clients.user("root")
    await server.services.accounts.set_admin(server.services.accounts.require("root"), True)
    await alice.command("/join own")
    await root.command("/transfer alice own")
    assert (await visitor.expect("MODE")).params == ("#own", "-o+o", "visitor", "alice")
    event = await alice.next_event(lambda e: e.get("event") == "owner")
    assert (event["previous"], event["previous_role"]) == ("visitor", "member")
    room = server.services.rooms.find("own")
    assert room is not None
    guest = server.irc.front.guests.find("visitor") if server.irc else None
    assert guest is not None and room.role_of(guest.id) is Role.MEMBER
    visitor.send("TOPIC #own :mine")  # no operator any more
    assert (await visitor.expect("482", "TOPIC")).command == "482"


@pytest.mark.server(accounts__guests=True, rooms__creation="everyone")
async def test_a_guest_owner_bans_and_unbans_an_account(
        server: ChatServer, irc: IrcFactory, clients: Clients) -> None:
    """A guest that made a room is its owner with an owner's rights, a ban of an
    account among them. The ban's row named the guest as its setter, an id no
    account has: the database refused it, and the guest got "something went
    wrong". The row keeps no setter (as a ban by the console), and the ban list
    shows the server as the one who set it."""
    owner = await _guest(irc, "owner")
    owner.send("JOIN #own")
    await owner.expect("366")
    alice = await clients.user("alice")
    await alice.command("/join own")
    await owner.expect("JOIN")
    owner.send("MODE #own +b alice")
    assert (await owner.expect("MODE", "400")).params == ("#own", "+b", "alice!*@*")
    assert (await owner.expect("KICK")).params[:2] == ("#own", "alice")
    ban = await alice.next_event(lambda e: e.get("event") == "ban")
    assert ban["actor"] == "owner"
    owner.send("MODE #own +b")
    assert (await owner.expect("367")).params[1:4] == ("#own", "alice!*@*", "chatd.local")
    owner.send("MODE #own -b alice")
    assert (await owner.expect("MODE", "400")).params == ("#own", "-b", "alice!*@*")
    assert server.services.accounts.require("alice").id not in (
        server.services.rooms.require("own").bans)



def test_the_docs_name_the_commands_that_take_a_guest_and_those_that_refuse_one() -> None:
    """PROTOCOL.md §2's `<user>` row: the commands taking a guest's nick are those
    whose user parameter is UserOrGuest (and /mode's +v/-v); each command it names
    as taking accounts only has a user parameter that refuses a guest."""
    protocol = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
    row = protocol[protocol.index("| `<user>` |"):]
    row = row[:row.index("\n")]
    taking, _, rest = row.partition("also take the nick of an IRC guest")
    refusing = rest[rest.index("The other commands taking a `<user>`"):]
    refusing = refusing[:refusing.index("act on accounts only")]
    table = commands.load()

    def user_params(name: str) -> list[type]:
        command = table.get(name)
        assert command is not None, name
        return [type(p) for p in command.described_params if isinstance(p, UserRef)]

    takes_guests = {c.name for c in table.all() if UserOrGuest in user_params(c.name)}
    assert set(re.findall(r"`/([a-z]+)", taking)) == takes_guests | {"mode"}
    for name in re.findall(r"`/([a-z]+)", refusing):
        assert name == "keys" or user_params(name) == [UserRef], name


@GUESTS
@pytest.mark.parametrize("over", ["line", "irc"])
async def test_a_guest_gone_while_its_ban_waited_is_banned_by_its_address_too(
        server: ChatServer, irc: IrcFactory, clients: Clients, over: str) -> None:
    """The guest disconnects while a /ban (or MODE +b) of it waits for the room: the
    ban held its nick alone, and the guest came back at once under another nick from
    the same address. The guest object it names keeps its address: the ban holds it."""
    alice, _, visitor, room = await _general_with_guest(server, irc, clients)
    bob = await irc("bob")
    bob.send("JOIN #general")
    await bob.expect("366")
    async with holding(server, room) as queued:
        if over == "line":
            banning = asyncio.create_task(alice.command("/ban visitor general"))
        else:
            bob.send("MODE #general +b visitor")
        await queued(1)
        await visitor.close()
        await queued(2)  # its departure, behind the ban
        assert server.services.accounts.guest("visitor") is None
    if over == "line":
        assert (await banning)["user"] == "visitor"
    else:
        assert (await bob.expect("MODE")).params == ("#general", "+b", "visitor!*@*")
    assert server.irc is not None
    [ban] = server.irc.front.guests.bans(room)
    assert (ban.nick, ban.address) == ("visitor", "127.0.0.1")
    again = await _guest(irc, "newname")
    again.send("JOIN #general")
    assert (await again.expect("366", "474")).command == "474"
    # A guest gone before its ban is sent is known no more: no ban, by nick or address.
    await again.close()
    await eventually(lambda: server.services.accounts.guest("newname") is None)
    assert (await error_of(alice, "/ban newname general"))["code"] == "no-such-user"


@GUESTS
async def test_a_guest_quitting_an_end_to_end_channel_is_a_quit_without_its_message(
        irc: IrcFactory, clients: Clients) -> None:
    """An end-to-end room holds a leave's reason back (its members see no plain
    words); a guest's QUIT there is still a QUIT to IRC clients, as one without a
    message, not a PART that leaves the nick seemingly online."""
    alice = await clients.user("alice")
    await alice.command("/create general")
    await alice.command("/e2e on general")
    bob = await irc("bob")
    bob.send("JOIN #general")
    await bob.expect("366")
    visitor = await _guest(irc, "visitor")
    visitor.send("JOIN #general")
    await visitor.expect("366")
    await bob.expect("JOIN")
    visitor.send("QUIT :meet me at the station")
    left = await alice.next_event(lambda e: e.get("event") == "leave")
    assert left["user"] == "visitor" and "reason" not in left  # held back
    shown = await bob.until("QUIT", "PART")
    assert shown[-1].command == "QUIT", shown
    assert shown[-1].source.startswith("visitor!") and shown[-1].params == ("Quit: Client Quit",)
