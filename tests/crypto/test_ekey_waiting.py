"""Sender keys left for an offline member: at most crypto.max_pending_keys from each member."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatd.domain.clock import ManualClock
from tests.backends import both
from tests.crypto.test_e2e_server import error, handout, room
from tests.helpers import PASSWORD, ChatServer, Clients, start_server

# Counted by the database the handouts are stored in: on both backends.
backend = both


@pytest.fixture
async def server(db_path: Path, clock: ManualClock,
                 storage_overrides: dict[str, Any]) -> AsyncIterator[ChatServer]:
    srv = await start_server(db_path, clock=clock, crypto__max_pending_keys=3,
                             **storage_overrides)
    yield srv
    await srv.stop()


async def test_an_offline_member_is_left_at_most_max_pending_keys_by_each_member(
        clients: Clients) -> None:
    """/ekey costs a command alone (20 a second): without a bound, one member could
    fill another's stored messages while they are away."""
    alice, bob, carol = await room(clients, "alice", "bob", "carol")
    await bob.close()
    for _ in range(3):
        assert (await alice.command(f"/ekey dev bob {handout('alice', 'dev', 'bob')}")).ok
    refused = await error(alice, f"/ekey dev bob {handout('alice', 'dev', 'bob')}")
    assert (refused["code"], refused["quota"]) == ("quota-exceeded", 3)
    assert "bob is offline with 3 of your room keys waiting" in refused["message"]
    # Another member's keys for bob are theirs to count.
    assert (await carol.command(f"/ekey dev bob {handout('carol', 'dev', 'bob')}")).ok
    back = await clients.anonymous()
    login = await back.command(f"/login bob {PASSWORD}")
    replayed = [e for e in login.lines if e.get("room_key") == "dev"]
    assert [e["from"] for e in replayed] == ["alice"] * 3 + ["carol"]
    # Delivered at the login, they wait no more: bob offline again may be handed more.
    await back.close()
    assert (await alice.command(f"/ekey dev bob {handout('alice', 'dev', 'bob')}")).ok
