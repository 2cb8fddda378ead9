"""Succession and termination through the protocol: leave, kick and ban."""

from __future__ import annotations

import pytest

from chatd.client.api import ChatClient
from chatd.domain.clock import ManualClock
from tests.governance import (
    error_of,
    events,
    listed,
    members_of,
    my_rooms,
    notes,
    room_with,
    server_admin,
    settle,
    users,
)
from tests.helpers import ChatServer, Clients


async def test_two_member_room_whose_admin_leaves_is_terminated(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    room_id = await room_with(alice, "dev", bob)
    await settle(bob)
    await alice.command("/leave dev")
    got = await settle(bob)
    assert [e["user"] for e in events(got, "leave")] == ["alice"]
    terminated = events(got, "terminated")
    assert len(terminated) == 1 and terminated[0]["room"] == "dev"
    note = notes(got, "terminated")
    assert len(note) == 1 and note[0]["room"] == "dev" and note[0]["room_id"] == room_id
    # The room is gone: not listed, not joinable by name or id, nobody's room.
    assert "dev" not in await listed(carol)
    assert "dev" not in await my_rooms(bob)
    assert (await error_of(carol, "/join dev"))["code"] == "no-such-room"
    assert (await error_of(bob, f"/join {room_id}"))["code"] == "no-such-room"
    # bob's current room went with it.
    assert (await bob.say("anyone?"))["code"] == "no-room"
    # Its name may be reused.
    again = await carol.command("/create dev")
    assert again["id"] != room_id and again["members"] == 1
    assert await members_of(carol, "dev") == {"carol": "owner"}


async def test_two_member_room_whose_member_leaves_stays_with_its_admin(
        clients: Clients) -> None:
    alice, bob = await clients.user("alice"), await clients.user("bob")
    await room_with(alice, "dev", bob)
    await bob.command("/leave dev")
    got = await settle(alice)
    assert events(got, "terminated") == [] and notes(got, "terminated") == []
    assert await members_of(alice, "dev") == {"alice": "owner"}
    assert "dev" in await listed(bob)


async def test_a_muted_member_is_passed_over_for_the_ownership(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob, carol)
    await alice.command("/mute bob dev")
    await alice.command("/leave dev")
    assert await members_of(carol, "dev") == {"carol": "owner", "bob": "member"}
    # The new owner may lift the mute, as the old one could.
    await carol.command("/unmute bob dev")


async def test_three_member_room_whose_only_admin_leaves_goes_on(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob, carol)
    await alice.command("/leave dev")
    assert await members_of(bob, "dev") == {"bob": "owner", "carol": "member"}
    got = await settle(carol)
    assert [(e["user"], e["role"]) for e in got
            if e.get("type") == "event" and e.get("role")] == [("bob", "owner")]
    promoted = notes(await settle(bob), "promoted")
    assert [(n["room"], n["role"]) for n in promoted] == [("dev", "owner")]
    # The new owner has the owner's powers at once.
    await bob.command("/promote carol dev")
    assert await members_of(bob, "dev") == {"bob": "owner", "carol": "admin"}


async def test_owner_leaving_passes_ownership_to_the_longest_serving_admin(
        clients: Clients, clock: ManualClock) -> None:
    alice, bob, carol, dave = await users(clients, "alice", "bob", "carol", "dave")
    await room_with(alice, "dev", bob, carol, dave)
    await alice.command("/promote carol dev")
    clock.advance(60)
    await alice.command("/promote bob dev")  # bob joined first but is admin for less time
    await alice.command("/leave dev")
    assert await members_of(dave, "dev") == {"carol": "owner", "bob": "admin",
                                             "dave": "member"}


async def test_owner_leaving_a_lone_admin_makes_them_owner(clients: Clients) -> None:
    alice, bob = await clients.user("alice"), await clients.user("bob")
    await room_with(alice, "dev", bob, admins=(bob,))
    await alice.command("/leave dev")
    assert await members_of(bob, "dev") == {"bob": "owner"}
    assert notes(await settle(bob), "terminated") == []
    # As the owner, bob may change the mode.
    await bob.command("/mode request dev")


async def test_admin_leaving_the_owner_alone_keeps_the_room(clients: Clients) -> None:
    alice, bob = await clients.user("alice"), await clients.user("bob")
    await room_with(alice, "dev", bob, admins=(bob,))
    await bob.command("/leave dev")
    assert await members_of(alice, "dev") == {"alice": "owner"}


async def test_the_last_member_leaving_terminates_the_room(clients: Clients) -> None:
    alice, bob = await clients.user("alice"), await clients.user("bob")
    room_id = await room_with(alice, "solo")
    await alice.command("/leave solo")
    assert "solo" not in await listed(bob)
    assert (await error_of(bob, f"/join {room_id}"))["code"] == "no-such-room"
    assert (await bob.command("/create solo"))["id"] != room_id


async def test_a_former_owner_who_rejoins_is_a_plain_member(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob, carol)
    await alice.command("/leave dev")
    await alice.command("/join dev")
    assert await members_of(alice, "dev") == {"bob": "owner", "carol": "member",
                                              "alice": "member"}
    assert (await error_of(alice, "/kick carol dev"))["code"] == "not-permitted"


async def test_server_admin_kicking_the_owner_of_a_two_member_room_terminates_it(
        server: ChatServer, clients: Clients) -> None:
    alice, bob = await clients.user("alice"), await clients.user("bob")
    root = await server_admin(server, clients)
    await room_with(alice, "dev", bob)
    await root.command("/kick alice dev bye")
    bob_got, alice_got = await settle(bob), await settle(alice)
    assert len(events(bob_got, "terminated")) == 1 and len(notes(bob_got, "terminated")) == 1
    assert [n["reason"] for n in notes(alice_got, "kicked")] == ["bye"]
    assert "dev" not in await listed(root)


async def test_server_admin_banning_the_owner_hands_the_room_on(
        server: ChatServer, clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    root = await server_admin(server, clients)
    await room_with(alice, "dev", bob, carol)
    await root.command("/ban alice dev")
    assert await members_of(root, "dev") == {"bob": "owner", "carol": "member"}
    assert (await error_of(alice, "/join dev"))["code"] == "banned"


async def test_a_kick_leaving_the_admin_alone_keeps_the_room(clients: Clients) -> None:
    alice, bob = await clients.user("alice"), await clients.user("bob")
    await room_with(alice, "dev", bob)
    await alice.command("/kick bob dev")
    assert await members_of(alice, "dev") == {"alice": "owner"}


async def test_a_ban_leaving_one_plain_member_terminates_the_room(
        server: ChatServer, clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    root = await server_admin(server, clients)
    await room_with(alice, "dev", bob, carol)
    await carol.command("/leave dev")
    await root.command("/ban alice dev")
    got = await settle(bob)
    assert len(events(got, "terminated")) == 1 and len(notes(got, "terminated")) == 1
    assert "dev" not in await my_rooms(bob)


async def bot_of(clients: Clients, maker: ChatClient, name: str) -> ChatClient:
    """A bot account ``name`` made by ``maker``, logged in with its usual token."""
    made = await maker.command(f"/bot create {name}")
    bot = await clients.anonymous()
    await bot.command(f"/login {name} --token {made['token']}")
    return bot


@pytest.mark.parametrize("gone", ["leave", "userdel"])
async def test_a_person_inherits_the_room_before_a_bot_that_joined_earlier(
        server: ChatServer, clients: Clients, gone: str) -> None:
    carol, alice = await users(clients, "carol", "alice")
    helper, pinger = await bot_of(clients, alice, "helper"), await bot_of(clients, alice, "pinger")
    bob = await clients.user("bob")
    await room_with(carol, "dev", helper, bob, pinger)
    if gone == "leave":
        await carol.command("/leave dev")
    else:
        root = await server_admin(server, clients)
        await root.command("/userdel carol")
    assert await members_of(bob, "dev") == {"bob": "owner", "helper": "member",
                                            "pinger": "member"}
    promoted = notes(await settle(bob), "promoted")
    assert [(n["room"], n["role"]) for n in promoted] == [("dev", "owner")]
    # With no person left, the earliest bot inherits: the room goes on.
    await bob.command("/leave dev")
    assert await members_of(helper, "dev") == {"helper": "owner", "pinger": "member"}


async def test_a_person_member_inherits_the_ownership_before_a_bot_admin(
        clients: Clients) -> None:
    carol, alice = await users(clients, "carol", "alice")
    helper = await bot_of(clients, alice, "helper")
    bob = await clients.user("bob")
    await room_with(carol, "dev", helper, bob, admins=(helper,))
    await carol.command("/leave dev")
    assert await members_of(bob, "dev") == {"bob": "owner", "helper": "admin"}
