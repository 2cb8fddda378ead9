"""Rooms over the wire: create, rooms, join, leave, switch, who, topic, myrooms."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatd.client.api import ClientError
from chatd.domain.clock import ManualClock
from tests.backends import both
from tests.helpers import ChatServer, Clients, error_of, settle, start_server, text_client, text_run

backend = both


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("type") == kind]






# -- /create ------------------------------------------------------------------------


async def test_create_makes_the_creator_owner_member_and_sets_the_current_room(
        clients: Clients) -> None:
    alice = await clients.user("alice")
    created = await alice.command("/create general")
    assert created["command"] == "create"
    assert created["room"] == "general" and created["name"] == "general"
    assert isinstance(created["id"], int) and created["id"] >= 1
    assert created["mode"] == "open" and created["members"] == 1
    who = await alice.command("/who")
    assert who["room"] == "general" and who["id"] == created["id"]
    assert who["members"] == [{"user": "alice", "role": "owner", "online": True}]
    assert (await alice.command("/whoami"))["current_room"] == "general"
    echo = await alice.say("first!")
    assert echo["type"] == "message" and echo["room"] == "general"


async def test_create_gives_each_room_its_own_id(clients: Clients) -> None:
    alice = await clients.user("alice")
    ids = [(await alice.command(f"/create room{n}"))["id"] for n in range(3)]
    assert len(set(ids)) == 3


@pytest.mark.parametrize("mode", ["open", "request", "private", "PRIVATE"])
async def test_create_with_a_mode(clients: Clients, mode: str) -> None:
    alice = await clients.user("alice")
    created = await alice.command(f"/create general {mode}")
    assert created["mode"] == mode.lower()


async def test_create_with_an_unknown_mode_is_bad_arguments(clients: Clients) -> None:
    alice = await clients.user("alice")
    assert (await error_of(alice, "/create general secretive"))["code"] == "bad-arguments"


@pytest.mark.parametrize("again", ["general", "GENERAL", "#General", "#general"])
async def test_create_refuses_a_taken_name(clients: Clients, again: str) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    bob = await clients.user("bob")
    error = await error_of(bob, f"/create {again}")
    assert error["code"] == "name-taken"
    assert (await bob.command("/whoami"))["rooms"] == []


@pytest.mark.parametrize("name", ["bad!", "x" * 33, "#", "a.b", "café", "##double",
                                  "\u212aelvin"])
async def test_create_refuses_an_invalid_name(clients: Clients, name: str) -> None:
    alice = await clients.user("alice")
    assert (await error_of(alice, f"/create {name}"))["code"] == "invalid-name"


@pytest.mark.parametrize(("typed", "stored"), [
    ("#general", "general"), ("General", "general"), ("#DEV_Room-1", "dev_room-1"),
    ("x" * 32, "x" * 32), ("#" + "Y" * 32, "y" * 32),
])
async def test_create_normalises_hash_and_case(clients: Clients, typed: str, stored: str) -> None:
    alice = await clients.user("alice")
    created = await alice.command(f"/create {typed}")
    assert created["room"] == stored
    bob = await clients.user("bob")
    assert (await bob.command(f"/join {typed.upper()}"))["room"] == stored


async def test_a_room_named_with_digits_can_be_joined_by_that_name(clients: Clients) -> None:
    alice = await clients.user("alice")
    created = await alice.command("/create 2024", check=False)
    if not created.ok:  # refusing such names would be a fine fix too
        assert created["code"] == "invalid-name"
        return
    bob = await clients.user("bob")
    joined = await bob.command("/join 2024", check=False)
    assert joined.ok and joined["room"] == "2024", joined.final


# -- /rooms -------------------------------------------------------------------------


@pytest.fixture
async def paged_server(tmp_path: Path, clock: ManualClock,
                       storage_overrides: dict[str, Any]) -> AsyncIterator[ChatServer]:
    server = await start_server(tmp_path / "paged.db", clock=clock, rooms__page_size=2,
                                **storage_overrides)
    yield server
    await server.stop()


async def test_rooms_is_paged(paged_server: ChatServer) -> None:
    opened = Clients(paged_server)
    try:
        alice = await opened.user("alice")
        ids = {}
        for name in ("alpha", "bravo", "charlie", "delta", "echo"):
            ids[name] = (await alice.command(f"/create {name}"))["id"]
        await alice.command("/topic alpha Alpha talk")
        first = await alice.command("/rooms")
        assert first["page"] == 1 and first["pages"] == 3 and first["total"] == 5
        assert first["message"] == "5 rooms; page 1 of 3; /rooms 2 for more."
        assert [r["name"] for r in first["rooms"]] == ["alpha", "bravo"]
        assert first["rooms"][0] == {"id": ids["alpha"], "name": "alpha", "mode": "open",
                                     "members": 1, "topic": "Alpha talk", "e2e": False,
                                     "modes": "+nt"}
        second = await alice.command("/rooms 2")
        assert second["page"] == 2
        assert [r["name"] for r in second["rooms"]] == ["charlie", "delta"]
        last = await alice.command("/rooms 3")
        assert [(r["id"], r["name"]) for r in last["rooms"]] == [(ids["echo"], "echo")]
        beyond = await alice.command("/rooms 4")
        assert beyond["rooms"] == [] and beyond["pages"] == 3
        text = await opened.raw()
        await text.line()
        await text_run(text, "/login alice secret-pw")
        lines = await text_run(text, "/rooms 2")
        assert lines[-1].startswith("* ") and "2" in lines[-1] and "3" in lines[-1]
        assert any("charlie" in line for line in lines)
        assert not any("alpha" in line for line in lines)
    finally:
        await opened.close()


async def test_rooms_with_no_rooms(clients: Clients) -> None:
    alice = await clients.user("alice")
    listed = await alice.command("/rooms")
    assert listed["rooms"] == [] and listed["total"] == 0 and listed["pages"] == 1



async def test_rooms_of_one_page_says_nothing_of_pages(clients: Clients) -> None:
    # "page 1 of 1" was all /rooms said under a table that fits one page, where every
    # other paged list says nothing of pages: it counts the rooms, as they count theirs.
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    await text_run(alice, "/create dev")
    *table, said = await text_run(alice, "/rooms")
    assert len(table) == 3 and said == "* 2 rooms."
    json = await clients.user("alice")
    listed = await json.command("/rooms")
    assert (listed["message"], listed["page"], listed["pages"], listed["total"]) == (
        "2 rooms.", 1, 1, 2)

async def test_rooms_hides_private_rooms_from_non_members(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create lobby")
    secret = await alice.command("/create hideout private")
    await alice.command("/create queue request")
    bob = await clients.user("bob")
    seen_by_bob = await bob.command("/rooms")
    assert [r["name"] for r in seen_by_bob["rooms"]] == ["lobby", "queue"]
    assert seen_by_bob["total"] == 2
    seen_by_alice = await alice.command("/rooms")
    assert [r["name"] for r in seen_by_alice["rooms"]] == ["lobby", "hideout", "queue"]
    # Nor can a non-member get in or look inside.
    assert (await error_of(bob, "/join hideout"))["code"] == "not-permitted"
    assert (await error_of(bob, f"/join {secret['id']}"))["code"] == "not-permitted"
    assert (await error_of(bob, "/who hideout"))["code"] == "not-permitted"
    assert (await error_of(bob, "/topic hideout"))["code"] == "not-permitted"


# -- /join --------------------------------------------------------------------------


async def test_join_by_name(clients: Clients) -> None:
    alice = await clients.user("alice")
    created = await alice.command("/create general")
    bob = await clients.user("bob")
    joined = await bob.command("/join general")
    assert joined["command"] == "join"
    assert joined["room"] == "general" and joined["id"] == created["id"]
    assert joined["members"] == 2 and joined.get("already") is None
    assert (await bob.command("/whoami"))["current_room"] == "general"


@pytest.mark.parametrize("form", ["{id}", "#general", "GENERAL"])
async def test_join_by_id_or_other_spelling(clients: Clients, form: str) -> None:
    alice = await clients.user("alice")
    created = await alice.command("/create general")
    bob = await clients.user("bob")
    joined = await bob.command("/join " + form.format(id=created["id"]))
    assert joined["room"] == "general" and joined["id"] == created["id"]


async def test_join_twice_is_ok_and_says_already(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    await alice.command("/create dev")
    again = await alice.command("/join general")
    assert again["already"] is True and again["room"] == "general"
    assert again["members"] == 1
    assert (await alice.command("/whoami"))["current_room"] == "general"


@pytest.mark.parametrize("ref", ["nosuchroom", "#nosuchroom", "999"])
async def test_join_unknown_room(clients: Clients, ref: str) -> None:
    alice = await clients.user("alice")
    error = await error_of(alice, f"/join {ref}")
    assert error["code"] == "no-such-room" and error["command"] == "join"


async def test_join_and_leave_events_reach_the_other_members(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    carol = await clients.user("carol")
    await carol.command("/join general")
    await alice.next_event(lambda e: e.get("event") == "join", timeout=5)
    bob = await clients.user("bob")
    await bob.command("/join general")
    for member in (alice, carol):
        event = await member.next_event(lambda e: e.get("type") == "event", timeout=5)
        assert event["event"] == "join"
        assert event["room"] == "general" and event["user"] == "bob"
    assert of_type(await settle(bob), "event") == []  # no echo of one's own join
    await bob.command("/leave")
    for member in (alice, carol):
        event = await member.next_event(lambda e: e.get("type") == "event", timeout=5)
        assert event["event"] == "leave"
        assert event["room"] == "general" and event["user"] == "bob"
    # Outsiders hear nothing.
    dave = await clients.user("dave")
    await carol.command("/leave general")
    assert of_type(await settle(dave), "event") == []


async def test_join_and_leave_churn_is_bounded_by_the_message_rate(
        tmp_path: Path, clock: ManualClock, storage_overrides: dict[str, Any]) -> None:
    """/join and /leave in turn showed every member two events per command token (20
    a second): a leave, shown to them with a reason of the leaver's choosing, takes a
    message token, so the churn goes at the message rate."""
    server = await start_server(tmp_path / "churn.db", clock=clock, limits__message_rate=1,
                                limits__message_burst=2, **storage_overrides)
    opened = Clients(server)
    try:
        alice = await opened.user("alice")
        await alice.command("/create general")
        bob = await opened.user("bob")
        for _ in range(2):
            await bob.command("/join general")
            await bob.command("/leave general flap")
        await bob.command("/join general")
        refused = await error_of(bob, "/leave general flap")
        assert refused["code"] == "rate-limited"
        room = server.services.rooms.find("general")
        assert room is not None and room.is_member(server.services.accounts.require("bob").id)
        clock.advance(1)
        await bob.command("/leave general")
        leaves = [e for e in await settle(alice) if e.get("event") == "leave"]
        assert [e.get("reason", "") for e in leaves] == ["flap", "flap", ""]
    finally:
        await opened.close()
        await server.stop()


async def test_join_and_leave_events_in_text_mode(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    watcher = await text_client(clients)
    await text_run(watcher, "/register carol secret-pw")
    await text_run(watcher, "/join general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    [joined] = await text_run(watcher, None)
    assert joined.startswith("* ") and "bob" in joined and "#general" in joined
    await bob.command("/leave general")
    [left] = await text_run(watcher, None)
    assert left.startswith("* ") and "bob" in left and "#general" in left


# -- /leave -------------------------------------------------------------------------


async def test_leave_clears_the_current_room(clients: Clients) -> None:
    alice = await clients.user("alice")
    created = await alice.command("/create general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    left = await bob.command("/leave")
    assert left["command"] == "leave"
    assert left["room"] == "general" and left["id"] == created["id"]
    who = await bob.command("/whoami")
    assert who["current_room"] is None and who["rooms"] == []
    error = await bob.say("hello?")
    assert error["type"] == "error" and error["code"] == "no-room"
    assert (await error_of(bob, "/leave general"))["code"] == "not-in-room"
    assert (await error_of(bob, "/leave"))["code"] == "no-room"
    members = (await alice.command("/who general"))["members"]
    assert [m["user"] for m in members] == ["alice"]


async def test_leave_a_room_that_is_not_the_current_one(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    await alice.command("/create dev")
    bob = await clients.user("bob")
    await bob.command("/join general")
    await bob.command("/join dev")
    await bob.command("/leave general")
    who = await bob.command("/whoami")
    assert who["current_room"] == "dev" and who["rooms"] == ["dev"]


async def test_the_last_two_members_leaving_at_once_both_succeed(clients: Clients) -> None:
    # The first leave ends the room and evicts the other member, whose own leave,
    # already waiting for the room, finds them out: what they asked for.
    alice = await clients.user("alice")
    await alice.command("/create den")
    bob = await clients.user("bob")
    await bob.command("/join den")
    replies = await asyncio.gather(alice.command("/leave den"), bob.command("/leave den"))
    assert all(r["type"] == "ok" for r in replies), replies
    assert sorted(bool(r.get("already")) for r in replies) == [False, True]
    assert (await error_of(alice, "/join den"))["code"] == "no-such-room"


async def test_leave_a_room_you_are_not_in(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    bob = await clients.user("bob")
    assert (await error_of(bob, "/leave general"))["code"] == "not-in-room"
    assert (await error_of(bob, "/leave #nosuchroom"))["code"] == "no-such-room"
    # Unlike /topic's, the first word is always the room, named or not.
    assert (await error_of(bob, "/leave nosuchroom"))["code"] == "no-such-room"
    assert (await error_of(bob, "/leave #nosuchroom bored"))["code"] == "no-such-room"


async def test_a_leave_reason_reaches_the_members_in_text_mode(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    watcher = await text_client(clients)
    await text_run(watcher, "/register carol secret-pw")
    await text_run(watcher, "/join general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    await text_run(watcher, None)
    await bob.command("/leave general off to lunch")
    assert await text_run(watcher, None) == ["* bob left #general (off to lunch)"]


async def test_a_mistyped_room_never_leaves_the_current_one(clients: Clients) -> None:
    """The first word of /leave is always its room: a typo must not take its author
    out of the room they are in, with the typo as a reason."""
    bob = await clients.user("bob")
    await bob.command("/create general")
    for line in ("/leave genral", "/leave genral see you"):
        with pytest.raises(ClientError) as refused:
            await bob.command(line)
        assert refused.value.code == "no-such-room", line
    assert (await bob.command("/whoami"))["current_room"] == "general"
    schema = await bob.command("/schema leave")
    [room] = [p for p in schema["schema"]["params"] if p["name"] == "room"]
    assert room["first_word"] is True


async def test_leave_clears_the_current_room_on_every_connection(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    first = await clients.user("bob")
    await first.command("/join general")
    second = await clients.user("bob")  # one room: it becomes the current room
    assert (await second.command("/whoami"))["current_room"] == "general"
    await first.command("/leave")
    assert (await second.command("/whoami"))["current_room"] is None
    error = await second.say("hello?")
    assert error["type"] == "error" and error["code"] == "no-room"


# -- /switch ------------------------------------------------------------------------


async def test_switch_changes_where_plain_lines_go(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    await alice.command("/create dev")
    switched = await alice.command("/switch general")
    assert switched["command"] == "switch" and switched["room"] == "general"
    assert (await alice.say("to general"))["room"] == "general"
    await alice.command("/switch #DEV")
    assert (await alice.say("to dev"))["room"] == "dev"


async def test_switch_to_a_room_you_are_not_in(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    bob = await clients.user("bob")
    assert (await error_of(bob, "/switch general"))["code"] == "not-in-room"
    assert (await error_of(bob, "/switch nosuchroom"))["code"] == "no-such-room"
    assert (await error_of(bob, "/switch"))["code"] == "bad-arguments"


# -- /who ---------------------------------------------------------------------------


async def test_who_lists_roles_and_online_members(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    carol = await clients.user("carol")
    await carol.command("/join general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    await carol.command("/quit")
    await carol.next_event(lambda e: e["type"] == "closed", timeout=5)
    who = await bob.command("/who")
    assert who["room"] == "general"
    assert who["members"] == [
        {"user": "alice", "role": "owner", "online": True},
        {"user": "carol", "role": "member", "online": False},
        {"user": "bob", "role": "member", "online": True},
    ]
    dave = await clients.user("dave")  # anyone may look at an open room
    assert len((await dave.command("/who general"))["members"]) == 3
    assert (await error_of(dave, "/who"))["code"] == "no-room"
    assert (await error_of(dave, "/who nosuchroom"))["code"] == "no-such-room"


async def test_who_in_text_mode_is_a_table(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    viewer = await text_client(clients)
    await text_run(viewer, "/register bob secret-pw")
    lines = await text_run(viewer, "/who general")
    header, *rows, summary = lines
    assert header.split()[:2] == ["user", "role"]
    assert rows[0].split()[:2] == ["alice", "owner"]
    assert summary.startswith("* ")


async def test_who_of_a_long_member_list_is_paged(paged_server: ChatServer) -> None:
    # Text mode's tables are paged and say so: /who of a room of hundreds showed them
    # all in one go. Owner first, then the rest in join order, two to a page here.
    opened = Clients(paged_server)
    try:
        alice = await opened.user("alice")
        await alice.command("/create general")
        for name in ("bob", "carol", "dave", "erin"):
            await (await opened.user(name)).command("/join general")
        first = await alice.command("/who")
        assert [m["user"] for m in first["members"]] == ["alice", "bob"]
        assert (first["page"], first["pages"], first["total"]) == (1, 3, 5)
        assert first["message"] == ("#general: 5 members, 5 online; page 1 of 3; "
                                    "/who general 2 for more.")
        last = await alice.command("/who general 3")
        assert [m["user"] for m in last["members"]] == ["erin"]
        assert last["message"] == "#general: 5 members, 5 online; page 3 of 3."
        beyond = await alice.command("/who general 4")
        assert beyond["members"] == [] and beyond["pages"] == 3
        assert beyond["message"].endswith("there are only 3 pages; /who general 1 starts over.")
        # The client library asks for every page.
        every = await alice.members("general")
        assert [m["user"] for m in every] == ["alice", "bob", "carol", "dave", "erin"]
        text = await opened.raw()
        await text.line()
        await text_run(text, "/login bob secret-pw")
        *rows, summary = await text_run(text, "/who general 2")
        assert [row.split()[0] for row in rows] == ["user", "carol", "dave"]
        assert summary == "* #general: 5 members, 5 online; page 2 of 3; /who general 3 for more."
    finally:
        await opened.close()


async def test_who_of_a_room_on_one_page_says_nothing_of_pages(paged_server: ChatServer
                                                               ) -> None:
    opened = Clients(paged_server)
    try:
        alice = await opened.user("alice")
        await alice.command("/create general")
        who = await alice.command("/who")
        assert who["message"] == "#general: 1 member, 1 online."
        assert (who["page"], who["pages"], who["total"]) == (1, 1, 1)
        assert (await alice.command("/who general 2"))["message"] == (
            "#general: 1 member, 1 online; there is only 1 page; /who general 1 starts over.")
        assert (await error_of(alice, "/who general 0"))["code"] == "bad-arguments"
    finally:
        await opened.close()


# -- /topic -------------------------------------------------------------------------


async def test_topic_show_and_set(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    shown = await bob.command("/topic")
    assert shown["command"] == "topic"
    assert shown["room"] == "general" and shown["topic"] == ""
    changed = await alice.command("/topic Say hello!")
    assert changed["room"] == "general" and changed["topic"] == "Say hello!"
    event = await bob.next_event(lambda e: e.get("type") == "event", timeout=5)
    assert event["event"] == "topic" and event["room"] == "general"
    assert event["topic"] == "Say hello!" and event["actor"] == "alice"
    # Like every presence and moderation event, it names its user: who set it.
    assert event["user"] == "alice"
    assert (await bob.command("/topic general"))["topic"] == "Say hello!"
    assert (await bob.command("/rooms"))["rooms"][0]["topic"] == "Say hello!"


async def test_a_topic_set_again_unchanged_tells_no_one(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    await alice.command("/topic Say hello!")
    again = await alice.command("/topic Say hello!")
    assert again["topic"] == "Say hello!"
    await alice.command("/say general after")
    seen = [await bob.next_event(lambda e: e.get("type") in ("event", "message"), timeout=5)
            for _ in range(2)]
    assert [(e["type"], e.get("topic") or e.get("text")) for e in seen] == [
        ("event", "Say hello!"), ("message", "after")]


async def test_a_topic_longer_than_its_bound_is_refused(clients: Clients) -> None:
    """Every joiner is shown the topic: it is bounded (IRC's TOPICLEN), and a longer
    one is refused whole, the topic before it kept."""
    alice = await clients.user("alice")
    await alice.command("/create general")
    await alice.command("/topic kept")
    error = await alice.command("/topic " + "x" * 391, check=False)
    assert error.final["code"] == "bad-arguments"
    assert error.final["message"] == ("a topic is at most 390 characters; this one "
                                      "has 391. Usage: /topic [room] [text]")
    assert (await alice.command("/topic"))["topic"] == "kept"
    assert (await alice.command("/topic " + "é" * 390))["topic"] == "é" * 390


async def test_topic_of_another_room_by_name(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    await alice.command("/create dev")
    await alice.command("/topic #general Say hello!")
    assert (await alice.command("/topic general"))["topic"] == "Say hello!"
    assert (await alice.command("/topic dev"))["topic"] == ""


async def test_topic_set_by_a_plain_member_is_not_permitted(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    await alice.command("/topic Be nice")
    bob = await clients.user("bob")
    await bob.command("/join general")
    assert (await error_of(bob, "/topic Mine now"))["code"] == "not-permitted"
    assert (await error_of(bob, "/topic general Mine now"))["code"] == "not-permitted"
    assert (await bob.command("/topic"))["topic"] == "Be nice"
    outsider = await clients.user("carol")
    assert (await error_of(outsider, "/topic #general Mine"))["code"] == "not-permitted"


# -- /myrooms -----------------------------------------------------------------------


async def test_myrooms_lists_current_and_past_rooms(clients: Clients) -> None:
    alice = await clients.user("alice")
    general = await alice.command("/create general")
    dev = await alice.command("/create dev")
    bob = await clients.user("bob")
    empty = await bob.command("/myrooms")
    assert empty["rooms"] == [] and empty["past"] == []
    await bob.command("/join general")
    await bob.command("/join dev")
    await bob.command("/leave dev")
    mine = await bob.command("/myrooms")
    assert mine["command"] == "myrooms"
    [now] = mine["rooms"]
    assert now["id"] == general["id"] and now["name"] == "general" and now["role"] == "member"
    [past] = mine["past"]
    assert past["id"] == dev["id"] and past["name"] == "dev" and past["terminated"] is False
    owned = await alice.command("/myrooms")
    assert {(r["name"], r["role"]) for r in owned["rooms"]} == {("general", "owner"),
                                                               ("dev", "owner")}
    # Joining back moves the room from the past to the present.
    await bob.command(f"/join {dev['id']}")
    again = await bob.command("/myrooms")
    assert [r["name"] for r in again["rooms"]] == ["dev", "general"] and again["past"] == []


async def test_myrooms_in_text_mode(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    client = await text_client(clients)
    await text_run(client, "/register bob secret-pw")
    await text_run(client, "/join general")
    lines = await text_run(client, "/myrooms")
    assert lines[0].split()[:2] == ["id", "room"]
    assert "general" in lines[1]
    assert lines[-1].startswith("* ")
