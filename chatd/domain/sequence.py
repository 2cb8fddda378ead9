"""Message ids in one process: the :class:`~chatd.domain.ports.Sequencer` of a
single daemon.

One counter serves rooms, direct and end-to-end messages alike, so the ids a
connection sees increase across everything it receives (the order
``scripts/bench`` checks). It starts above the largest id in storage, read
once at start, and after an unclean stop well above it (see
:class:`LocalSequencer`), so a restart never issues an id twice. A cluster's sequencer
is a shared counter instead (one Redis ``INCRBY`` for the posts of a turn,
seeded above the database's largest id with a margin), whose ids the domain
awaits: :func:`chatd.domain.ports.settled`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final, Protocol

from chatd.domain.ports import IdSpan
from chatd.errors import ChatError, Code

if TYPE_CHECKING:
    from storage.api import Storage

log = logging.getLogger(__name__)

# The records about the numbering in the database (storage's get_meta/set_meta).
# SERVING: "yes" while a daemon serves it, "no" once one stopped with every
# message it numbered written.
SERVING_META: Final = "serving"
SERVING: Final = "yes"
NOT_SERVING: Final = "no"
# How far the numbering may go: no id above it was issued (see LocalSequencer).
RESERVED_META: Final = "ids_reserved"
# The first id of the numbering since the last unclean stop.
IDS_FROM_META: Final = "ids_from"
# How many ids are reserved at a time, ahead of those issued. Generous: under a
# burst the database's writes wait seconds behind the event loop's work (200,000
# messages in 4 s in the benchmark's rooms of two wrote nothing meanwhile), and
# an id past the reservation is refused; ids may have gaps, and 2**63 is far.
RESERVE_AHEAD: Final = 10_000_000
# Messages numbered and not written yet, at most (storage.max_pending): some
# 400 bytes each, so the default bounds the backlog near 400 MB.
DEFAULT_MAX_PENDING: Final = 1_000_000
RETRY_MS: Final = 1000
_UNBOUNDED: Final = 2**63 - 1


class Backlog(Protocol):
    """The batched writer, as far as the numbering asks it."""

    @property
    def pending(self) -> int: ...


class _NoBacklog:
    pending = 0


class LocalSequencer:
    """Ids from memory, strictly increasing, above every id ever issued.

    A message is acknowledged (echoed to its sender) before the batched writer
    stores it, a moment later, and some ids are never stored at all (an IRC
    guest's direct message): the largest stored id does not say which ids a
    process that died (``kill -9``, power loss, the out-of-memory killer)
    issued. So the numbering is reserved ahead, ``reserve`` ids at a time: an
    id is issued only below a reservation already written to the database,
    and the next reservation is written while half of this one is left. A
    clean stop records the last id issued. After an unclean stop the numbering
    continues above the reservation, so no id acknowledged before the crash is
    issued again, and /resume from an id before it says that messages may be
    missing (``recovered: false``) instead of "nothing is missing".

    Unwritten messages are bounded too (``max_pending``): past it a post is
    refused with ``busy``, before an id is issued, rather than held in memory.
    """

    __slots__ = ("_backlog", "_first", "_last", "_loaded", "_max_pending", "_reserve",
                 "_reserved", "_reserving", "_storage")

    def __init__(self, storage: Storage, backlog: Backlog | None = None,
                 max_pending: int = DEFAULT_MAX_PENDING, reserve: int = RESERVE_AHEAD) -> None:
        self._storage = storage
        self._backlog: Backlog = backlog if backlog is not None else _NoBacklog()
        self._max_pending = max_pending
        self._reserve = reserve
        # The last id issued (or stored, at start): the next is one more.
        self._last = 0
        # No id above it may be issued: it is written in the database (a counter that
        # never loads, a test's, keeps to none).
        self._reserved = _UNBOUNDED
        self._reserving: asyncio.Task[None] | None = None
        # The first id of the numbering since the last unclean stop (0: none).
        self._first = 0
        # Whether load() recorded that a daemon serves the database.
        self._loaded = False

    async def load(self) -> None:
        """Continue above every id issued before (at start, before any message),
        skipping the last run's reservation after an unclean stop; then reserve
        ahead and record that a daemon serves the database."""
        storage = self._storage
        self._first = int(await storage.get_meta(IDS_FROM_META) or 0)
        reserved = int(await storage.get_meta(RESERVED_META) or 0)
        largest = max(await storage.max_message_id(), reserved, self._first - 1)
        serving = await storage.get_meta(SERVING_META)
        if serving is not None and serving != NOT_SERVING:
            self._first = largest + 1
            await storage.set_meta(IDS_FROM_META, str(self._first))
            log.warning("the last run did not stop cleanly: messages it acknowledged in its "
                        "last moments may be lost; numbering continues at %d, and /resume "
                        "from an earlier id says messages may be missing", self._first)
        self._last = self._reserved = largest
        await self._write_reservation(largest + self._reserve)
        await storage.set_meta(SERVING_META, SERVING)
        self._loaded = True

    async def stopped(self) -> None:
        """Every id issued is stored (or was never to be): the next start continues
        right above the last one. (Nothing to record for a start that failed
        before load().)"""
        if not self._loaded:
            return
        if self._reserving is not None:
            await self._reserving
        await self._storage.set_meta(RESERVED_META, str(self._last))
        await self._storage.set_meta(SERVING_META, NOT_SERVING)

    def seed(self, largest: int) -> None:
        """The next id is ``largest + 1``."""
        self._last = largest

    async def issued(self) -> IdSpan:
        return IdSpan(self._first, self._last)

    def _take(self, key: int) -> int:
        """The next id (refused before one is issued: every id issued is below the
        reservation)."""
        if self._backlog.pending >= self._max_pending or self._last >= self._reserved:
            raise _busy()
        self._last = last = self._last + 1
        if self._reserved - last < self._reserve >> 1 and self._reserving is None:
            self._reserve_more()
        return last

    # One counter for both (the order of a room is part of the order of all), and
    # one function: no call in between on the hottest path of the daemon.
    for_room = for_direct = _take

    def _reserve_more(self) -> None:
        self._reserving = asyncio.ensure_future(self._reserving_more())

    async def _reserving_more(self) -> None:
        try:
            await self._write_reservation(self._last + self._reserve)
        except Exception:  # a database that does not answer: the next id tries again
            log.warning("could not reserve message ids ahead", exc_info=True)
        finally:
            self._reserving = None

    async def _write_reservation(self, up_to: int) -> None:
        """Raised only once written: a crash after this never reissues an id below."""
        await self._storage.set_meta(RESERVED_META, str(up_to))
        self._reserved = max(self._reserved, up_to)


def _busy() -> ChatError:
    return ChatError(Code.BUSY, "the server is behind with storing messages: try again in "
                     "a moment.", retry_ms=RETRY_MS)
