"""Something to send to one or many endpoints, rendered once per style.

A room message reaches every member connection. Rendering it for each would
cost more than delivering it, so the item keeps a small cache: the first
endpoint of a given style renders, the others reuse the bytes.
"""

from __future__ import annotations

from typing import Any


class Outgoing:
    """A wire record with its room id (for the text format) and render cache."""

    __slots__ = ("cache", "record", "room_id", "transient")

    def __init__(self, record: dict[str, Any], room_id: int | None = None,
                 transient: bool = False) -> None:
        self.record = record
        self.room_id = room_id
        # Transient items (typing indicators) are the first dropped under pressure.
        self.transient = transient
        self.cache: dict[object, bytes] = {}
