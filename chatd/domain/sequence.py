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

from typing import TYPE_CHECKING

from chatd.domain.ports import IdSpan

if TYPE_CHECKING:
    from storage.api import Storage


class LocalSequencer:
    """Ids from memory, strictly increasing, seeded above the stored ones."""

    __slots__ = ("_last", "_storage")

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        # The last id issued (or stored, at start): the next is one more.
        self._last = 0

    async def load(self) -> None:
        """Continue above the largest id in storage (at start, before any message)."""
        self.seed(await self._storage.max_message_id())

    def seed(self, largest: int) -> None:
        """The next id is ``largest + 1``."""
        self._last = largest

    async def issued(self) -> IdSpan:
        # Nothing is lost between runs that /resume could notice: a clean stop
        # writes every message (a crash's unwritten ones are not known here).
        return IdSpan(0, self._last)

    # One counter for both: the order of a room is part of the order of all.
    def for_room(self, room_id: int) -> int:
        self._last += 1
        return self._last

    def for_direct(self, recipient_id: int) -> int:
        self._last += 1
        return self._last
