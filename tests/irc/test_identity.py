"""Who a client is: nick changes (guests), USER's username and real name, SETNAME,
QUIT lines, WHOWAS."""

from __future__ import annotations

import pytest

from chatd.client import ChatClient
from chatd.irc.session import IrcSession
from tests.helpers import PASSWORD, ChatServer, Clients
from tests.irc.conftest import IrcFactory
from tests.irc.helpers import IrcClient

GUESTS = pytest.mark.server(accounts__guests=True)


async def _watched(irc: IrcFactory, clients: Clients,
                   *rooms: str) -> tuple[ChatClient, IrcClient]:
    """alice's new ``rooms``, and carol over IRC in all of them."""
    alice = await clients.user("alice")
    for room in rooms:
        await alice.command(f"/create {room}")
    carol = await irc("carol")
    carol.send("JOIN " + ",".join(f"#{room}" for room in rooms))
    for _ in rooms:
        await carol.expect("366")
    return alice, carol


async def _guest(irc: IrcFactory, nick: str, caps: tuple[str, ...] = ()) -> IrcClient:
    client = await irc()
    await client.register(nick, caps=caps)
    return client


@GUESTS
async def test_a_guest_changes_its_nick_and_everyone_sharing_a_channel_sees_it(
        server: ChatServer, irc: IrcFactory, clients: Clients) -> None:
    alice, watcher = await _watched(irc, clients, "lobby")
    visitor = await _guest(irc, "visitor")
    visitor.send("JOIN #lobby")
    await visitor.expect("366")
    await watcher.expect("JOIN")
    # Taken by an account, by another guest: 433; the same nick: nothing.
    other = await _guest(irc, "other")
    visitor.send("NICK alice", "NICK other", "NICK visitor")
    assert (await visitor.expect("433")).params[1] == "alice"
    assert (await visitor.expect("433")).params[1] == "other"
    visitor.send("NICK wanderer")
    assert await visitor.raw() == ":visitor!visitor@chatd.local NICK :wanderer"
    assert await watcher.raw() == ":visitor!visitor@chatd.local NICK :wanderer"
    renamed = await alice.next_event(lambda e: e.get("event") == "rename")
    assert renamed == {"type": "event", "event": "rename", "room": "lobby", "user": "visitor",
                       "name": "wanderer"}
    room = server.services.rooms.find("lobby")
    assert room is not None and "wanderer" in {m.name for m in room.members.values()}
    # The old nick is free, and remembered.
    other.send("NICK visitor", "WHOWAS visitor")
    await other.expect("NICK")
    whowas = await other.until("369")
    assert [m.params[1:4] for m in whowas if m.command == "314"] == [
        ("visitor", "visitor", "chatd.local")]
    visitor.send("PRIVMSG #lobby :still me")
    got = await alice.next_event(lambda e: e.get("type") == "message")
    assert got["from"] == "wanderer"


async def test_an_account_keeps_its_name_and_is_told_why(irc: IrcFactory) -> None:
    bob = await irc("bob")
    bob.send("NICK robert")
    refused = await bob.expect("484")
    assert "account name" in refused.params[-1] and "bob" in refused.params[-1]
    bob.send("NICK bob")
    await bob.nothing()


async def test_user_gives_the_username_and_real_name(server: ChatServer,
                                                     irc: IrcFactory) -> None:
    await server.services.accounts.create("bob", "bob-password-1")
    client = await irc()
    client.send("PASS bob:bob-password-1", "NICK bob", "USER ~b@d! 0 * :")
    assert (await client.expect("461")).params[1] == "USER"
    client.send("USER ~b@d! 0 * :Bob the Builder")
    await client.expect("001")
    watcher = await irc("carol")
    watcher.send("WHOIS bob", "WHO bob", "JOIN #site")
    watcher_lines = await watcher.until("366")
    assert next(m for m in watcher_lines if m.command == "311").params[1:] == (
        "bob", "bd", "chatd.local", "*", "Bob the Builder")
    row = next(m for m in watcher_lines if m.command == "352")
    assert row.params[2] == "bd" and row.params[-1] == "0 Bob the Builder"
    client.send("JOIN #site")
    assert (await watcher.expect("JOIN")).source == "bob!bd@chatd.local"


async def test_a_newer_connection_s_username_shows_in_the_mask_of_later_messages(
        server: ChatServer, irc: IrcFactory) -> None:
    await server.services.accounts.create("bob", "bob-password-1")
    first = await irc()
    first.send("PASS bob:bob-password-1", "NICK bob", "USER first 0 * :Bob", "JOIN #site")
    await first.expect("366")
    watcher = await irc("carol")
    watcher.send("JOIN #site")
    await watcher.expect("366")
    first.send("PRIVMSG #site :one")
    assert (await watcher.expect("PRIVMSG")).source == "bob!first@chatd.local"
    second = await irc()
    second.send("PASS bob:bob-password-1", "NICK bob", "USER second 0 * :Bob")
    await second.expect("001")
    # The newest IRC connection of an account speaks for it, in every mask.
    first.send("PRIVMSG #site :two")
    assert (await watcher.expect("PRIVMSG")).source == "bob!second@chatd.local"

    # When that connection ends, what it said stays while the account is online
    # elsewhere; the ended session itself is not kept for it.
    second.send("QUIT")
    await second.closed()
    first.send("PRIVMSG #site :three")
    assert (await watcher.expect("PRIVMSG")).source == "bob!second@chatd.local"
    assert server.irc is not None
    kept = server.irc.front.people._identities["bob"]
    assert (kept.username, kept.realname) == ("second", "Bob")
    assert not isinstance(kept, IrcSession)


async def test_setname_changes_the_real_name(irc: IrcFactory) -> None:
    bob = await irc("bob", caps=("setname",))
    carol = await irc("carol", caps=("setname",))
    dave = await irc("dave")
    for client in (bob, carol, dave):
        client.send("JOIN #site")
        await client.expect("366")
    await bob.expect("JOIN")
    await bob.expect("JOIN")
    bob.send("SETNAME :Robert B.")
    assert (await bob.expect("SETNAME")).source == "bob!bob@chatd.local"
    assert (await carol.expect("SETNAME")).params == ("Robert B.",)
    dave.send("WHOIS bob")
    assert (await dave.expect("311")).params[-1] == "Robert B."
    bob.send("SETNAME :")
    assert (await bob.expect("FAIL")).params[:2] == ("SETNAME", "INVALID_REALNAME")
    # Without the capability SETNAME is answered with nothing, as the setname
    # specification asks (as historic servers did), and the name is changed.
    dave.send("SETNAME :", "SETNAME :Dave D.", "PING x")
    assert (await dave.expect("PONG", "FAIL", "SETNAME")).command == "PONG"
    dave.send("WHOIS dave")
    assert (await dave.expect("311")).params[-1] == "Dave D."


async def test_isupport_gives_namelen_for_setname(irc: IrcFactory) -> None:
    """setname: "servers MUST provide a NAMELEN token in RPL_ISUPPORT with the
    maximum allowed length for realnames"; a longer one is cut to it."""
    bob = await irc("bob", caps=("setname",))
    tokens = [t for line in bob.lines if " 005 " in line for t in line.split()]
    assert "NAMELEN=100" in tokens
    bob.send("SETNAME :" + "r" * 150)
    assert (await bob.expect("SETNAME")).params == ("r" * 100,)


@GUESTS
async def test_a_guest_that_goes_quits_once_for_all_its_channels(
        irc: IrcFactory, clients: Clients) -> None:
    alice, carol = await _watched(irc, clients, "one", "two")
    visitor = await _guest(irc, "visitor")
    visitor.send("JOIN #one,#two")
    await visitor.expect("366")
    await visitor.expect("366")
    await carol.expect("JOIN")
    await carol.expect("JOIN")
    visitor.send("QUIT :see you")
    assert await carol.raw() == ":visitor!visitor@chatd.local QUIT :Quit: see you"
    await carol.nothing(0.3)
    left = await alice.next_event(lambda e: e.get("event") == "leave")
    assert left["reason"] == "Quit: see you"


@GUESTS
async def test_a_guests_quit_and_a_logins_900_show_the_username_it_registered_with(
        server: ChatServer, irc: IrcFactory, clients: Clients) -> None:
    _, carol = await _watched(irc, clients, "one")
    visitor = await irc()
    visitor.send("NICK visitor", "USER v 0 * :V", "JOIN #one")
    await visitor.expect("366")
    assert await carol.raw() == ":visitor!v@chatd.local JOIN #one"
    visitor.send("QUIT :bye")
    # Rendered once the guest is gone: its username is what WHOWAS keeps.
    assert await carol.raw() == ":visitor!v@chatd.local QUIT :Quit: bye"
    # An account that later takes the name is not shown with the guest's USER.
    later = await clients.user("visitor")
    await later.command("/join one")
    await carol.expect("JOIN")
    await later.say("hi")
    assert await carol.raw() == ":visitor!visitor@chatd.local PRIVMSG #one :hi"
    await server.services.accounts.create("dave", PASSWORD)
    dave = await irc()
    dave.send(f"PASS dave:{PASSWORD}", "NICK dave", "USER d 0 * :D")
    logged_in, welcome = await dave.expect("900"), await dave.expect("001")
    assert logged_in.params[1] == "dave!d@chatd.local"
    assert welcome.params[1].endswith(" dave!d@chatd.local")


@GUESTS
async def test_whowas_without_history(irc: IrcFactory) -> None:
    visitor = await _guest(irc, "visitor")
    visitor.send("WHOWAS nobody 3")
    assert (await visitor.expect("406")).params[1] == "nobody"
    await visitor.expect("369")
