"""A busy room's turns wait listen.flush_delay; what a client outside it asked for does not.

Each check runs inside one held turn of DELAY seconds, a few loop turns of
in-memory work. Should the machine stall for half of it (a loaded CI host),
the turn is tried again, a bounded number of times: the stall says nothing
about the behaviour under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from chatd.domain.clock import ManualClock
from chatd.net.connection import FANOUT_MIN, FlushScheduler
from tests.commands.conftest import Chat, Peer, settle
from tests.helpers import start_server

DELAY = 0.05  # the longest allowed
ATTEMPTS = 5


@pytest.fixture
async def held_chat(tmp_path: Path) -> AsyncIterator[Chat]:
    server = await start_server(tmp_path / "chatd.db", clock=ManualClock(),
                                listen__flush_delay=DELAY, limits__message_burst=1000)
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
    for peer in (sender, *readers):
        peer.lines()
    return sender, readers


def _marks(peers: list[Peer]) -> list[int]:
    return [len(peer.transport.written) for peer in peers]


def _unchanged(peers: list[Peer], marks: list[int]) -> bool:
    """Nothing was written to ``peers`` since ``marks`` (looked at, not read)."""
    return _marks(peers) == marks


async def _in_a_held_turn(chat: Chat, sender: Peer, readers: list[Peer], text: str,
                          check: Callable[[list[int]], Awaitable[bool]]) -> None:
    """Post ``text`` to the busy room (a turn is then held), run ``check`` within
    that turn (given what each reader had been written before) and require it to
    see what it looks for, then let the turn end: every reader has ``text``."""
    loop = asyncio.get_running_loop()
    flusher = chat.server.listeners.flusher
    for attempt in range(ATTEMPTS):
        started, marks = loop.time(), _marks(readers)
        posted = f"{text} ({attempt})"
        sender.connection.data_received(f"{posted}\r\n".encode())
        await asyncio.sleep(0)
        held = flusher.holding  # not after a stall longer than two turns
        seen = held and await check(marks)
        in_time = loop.time() - started < DELAY / 2
        await asyncio.sleep(DELAY * 2)
        assert all(any(posted in line for line in reader.lines()) for reader in readers)
        sender.lines()
        if held and in_time:
            assert seen
            return
        await _busy_again(sender, flusher)
    pytest.fail(f"the machine stalled for half a held turn {ATTEMPTS} times")


async def _busy_again(sender: Peer, flusher: FlushScheduler) -> None:
    """After a stall: post until the room's turns wait again."""
    for _ in range(ATTEMPTS):
        await sender.say("busy again")
        if flusher.waits:
            return


async def test_a_busy_rooms_messages_wait_but_a_lone_clients_answers_do_not(
        held_chat: Chat) -> None:
    lone = await held_chat.user("lone")  # in no room
    sender, readers = await _busy_room(held_chat)

    async def answered_at_once(marks: list[int]) -> bool:
        waiting = _unchanged(readers, marks)  # the room's batch waits
        lone.connection.data_received(b"/ping\r\n")
        await settle(lone.connection)
        answered = any("pong" in line.lower() for line in lone.lines())
        return waiting and answered and _unchanged(readers, marks)

    # Turn after turn: an answer written early does not make the client one of
    # the busy room's readers.
    for turn in range(3):
        await _in_a_held_turn(held_chat, sender, readers, f"message {turn}", answered_at_once)


async def test_a_members_answer_comes_with_the_rooms_batch_in_order(held_chat: Chat) -> None:
    sender, readers = await _busy_room(held_chat)
    member = readers[0]

    async def held_with_the_batch(marks: list[int]) -> bool:
        member.connection.data_received(b"/ping\r\n")
        await settle(member.connection)
        return _unchanged([member], marks[:1])  # it shares the batch's write

    await _in_a_held_turn(held_chat, sender, readers, "third", held_with_the_batch)
    # The room's message it had not yet been sent comes before the answer.
    written = bytes(member.transport.written).decode().splitlines()
    last_third = max(i for i, line in enumerate(written) if "third" in line)
    last_pong = max(i for i, line in enumerate(written) if "pong" in line.lower())
    assert last_third < last_pong, written[-4:]
