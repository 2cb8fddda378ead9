"""The permission matrix over the socket: kick, ban, mute, promote, demote and mode."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from chatd.client import ChatClient
from tests.governance import code_of, error_of, members_of, room_with, server_admin, users
from tests.helpers import ChatServer, Clients

NP = "not-permitted"
# (command, target) -> expected outcome, per actor. Targets: the owner (alice), an admin
# (carol) and a member (erin) of a room where bob is another admin and dave a member.
CELLS = [("kick", "alice"), ("kick", "carol"), ("kick", "erin"),
         ("ban", "alice"), ("ban", "carol"), ("ban", "erin"),
         ("mute", "alice"), ("mute", "carol"), ("mute", "erin"),
         ("promote", "erin"), ("demote", "carol"), ("mode", None)]
EXPECTED = {
    #               kick: owner admin member  ban: o  a   m   mute: o  a   m  promote demote mode
    "owner":        [NP, "ok", "ok", NP, "ok", "ok", NP, "ok", "ok", "ok", "ok", "ok"],
    "admin":        [NP, NP, "ok", NP, NP, "ok", NP, NP, "ok", NP, NP, NP],
    "member":       [NP] * 12,
    "stranger":     [NP] * 12,
    "server-admin": ["ok"] * 12,
}
ACTOR_NAMES = {"owner": "alice", "admin": "bob", "member": "dave", "stranger": "frank",
               "server-admin": "root"}


async def check_effect(observer: ChatClient, room: str, command: str, target: str) -> None:
    members = await members_of(observer, room)
    if command in ("kick", "ban"):
        assert target not in members
    elif command == "promote":
        assert members[target] == "admin"
    elif command == "demote":
        assert members[target] == "member"


@pytest.mark.parametrize("actor", list(EXPECTED))
async def test_permission_matrix(server: ChatServer, clients: Clients, actor: str) -> None:
    root = await server_admin(server, clients)
    alice, bob, carol, dave, erin, frank, gina = await users(
        clients, "alice", "bob", "carol", "dave", "erin", "frank", "gina")
    by_name = {"alice": alice, "bob": bob, "dave": dave, "frank": frank, "root": root}
    acting = by_name[ACTOR_NAMES[actor]]
    outcomes = []
    for number, (command, target) in enumerate(CELLS):
        room = f"r{number}"
        await room_with(alice, room, bob, carol, dave, erin, gina, admins=(bob, carol))
        line = f"/mode request {room}" if command == "mode" else f"/{command} {target} {room}"
        outcome = await code_of(acting, line)
        outcomes.append(outcome)
        if outcome == "ok" and target is not None:
            await check_effect(root, room, command, target)
    assert outcomes == EXPECTED[actor]


async def test_refusals_name_the_role_needed(clients: Clients) -> None:
    alice, bob, carol, dave = await users(clients, "alice", "bob", "carol", "dave")
    await room_with(alice, "dev", bob, carol, dave, admins=(bob, carol))
    cases = [(dave, "/kick carol dev", "admin"), (bob, "/promote dave dev", "owner"),
             (bob, "/kick carol dev", "owner"), (bob, "/ban alice dev", "server admin"),
             (bob, "/mode private dev", "owner")]
    for client, line, role in cases:
        refused = await error_of(client, line)
        assert refused["code"] == NP and role in refused["message"], (line, refused)


async def test_every_command_rechecks_the_role_when_it_runs(clients: Clients) -> None:
    alice, bob, carol, dave, _ = await users(clients, "alice", "bob", "carol", "dave", "frank")
    await room_with(alice, "dev", bob, carol, dave, admins=(bob,))
    await bob.command("/mute dave dev 1m")
    await alice.command("/demote bob dev")
    lines = ["/kick dave dev", "/ban dave dev", "/mute dave dev", "/unmute dave dev",
             "/invite frank dev", "/requests dev", "/unban dave dev", "/audit dev"]
    for line in lines:
        assert (await error_of(bob, line))["code"] == NP, line
    # Promoted again, bob may act at once; an admin who left the room may not.
    await alice.command("/promote bob dev")
    await bob.command("/unmute dave dev")
    await bob.command("/leave dev")
    assert (await error_of(bob, "/kick dave dev"))["code"] == NP
    assert (await error_of(bob, "/invite frank dev"))["code"] == NP
    assert await members_of(alice, "dev") == {"alice": "owner", "carol": "member",
                                              "dave": "member"}


async def test_a_server_admin_governs_any_room(server: ChatServer, clients: Clients) -> None:
    root = await server_admin(server, clients)
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "club", bob, mode="request", admins=(bob,))
    await carol.command("/join club")
    assert [r["user"] for r in (await root.command("/requests club"))["requests"]] == ["carol"]
    await root.command("/accept carol club")
    await root.command("/mute carol club")
    await root.command("/unmute carol club")
    await root.command("/ban carol club")
    await root.command("/unban carol club")
    await root.command("/demote bob club")
    await root.command("/promote bob club")
    await root.command("/mode private club")
    await root.command("/kick alice club")
    assert await members_of(root, "club") == {"bob": "owner"}
    assert (await root.command("/audit club"))["entries"]


async def test_nobody_but_a_server_admin_acts_against_the_owner(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob, carol, admins=(bob,))
    for client, verb in itertools.product((bob, carol), ("kick", "ban", "mute", "demote")):
        assert (await error_of(client, f"/{verb} alice dev"))["code"] == NP
    for verb in ("kick", "ban", "mute", "demote", "promote"):
        assert (await error_of(alice, f"/{verb} alice dev"))["code"] == NP
    assert (await members_of(alice, "dev"))["alice"] == "owner"


async def test_a_refused_ban_leaves_nothing_half_done(clients: Clients) -> None:
    """An admin's ban races the owner promoting its target: the ban happens entirely
    (the target is out and kept out) or not at all (no ban is left behind)."""
    alice, bob, carol, dave = await users(clients, "alice", "bob", "carol", "dave")
    for number in range(5):
        room = f"r{number}"
        await room_with(alice, room, bob, carol, dave, admins=(bob,))
        ban, _ = await asyncio.gather(code_of(bob, f"/ban dave {room}"),
                                      code_of(alice, f"/promote dave {room}"))
        member = "dave" in await members_of(alice, room)
        if member:
            await dave.command(f"/leave {room}")
        outcome = (ban, member, await code_of(dave, f"/join {room}"))
        assert outcome in {("ok", False, "banned"), (NP, True, "ok")}, outcome
