"""Decisions made exactly once, in one process: the
:class:`~chatd.domain.ports.RoomTransactions` and
:class:`~chatd.domain.ports.AccountTransactions` of a single daemon.

A transaction on a room (or an account) is an :class:`asyncio.Lock` of that
room (account), first come, first served. The locks live here, keyed by id,
not on the rooms: a ``Room`` is a plain model with no asyncio object, and
another implementation (a PostgreSQL row lock with a fencing epoch, for
several nodes) takes this one's place without the domain changing. A lock
exists while some task holds or waits for it, so rooms that end and accounts
that go leave nothing behind.
"""

from __future__ import annotations

import asyncio
import itertools
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from contextlib import AbstractAsyncContextManager

    from chatd.domain.accounts import User
    from chatd.domain.room import Room


@dataclass(frozen=True, slots=True)
class LocalTxn:
    """A transaction on a room (a :class:`~chatd.domain.ports.RoomTxn`)."""

    room: Room
    fence: int


@dataclass(frozen=True, slots=True)
class LocalAccountTxn:
    """A transaction on an account (a :class:`~chatd.domain.ports.AccountTxn`)."""

    user: User
    fence: int


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        # Tasks holding or waiting for the lock: the entry goes when none is left.
        self.users = 0


class LocalTransactions:
    """One lock per room, and per account, with a decision in progress."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, int], _Entry] = {}
        # One sequence for all: a later transaction on a room (account) always
        # has a larger token, even after its entry was dropped and made again.
        self._fences = itertools.count(1)

    @asynccontextmanager
    async def room(self, room: Room) -> AsyncIterator[LocalTxn]:
        async with self._held(("room", room.id)) as fence:
            yield LocalTxn(room, fence)

    @asynccontextmanager
    async def account(self, user: User) -> AsyncIterator[LocalAccountTxn]:
        async with self._held(("account", user.id)) as fence:
            yield LocalAccountTxn(user, fence)

    async def creatable(self) -> None:
        """A room can always be made in one process."""

    def room_by_id(self, room_id: int) -> AbstractAsyncContextManager[int]:
        """Room ``room_id``'s turn alone, no decision in it: a cluster node reloads
        a room another node changed between this node's own decisions on it."""
        return self._held(("room", room_id))

    def queued(self, room: Room) -> int:
        """How many tasks wait for a decision about ``room`` (not counting its holder)."""
        entry = self._entries.get(("room", room.id))
        if entry is None:
            return 0
        return entry.users - entry.lock.locked()

    @asynccontextmanager
    async def _held(self, key: tuple[str, int]) -> AsyncIterator[int]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield next(self._fences)
        finally:
            # Also when cancelled while waiting: the count stays that of the tasks there.
            entry.users -= 1
            if not entry.users:
                del self._entries[key]
