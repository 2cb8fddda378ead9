"""Periodic jobs inside the daemon: expiry and retention.

They run once at start-up and then every ``housekeeping.interval``, each
time only if this process leads (see :mod:`chatd.ops.leader`): in a cluster
one node does them for all. Each job reads the injected clock, so tests
drive them by moving a manual clock and calling :meth:`Housekeeping.run_once`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from chatd.ops.leader import SoleLeader

if TYPE_CHECKING:
    from chatd.ops.leader import Leader
    from chatd.protocol.services import Services

log = logging.getLogger(__name__)


class Housekeeping:
    """Expires sanctions and invitations, trims old data, ends empty rooms."""

    def __init__(self, services: Services, leader: Leader | None = None) -> None:
        self._services = services
        self._leader: Leader = leader or SoleLeader()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _loop(self) -> None:
        while True:
            try:
                async with self._leader.lead("housekeeping") as leading:
                    if leading:
                        await self.run_once()
            except Exception:  # a failed pass is logged and retried next interval
                log.exception("housekeeping failed")
            await asyncio.sleep(self._services.config.housekeeping.interval)

    async def run_once(self) -> dict[str, int]:
        """Run every job once; returns how many things each job handled."""
        services = self._services
        config = services.config.housekeeping
        storage = services.storage
        now = services.clock.time()
        done = {
            "sanctions_expired": await services.moderation.expire(),
            "invitations_expired": await storage.delete_expired_invitations(now),
            "resume_tokens_expired": await services.resume.expire(),
            "notifications_deleted": await services.notifier.expire(
                now - config.notification_retention),
            "associations_deleted": await storage.delete_stale_associations(
                now - config.association_retention),
            "empty_rooms_terminated": await services.rooms.terminate_empty(),
            "messages_deleted": await storage.delete_terminated_history(
                now - config.history_retention),
            # Files follow their room's history; a blob goes with its last file.
            "files_deleted": await services.files.purge_terminated(
                now - config.history_retention),
        }
        log.info("housekeeping", extra={"fields": done})
        return done
