"""Getting into rooms: open, request and private modes; requests and invitations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatd.domain.clock import ManualClock
from tests.governance import (
    error_of,
    events,
    listed,
    members_of,
    notes,
    room_with,
    server_admin,
    settle,
    users,
)
from tests.helpers import ChatServer, Clients, start_server

WEEK = 7 * 86400


# -- request rooms -------------------------------------------------------------------


async def test_request_room_is_listed_and_join_files_a_request(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "club", bob, mode="request", admins=(bob,))
    assert "club" in await listed(carol)
    await settle(alice)
    await settle(bob)
    reply = await carol.command("/join club")
    assert reply["requested"] is True and reply["room"] == "club"
    assert await members_of(alice, "club") == {"alice": "owner", "bob": "admin"}
    for admin in (alice, bob):
        got = events(await settle(admin), "request")
        assert [(e["room"], e["user"]) for e in got] == [("club", "carol")]
    pending = await bob.command("/requests club")
    assert [r["user"] for r in pending["requests"]] == ["carol"]


async def test_asking_again_while_a_request_is_pending_tells_the_admins_once(
        clients: Clients) -> None:
    """Each /join of a pending request answers requested, but only the first one
    reaches the admins (and the audit log): a user cannot flood them by asking."""
    alice, carol = await users(clients, "alice", "carol")
    await room_with(alice, "club", mode="request")
    await settle(alice)
    for _ in range(4):
        assert (await carol.command("/join club"))["requested"] is True
    assert [e["user"] for e in events(await settle(alice), "request")] == ["carol"]
    audit = await alice.command("/audit club")
    assert [e["action"] for e in audit["entries"]].count("request") == 1


async def test_accepting_a_request_joins_and_notifies_the_requester(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    room_id = await room_with(alice, "club", bob, mode="request", admins=(bob,))
    await carol.command("/join club")
    await settle(carol)
    await bob.command("/accept carol club")
    got = await settle(carol)
    accepted = notes(got, "request-accepted")
    assert [(n["room"], n["room_id"]) for n in accepted] == [("club", room_id)]
    assert [e["user"] for e in events(got, "join")] == ["carol"]
    assert (await members_of(alice, "club"))["carol"] == "member"
    assert (await bob.command("/requests club"))["requests"] == []
    # The request was used up, and carol is a member: accepting her again says so.
    assert (await error_of(bob, "/accept carol club"))["code"] == "already-in-room"


async def test_accepting_a_member_is_already_in_room(clients: Clients) -> None:
    """/accept of someone who is a member already says so, naming them (PROTOCOL.md
    §8), whether or not a request of theirs is pending."""
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "club", bob, mode="request")
    refused = await error_of(alice, "/accept bob club")
    assert (refused["code"], refused["message"]) == ("already-in-room",
                                                     "bob is already in #club.")


async def test_declining_a_request_notifies_and_does_not_join(clients: Clients) -> None:
    alice, carol = await users(clients, "alice", "carol")
    await room_with(alice, "club", mode="request")
    await carol.command("/join club")
    await alice.command("/decline carol club")
    declined = notes(await settle(carol), "request-declined")
    assert [n["room"] for n in declined] == ["club"]
    assert "carol" not in await members_of(alice, "club")
    assert (await alice.command("/requests club"))["requests"] == []
    assert (await error_of(alice, "/decline carol club"))["code"] == "bad-arguments"


async def test_plain_members_cannot_see_or_answer_requests(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "club", bob, mode="request")
    await carol.command("/join club")
    for line in ("/requests club", "/accept carol club", "/decline carol club"):
        assert (await error_of(bob, line))["code"] == "not-permitted"
    assert (await error_of(carol, "/accept carol club"))["code"] == "not-permitted"
    assert [r["user"] for r in (await alice.command("/requests club"))["requests"]] == ["carol"]


async def test_a_kicked_user_may_request_again_and_be_accepted(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "club", bob, carol, mode="request")
    await alice.command("/kick carol club")
    assert (await carol.command("/join club"))["requested"] is True
    await alice.command("/accept carol club")
    assert "carol" in await members_of(alice, "club")


async def test_a_request_goes_when_its_user_joins_another_way(clients: Clients) -> None:
    """A pending request is answered by the join itself: made open meanwhile, or
    invited, the user walks in, and no admin is left to answer a member's request."""
    alice, carol, dave = await users(clients, "alice", "carol", "dave")
    await room_with(alice, "club", mode="request")
    assert (await carol.command("/join club"))["requested"] is True
    assert (await dave.command("/join club"))["requested"] is True
    await alice.command("/invite carol club")
    await carol.command("/join club")
    await alice.command("/mode open club")
    await dave.command("/join club")
    assert (await alice.command("/requests club"))["requests"] == []
    await alice.command("/mode request club")
    await dave.command("/leave club")
    # Asking again is a new request, which the admins are told of.
    await settle(alice)
    assert (await dave.command("/join club"))["requested"] is True
    assert [e["user"] for e in events(await settle(alice), "request")] == ["dave"]


# -- private rooms and invitations -----------------------------------------------------


async def test_private_room_is_hidden_from_non_members(server: ChatServer,
                                                     clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    root = await server_admin(server, clients)
    await room_with(alice, "den", bob, mode="private")
    assert "den" not in await listed(carol)
    assert "den" in await listed(bob)
    assert "den" in await listed(root)
    assert (await error_of(carol, "/join den"))["code"] == "not-permitted"
    assert (await error_of(carol, "/who den"))["code"] == "not-permitted"
    assert "carol" not in await members_of(alice, "den")


async def test_an_invitation_lets_the_user_join_by_id_once(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    room_id = await room_with(alice, "den", bob, mode="private", admins=(bob,))
    await settle(carol)
    reply = await bob.command("/invite carol den")
    assert reply["id"] == room_id and reply["user"] == "carol"
    invitation = notes(await settle(carol), "invitation")
    assert len(invitation) == 1
    assert invitation[0]["room_id"] == room_id and invitation[0]["actor"] == "bob"
    joined = await carol.command(f"/join {invitation[0]['room_id']}")
    assert joined["room"] == "den"
    assert (await members_of(alice, "den"))["carol"] == "member"
    # Single use: after leaving, the same invitation does not work again.
    await carol.command("/leave den")
    assert (await error_of(carol, f"/join {room_id}"))["code"] == "not-permitted"


async def test_an_invitation_is_used_up_by_a_join_it_was_not_needed_for(
        clients: Clients) -> None:
    """Invited to a room made open meanwhile, carol walks in without the invitation:
    it is used up all the same, and does not let her back once the room is private."""
    alice, carol = await users(clients, "alice", "carol")
    room_id = await room_with(alice, "den", mode="private")
    await alice.command("/invite carol den")
    await alice.command("/mode open den")
    await carol.command("/join den")
    await carol.command("/leave den")
    await alice.command("/mode private den")
    assert (await error_of(carol, f"/join {room_id}"))["code"] == "not-permitted"
    assert "carol" not in await members_of(alice, "den")


async def test_an_invitation_outlives_the_account_of_the_admin_who_made_it(
        server: ChatServer, clients: Clients) -> None:
    """An invitation is the room's decision, as a ban is: the deletion of the admin
    who made it leaves it valid for as long as carol was told it is."""
    root = await server_admin(server, clients)
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    room_id = await room_with(alice, "den", bob, mode="private", admins=(bob,))
    await bob.command("/invite carol den")
    await root.command("/userdel bob")
    assert (await carol.command(f"/join {room_id}"))["room"] == "den"
    assert await members_of(alice, "den") == {"alice": "owner", "carol": "member"}


async def test_an_invitation_expires_after_seven_days(server: ChatServer, clients: Clients,
                                                      clock: ManualClock) -> None:
    alice, carol, dave = await users(clients, "alice", "carol", "dave")
    room_id = await room_with(alice, "den", mode="private")
    await alice.command("/invite carol den")
    await alice.command("/invite dave den")
    clock.advance(WEEK - 1)
    await carol.command(f"/join {room_id}")  # still valid a second before
    clock.advance(2)
    assert (await error_of(dave, f"/join {room_id}"))["code"] == "not-permitted"
    # Housekeeping forgets expired invitations.
    await alice.command("/invite dave den")
    clock.advance(WEEK + 1)
    done = await server.housekeeping.run_once()
    assert done["invitations_expired"] == 1
    assert (await error_of(dave, f"/join {room_id}"))["code"] == "not-permitted"


async def test_the_invitation_lifetime_is_configurable(
        tmp_path: Path, clock: ManualClock, storage_overrides: dict[str, Any]) -> None:
    server = await start_server(tmp_path / "ttl.db", clock=clock, rooms__invitation_ttl="60s",
                                **storage_overrides)
    clients = Clients(server)
    try:
        alice, carol, dave = await users(clients, "alice", "carol", "dave")
        room_id = await room_with(alice, "den", mode="private")
        await alice.command("/invite carol den")
        await alice.command("/invite dave den")
        clock.advance(59)
        await carol.command(f"/join {room_id}")
        clock.advance(2)
        assert (await error_of(dave, f"/join {room_id}"))["code"] == "not-permitted"
    finally:
        await clients.close()
        await server.stop()


async def test_an_invitation_also_opens_a_request_room(clients: Clients) -> None:
    alice, carol = await users(clients, "alice", "carol")
    await room_with(alice, "club", mode="request")
    await alice.command("/invite carol club")
    reply = await carol.command("/join club")
    assert reply.get("requested") is None and "carol" in await members_of(alice, "club")


async def test_a_kicked_user_may_be_invited_again(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    room_id = await room_with(alice, "den", bob, carol, mode="private")
    await alice.command("/kick carol den")
    assert (await error_of(carol, f"/join {room_id}"))["code"] == "not-permitted"
    await alice.command("/invite carol den")
    await carol.command(f"/join {room_id}")
    assert "carol" in await members_of(alice, "den")


async def test_who_may_invite(server: ChatServer, clients: Clients) -> None:
    alice, bob, carol, dave = await users(clients, "alice", "bob", "carol", "dave")
    root = await server_admin(server, clients)
    room_id = await room_with(alice, "den", bob, carol, mode="private", admins=(bob,))
    assert (await error_of(carol, "/invite dave den"))["code"] == "not-permitted"
    assert (await error_of(dave, "/invite dave den"))["code"] == "not-permitted"
    assert (await error_of(alice, "/invite carol den"))["code"] == "already-in-room"
    await root.command("/invite dave den")
    await dave.command(f"/join {room_id}")


async def test_a_server_admin_joins_a_private_room_directly(server: ChatServer,
                                                           clients: Clients) -> None:
    alice = await clients.user("alice")
    root = await server_admin(server, clients)
    await room_with(alice, "den", mode="private")
    await root.command("/join den")
    assert await members_of(alice, "den") == {"alice": "owner", "root": "member"}


# -- modes -------------------------------------------------------------------------------


async def test_the_owner_changes_the_mode(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob, admins=(bob,))
    assert (await error_of(bob, "/mode private dev"))["code"] == "not-permitted"
    await settle(bob)
    reply = await alice.command("/mode private dev")
    assert reply["mode"] == "private"
    changed = events(await settle(bob), "mode")
    assert [(e["room"], e["actor"], e["mode"]) for e in changed] == [("dev", "alice", "private")]
    assert "dev" not in await listed(carol)
    assert (await error_of(carol, "/join dev"))["code"] == "not-permitted"
    await alice.command("/mode request dev")
    assert "dev" in await listed(carol)
    assert (await carol.command("/join dev"))["requested"] is True
    await alice.command("/mode OPEN dev")  # choices are case-insensitive
    assert (await carol.command("/join dev"))["room"] == "dev"
    assert (await error_of(alice, "/mode secret dev"))["code"] == "bad-arguments"


async def test_create_chooses_the_mode(clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    assert (await alice.command("/create den private"))["mode"] == "private"
    assert (await alice.command("/create club request"))["mode"] == "request"
    rooms = {r["name"]: r["mode"] for r in (await bob.command("/rooms"))["rooms"]}
    assert rooms == {"club": "request"}


async def test_an_expired_invitation_says_it_expired(clients: Clients,
                                                     clock: ManualClock) -> None:
    alice, dave = await users(clients, "alice", "dave")
    room_id = await room_with(alice, "den", mode="private")
    await alice.command("/invite dave den")
    clock.advance(WEEK + 3600)
    refused = await error_of(dave, f"/join {room_id}")
    assert refused["code"] == "not-permitted"
    assert refused["message"] == ("your invitation to #den expired 1h ago: "
                                  "ask one of its admins for a new one.")
    # Used up like a valid one: a second try has no invitation at all.
    again = await error_of(dave, f"/join {room_id}")
    assert again["message"] == "#den is private: you need an invitation to join."
