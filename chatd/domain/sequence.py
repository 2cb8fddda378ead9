"""Message ids in one process: the :class:`~chatd.domain.ports.Sequencer` of a
single daemon.

One counter serves rooms, direct and end-to-end messages alike, so the ids a
connection sees increase across everything it receives (the order
``scripts/bench`` checks). It starts above the largest id in storage, read
once at start, so a restart never issues an id twice. A cluster's sequencer
is a shared counter instead (one Redis ``INCRBY`` for the posts of a turn,
seeded above the database's largest id with a margin), whose ids the domain
awaits: :func:`chatd.domain.ports.settled`.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storage.api import Storage


class LocalSequencer:
    """Ids from memory, strictly increasing, seeded above the stored ones."""

    __slots__ = ("_ids", "_storage")

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._ids = itertools.count(1)

    async def load(self) -> None:
        """Continue above the largest id in storage (at start, before any message)."""
        self.seed(await self._storage.max_message_id())

    def seed(self, largest: int) -> None:
        """The next id is ``largest + 1``."""
        self._ids = itertools.count(largest + 1)

    # One counter for both: the order of a room is part of the order of all.
    def for_room(self, room_id: int) -> int:
        return next(self._ids)

    def for_direct(self, recipient_id: int) -> int:
        return next(self._ids)
