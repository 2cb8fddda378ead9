"""Housekeeping: retention of notifications and associations, empty rooms, expiries."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from chatd.client import ChatClient
from chatd.domain.clock import ManualClock
from tests.governance import error_of, listed, my_rooms, room_with, users
from tests.helpers import ChatServer, Clients, start_server

DAY = 86400


async def past_rooms(client: ChatClient) -> set[str]:
    return {p["name"] for p in (await client.command("/myrooms"))["past"]}


async def test_old_notifications_are_deleted(server: ChatServer, clients: Clients,
                                             clock: ManualClock) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob, carol)
    await alice.command("/mute bob dev")
    clock.advance(20 * DAY)
    await alice.command("/unmute bob dev")
    clock.advance(10 * DAY + 1)
    done = await server.housekeeping.run_once()
    assert done["notifications_deleted"] >= 1
    kept = (await bob.command("/notifications"))["notifications"]
    assert [n["kind"] for n in kept] == ["unmuted"]


async def test_stale_associations_are_forgotten_unless_banned_or_member(
        server: ChatServer, clients: Clients, clock: ManualClock) -> None:
    alice, bob, carol, dave, erin, frank = await users(
        clients, "alice", "bob", "carol", "dave", "erin", "frank")
    await room_with(alice, "dev", bob, carol, dave, erin)
    await bob.command("/leave dev")
    await alice.command("/ban carol dev")
    await alice.command("/ban erin dev 7d")
    clock.advance(20 * DAY)
    await frank.command("/join dev")
    await frank.command("/leave dev")
    clock.advance(10 * DAY + 1)
    await server.housekeeping.run_once()
    assert "dev" not in await past_rooms(bob)      # left 30 days ago
    assert "dev" not in await past_rooms(erin)     # banned, but the ban ran out
    assert "dev" in await past_rooms(carol)        # still banned there
    assert "dev" in await past_rooms(frank)        # joined 10 days ago
    assert "dev" in await my_rooms(dave)           # a member keeps the room


async def test_rooms_left_without_members_are_terminated(
        tmp_path: Path, clock: ManualClock, storage_overrides: dict[str, Any]) -> None:
    db_path = tmp_path / "ghost.db"
    server = await start_server(db_path, clock=clock, **storage_overrides)
    clients = Clients(server)
    alice = await clients.user("alice")
    room_id = await room_with(alice, "ghost")
    user = server.services.accounts.find("alice")
    assert user is not None
    # A membership lost outside the daemon (a partial restore, say).
    await server.storage.remove_member(room_id, user.id)
    await clients.close()
    await server.stop()

    server = await start_server(db_path, clock=clock, **storage_overrides)
    await server.housekeeping.stop()  # no periodic pass: this test runs its own
    clients = Clients(server)
    try:
        # Two passes at once (the periodic one and a manual one, say) end it once.
        done = await asyncio.gather(server.housekeeping.run_once(),
                                    server.housekeeping.run_once())
        assert sorted(d["empty_rooms_terminated"] for d in done) == [0, 1]
        bob = await clients.user("bob")
        assert "ghost" not in await listed(bob)
        assert (await error_of(bob, f"/join {room_id}"))["code"] == "no-such-room"
        assert (await bob.command("/create ghost"))["id"] != room_id
        # Running again finds nothing more to end.
        assert (await server.housekeeping.run_once())["empty_rooms_terminated"] == 0
    finally:
        await clients.close()
        await server.stop()


async def test_expired_session_tokens_are_deleted_and_scripts_tokens_kept(
        server: ChatServer, clients: Clients, clock: ManualClock) -> None:
    alice, = await users(clients, "alice")
    for line in ("/token create tab-old all 1h --session", "/token create tab-new all 3h --session",
                 "/token create ci all 1h"):
        assert (await alice.command(line))["type"] == "ok"
    clock.advance(2 * 3600)
    done = await server.housekeeping.run_once()
    assert done["session_tokens_expired"] == 1
    # A tab's expired token is gone, in memory and stored; a script's stays, expired,
    # under the name its user gave it; a tab's still valid one stays too.
    names = [t["name"] for t in (await alice.command("/token list"))["tokens"]]
    assert names == ["tab-new", "ci"]
    assert [r.name for r in await server.storage.list_tokens(alice_id(server))] == \
        ["tab-new", "ci"]


def alice_id(server: ChatServer) -> int:
    user = server.services.accounts.find("alice")
    assert user is not None
    return user.id
