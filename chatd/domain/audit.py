"""The audit log: every governance and account action, stored and logged."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatd.domain.accounts import User
    from chatd.domain.clock import Clock
    from chatd.domain.room import Room
    from storage.api import Storage
    from storage.records import AuditRecord

log = logging.getLogger("chatd.audit")


class AuditLog:
    """Writes one audit row and one structured log line per action."""

    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock
        # Called with each new entry (the live admin screen follows them).
        self.listeners: set[Callable[[dict[str, Any]], None]] = set()

    async def record(self, action: str, actor: str | None = None, target: str | None = None,
                     room: Room | None = None, reason: str = "") -> None:
        """Write one entry; ``room`` is kept by name (to read) and id (to filter)."""
        name = room.name if room is not None else None
        fields = {"action": action, "actor": actor, "target": target, "room": name,
                  "reason": reason or None}
        present = {k: v for k, v in fields.items() if v is not None}
        log.info("audit", extra={"fields": present})
        now = self._clock.time()
        await self._storage.append_audit(now, actor, action, target, name, reason,
                                         room_id=room.id if room is not None else None)
        for listener in list(self.listeners):
            listener({"ts": now, **present})

    async def entries(self, limit: int, room: Room | None = None,
                      room_id: int | None = None) -> list[AuditRecord]:
        """The latest entries, of one room (this room, not an older one of its name),
        given live or, once it has ended, by its id."""
        if room is not None:
            room_id = room.id
        return await self._storage.list_audit(limit, room_id=room_id)

    async def ended_room(self, ref: str) -> tuple[int, str] | None:
        """A terminated room's (id, name), by id or by name (``#`` optional): of a
        name used again, the room that ended last."""
        if ref.isdigit():
            return await self._storage.ended_room(room_id=int(ref))
        return await self._storage.ended_room(name=ref.removeprefix("#"))

    async def may_read_ended(self, user: User, room_id: int) -> bool:
        """Server admins, and whoever the room's log shows as its admin or owner at
        some time, read the log of a room that has ended."""
        if user.is_admin:
            return True
        admins = await self._storage.audit_admins(room_id)
        return user.name.casefold() in {name.casefold() for name in admins}
