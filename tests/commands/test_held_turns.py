"""A busy room's turns wait listen.flush_delay; what a client asked for does not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatd.domain.clock import ManualClock
from chatd.net.connection import FANOUT_MIN
from tests.commands.conftest import Chat, Peer, settle
from tests.helpers import start_server

DELAY = 0.05  # the longest allowed: nothing here should come near it


@pytest.fixture
async def held_chat(tmp_path: Path) -> AsyncIterator[Chat]:
    server = await start_server(tmp_path / "chatd.db", clock=ManualClock(),
                                listen__flush_delay=DELAY)
    opened = Chat(server, ManualClock())
    yield opened
    opened.close()
    await server.stop()


async def _busy_room(chat: Chat) -> tuple[Peer, list[Peer]]:
    """A room of FANOUT_MIN readers and a sender who has posted twice: the server's
    turns now wait for more of its messages."""
    sender = await chat.user("sender")
    await sender.say("/create busy")
    readers = []
    for i in range(FANOUT_MIN):
        reader = await chat.user(f"reader{i}")
        await reader.say("/join busy")
        readers.append(reader)
    for text in ("first", "second"):
        await sender.say(text)
    assert chat.server.listeners.flusher.waits
    for reader in readers:
        reader.lines()
    return sender, readers


async def test_a_busy_rooms_messages_wait_but_a_lone_clients_answer_does_not(
        held_chat: Chat) -> None:
    lone = await held_chat.user("lone")  # in no room
    sender, readers = await _busy_room(held_chat)
    sender.connection.data_received(b"third\r\n")
    await asyncio.sleep(0)
    assert held_chat.server.listeners.flusher.holding
    assert not any(reader.lines() for reader in readers)
    # A client outside the room's fan-out is answered while the room's deliveries wait.
    lone.connection.data_received(b"/ping\r\n")
    await settle(lone.connection)
    assert lone.lines()
    assert held_chat.server.listeners.flusher.holding
    assert not any(reader.lines() for reader in readers)
    await asyncio.sleep(DELAY * 2)
    assert all(any("third" in line for line in reader.lines()) for reader in readers)


async def test_a_members_answer_comes_with_the_rooms_batch_in_order(held_chat: Chat) -> None:
    sender, readers = await _busy_room(held_chat)
    sender.connection.data_received(b"third\r\n")
    await asyncio.sleep(0)
    member = readers[0]
    member.connection.data_received(b"/ping\r\n")
    await settle(member.connection)
    assert member.lines() == []  # it shares the batch's write...
    await asyncio.sleep(DELAY * 2)
    got = member.lines()  # ...after the room's message it had not yet been sent
    third = [i for i, line in enumerate(got) if "third" in line]
    pong = [i for i, line in enumerate(got) if "pong" in line.lower()]
    assert len(third) == len(pong) == 1 and third[0] < pong[0], got
