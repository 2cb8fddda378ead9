"""Something to send to one or many endpoints, rendered once per style.

A room message reaches every member connection. Rendering it for each would
cost more than delivering it, so the item keeps a small cache: the first
endpoint of a given style renders, the others reuse the bytes.

Under output pressure a connection drops what matters least first: transient
items (typing indicators) are dropped, presence events (join, leave) are
coalesced into one summary, and messages are never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MESSAGE, PRESENCE, TRANSIENT = 0, 1, 2
_PRIORITY_OF_EVENT = {"join": PRESENCE, "leave": PRESENCE, "typing": TRANSIENT}


class Outgoing:
    """A wire record with its room id (for the text format) and render cache."""

    __slots__ = ("cache", "priority", "record", "room_id")

    def __init__(self, record: Mapping[str, Any], room_id: int | None = None) -> None:
        self.record = record
        self.room_id = room_id
        self.priority = _PRIORITY_OF_EVENT.get(record.get("event", ""), MESSAGE)
        self.cache: dict[int, bytes] = {}
