"""What survives a restart: accounts, rooms, memberships, history, pending direct messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatd.domain.clock import ManualClock
from tests.backends import both
from tests.helpers import PASSWORD, Clients, start_server

# History, pending direct messages and governance outlive the daemon on both backends.
backend = both


def is_message(event: dict[str, Any]) -> bool:
    return event.get("type") == "message"


async def test_a_restart_keeps_rooms_members_history_and_pending_dms(
        tmp_path: Path, clock: ManualClock, storage_overrides: dict[str, Any]) -> None:
    db_path = tmp_path / "restart.db"
    server = await start_server(db_path, clock=clock, **storage_overrides)
    before = Clients(server)
    try:
        alice = await before.user("alice")
        general = await alice.command("/create general")
        await alice.command("/topic Say hello!")
        hideout = await alice.command("/create hideout private")
        queue = await alice.command("/create queue request")
        bob = await before.user("bob")
        await bob.command("/join general")
        await bob.command("/set timestamps on")
        carol = await before.user("carol")
        await carol.command("/join general")
        await carol.command("/leave general")
        await carol.command("/quit")
        await carol.next_event(lambda e: e["type"] == "closed", timeout=5)
        sent = [(await alice.command(f"/say general message {n}"))["id"] for n in range(3)]
        await bob.say("bob was here")
        await alice.command("/switch general")
        await alice.command("/me waves")
        dm = await alice.command("/msg carol read this when you are back")
        assert dm["online"] is False
        old_history = (await alice.command("/history general"))["messages"]
        assert len(old_history) == 5
    finally:
        await before.close()
        await server.stop()

    server = await start_server(db_path, clock=clock, **storage_overrides)
    after = Clients(server)
    try:
        # Accounts and passwords.
        alice = await after.anonymous()
        login = await alice.command(f"/login alice {PASSWORD}")
        assert login["rooms"] == ["general", "hideout", "queue"]
        # Rooms keep their ids, modes and topics.
        listed = {r["name"]: r for r in (await alice.command("/rooms"))["rooms"]}
        assert listed["general"] == {"id": general["id"], "name": "general", "mode": "open",
                                     "members": 2, "topic": "Say hello!", "e2e": False,
                                     "modes": "+nt"}
        assert listed["hideout"]["id"] == hideout["id"]
        assert listed["hideout"]["mode"] == "private"
        assert listed["queue"]["id"] == queue["id"] and listed["queue"]["mode"] == "request"
        # Memberships and roles.
        who = await alice.command("/who general")
        assert [(m["user"], m["role"]) for m in who["members"]] == [("alice", "owner"),
                                                                    ("bob", "member")]
        # History, in order, with the same ids.
        history = (await alice.command("/history general"))["messages"]
        assert [m["id"] for m in history] == [m["id"] for m in old_history]
        assert [m["text"] for m in history] == ["message 0", "message 1", "message 2",
                                                "bob was here", "waves"]
        assert [m["id"] for m in history[:3]] == sent
        assert history[-1]["action"] is True
        # A reconnecting member is back in the room and receives what is said there.
        bob = await after.user("bob")
        assert (await bob.command("/whoami"))["current_room"] == "general"
        new = await alice.command("/say general after the restart")
        got = await bob.next_event(is_message, timeout=5)
        assert got["id"] == new["id"] and got["text"] == "after the restart"
        assert new["id"] > max(m["id"] for m in history)  # ids are never reused
        echo = await bob.say("and plain lines still go to general")
        assert echo["room"] == "general"
        # A private room stays hidden from those outside it.
        bob_sees = [r["name"] for r in (await bob.command("/rooms"))["rooms"]]
        assert bob_sees == ["general", "queue"]
        # The direct message waits for carol, exactly once.
        carol = await after.anonymous()
        carol_login = await carol.command(f"/login carol {PASSWORD}")
        assert carol_login["direct_messages"] == 1 and carol_login["notifications"] == 1
        assert carol_login["rooms"] == []
        [pending] = [e for e in carol_login.lines if is_message(e)]
        assert pending["id"] == dm["id"] and pending["offline"] is True
        assert pending["from"] == "alice" and pending["text"] == "read this when you are back"
        past = (await carol.command("/myrooms"))["past"]
        assert [p["name"] for p in past] == ["general"]
        # Output settings were saved with the account.
        text = await after.raw()
        await text.line()
        text.send(f"/login bob {PASSWORD}")
        await text.line()
        await alice.command("/say general stamped")
        assert await text.line() == "[08:00] <alice> stamped"
    finally:
        await after.close()
        await server.stop()

    server = await start_server(db_path, clock=clock, **storage_overrides)
    again = Clients(server)
    try:
        carol = await again.anonymous()
        assert (await carol.command(f"/login carol {PASSWORD}"))["direct_messages"] == 0
        assert [e for e in carol.pending_events() if is_message(e)] == []
        alice = await again.user("alice")
        texts = [m["text"] for m in (await alice.command("/history general 3"))["messages"]]
        assert texts == ["after the restart", "and plain lines still go to general", "stamped"]
    finally:
        await again.close()
        await server.stop()


async def test_a_restart_keeps_a_room_that_was_left_and_forgets_an_ended_one(
        tmp_path: Path, clock: ManualClock, storage_overrides: dict[str, Any]) -> None:
    db_path = tmp_path / "left.db"
    server = await start_server(db_path, clock=clock, **storage_overrides)
    before = Clients(server)
    try:
        alice = await before.user("alice")
        await alice.command("/create general")
        solo = await alice.command("/create solo")
        await alice.command("/leave solo")  # the last member leaves: the room ends
        bob = await before.user("bob")
        await bob.command("/join general")
        await bob.command("/leave general")
    finally:
        await before.close()
        await server.stop()

    server = await start_server(db_path, clock=clock, **storage_overrides)
    after = Clients(server)
    try:
        alice = await after.user("alice")
        assert [r["name"] for r in (await alice.command("/rooms"))["rooms"]] == ["general"]
        bob = await after.user("bob")
        assert (await bob.command("/whoami"))["rooms"] == []
        who = await bob.command("/who general")
        assert [m["user"] for m in who["members"]] == ["alice"]
        # The freed name can be used again.
        again = await bob.command("/create solo")
        assert again["room"] == "solo" and again["id"] != solo["id"]
    finally:
        await after.close()
        await server.stop()
