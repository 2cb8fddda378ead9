"""The messages acknowledged and not stored yet: the log's tail, for history
and for ``/resume``.

A message is acknowledged once placed in the log and stored a moment later by
the persister (:mod:`chatd.cluster.persister`), possibly much later while
PostgreSQL is away. History reads PostgreSQL, then merges the messages of the
log above what the group ``persist`` has stored: the entries not yet handed to
a consumer, and those pending with one. That part of the log is read newest
first, at most ``TAIL_COUNT`` entries. This is the cluster's equivalent of the
embedded daemon's flush of its writer before it reads history.

A room message is shown only once this node's reader placed it (and never one
the gate dropped): anything later reaches a connection live, after it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import redis

from chatd.cluster import codec, keys
from chatd.cluster.persister import record_of
from chatd.cluster.sequencer import busy

if TYPE_CHECKING:
    from collections.abc import Callable

    import redis.asyncio

    from chatd.cluster.persister import Verdict
    from storage.records import MessageRecord

log = logging.getLogger(__name__)

# The most entries of the log read for one history.
TAIL_COUNT = 10_000
# How long the tail is waited for; history is then PostgreSQL's alone.
TIMEOUT = 1.0


class LogTail:
    """Reads the messages of the log the persister has not stored yet."""

    def __init__(self, shared: redis.asyncio.Redis, verdict: Verdict) -> None:
        self._shared = shared
        self._verdict = verdict

    async def room(self, room_id: int, before_id: int | None) -> list[MessageRecord]:
        """The unstored messages of a room (below ``before_id``), oldest first."""
        return [r for r in await self._unstored(before_id) if r.room_id == room_id]

    async def direct(self, user_id: int, other_id: int,
                     before_id: int | None) -> list[MessageRecord]:
        """The unstored direct messages between two users, either way, oldest first."""
        pair = {user_id, other_id}
        return [r for r in await self._unstored(before_id) if r.recipient_id is not None
                and {r.sender_id, r.recipient_id} == pair]

    async def after(self, after_id: int) -> list[MessageRecord]:
        """Every unstored message above ``after_id``, oldest first; ``busy`` when
        the log does not answer (a resume must then say it may be incomplete)."""
        try:
            entries = await self._entries()
        except (redis.RedisError, TimeoutError):
            raise busy() from None
        return self._placed(entries, lambda number: number > after_id)

    async def _unstored(self, before_id: int | None) -> list[MessageRecord]:
        try:
            entries = await self._entries()
        except (redis.RedisError, TimeoutError) as exc:
            log.warning("cluster: the log's tail is not read (%s): history shows what "
                        "is stored", exc)
            return []
        return self._placed(entries, lambda number: before_id is None or number < before_id)

    async def _entries(self) -> list[dict[str, Any]]:
        async with asyncio.timeout(TIMEOUT):
            return await self._read()

    def _placed(self, entries: list[dict[str, Any]],
                wanted: Callable[[int], bool]) -> list[MessageRecord]:
        """The messages of ``entries`` numbered as ``wanted`` that this node's reader
        placed (a direct message is never dropped), oldest first."""
        records = []
        for entry in entries:
            record = record_of(entry)
            if record is None or not wanted(record.id):
                continue
            # Dropped by the gate, or not placed yet by this node's reader: not shown.
            if record.room_id is not None and self._verdict(record.id) is not True:
                continue
            records.append(record)
        records.sort(key=lambda r: r.id)
        return records

    async def _read(self) -> list[dict[str, Any]]:
        """The entries of the log above what the group stored, newest first."""
        pipe = self._shared.pipeline(transaction=False)
        pipe.xinfo_groups(keys.LOG)
        pipe.xpending(keys.LOG, keys.PERSIST)
        try:
            groups, pending = await pipe.execute()
        except redis.ResponseError:  # no log, or no group yet: the whole tail
            groups, pending = [], {}
        lowest = _lowest_unstored(groups, pending)
        items: Any = await self._shared.xrevrange(keys.LOG, "+", lowest, count=TAIL_COUNT)
        return [entry for stream_id, fields in items if fields
                for entry in codec.readable_entries(stream_id, fields)]


def _lowest_unstored(groups: list[dict[Any, Any]], pending: dict[str, Any]) -> str:
    """The lowest stream id that may not be stored: the oldest pending entry, else
    the first after the group's last delivered one ("-" without a group)."""
    if pending and pending.get("pending") and pending.get("min") is not None:
        oldest = pending["min"]
        return codec.text(oldest)
    for group in groups:
        if group.get("name") in (keys.PERSIST, keys.PERSIST.encode()):
            return "(" + codec.text(group.get("last-delivered-id"))
    return "-"
