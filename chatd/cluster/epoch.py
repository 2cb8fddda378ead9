"""What a node does when Redis lost its memory: a new epoch.

Redis restarted without its data (no persistence, or a failover to a replica
that lagged): the counter, the log and the consumer group are gone. The
sequencer notices (its script checks the epoch with every batch of ids, its
reader now and then) and seeds a new epoch, or adopts the one another node
seeded, above the largest stored id plus a margin, so no id is issued twice.
Then each node starts over on the new log: its reader from the log's start,
its gate empty, its persister in a group made anew; it reloads its rooms from
PostgreSQL (a decision whose event was lost is still applied), forgets the
other nodes' lives Redis no longer records (their users would otherwise stay
online for ever: see ``ClusterPresence.start_over``), and tells the users
signed in here that messages may be missing.

What the old log held and no persister had stored yet is lost with it: Redis
should keep an append-only file (``appendonly yes``, ``appendfsync everysec``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from chatd.cluster.bus import ClusterBus
    from chatd.cluster.persister import Persister
    from chatd.cluster.presence import ClusterPresence

log = logging.getLogger(__name__)

NOTICE: Final = ("the cluster's message service restarted without its data: messages "
                 "sent in the last moments may be missing from history.")
# How long a room's reload may take before the next is tried.
RELOAD_TIMEOUT = 2.0


class EpochChange:
    """Starts this node over on a new epoch's log."""

    def __init__(self, bus: ClusterBus, persister: Persister,
                 rooms: Callable[[], Iterable[int]],
                 reload: Callable[[int], Awaitable[None]],
                 presence: ClusterPresence) -> None:
        self._bus = bus
        self._persister = persister
        self._presence = presence
        self._rooms = rooms
        self._reload = reload
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1
        await self._bus.reset()
        self._persister.reset()
        try:
            await self._presence.start_over()
        except Exception:  # Redis gone again: the next epoch change starts over again
            log.warning("cluster: the other nodes' presence not read again after the epoch "
                        "change", exc_info=True)
        reloaded = 0
        for room_id in list(self._rooms()):
            try:
                async with asyncio.timeout(RELOAD_TIMEOUT):
                    await self._reload(room_id)
                reloaded += 1
            except Exception:  # the database away: the next decision reloads
                log.warning("cluster: room %d not reloaded after the epoch change", room_id)
        told = self._bus.tell_all({"type": "notice", "text": NOTICE, "epoch": True})
        log.warning("cluster: started over on a new epoch: %d rooms reloaded, %d "
                    "connections told", reloaded, told)
