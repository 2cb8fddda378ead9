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

import logging
from typing import TYPE_CHECKING, Final, Protocol

from chatd.domain.ports import IdSpan
from chatd.errors import ChatError, Code

if TYPE_CHECKING:
    from storage.api import Storage

log = logging.getLogger(__name__)

# The records about the numbering in the database (storage's get_meta/set_meta).
# SERVING: the backlog bound of the daemon serving it (see LocalSequencer.load),
# "no" once a daemon stopped with every message it numbered written.
SERVING_META: Final = "serving"
# The first id of the numbering since the last unclean stop.
IDS_FROM_META: Final = "ids_from"
NOT_SERVING: Final = "no"
# Messages numbered and not written yet, at most (storage.max_pending).
DEFAULT_MAX_PENDING: Final = 100_000
RETRY_MS: Final = 1000


class Backlog(Protocol):
    """The batched writer, as far as the numbering asks it."""

    @property
    def pending(self) -> int: ...


class _NoBacklog:
    pending = 0


class LocalSequencer:
    """Ids from memory, strictly increasing, seeded above the stored ones.

    A message is acknowledged (echoed to its sender) before the batched writer
    stores it, a moment later: a process that dies meanwhile (``kill -9``,
    power loss, the out-of-memory killer) loses what it had not written, and
    the largest stored id no longer says which ids it issued. So the database
    records whether its daemon stopped cleanly, and how many messages it let
    wait (the backlog's bound, which a post past it is refused for with
    ``busy``). After an unclean stop the numbering skips twice that bound above
    the largest stored id, so that no id acknowledged before the crash is ever
    issued again, and /resume from an id before the skip says that messages
    may be missing (``recovered: false``) instead of "nothing is missing".
    """

    __slots__ = ("_backlog", "_first", "_last", "_loaded", "_max_pending", "_storage")

    def __init__(self, storage: Storage, backlog: Backlog | None = None,
                 max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._storage = storage
        self._backlog: Backlog = backlog if backlog is not None else _NoBacklog()
        self._max_pending = max_pending
        # The last id issued (or stored, at start): the next is one more.
        self._last = 0
        # The first id of the numbering since the last unclean stop (0: none).
        self._first = 0
        # Whether load() recorded that a daemon serves the database.
        self._loaded = False

    async def load(self) -> None:
        """Continue above the largest id in storage (at start, before any message),
        skipping ahead after an unclean stop; then record that a daemon serves."""
        storage = self._storage
        largest = await storage.max_message_id()
        self._first = int(await storage.get_meta(IDS_FROM_META) or 0)
        largest = max(largest, self._first - 1)
        serving = await storage.get_meta(SERVING_META)
        if serving is not None and serving != NOT_SERVING:
            self._first = largest + 2 * int(serving) + 1
            await storage.set_meta(IDS_FROM_META, str(self._first))
            log.warning("the last run did not stop cleanly: messages it acknowledged in its "
                        "last moments may be lost; numbering continues at %d, and /resume "
                        "from an earlier id says messages may be missing", self._first)
            largest = self._first - 1
        self.seed(largest)
        await storage.set_meta(SERVING_META, str(self._max_pending))
        self._loaded = True

    async def stopped(self) -> None:
        """Every id issued is stored: the next start continues right above them.
        (Nothing to record for a start that failed before load().)"""
        if self._loaded:
            await self._storage.set_meta(SERVING_META, NOT_SERVING)

    def seed(self, largest: int) -> None:
        """The next id is ``largest + 1``."""
        self._last = largest

    async def issued(self) -> IdSpan:
        return IdSpan(self._first, self._last)

    # One counter for both: the order of a room is part of the order of all.
    def for_room(self, room_id: int) -> int:
        if self._backlog.pending >= self._max_pending:
            raise _backlogged()
        self._last += 1
        return self._last

    def for_direct(self, recipient_id: int) -> int:
        if self._backlog.pending >= self._max_pending:
            raise _backlogged()
        self._last += 1
        return self._last


def _backlogged() -> ChatError:
    # Refused before an id is issued: the skip after a crash covers every id issued.
    return ChatError(Code.BUSY, "the server is behind with storing messages: try again in "
                     "a moment.", retry_ms=RETRY_MS)
