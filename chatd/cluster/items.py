"""The log's items, decoded once for the two readers a node has of each.

A node reads every item of the log (its bus, to deliver) and, through the group
``persist``, its share of them again (its persister, to store). Both read the
same items a few milliseconds apart, and decoding is the largest part of what a
node spends on another node's message. So the first of the two to read an item
leaves its entries here and the second takes them: an item is decoded once per
node, not once per reader.

The entries are shared, never changed after decoding (their events are frozen;
each reader only reads an entry). An item only one of them reads (the
persister's share is about one item in as many as there are nodes) is forgotten:
at most ``LIMIT`` entries wait here, and none appended to the log more than
``AGE_MS`` before the newest kept (an item's id is the time of its append), so a
quiet node holds little. A new epoch clears them, since a new log may reuse an
item's id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from chatd.cluster import codec

if TYPE_CHECKING:
    from collections.abc import Mapping

# The most entries kept for their second reader: at 25,000 messages a second,
# more than the time between the two reads of an item (a few tens of ms).
LIMIT: Final = 20_000
# The oldest an item kept may be beside the newest, in milliseconds of their ids: the
# two readers of an item read it within tens of milliseconds of each other.
AGE_MS: Final = 2000


class DecodedItems:
    """Items decoded by one reader, waiting for the other."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._kept: dict[Any, tuple[list[Any], int]] = {}
        self._count = 0
        # Items the second reader took decoded (a test's figure).
        self.shared = 0

    def __len__(self) -> int:
        return len(self._kept)

    def entries(self, stream_id: Any, fields: Mapping[bytes, bytes]) -> list[Any]:
        """The entries of item ``stream_id``: those the other reader decoded, else
        decoded now (:func:`codec.readable_entries`) and kept for it."""
        taken = self._kept.pop(stream_id, None)
        if taken is not None:
            self._count -= taken[1]
            self.shared += 1
            return taken[0]
        entries = codec.readable_entries(stream_id, fields)
        weight = len(entries) or 1  # an unreadable item counts too
        kept = self._kept
        kept[stream_id] = (entries, weight)
        self._count += weight
        while self._count > self._limit:
            self._count -= kept.pop(next(iter(kept)))[1]
        oldest_allowed = (codec.millis_of(stream_id) or 0) - AGE_MS
        while kept:
            oldest = next(iter(kept))
            if (codec.millis_of(oldest) or 0) >= oldest_allowed:
                break
            self._count -= kept.pop(oldest)[1]
        return entries

    def clear(self) -> None:
        self._kept.clear()
        self._count = 0
