"""The shared log's tail: messages delivered that PostgreSQL may not hold yet.

Each node writes the messages it posted with its own batched writer, so a
message posted on another node reaches PostgreSQL a moment after every node
delivered it. ``/resume`` on this node merges storage with the message
entries of the log (``{chatd}:log``) above the id asked for, read newest
first, a page at a time, back to ``WINDOW`` seconds (a writer that has not
written a message by then is failing, and says so in its log) or to the
first entry numbered at or below the id.

Only entries this node's reader has already ordered are taken (below its
next expected number), and none that its gate refused: anything later is
delivered live on this node, where the connection asking holds it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import redis

from chatd.cluster import codec, keys
from chatd.cluster.sequencer import busy
from chatd.domain.events import Message
from chatd.domain.ports import Delivered

if TYPE_CHECKING:
    from collections.abc import Collection

    import redis.asyncio

# How far back the tail is read, in seconds of the log's time.
WINDOW = 60.0
# Entries read per round trip.
PAGE = 1000


async def read_tail(shared: redis.asyncio.Redis, after_id: int, below: int,
                    refused: Collection[int]) -> list[Delivered]:
    """The messages of the log's tail numbered above ``after_id`` and below
    ``below``, none of ``refused``; ``busy`` when Redis does not answer."""
    oldest = f"{int((time.time() - WINDOW) * 1000)}-0"
    found: list[Delivered] = []
    upper: Any = "+"
    try:
        while True:
            page: Any = await shared.xrevrange(keys.LOG, max=upper, min=oldest, count=PAGE)
            reached = _take(page, after_id, below, refused, found)
            if reached or len(page) < PAGE:
                return found
            upper = b"(" + page[-1][0]
    except redis.RedisError:
        raise busy() from None


def _take(page: list[Any], after_id: int, below: int, refused: Collection[int],
          found: list[Delivered]) -> bool:
    """Add the page's messages to ``found``; True once an entry numbered at or
    below ``after_id`` was read (everything older is too, give or take the
    log's small disorder, which the page it is in covers)."""
    reached = False
    for _stream_id, fields in page:
        entry = codec.decode(fields[b"j"])
        number = entry.get("s")
        if not isinstance(number, int):
            continue
        if number <= after_id:
            reached = True
            continue
        if number >= below or number in refused or entry["k"] not in ("room", "users"):
            continue
        event = codec.decode(entry["e"])
        if isinstance(event, Message):
            found.append(Delivered(event, entry.get("r"), tuple(entry.get("u", ()))))
    return reached
