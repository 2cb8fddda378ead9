"""Kicks, bans and mutes: their effects, durations and expiry."""

from __future__ import annotations

import asyncio

import pytest

from chatd.domain.clock import ManualClock
from storage.api import StorageError
from storage.records import SanctionRecord
from tests.governance import (
    drain,
    error_of,
    events,
    listed,
    members_of,
    my_rooms,
    notes,
    room_with,
    settle,
    users,
)
from tests.helpers import ChatServer, Clients, text_client, text_run

START = ManualClock().time()


# -- kick ----------------------------------------------------------------------------


async def test_kick_removes_the_member_who_is_told_why(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    room_id = await room_with(alice, "dev", bob, carol)
    await settle(bob)
    reply = await alice.command("/kick bob dev too loud")
    assert reply["user"] == "bob" and reply["room"] == "dev"
    got = await settle(bob)
    kicked = notes(got, "kicked")
    assert len(kicked) == 1
    assert kicked[0] | {"id": 0, "ts_epoch": 0} == {
        "id": 0, "ts_epoch": 0, "kind": "kicked", "room": "dev", "room_id": room_id,
        "actor": "alice", "reason": "too loud"}
    assert "dev" not in await my_rooms(bob)
    assert await members_of(alice, "dev") == {"alice": "owner", "carol": "member"}
    # A kick is no ban: bob may come back to an open room at once.
    await bob.command("/join dev")


async def test_kick_of_a_non_member(clients: Clients) -> None:
    alice, _ = await users(clients, "alice", "bob")
    await room_with(alice, "dev")
    assert (await error_of(alice, "/kick bob dev"))["code"] == "not-in-room"
    assert (await error_of(alice, "/kick nobody dev"))["code"] == "no-such-user"


# -- ban -----------------------------------------------------------------------------


async def test_ban_removes_and_keeps_out(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    room_id = await room_with(alice, "dev", bob, carol)
    await alice.command("/ban bob dev spam")
    banned = notes(await settle(bob), "banned")
    assert [(n["room"], n["reason"], n["until"]) for n in banned] == [("dev", "spam", None)]
    assert "bob" not in await members_of(alice, "dev")
    refused = await error_of(bob, "/join dev")
    assert refused["code"] == "banned" and refused["until"] is None
    assert (await error_of(bob, f"/join {room_id}"))["code"] == "banned"
    # The room disappears for bob until he is unbanned.
    assert "dev" not in await listed(bob)
    assert "dev" in await listed(carol)
    await alice.command("/unban bob dev")
    assert [n["room"] for n in notes(await settle(bob), "unbanned")] == ["dev"]
    assert "dev" in await listed(bob)
    await bob.command("/join dev")


async def test_a_banned_user_cannot_request_nor_be_invited(clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    room_id = await room_with(alice, "club", mode="request")
    await bob.command("/join club")  # a pending request
    await alice.command("/ban bob club")
    assert (await alice.command("/requests club"))["requests"] == []
    assert (await error_of(bob, "/join club"))["code"] == "banned"
    assert (await alice.command("/requests club"))["requests"] == []
    assert (await error_of(alice, "/invite bob club"))["code"] == "banned"
    assert (await error_of(alice, "/accept bob club"))["code"] == "banned"
    await alice.command("/mode private club")
    assert (await error_of(bob, f"/join {room_id}"))["code"] == "banned"


async def test_a_ban_voids_an_earlier_invitation(clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    room_id = await room_with(alice, "den", mode="private")
    await alice.command("/invite bob den")
    await alice.command("/ban bob den")
    assert (await error_of(bob, f"/join {room_id}"))["code"] == "banned"


async def test_a_pre_emptive_ban_of_a_non_member(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", carol)
    await settle(carol)
    reply = await alice.command("/ban bob dev 7d")
    assert reply["until"] == START + 7 * 86400
    got = await settle(bob)
    assert [(e["room"], e["user"], e["actor"]) for e in events(got, "ban")] == [
        ("dev", "bob", "alice")]
    assert [n["until"] for n in notes(got, "banned")] == [START + 7 * 86400]
    assert [e["user"] for e in events(await settle(carol), "ban")] == ["bob"]
    refused = await error_of(bob, "/join dev")
    assert refused["code"] == "banned" and refused["until"] == START + 7 * 86400
    assert "dev" not in await listed(bob)


async def test_a_temporary_ban_expires_by_itself(server: ChatServer, clients: Clients,
                                                 clock: ManualClock) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob, carol)
    await alice.command("/ban bob dev 30m")
    clock.advance(29 * 60)
    await server.housekeeping.run_once()
    assert (await error_of(bob, "/join dev"))["code"] == "banned"
    await drain(alice, bob)
    clock.advance(61)
    done = await server.housekeeping.run_once()
    assert done["sanctions_expired"] == 1
    bob_got, alice_got = await settle(bob), await settle(alice)
    assert [(e["room"], e["user"]) for e in events(bob_got, "unban")] == [("dev", "bob")]
    assert [e["user"] for e in events(alice_got, "unban")] == ["bob"]
    assert [n["room"] for n in notes(bob_got, "unbanned")] == ["dev"]
    assert "dev" in await listed(bob)
    await bob.command("/join dev")


async def test_unban_ends_a_ban_early_and_needs_a_ban(clients: Clients,
                                                      clock: ManualClock) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev")
    assert (await error_of(alice, "/unban bob dev"))["code"] == "bad-arguments"
    await alice.command("/ban bob dev 2h")
    clock.advance(60)
    await alice.command("/unban bob dev")
    await bob.command("/join dev")


async def test_who_may_ban_whom(clients: Clients) -> None:
    alice, bob, carol, dave = await users(clients, "alice", "bob", "carol", "dave")
    await room_with(alice, "dev", bob, carol, dave, admins=(bob, carol))
    assert (await error_of(bob, "/ban alice dev"))["code"] == "not-permitted"
    assert (await error_of(bob, "/ban carol dev"))["code"] == "not-permitted"
    assert (await error_of(dave, "/ban bob dev"))["code"] == "not-permitted"
    await bob.command("/ban dave dev")
    await alice.command("/ban carol dev")
    assert await members_of(alice, "dev") == {"alice": "owner", "bob": "admin"}


# -- mute ----------------------------------------------------------------------------


async def test_a_muted_member_stays_but_cannot_send(clients: Clients,
                                                   clock: ManualClock) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    await bob.command("/create other")
    await bob.command("/switch dev")
    reply = await alice.command("/mute bob dev 10m")
    assert reply["until"] == START + 600
    assert [n["until"] for n in notes(await settle(bob), "muted")] == [START + 600]
    refused = await bob.say("hello?")
    assert refused["code"] == "muted"
    assert refused["retry_ms"] == 600_000 and refused["until"] == START + 600
    clock.advance(240)
    refused = await error_of(bob, "/say dev still here?")
    assert refused["code"] == "muted" and refused["retry_ms"] == 360_000
    assert "bob" in await members_of(alice, "dev")
    assert [e for e in await settle(alice) if e.get("type") == "message"] == []
    # Only that room: bob speaks elsewhere.
    await bob.command("/say other fine here")


async def test_a_muted_member_leaves_but_its_reason_is_not_shown(
        clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    await alice.command("/mute bob dev")
    await settle(alice)
    # Leaving says the reason to the room as a message would: a mute holds it back
    # (or leaving and joining again would post past the mute, a line each time).
    await bob.command("/leave dev buy cheap pills at example.com")
    [left] = [e for e in await settle(alice) if e.get("event") == "leave"]
    assert left["user"] == "bob" and not left.get("reason")
    # Still muted once back: the mute outlives the membership.
    await bob.command("/join dev")
    assert (await bob.say("back")).get("code") == "muted"


async def test_a_muted_member_sets_no_topic_even_where_members_may(
        clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    await alice.command("/mode -t dev")
    await bob.command("/topic dev members may set this")
    await alice.command("/mute bob dev 10m")
    await settle(alice)
    refused = await error_of(bob, "/topic dev buy cheap pills")
    assert refused["code"] == "muted" and refused["retry_ms"] == 600_000
    assert (await alice.command("/topic dev"))["topic"] == "members may set this"
    assert [e for e in await settle(alice) if e.get("event") == "topic"] == []


async def test_a_temporary_mute_expires(server: ChatServer, clients: Clients,
                                        clock: ManualClock) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    await alice.command("/mute bob dev 30s")
    await drain(alice, bob)
    clock.advance(30)
    done = await server.housekeeping.run_once()
    assert done["sanctions_expired"] == 1
    bob_got = await settle(bob)
    assert [(e["room"], e["user"]) for e in events(bob_got, "unmute")] == [("dev", "bob")]
    assert [n["room"] for n in notes(bob_got, "unmuted")] == ["dev"]
    assert [e["user"] for e in events(await settle(alice), "unmute")] == ["bob"]
    assert (await bob.say("back"))["type"] == "message"


async def test_a_mute_imposed_again_before_its_expiry_lifts_it_stays(
        server: ChatServer, clients: Clients, clock: ManualClock) -> None:
    """The expiry reads the run-out rows, then lifts each in its room's transaction,
    deleting the row only if it is still the one that ran out. A mute imposed again
    in between (a flood mute, or a /mute through another node) replaced the row: it
    stays, and the member is not told it was lifted."""
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "one", carol)
    await room_with(alice, "two", bob)
    await alice.command("/mute carol one 30s")
    await alice.command("/mute bob two 30s")
    await drain(alice, bob, carol)
    clock.advance(30)
    services = server.services
    two, bob_user = services.rooms.require("two"), services.accounts.require("bob")
    expired = await services.storage.expired_sanctions("mute", clock.time())
    assert sorted(r.user_id for r in expired) == sorted(
        [bob_user.id, services.accounts.require("carol").id])
    # Imposed again after the rows were read: what the flood mute writes and holds.
    again = SanctionRecord(two.id, bob_user.id, None, "flooding", clock.time(),
                           clock.time() + 600)
    await services.storage.put_sanction("mute", again)
    two.mutes[bob_user.id] = again
    assert await services.moderation.expire() == 1
    assert two.muted(bob_user.id, clock.time())
    assert (await bob.say("still muted?"))["code"] == "muted"
    assert notes(await settle(bob), "unmuted") == []
    assert [n["room"] for n in notes(await settle(carol), "unmuted")] == ["one"]
    assert await services.storage.load_sanctions("mute") == [again]


async def test_an_unmute_racing_the_expiry_tells_the_member_once(
        server: ChatServer, clients: Clients, clock: ManualClock) -> None:
    """An /unmute and the expiry of the same mute, at once: one lift, decided under
    the room's lock, and the member told once; the other finds nothing to lift."""
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    await alice.command("/mute bob dev 30s")
    await drain(alice, bob)
    clock.advance(30)
    services = server.services
    expired, unmute = await asyncio.gather(services.moderation.expire(),
                                           alice.command("/unmute bob dev", check=False))
    assert (expired, unmute["type"]) in ((1, "error"), (0, "ok")), (expired, unmute)
    if unmute["type"] == "error":
        assert unmute["code"] == "bad-arguments" and "not muted" in unmute["message"]
    assert [n["room"] for n in notes(await settle(bob), "unmuted")] == ["dev"]
    assert (await bob.say("the mute ran out"))["type"] == "message"
    # A mute still running is lifted by /unmute as ever.
    await alice.command("/mute bob dev 1h")
    await drain(alice, bob)
    await alice.command("/unmute bob dev")
    assert [n["room"] for n in notes(await settle(bob), "unmuted")] == ["dev"]


async def test_an_expiry_stopped_half_way_leaves_the_rest_to_the_next_pass(
        server: ChatServer, clients: Clients, clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each lift deletes its row and leaves the room together, then is told (a
    storage write). A write that fails stops the pass: the lifts not made yet keep
    their rows and their place in memory, and the next pass makes them."""
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob, carol)
    await alice.command("/mute bob dev 30s")
    await alice.command("/mute carol dev 30s")
    await drain(alice, bob, carol)
    clock.advance(30)
    services = server.services
    dev = services.rooms.require("dev")

    async def disk_full(*args: object) -> None:
        raise StorageError("disk full")

    monkeypatch.setattr(services.storage, "add_notification", disk_full)
    with pytest.raises(StorageError):
        await services.moderation.expire()
    monkeypatch.undo()
    [left] = await services.storage.expired_sanctions("mute", clock.time())
    assert set(dev.mutes) == {left.user_id}
    assert await services.moderation.expire() == 1
    assert dev.mutes == {}
    assert await services.storage.expired_sanctions("mute", clock.time()) == []
    for name in ("bob", "carol"):
        refused = await error_of(alice, f"/unmute {name} dev")
        assert refused["code"] == "bad-arguments"


async def test_a_permanent_mute_lasts_until_unmute(clients: Clients,
                                                   clock: ManualClock) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    assert (await alice.command("/mute bob dev"))["until"] is None
    clock.advance(365 * 86400)
    refused = await bob.say("hello?")
    assert refused["code"] == "muted" and refused["until"] is None
    await alice.command("/unmute bob dev")
    assert [n["room"] for n in notes(await settle(bob), "unmuted")] == ["dev"]
    assert (await bob.say("thanks"))["type"] == "message"
    assert (await error_of(alice, "/unmute bob dev"))["code"] == "bad-arguments"


async def test_mute_needs_a_member(clients: Clients) -> None:
    alice, _ = await users(clients, "alice", "bob")
    await room_with(alice, "dev")
    assert (await error_of(alice, "/mute bob dev"))["code"] == "not-in-room"


# -- what a ban revokes and how it shows ---------------------------------------------


async def test_a_ban_revokes_a_pending_invitation(clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    room_id = await room_with(alice, "den", mode="private")
    await alice.command("/invite bob den")
    await alice.command("/ban bob den")
    await alice.command("/unban bob den")
    assert (await error_of(bob, f"/join {room_id}"))["code"] == "not-permitted"
    assert "bob" not in await members_of(alice, "den")
    # A new invitation after the unban lets him in.
    await alice.command("/invite bob den")
    await bob.command(f"/join {room_id}")


async def test_a_ban_revokes_a_pending_request(clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "club", mode="request")
    await bob.command("/join club")
    await alice.command("/ban bob club")
    await alice.command("/unban bob club")
    assert (await alice.command("/requests club"))["requests"] == []
    assert (await error_of(alice, "/accept bob club"))["code"] == "bad-arguments"


async def test_myrooms_marks_a_room_that_banned_you(clients: Clients,
                                                    clock: ManualClock) -> None:
    alice, bob = await users(clients, "alice", "bob")
    dev = await room_with(alice, "dev", bob)
    ops = await room_with(alice, "ops", bob)
    await bob.command("/leave ops")
    await alice.command("/ban bob dev 2h")
    clock.advance(3600)
    past = {p["name"]: p for p in (await bob.command("/myrooms"))["past"]}
    assert past["dev"] | {"last_joined": 0} == {
        "id": dev, "name": "dev", "last_joined": 0, "terminated": False, "banned": True,
        "until": START + 7200}
    assert past["ops"]["banned"] is False and "until" not in past["ops"]
    assert past["ops"]["id"] == ops
    text = await text_run(await text_client(clients, "bob"), "/myrooms")
    assert any("dev" in line and "banned for 1h more" in line for line in text), text
    # Once the ban is over, the room is one to join back again.
    clock.advance(3601)
    past = {p["name"]: p for p in (await bob.command("/myrooms"))["past"]}
    assert past["dev"]["banned"] is False


async def test_who_of_an_open_room_that_banned_you_says_the_ban_hides_it(
        clients: Clients) -> None:
    """/who is refused to a banned user (not-permitted), saying why: an open room's
    members are no secret to others, so "only members can see" would be untrue."""
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    await alice.command("/ban bob dev 2h")
    refused = await error_of(bob, "/who dev")
    assert refused["code"] == "not-permitted"
    assert refused["message"] == "you are banned from #dev for 2h more, which hides who is in it."


async def test_topic_of_an_open_room_that_banned_you_says_banned(clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    await alice.command("/topic dev hello")
    await alice.command("/ban bob dev")
    refused = await error_of(bob, "/topic dev")
    assert refused["code"] == "banned"
    assert refused["message"] == "you are banned from #dev."
