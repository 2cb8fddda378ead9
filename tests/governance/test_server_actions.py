"""Governance by the daemon itself: the control socket's actions (no acting user)
and flood mutes, as the domain offers them to chatd.ops.control and chatd.domain.protection."""

from __future__ import annotations

import asyncio

from chatd.domain.clock import ManualClock
from tests.governance import events, members_of, notes, room_with, settle, users
from tests.helpers import ChatServer, Clients


async def test_console_actions_need_no_role_and_name_the_console(server: ChatServer,
                                                                 clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob, carol)
    services = server.services
    room = services.rooms.require("dev")
    alice_user, bob_user = services.accounts.require("alice"), services.accounts.require("bob")
    record = await services.moderation.mute(None, room, bob_user, 60)
    assert record.actor_id is None and record.until == ManualClock().time() + 60
    await services.moderation.kick(None, room, alice_user, "console says")
    got = await settle(bob)
    assert [(e["user"], e["actor"]) for e in events(got, "mute")] == [("bob", "console")]
    assert [(e["user"], e["actor"]) for e in events(got, "kick")] == [("alice", "console")]
    assert [n["actor"] for n in notes(await settle(alice), "kicked")] == ["console"]
    # bob, muted, is passed over for the ownership (docs/PROTOCOL.md, succession).
    assert await members_of(bob, "dev") == {"carol": "owner", "bob": "member"}
    await services.moderation.ban(None, room, alice_user, None, "")
    assert [e["actor"] for e in events(await settle(alice), "ban")] == ["console"]
    assert (await alice.command("/join dev", check=False))["code"] == "banned"


async def test_a_flood_mute_keeps_a_longer_mute(server: ChatServer, clients: Clients,
                                                clock: ManualClock) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    services = server.services
    room, bob_user = services.rooms.require("dev"), services.accounts.require("bob")
    await services.moderation.mute_for_flood(room, bob_user, 60)
    mute = events(await settle(alice), "mute")
    assert [(e["user"], e["actor"], e["reason"]) for e in mute] == [
        ("bob", "the server", "flooding")]
    await alice.command("/mute bob dev")  # for good
    await services.moderation.mute_for_flood(room, bob_user, 60)
    clock.advance(3600)
    assert (await bob.say("hello?"))["code"] == "muted"
    # Not a member: nothing to do.
    await bob.command("/leave dev")
    await services.moderation.mute_for_flood(room, bob_user, 60)


async def test_one_burst_past_the_flood_threshold_twice_mutes_once(
        server: ChatServer, clients: Clients) -> None:
    """Two flood mutes of one member started together (one burst can pass the
    threshold twice before the first is stored): one mute, one notice, one entry."""
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    services = server.services
    room, bob_user = services.rooms.require("dev"), services.accounts.require("bob")
    await asyncio.gather(services.moderation.mute_for_flood(room, bob_user, 60),
                         services.moderation.mute_for_flood(room, bob_user, 60))
    assert len(events(await settle(alice), "mute")) == 1
    assert len(notes(await settle(bob), "muted")) == 1
    assert [e.action for e in await services.audit.entries(50, room)].count("mute") == 1


async def test_hidden_rooms_lists_the_unlisted(server: ChatServer, clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "den", mode="private")
    await room_with(alice, "club", mode="request")
    await room_with(bob, "hall")
    assert [r.name for r in server.services.rooms.hidden_rooms()] == ["den"]
    assert [r.name for r in server.services.rooms.listed_for(None)] == ["club", "hall"]
    await bob.command("/mode +s hall")
    assert [r.name for r in server.services.rooms.hidden_rooms()] == ["den", "hall"]
    assert [r.name for r in server.services.rooms.listed_for(None)] == ["club"]
