"""Room decisions made exactly once, in one process: the
:class:`~chatd.domain.ports.RoomTransactions` of a single daemon.

A transaction on a room is that room's :class:`asyncio.Lock`, first come,
first served. The locks live here, keyed by room id, not on the rooms: a
``Room`` is a plain model with no asyncio object, and another implementation
(a PostgreSQL row lock with a fencing epoch, for several nodes) takes this
one's place without the domain changing. A lock exists while some task holds
or waits for it, so rooms that end leave nothing behind.
"""

from __future__ import annotations

import asyncio
import itertools
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from chatd.domain.room import Room


@dataclass(frozen=True, slots=True)
class LocalTxn:
    """A transaction of :class:`LocalRoomTransactions` (a :class:`~chatd.domain.ports.RoomTxn`)."""

    room: Room
    fence: int


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        # Tasks holding or waiting for the lock: the entry goes when none is left.
        self.users = 0


class LocalRoomTransactions:
    """One lock per room with a decision in progress."""

    def __init__(self) -> None:
        self._entries: dict[int, _Entry] = {}
        # One sequence for every room: a later transaction on a room always
        # has a larger token, even after its entry was dropped and made again.
        self._fences = itertools.count(1)

    @asynccontextmanager
    async def room(self, room: Room) -> AsyncIterator[LocalTxn]:
        entry = self._entries.get(room.id)
        if entry is None:
            entry = self._entries[room.id] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield LocalTxn(room, next(self._fences))
        finally:
            # Also when cancelled while waiting: the count stays that of the tasks there.
            entry.users -= 1
            if not entry.users:
                del self._entries[room.id]

    def queued(self, room: Room) -> int:
        """How many tasks wait for a decision about ``room`` (not counting its holder)."""
        entry = self._entries.get(room.id)
        if entry is None:
            return 0
        return entry.users - entry.lock.locked()
