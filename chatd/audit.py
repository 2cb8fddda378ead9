"""The audit log: every governance and account action, stored and logged."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd.clock import Clock
    from storage.api import Storage
    from storage.records import AuditRecord

log = logging.getLogger("chatd.audit")


class AuditLog:
    """Writes one audit row and one structured log line per action."""

    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    async def record(self, action: str, actor: str | None = None, target: str | None = None,
                     room: str | None = None, reason: str = "") -> None:
        fields = {"action": action, "actor": actor, "target": target, "room": room,
                  "reason": reason or None}
        log.info("audit", extra={"fields": {k: v for k, v in fields.items() if v is not None}})
        await self._storage.append_audit(self._clock.time(), actor, action, target, room, reason)

    async def entries(self, limit: int, room: str | None = None) -> list[AuditRecord]:
        return await self._storage.list_audit(limit, room)
