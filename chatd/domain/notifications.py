"""Per-user notifications: persisted, pushed live, summarised at login."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatd.domain.events import Notified

if TYPE_CHECKING:
    from chatd.domain.accounts import User
    from chatd.domain.clock import Clock
    from chatd.domain.ports import Bus
    from storage.api import Storage
    from storage.records import NotificationRecord


class Notifier:
    """Stores a notification and pushes it to every connection of its user."""

    def __init__(self, storage: Storage, bus: Bus, clock: Clock) -> None:
        self._storage = storage
        self._bus = bus
        self._clock = clock

    async def notify(self, user: User, kind: str, text: str, **payload: Any) -> None:
        note = await self._storage.add_notification(user.id, kind, {"text": text, **payload},
                                                    self._clock.time())
        if user.online:
            self._bus.to_user(user, Notified(note))

    async def pending(self, user: User) -> list[NotificationRecord]:
        return await self._storage.list_notifications(user.id)

    async def count(self, user: User) -> int:
        return await self._storage.count_notifications(user.id)

    async def clear(self, user: User) -> int:
        return await self._storage.clear_notifications(user.id)
