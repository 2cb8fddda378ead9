"""Every governance change is a contract ``event`` line naming the room and the users."""

from __future__ import annotations

import json

from chatd.client import LineClient
from chatd.domain.clock import ManualClock
from tests.governance import Event, drain, events, room_with, settle, users
from tests.helpers import PASSWORD, ChatServer, Clients, text_client, text_run


def only(received: list[Event], name: str) -> Event:
    found = events(received, name)
    assert len(found) == 1, (name, received)
    return found[0]


def moderation(event: Event, name: str, user: str, actor: str, room: str = "dev") -> None:
    assert event["type"] == "event" and event["event"] == name
    assert (event["room"], event["user"], event["actor"]) == (room, user, actor)
    assert "label" not in event


async def test_moderation_events_carry_room_user_and_actor(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob, carol)
    await drain(alice, bob, carol)
    steps = [("/promote bob dev", "promote", "bob"), ("/demote bob dev", "demote", "bob"),
             ("/mute bob dev 5m", "mute", "bob"), ("/unmute bob dev", "unmute", "bob"),
             ("/invite dave dev", "invite", "dave")]
    await clients.user("dave")
    for line, name, user in steps:
        reply = await alice.command(line)
        # The issuer's copy is part of the labelled command's reply, before its ok.
        [own] = [r for r in reply.lines if r.get("event") == name]
        assert own.pop("label") == reply["label"]
        moderation(own, name, user, "alice")
        assert events(await settle(alice), name) == []  # and only there
        for watcher in (bob, carol):
            moderation(only(await settle(watcher), name), name, user, "alice")
    await alice.command("/mute bob dev 5m")
    assert only(await settle(carol), "mute")["until"] == ManualClock().time() + 300
    await alice.command("/promote bob dev")
    assert only(await settle(carol), "promote")["role"] == "admin"


async def test_removals_are_seen_by_the_room_and_the_removed(clients: Clients) -> None:
    alice, bob, carol, dave = await users(clients, "alice", "bob", "carol", "dave")
    await room_with(alice, "dev", bob, carol, dave)
    await drain(alice, bob, carol, dave)
    await alice.command("/kick bob dev go away")
    for watcher in (bob, carol):
        kick = only(await settle(watcher), "kick")
        moderation(kick, "kick", "bob", "alice")
        assert kick["reason"] == "go away"
    await alice.command("/ban carol dev 1h")
    for watcher in (carol, dave):
        moderation(only(await settle(watcher), "ban"), "ban", "carol", "alice")
    await alice.command("/unban carol dev")
    for watcher in (carol, dave):
        moderation(only(await settle(watcher), "unban"), "unban", "carol", "alice")
    await dave.command("/leave dev")
    leave = only(await settle(alice), "leave")
    assert (leave["room"], leave["user"]) == ("dev", "dave")
    # What happens after the removal is no longer sent to the removed.
    await alice.command("/topic dev quiet now")
    assert events(await settle(bob), "topic") == []


async def test_a_pre_emptive_ban_is_seen_by_the_room_and_the_banned(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", carol)
    await drain(alice, carol)
    await alice.command("/ban bob dev")
    for watcher in (bob, carol):
        moderation(only(await settle(watcher), "ban"), "ban", "bob", "alice")


async def test_join_request_and_termination_events(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob)
    await drain(alice, bob)
    await carol.command("/join dev")
    joined = only(await settle(alice), "join")
    assert (joined["room"], joined["user"]) == ("dev", "carol")
    await alice.command("/mode request dev")
    await drain(alice, bob)
    dave = await clients.user("dave")
    await dave.command("/join dev")
    request = only(await settle(alice), "request")
    assert (request["room"], request["user"]) == ("dev", "dave")
    assert events(await settle(bob), "request") == []  # admins only
    await carol.command("/leave dev")
    await drain(bob)
    await alice.command("/leave dev")
    terminated = only(await settle(bob), "terminated")
    assert (terminated["room"], terminated["user"]) == ("dev", "bob")


async def test_expiry_events_name_the_user(server: ChatServer, clients: Clients,
                                           clock: ManualClock) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob, carol)
    await alice.command("/mute bob dev 1m")
    await alice.command("/ban carol dev 1m")
    await drain(alice, bob, carol)
    clock.advance(60)
    await server.housekeeping.run_once()
    got = await settle(alice)
    assert [(e["room"], e["user"]) for e in events(got, "unmute")] == [("dev", "bob")]
    assert [(e["room"], e["user"]) for e in events(got, "unban")] == [("dev", "carol")]
    assert [e["user"] for e in events(await settle(carol), "unban")] == ["carol"]


async def test_a_leave_that_lost_the_race_hears_why_first(server: ChatServer,
                                                          clients: Clients) -> None:
    # The owner and the last member leave at once: the owner's leave ends the room
    # and evicts the member, whose own leave then finds nothing to do. The events
    # that say why come before that answer.
    await users(clients, "alice", "bob")
    lost: list[bool] = []
    for round_ in range(3):
        room = f"race{round_}"
        owner, member = await LineClient.connect(port=server.port), \
            await LineClient.connect(port=server.port)
        try:
            lost.append(await _race_leaves(owner, member, room))
        finally:
            for client in (owner, member):
                await client.close()
    assert any(lost)  # the owner's leave, sent first, came first at least once


async def _race_leaves(owner: LineClient, member: LineClient, room: str) -> bool:
    """Whether the member's leave lost the race (and heard why first)."""
    for client, name in ((owner, "alice"), (member, "bob")):
        client.send("/format json")
        client.send(f"/login {name} {PASSWORD}")
        await client.until(lambda line: '"command":"login"' in line)
    owner.send(f"/create {room}")
    await owner.until(lambda line: '"command":"create"' in line)
    member.send(f"/join {room}")
    await member.until(lambda line: '"command":"join"' in line)
    owner.send(f"/leave {room}")
    member.send(f"/leave {room}")
    seen = [json.loads(line) for line in
            await member.until(lambda line: '"command":"leave"' in line)]
    if not seen[-1].get("already"):
        return False
    assert any(r.get("event") == "terminated" for r in seen[:-1]), seen
    return True


async def test_room_setting_events_name_their_user(clients: Clients) -> None:
    # mode, modes and e2e name who made the change as user (and actor), as topic does;
    # the text lines say who too.
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    carol = await text_client(clients, "carol")
    await text_run(carol, "/join dev")
    await drain(alice, bob)
    steps = [("/mode private dev", "mode", "* alice made #dev private"),
             ("/mode +m dev", "modes", "* alice changed #dev: moderated"),
             ("/e2e on dev", "e2e", "* alice turned end-to-end encryption on in #dev")]
    for line, name, sentence in steps:
        reply = await alice.command(line)
        [own] = [r for r in reply.lines if r.get("event") == name]
        event = only(await settle(bob), name)
        for record in (own, event):
            assert (record["room"], record["user"], record["actor"]) == ("dev", "alice", "alice")
        assert any(text.startswith(sentence) for text in await text_run(carol, None)), sentence


async def test_a_role_its_user_has_already_is_no_event_and_no_refusal(
        server: ChatServer, clients: Clients) -> None:
    """/voice of a voiced member was refused as "only a member can be voiced", a wrong
    reason: each change of role to the role its user has answers ``already``, tells
    nobody, notifies nobody and writes no audit entry."""
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob, carol)
    room = server.services.rooms.find("dev")
    assert room is not None
    steps = [("/voice", "/voice", "bob already has voice in #dev."),
             ("/devoice", "/devoice", "bob already has no voice in #dev."),
             ("/promote", "/promote", "bob is already an admin of #dev."),
             ("/demote", "/demote", "bob is already a member of #dev.")]
    for first, second, sentence in steps:
        done = await alice.command(f"{first} bob dev")
        assert done["already"] is False, first
        await drain(alice, bob, carol)
        audited = len(await server.services.audit.entries(100, room))
        again = await alice.command(f"{second} bob dev")
        assert (again["already"], again.final["message"]) == (True, sentence)
        assert [line for line in again.lines if line.get("type") == "event"] == []
        for watcher in (bob, carol):
            assert await settle(watcher) == [], first
        assert len(await server.services.audit.entries(100, room)) == audited, first
    # Text mode shows the sentence (no event told it).
    text = await text_client(clients, "alice")
    assert await text_run(text, "/demote bob dev") == ["* bob is already a member of #dev."]
