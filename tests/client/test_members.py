"""ChatClient.members: every member of a room, each once, however many pages /who
takes, and whatever happens to the room while they are asked for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatd.client.api import ChatClient, Reply
from chatd.domain.clock import Clock
from tests.helpers import Clients, start_server


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Clients]:
    """:func:`paged`'s, whose commands come three at once and then twenty a second
    (on the real clock: the buckets refill)."""
    server = await start_server(tmp_path / "limited.db", clock=Clock(), rooms__page_size=2,
                                limits__command_rate=20, limits__command_burst=3)
    clients = Clients(server)
    yield clients
    await clients.close()
    await server.stop()


async def crowd(clients: Clients) -> ChatClient:
    """alice, owner of #crowd, where bob, carol, dave and erin joined after her."""
    alice = await clients.user("alice")
    await alice.command("/create crowd")
    for name in ("bob", "carol", "dave", "erin"):
        await (await clients.user(name)).command("/join crowd")
    return alice


def after_first_page(client: ChatClient, change: Any, listing: str = "/who") -> None:
    """Run ``change`` once, after the first page of ``listing`` ``client`` asks for."""
    asked = client.command

    async def command(line: str, check: bool = True, timeout: float = 10.0) -> Reply:
        reply = await asked(line, check, timeout)
        if line.startswith(f"{listing} ") and line.endswith(" 1") and not changed:
            changed.append(line)
            await change()
        return reply

    changed: list[str] = []
    client.command = command  # type: ignore[method-assign]


async def test_members_waits_out_the_command_rate_of_a_long_room(limited: Clients) -> None:
    # Three pages, and a burst of three commands, login and /create spent: /who of
    # the second page was refused rate-limited, and members() raised it.
    alice = await crowd(limited)
    names = [m["user"] for m in await alice.members("crowd")]
    assert names == ["alice", "bob", "carol", "dave", "erin"]


async def test_members_is_everyone_once_when_a_role_changes_between_pages(
        paged: Clients) -> None:
    # erin, promoted after page 1, moves before bob: page 2 showed bob again and
    # nobody showed erin.
    alice = await crowd(paged)
    owner = await paged.user("alice")  # another connection: its own command budget
    after_first_page(alice, lambda: owner.command("/promote erin crowd"))
    assert [(m["user"], m["role"]) for m in await alice.members("crowd")] == [
        ("alice", "owner"), ("erin", "admin"), ("bob", "member"), ("carol", "member"),
        ("dave", "member")]


async def test_members_is_who_is_there_when_one_leaves_between_pages(paged: Clients) -> None:
    # bob, on page 1, leaves: carol moves onto page 1 and was never seen, and bob was.
    alice = await crowd(paged)
    bob = await paged.user("bob")
    after_first_page(alice, lambda: bob.command("/leave crowd"))
    assert [m["user"] for m in await alice.members("crowd")] == [
        "alice", "carol", "dave", "erin"]
