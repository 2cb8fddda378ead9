"""Message ids in one process: the LocalSequencer behind the domain's Sequencer port."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.domain.ports import Sequencer
from chatd.domain.sequence import LocalSequencer
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
