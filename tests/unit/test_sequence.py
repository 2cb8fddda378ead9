"""Message ids in one process: the LocalSequencer behind the domain's Sequencer port."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.domain.ports import IdSpan, Sequencer
from chatd.domain.sequence import LocalSequencer
from chatd.errors import ChatError, Code
from storage.records import MessageRecord
from storage.sqlite import SqliteStorage

FAST = settings(max_examples=300, deadline=None)

# What a message's id is for: a room (by id) or a direct message (by recipient id).
target = st.tuples(st.sampled_from(("room", "direct")), st.integers(1, 5))


def take(sequencer: Sequencer, kind: str, key: int) -> int:
    return sequencer.for_room(key) if kind == "room" else sequencer.for_direct(key)


async def test_ids_continue_above_the_largest_stored_one(tmp_path: Path) -> None:
    storage = SqliteStorage(str(tmp_path / "ids.db"))
    await storage.open()
    try:
        user = await storage.create_user("alice", b"hash", False, 0.0)
        room, _ = await storage.create_room("den", "open", user.id, 0.0)
        await storage.append_messages([MessageRecord(41, user.id, "alice", "hi", 1.0,
                                                     room_id=room.id)])
        sequencer = LocalSequencer(storage)
        await sequencer.load()
        assert [sequencer.for_room(room.id), sequencer.for_direct(user.id)] == [42, 43]
    finally:
        await storage.close()


async def test_an_empty_database_starts_at_one(tmp_path: Path) -> None:
    storage = SqliteStorage(str(tmp_path / "empty.db"))
    await storage.open()
    try:
        sequencer = LocalSequencer(storage)
        await sequencer.load()
        assert sequencer.for_direct(7) == 1
    finally:
        await storage.close()


@FAST
@given(seed=st.integers(0, 2**53), calls=st.lists(target, max_size=60))
def test_ids_are_unique_and_increase_in_any_interleaving_of_rooms_and_users(
        seed: int, calls: list[tuple[str, int]]) -> None:
    sequencer = LocalSequencer(None)  # type: ignore[arg-type]  # seeded by hand, never loads
    sequencer.seed(seed)
    issued = [(kind, key, take(sequencer, kind, key)) for kind, key in calls]
    ids = [number for _, _, number in issued]
    # Above every stored id, strictly increasing in the order taken: unique, and
    # each room's (each recipient's) order is its ids' order.
    assert all(number > seed for number in ids)
    assert all(a < b for a, b in itertools.pairwise(ids))
    for kind, key in set(calls):
        own = [number for k, r, number in issued if (k, r) == (kind, key)]
        assert own == sorted(set(own))


def test_the_local_sequencer_is_a_sequencer() -> None:
    sequencer: Sequencer = LocalSequencer(None)  # type: ignore[arg-type]
    assert sequencer.for_room(1) < sequencer.for_direct(1) < sequencer.for_room(2)


class Backlog:
    def __init__(self) -> None:
        self.pending = 0


async def test_a_clean_stop_continues_right_above_and_a_crash_skips_the_reservation(
        tmp_path: Path) -> None:
    storage = SqliteStorage(str(tmp_path / "ids.db"))
    await storage.open()
    try:
        user = await storage.create_user("alice", b"hash", False, 0.0)
        sequencer = LocalSequencer(storage, Backlog(), reserve=10)
        await sequencer.load()  # a new database: nothing to skip
        assert [sequencer.for_direct(user.id), sequencer.for_direct(user.id)] == [1, 2]
        await storage.append_messages([MessageRecord(1, user.id, "alice", "hi", 1.0,
                                                     recipient_id=user.id)])
        await sequencer.stopped()  # id 2 was never stored (a guest's, say): not reissued
        again = LocalSequencer(storage, Backlog(), reserve=10)
        await again.load()
        assert (await again.issued(), again.for_direct(user.id)) == (IdSpan(0, 2), 3)
        # This one crashes (no stopped()): it had reserved up to 2 + 10.
        after = LocalSequencer(storage, Backlog(), reserve=10)
        await after.load()
        assert after.for_direct(user.id) == 13
        assert (await after.issued()).first == 13
        await after.stopped()
        # The skip is remembered: a later clean start still doubts ids before it.
        later = LocalSequencer(storage, Backlog(), reserve=10)
        await later.load()
        assert await later.issued() == IdSpan(13, 13)
    finally:
        await storage.close()


async def test_ids_are_issued_only_below_a_written_reservation(tmp_path: Path) -> None:
    """The next reservation is written while half of this one is left; an id past
    the written reservation is refused, never issued on trust."""
    storage = SqliteStorage(str(tmp_path / "ids.db"))
    await storage.open()
    try:
        sequencer = LocalSequencer(storage, Backlog(), reserve=4)
        await sequencer.load()  # reserved up to 4
        assert [sequencer.for_room(1) for _ in range(3)] == [1, 2, 3]  # 3: 1 left of 4
        assert sequencer.for_room(1) == 4  # the reservation to 7 is being written
        with pytest.raises(ChatError) as refused:
            sequencer.for_room(1)
        assert refused.value.code == Code.BUSY
        for _ in range(100):
            if await storage.get_meta("ids_reserved") == "7":
                break
            await asyncio.sleep(0.001)
        assert sequencer.for_room(1) == 5
    finally:
        await storage.close()


def test_no_id_is_issued_while_the_backlog_is_full() -> None:
    backlog = Backlog()
    sequencer = LocalSequencer(None, backlog, max_pending=2)  # type: ignore[arg-type]
    sequencer.seed(10)
    backlog.pending = 2
    for take_one in (sequencer.for_room, sequencer.for_direct):
        with pytest.raises(ChatError) as refused:
            take_one(1)
        assert refused.value.code == Code.BUSY and refused.value.details["retry_ms"] > 0
    backlog.pending = 1
    assert sequencer.for_room(1) == 11
