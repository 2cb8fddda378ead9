"""Governance state survives a restart: roles, succession order, bans, mutes,
invitations and requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatd.domain.clock import ManualClock
from tests.governance import error_of, members_of, room_with, users
from tests.helpers import Clients, start_server


async def test_governance_survives_a_restart(tmp_path: Path, clock: ManualClock,
                                             storage_overrides: dict[str, Any]) -> None:
    db_path = tmp_path / "restart.db"
    server = await start_server(db_path, clock=clock, **storage_overrides)
    clients = Clients(server)
    alice, bob, carol, dave, erin, frank = await users(
        clients, "alice", "bob", "carol", "dave", "erin", "frank")
    den_id = await room_with(alice, "den", bob, carol, dave)
    await alice.command("/promote carol den")
    clock.advance(60)
    await alice.command("/promote bob den")
    await alice.command("/mute dave den 1h")
    await alice.command("/ban erin den")
    await alice.command("/mode private den")
    await alice.command("/invite frank den")
    await room_with(alice, "club", mode="request")
    await erin.command("/join club")
    await clients.close()
    await server.stop()

    server = await start_server(db_path, clock=clock, **storage_overrides)
    clients = Clients(server)
    try:
        alice, bob, carol, dave, erin, frank = await users(
            clients, "alice", "bob", "carol", "dave", "erin", "frank")
        assert await members_of(alice, "den") == {"alice": "owner", "bob": "admin",
                                                  "carol": "admin", "dave": "member"}
        assert (await error_of(dave, "/say den hello"))["code"] == "muted"
        assert (await error_of(erin, f"/join {den_id}"))["code"] == "banned"
        assert [r["user"] for r in (await alice.command("/requests club"))["requests"]] == [
            "erin"]
        await frank.command(f"/join {den_id}")
        # carol has been an admin the longest: she inherits the room.
        await alice.command("/leave den")
        assert (await members_of(bob, "den"))["carol"] == "owner"
    finally:
        await clients.close()
        await server.stop()
