"""Per-user notifications: persisted, pushed live, summarised at login.

How many each user has, and how many of theirs were dropped past the bound, is
kept in memory (loaded at start, changed with every write), so the welcome of a
log-in asks the database nothing. The counts change by the number of rows each
write added or removed, which gives the same result in whatever order concurrent
writes finish. A cluster's node counts in the database instead (two queries a
line-protocol log-in): every node writes them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from chatd.domain.events import Notified
from storage.api import Refused, StorageError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from chatd.config import Config
    from chatd.domain.accounts import User
    from chatd.domain.clock import Clock
    from chatd.domain.ports import Bus
    from storage.api import Storage
    from storage.records import NotificationRecord


log = logging.getLogger(__name__)
# The most notifications one listing shows (the newest): /notifications clear
# clears them all, shown or not.
SHOWN = 200
# The most notifications a user keeps, unless configured (limits.max_notifications).
KEEP = 1000


class Notifier:
    """Stores a notification and pushes it to every connection of its user."""

    def __init__(self, storage: Storage, bus: Bus, clock: Clock, keep: int = KEEP) -> None:
        self._storage = storage
        self._bus = bus
        self._clock = clock
        # The most notifications a user keeps (limits.max_notifications): a new one
        # past it deletes the oldest. Others pile them on a user at the pace of
        # their messages and commands (direct messages while away, invitations,
        # mutes and unmutes), for as long as the retention keeps them.
        self.keep = keep
        # Stored notifications by user id (users with none are left out).
        self._counts: dict[int, int] = {}
        # Dropped notifications not yet told, by user id (users with none left out).
        self._dropped: dict[int, int] = {}
        # True on a cluster's node: the other nodes write and clear notifications
        # too, so the count is the database's (one query a log-in).
        self.shared = False

    def reconfigure(self, config: Config) -> None:
        self.keep = config.limits.max_notifications

    async def load(self) -> None:
        self._counts = await self._storage.notification_counts()
        self._dropped = await self._storage.dropped_notification_counts()

    async def notify(self, user: User, kind: str, text: str, **payload: Any) -> None:
        """Store and push a notification; none for an account deleted meanwhile.

        A notification follows the decision it tells (a ban, a room's ending, a
        succession), after the room's lock: the account may have been deleted in
        between, and its notifications with it. The decision stands, and there is
        nobody left to tell: the command that made it is not failed for that.
        """
        try:
            note, dropped = await self._stored(user, kind, {"text": text, **payload})
        except Refused:
            if user.has_account and await self._storage.get_user(user.id) is None:
                log.debug("notification %s to %s dropped: the account was deleted",
                          kind, user.name)
                return
            raise
        self._counts[user.id] = self._counts.get(user.id, 0) + 1
        self._lower(user.id, dropped)
        if dropped:
            self._dropped[user.id] = self._dropped.get(user.id, 0) + dropped
        if user.online:
            self._bus.to_user(user, Notified(note))

    async def _stored(self, user: User, kind: str,
                      content: dict[str, Any]) -> tuple[NotificationRecord, int]:
        """The notification stored, and how many of the oldest were dropped for it."""
        now = self._clock.time()
        # A cluster's other nodes add notifications too: this node's count of them
        # cannot tell when there are too many, the database can. The oldest are
        # dropped, and counted, in the transaction that adds the new one.
        if self.shared or self._counts.get(user.id, 0) >= self.keep:
            return await self._storage.add_notification_kept(user.id, kind, content, now,
                                                             self.keep)
        return await self._storage.add_notification(user.id, kind, content, now), 0

    async def pending(self, user: User, limit: int = SHOWN,
                      skip: int = 0) -> tuple[list[NotificationRecord], int]:
        """``user``'s newest notifications after the newest ``skip`` (at most ``limit``,
        oldest first), and how many they have in all: a flood of them (direct messages
        while away) must not make one reply of megabytes."""
        shown = await self._storage.list_notifications(user.id, limit, skip)
        if not skip and len(shown) < limit:
            return shown, len(shown)
        return shown, await self._storage.count_notifications(user.id)

    async def take_dropped(self, user: User) -> int:
        """How many of ``user``'s notifications were dropped, the oldest, past the
        bound since they last read or cleared them: they are told once."""
        taken = await self._storage.take_dropped_notifications(user.id)
        self._dropped.pop(user.id, None)
        return taken

    async def dropped(self, user: User) -> int:
        """How many of ``user``'s notifications were dropped and not yet told, the
        count left for the listing that tells it (read as :meth:`unread` is)."""
        return await self._count(user, "dropped", self._storage.dropped_notifications,
                                 self._dropped)

    async def unread(self, user: User) -> int:
        """How many notifications ``user`` has, wherever they were written."""
        return await self._count(user, "unread", self._storage.count_notifications,
                                 self._counts)

    async def _count(self, user: User, what: str, stored: Callable[[int], Awaitable[int]],
                     held: dict[int, int]) -> int:
        """A count of ``user``'s notifications: on a cluster's node the database's
        (every node writes them), or this node's when the database does not answer
        (a welcome is not refused for it); on one process the one held here."""
        if self.shared and user.has_account:
            try:
                return await stored(user.id)
            except StorageError:
                log.warning("%s notifications of %s not counted: the database does not "
                            "answer", what, user.name)
        return held.get(user.id, 0)

    async def clear(self, user: User) -> int:
        cleared = await self._storage.clear_notifications(user.id)
        self._lower(user.id, cleared)
        self._dropped.pop(user.id, None)
        return cleared

    async def expire(self, before: float) -> int:
        """Delete every notification created before ``before``; how many."""
        deleted = await self._storage.expire_notifications(before)
        for user_id, count in deleted.items():
            self._lower(user_id, count)
        return sum(deleted.values())

    def forget(self, user: User) -> None:
        """``user``'s account is gone, and its notifications with it."""
        self._counts.pop(user.id, None)
        self._dropped.pop(user.id, None)

    def _lower(self, user_id: int, removed: int) -> None:
        left = self._counts.get(user_id, 0) - removed
        if left > 0:
            self._counts[user_id] = left
        else:
            self._counts.pop(user_id, None)
