"""Periodic jobs inside the daemon: expiry and retention.

They run once at start-up and then every ``housekeeping.interval``, each
time only if this process leads (see :mod:`chatd.ops.leader`): in a cluster
one node does them for all. Each job reads the injected clock, so tests
drive them by moving a manual clock and calling :meth:`Housekeeping.run_once`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from chatd.ops.leader import SoleLeader
from chatd.ops.wakeable import Wakeable

if TYPE_CHECKING:
    from chatd.ops.leader import Leader
    from chatd.protocol.services import Services

log = logging.getLogger(__name__)

# How long the stop waits for a pass it cut short to give its lead back (a Redis
# call in a cluster) before it cuts that short too, in seconds.
RELEASE_WAIT = 1.0


class Housekeeping:
    """Expires sanctions and invitations, trims old data, ends empty rooms."""

    def __init__(self, services: Services, leader: Leader | None = None) -> None:
        self._services = services
        self._leader: Leader = leader or SoleLeader()
        self._task: asyncio.Task[None] | None = None
        # Woken by a reload: the wait for the next pass is measured again.
        self._sleep = Wakeable()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        """End the loop and wait until it has ended. A pass cut short gives its lead
        back on its way out (chatd.cluster.leader: a call through the node's Redis
        client), and the node closes that client once the daemon's stop goes on: a
        loop left to end later would open a connection nobody closes."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task}, timeout=RELEASE_WAIT)
        if not task.done():  # Redis does not answer: the lock expires by itself
            task.cancel()
            await asyncio.wait({task})

    async def _loop(self) -> None:
        while True:
            try:
                async with self._leader.lead("housekeeping") as leading:
                    if leading:
                        await self.run_once()
            except Exception:  # a failed pass is logged and retried next interval
                log.exception("housekeeping failed")
            await self._until_due(time.monotonic())

    async def _until_due(self, last: float) -> None:
        """Wait until an interval after ``last``, the interval in force: a reload that
        shortens it takes effect at once, not after the old one ran out."""
        while (left := last + self._services.config.housekeeping.interval
               - time.monotonic()) > 0:
            await self._sleep.sleep(left)

    def interval_changed(self) -> None:
        self._sleep.wake()

    async def run_once(self) -> dict[str, int]:
        """Run every job once; returns how many things each job handled. A job that
        fails is logged and left out; the others run all the same (the next pass
        tries it again)."""
        done: dict[str, int] = {}
        for name, job in self._jobs():
            try:
                done[name] = await job()
            except Exception:
                log.exception("housekeeping job failed", extra={"fields": {"job": name}})
        log.info("housekeeping", extra={"fields": done})
        return done

    async def _expire_audit(self, now: float) -> int:
        """Entries older than housekeeping.audit_retention (0: kept for good)."""
        retention = self._services.config.housekeeping.audit_retention
        if not retention:
            return 0
        await self._services.audit.flush()
        return await self._services.storage.delete_audit_before(now - retention)

    def _jobs(self) -> list[tuple[str, Callable[[], Awaitable[int]]]]:
        services = self._services
        config = services.config.housekeeping
        storage = services.storage
        now = services.clock.time()
        history_cut = now - config.history_retention
        return [
            ("sanctions_expired", services.moderation.expire),
            ("invitations_expired", lambda: storage.delete_expired_invitations(now)),
            ("resume_tokens_expired", services.resume.expire),
            ("session_tokens_expired", services.tokens.expire_sessions),
            ("audit_deleted", lambda: self._expire_audit(now)),
            ("notifications_deleted",
             lambda: services.notifier.expire(now - config.notification_retention)),
            ("associations_deleted",
             lambda: storage.delete_stale_associations(now - config.association_retention)),
            ("empty_rooms_terminated", services.rooms.terminate_empty),
            # Their requests, sanctions, invitations and webhooks: read by no one.
            ("ended_rooms_cleared", storage.delete_ended_rooms_state),
            ("messages_deleted", lambda: storage.delete_terminated_history(history_cut)),
            # Files follow their room's history; a blob goes with its last file.
            ("files_deleted", lambda: services.files.purge_terminated(history_cut)),
            # Blobs left without a file by a failure between an upload's put and its row.
            ("orphan_blobs_deleted", lambda: services.files.delete_orphans(
                now, config.orphan_grace, config.orphan_batch)),
        ]
