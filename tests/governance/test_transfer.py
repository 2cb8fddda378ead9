"""/transfer: the owner (or a server admin) hands ownership to a member."""

from __future__ import annotations

from tests.governance import (
    drain,
    error_of,
    events,
    members_of,
    notes,
    room_with,
    server_admin,
    settle,
    users,
)
from tests.helpers import ChatServer, Clients


async def test_the_owner_hands_the_room_to_a_member(server: ChatServer,
                                                     clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    room_id = await room_with(alice, "dev", bob, carol)
    await drain(alice, bob, carol)
    reply = await alice.command("/transfer bob dev")
    assert (reply["user"], reply["room"], reply["role"], reply["previous"]) == (
        "bob", "dev", "owner", "alice")
    assert await members_of(carol, "dev") == {"bob": "owner", "alice": "admin",
                                              "carol": "member"}
    got = {"bob": await settle(bob), "carol": await settle(carol)}
    for received in got.values():
        owner = events(received, "owner")
        assert [(e["user"], e["actor"], e["previous"], e["role"]) for e in owner] == [
            ("bob", "alice", "alice", "owner")]
    promoted = notes(got["bob"], "promoted")
    assert [(n["room_id"], n["role"]) for n in promoted] == [(room_id, "owner")]
    # The roles are stored: a restart keeps them.
    stored = {m.user_id: m.role for m in await server.services.storage.load_members()
              if m.room_id == room_id}
    ids = {name: server.services.accounts.require(name).id for name in ("alice", "bob")}
    assert (stored[ids["alice"]], stored[ids["bob"]]) == ("admin", "owner")
    entries = (await bob.command("/audit dev"))["entries"]
    assert [(e["actor"], e["target"], e["reason"]) for e in entries
            if e["action"] == "transfer"] == [("alice", "bob", "from alice")]
    # The new owner has the owner's powers; the old one an admin's.
    assert (await error_of(alice, "/mode private dev"))["code"] == "not-permitted"
    await bob.command("/mode private dev")


async def test_a_server_admin_hands_a_room_over(server: ChatServer, clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    root = await server_admin(server, clients)
    await room_with(alice, "dev", bob)
    await drain(alice)
    await root.command("/transfer bob dev")
    assert await members_of(alice, "dev") == {"bob": "owner", "alice": "admin"}
    demoted = notes(await settle(alice), "demoted")
    assert [(n["room"], n["role"]) for n in demoted] == [("dev", "admin")]
    assert "root" not in await members_of(alice, "dev")


async def test_transfer_refusals(server: ChatServer, clients: Clients) -> None:
    alice, bob, carol, dave = await users(clients, "alice", "bob", "carol", "dave")
    root = await server_admin(server, clients)
    await room_with(alice, "dev", bob, carol, admins=(bob,))
    assert (await error_of(bob, "/transfer carol dev"))["code"] == "not-permitted"
    assert (await error_of(carol, "/transfer carol dev"))["code"] == "not-permitted"
    assert (await error_of(alice, "/transfer dave dev"))["code"] == "not-in-room"
    assert (await error_of(alice, "/transfer alice dev"))["code"] == "bad-arguments"
    assert (await error_of(root, "/transfer alice dev"))["code"] == "bad-arguments"
    assert (await error_of(alice, "/transfer nobody dev"))["code"] == "no-such-user"
    assert (await error_of(dave, "/transfer dave"))["code"] == "no-room"
    assert (await members_of(alice, "dev"))["alice"] == "owner"


async def test_a_muted_member_is_not_handed_the_room(clients: Clients) -> None:
    """Once the owner, only a server admin could lift the mute: it is lifted first."""
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    await alice.command("/mute bob dev")
    refused = await error_of(alice, "/transfer bob dev")
    assert refused["code"] == "not-permitted"
    assert refused["message"] == ("bob is muted in #dev: lift the mute (/unmute bob) "
                                  "before handing the room over.")
    assert (await members_of(alice, "dev"))["alice"] == "owner"
    await alice.command("/unmute bob dev")
    await alice.command("/transfer bob dev")
    assert (await members_of(alice, "dev"))["bob"] == "owner"


async def test_a_server_admin_cannot_demote_the_owner_and_is_told_of_transfer(
        server: ChatServer, clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    root = await server_admin(server, clients)
    await room_with(alice, "dev", bob)
    refused = await error_of(root, "/demote alice dev")
    assert refused["code"] == "bad-arguments"
    assert "/transfer" in refused["message"]
    assert (await members_of(alice, "dev"))["alice"] == "owner"


async def test_the_old_owner_leaving_after_a_transfer_changes_nothing_more(
        clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob, carol)
    await alice.command("/transfer carol dev")
    await alice.command("/leave dev")
    assert await members_of(bob, "dev") == {"carol": "owner", "bob": "member"}


async def test_help_lists_transfer(clients: Clients) -> None:
    (alice,) = await users(clients, "alice")
    reply = await alice.command("/help transfer")
    assert reply.ok
