"""Governance commands sent together: each change is decided in the room's
transaction, so none is lost and no rule is passed over (many rounds over real
sockets)."""

from __future__ import annotations

import asyncio

import pytest

from chatd.client import ChatClient, Reply
from chatd.domain.protection import ROOM_BURST, ROOM_RATE
from tests.governance import (
    code_of,
    drain,
    members_of,
    notes,
    room_with,
    server_admin,
    settle,
    users,
)
from tests.helpers import ChatServer, Clients, holding

ROUNDS = 25


async def _stored_settings(server: ChatServer, room: str) -> dict[str, object]:
    records = await server.services.storage.load_active_rooms()
    return next(r.settings for r in records if r.name == room)


async def test_rate_and_e2e_sent_together_both_take_effect(server: ChatServer,
                                                           clients: Clients) -> None:
    alice, other = await users(clients, "alice", "alice")
    for number in range(ROUNDS):
        room = f"r{number}"
        await room_with(alice, room)
        rate, e2e = await asyncio.gather(code_of(alice, f"/ratelimit 2 4 {room}"),
                                         code_of(other, f"/e2e on {room}"))
        assert (rate, e2e) == ("ok", "ok")
        wanted = {"e2e": True, ROOM_RATE: 2.0, ROOM_BURST: 4.0}
        live = server.services.rooms.find(room)
        assert live is not None and live.settings == wanted, number
        assert await _stored_settings(server, room) == wanted, number
        assert await code_of(alice, f"/say {room} plain") == "e2e-required"


async def test_rate_off_and_e2e_off_sent_together_both_take_effect(server: ChatServer,
                                                                   clients: Clients) -> None:
    alice, other = await users(clients, "alice", "alice")
    for number in range(ROUNDS):
        room = f"r{number}"
        await room_with(alice, room)
        await alice.command(f"/ratelimit 2 4 {room}")
        await alice.command(f"/e2e on {room}")
        await asyncio.gather(alice.command(f"/ratelimit off {room}"),
                             other.command(f"/e2e off {room}"))
        live = server.services.rooms.find(room)
        assert live is not None and live.settings == {"e2e": False}, number
        assert await _stored_settings(server, room) == {"e2e": False}, number


async def test_settings_topic_and_mode_sent_together_all_stay(server: ChatServer,
                                                              clients: Clients) -> None:
    alice, second, third, fourth = await users(clients, "alice", "alice", "alice", "alice")
    for number in range(ROUNDS):
        room = f"r{number}"
        await room_with(alice, room)
        codes = await asyncio.gather(code_of(alice, f"/ratelimit 3 {room}"),
                                     code_of(second, f"/e2e on {room}"),
                                     code_of(third, f"/topic {room} round {number}"),
                                     code_of(fourth, f"/mode request {room}"))
        assert set(codes) == {"ok"}
        live = server.services.rooms.find(room)
        assert live is not None
        assert (live.mode.value, live.topic, live.settings) == (
            "request", f"round {number}", {"e2e": True, ROOM_RATE: 3.0, ROOM_BURST: 3.0})
        assert await _stored_settings(server, room) == {"e2e": True, ROOM_RATE: 3.0,
                                                        ROOM_BURST: 3.0}


async def test_a_rate_change_racing_a_demotion_is_checked_under_the_lock(
        clients: Clients) -> None:
    """The owner hands the room over while a rate change of theirs is on its way: the
    change is refused when it comes after (the old owner is an admin by then)."""
    alice, other, bob = await users(clients, "alice", "alice", "bob")
    for number in range(ROUNDS):
        room = f"r{number}"
        await room_with(alice, room, bob)
        transfer, rate = await asyncio.gather(code_of(alice, f"/transfer bob {room}"),
                                              code_of(other, f"/ratelimit 5 {room}"))
        assert transfer == "ok" and rate in {"ok", "not-permitted"}
        assert (await members_of(bob, room))["bob"] == "owner"


async def test_a_ban_racing_a_join_never_leaves_a_banned_member(clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    for number in range(ROUNDS):
        room = f"r{number}"
        await room_with(alice, room)
        ban, join = await asyncio.gather(code_of(alice, f"/ban bob {room}"),
                                         code_of(bob, f"/join {room}"))
        assert ban == "ok" and join in {"ok", "banned"}, (number, ban, join)
        assert "bob" not in await members_of(alice, room), (number, ban, join)
        assert await code_of(bob, f"/join {room}") == "banned"


async def test_a_ban_racing_an_invited_join_never_leaves_a_banned_member(
        clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    for number in range(ROUNDS):
        room = f"r{number}"
        room_id = await room_with(alice, room, mode="private")
        await alice.command(f"/invite bob {room}")
        ban, join = await asyncio.gather(code_of(alice, f"/ban bob {room}"),
                                         code_of(bob, f"/join {room_id}"))
        assert ban == "ok" and join in {"ok", "banned"}, (number, ban, join)
        assert "bob" not in await members_of(alice, room), (number, ban, join)
        await alice.command(f"/unban bob {room}")
        # The ban revoked the invitation, whichever came first.
        assert await code_of(bob, f"/join {room_id}") == "not-permitted"


async def test_a_ban_racing_an_accept_never_leaves_a_banned_member(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    for number in range(ROUNDS):
        room = f"r{number}"
        await room_with(alice, room, bob, mode="request", admins=(bob,))
        assert (await carol.command(f"/join {room}"))["requested"] is True
        ban, accept = await asyncio.gather(code_of(alice, f"/ban carol {room}"),
                                           code_of(bob, f"/accept carol {room}"))
        assert ban == "ok" and accept in {"ok", "banned"}, (number, ban, accept)
        assert "carol" not in await members_of(alice, room), (number, ban, accept)


async def test_a_ban_racing_an_invitation_leaves_no_invitation(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    for number in range(ROUNDS):
        room = f"r{number}"
        room_id = await room_with(alice, room, bob, mode="private", admins=(bob,))
        ban, invite = await asyncio.gather(code_of(alice, f"/ban carol {room}"),
                                           code_of(bob, f"/invite carol {room}"))
        assert ban == "ok" and invite in {"ok", "banned"}, (number, ban, invite)
        await alice.command(f"/unban carol {room}")
        assert await code_of(carol, f"/join {room_id}") == "not-permitted", number


async def _in_turn(server: ChatServer, room_name: str,
                   *sent: tuple[ChatClient, str]) -> list[Reply]:
    """Hold the room's transaction while each command of ``sent`` queues for it, in
    that order; then let them run. Their replies, in the same order."""
    sending = []
    async with holding(server, server.services.rooms.require(room_name)) as queued:
        for client, command in sent:
            sending.append(asyncio.create_task(client.command(command, check=False)))
            await queued(len(sending))
    return list(await asyncio.gather(*sending))


async def _behind_a_demotion(server: ChatServer, owner: ChatClient, admin: ChatClient,
                             room_name: str, command: str) -> str:
    """The owner's demotion of bob (``admin``) queues first and bob's ``command``
    behind it; the command's code. His right must be judged when the command
    runs, not when it arrived."""
    demote, behind = await _in_turn(server, room_name, (owner, f"/demote bob {room_name}"),
                                    (admin, command))
    assert demote.ok
    return "ok" if behind.ok else str(behind.final["code"])


async def test_a_demotion_queued_first_forbids_the_e2e_change_behind_it(
        server: ChatServer, clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "den")
    assert await code_of(bob, "/join den") == "ok"
    assert await code_of(alice, "/promote bob den") == "ok"
    assert await _behind_a_demotion(server, alice, bob, "den", "/e2e on den") == "not-permitted"
    assert not server.services.rooms.require("den").settings.get("e2e")


async def test_a_demotion_queued_first_forbids_the_decline_behind_it(
        server: ChatServer, clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "club", bob, mode="request", admins=(bob,))
    assert (await carol.command("/join club"))["requested"] is True
    declined = await _behind_a_demotion(server, alice, bob, "club", "/decline carol club")
    assert declined == "not-permitted"
    assert [r["user"] for r in (await alice.command("/requests club"))["requests"]] == ["carol"]


async def test_a_demotion_queued_first_forbids_the_unban_behind_it(
        server: ChatServer, clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "den", bob, admins=(bob,))
    assert await code_of(alice, "/ban carol den") == "ok"
    assert await _behind_a_demotion(server, alice, bob, "den", "/unban carol den") \
        == "not-permitted"
    assert await code_of(carol, "/join den") == "banned"


async def test_a_demotion_queued_first_forbids_the_unmute_behind_it(
        server: ChatServer, clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "den", bob, carol, admins=(bob,))
    assert await code_of(alice, "/mute carol den") == "ok"
    assert await _behind_a_demotion(server, alice, bob, "den", "/unmute carol den") \
        == "not-permitted"
    assert await code_of(carol, "/say den still muted?") == "muted"


async def test_minus_i_behind_a_change_to_request_leaves_the_room_request(
        server: ChatServer, clients: Clients) -> None:
    """-i opens a private room: decided from the mode when its turn comes, it leaves
    alone a room the owner's other connection made "request" meanwhile."""
    alice, other = await users(clients, "alice", "alice")
    await room_with(alice, "den", mode="private")
    request, minus_i = await _in_turn(server, "den", (alice, "/mode request den"),
                                      (other, "/mode -i den"))
    assert request["mode"] == "request"
    assert (minus_i["changes"], minus_i["mode"]) == ("", "request")
    assert server.services.rooms.require("den").mode.value == "request"


async def test_two_joins_at_once_from_one_account_both_succeed(
        server: ChatServer, clients: Clients) -> None:
    """The second finds the account in the room: already in it, as a /join of a
    room one is in answers, not an error, and its current room is set too."""
    alice, first, second = await users(clients, "alice", "outsider", "outsider")
    await room_with(alice, "den")
    joined, again = await _in_turn(server, "den", (first, "/join den"), (second, "/join den"))
    assert joined.ok and again.ok
    assert "already" not in joined.final and again.final["already"] is True
    assert (await second.say("hello"))["room"] == "den"  # its current room


@pytest.mark.parametrize(("start", "change", "end"), [("private", "-i+R", "request"),
                                                      ("request", "-R+i", "private")])
async def test_a_join_behind_a_change_of_who_may_join_never_finds_the_room_open(
        server: ChatServer, clients: Clients, start: str, change: str, end: str) -> None:
    """-i+R (and -R+i) is one change: a join queued behind it finds the new mode,
    not the open room the first letter alone would have made."""
    alice, outsider = await users(clients, "alice", "outsider")
    await room_with(alice, "den", mode=start)
    changed, joined = await _in_turn(server, "den", (alice, f"/mode {change} den"),
                                     (outsider, "/join den"))
    assert changed["mode"] == end and changed["changes"] == change
    if end == "request":
        assert joined["requested"] is True
    else:
        assert joined.final["code"] == "not-permitted"
    assert not server.services.rooms.require("den").is_member(
        server.services.accounts.require("outsider").id)


@pytest.mark.parametrize("command", ["/invite carol den", "/mode private den", "/mode +m den",
                                     "/ban carol den", "/unban dave den", "/e2e on den"])
async def test_a_change_queued_behind_the_end_of_the_room_is_no_such_room(
        server: ChatServer, clients: Clients, command: str) -> None:
    """alice leaves bob alone in #den, which ends; a server admin's change queued
    behind her leave finds no room, and records nothing for it (an invitation to
    a room that is gone, a ban in it, a mode)."""
    root = await server_admin(server, clients)
    alice, bob, carol, _ = await users(clients, "alice", "bob", "carol", "dave")
    await room_with(alice, "den", bob)
    assert await code_of(alice, "/ban dave den") == "ok"
    bans = await server.services.storage.load_sanctions("ban")
    await drain(carol)
    left, late = await _in_turn(server, "den", (alice, "/leave den"), (root, command))
    assert left.ok
    assert late.final.get("code") == "no-such-room", late.final
    assert late.final["message"] == "#den no longer exists."
    assert notes(await settle(carol), "invitation") == []
    assert await server.services.storage.load_sanctions("ban") == bans



@pytest.mark.parametrize(("changer", "command"), [
    ("bob", "/topic den hello"), ("alice", "/topic den hello"), ("alice", "/e2e on den"),
    ("alice", "/ratelimit 2 den")])
async def test_a_change_of_a_member_queued_behind_the_end_of_the_room_is_no_such_room(
        server: ChatServer, clients: Clients, changer: str, command: str) -> None:
    """bob may set the topic of #den (-t), and alice anything, from her other
    connection too. Her leave ends the room: a change of either queued behind it
    finds no room, not a role they lost when it ended."""
    alice, bob, other = await users(clients, "alice", "bob", changer)
    await room_with(alice, "den", bob)
    await alice.command("/mode -t den")
    left, late = await _in_turn(server, "den", (alice, "/leave den"), (other, command))
    assert left.ok
    assert late.final.get("code") == "no-such-room", late.final
    assert late.final["message"] == "#den no longer exists."
