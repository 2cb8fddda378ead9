"""Something to send to one or many endpoints, rendered once per style.

A room message reaches every member connection. Rendering it for each would
cost more than delivering it, so the item keeps a small cache: the first
endpoint of a given style renders, the others reuse the bytes. The item holds
the domain's event; a front end builds the wire record from it on first use
(``record``, shared by every recipient), so a message is built once, however
many connections render it.

Under output pressure a connection drops what matters least first: transient
items (typing indicators) are dropped, presence events (join, leave) are
coalesced into one summary, and messages are never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatd.domain import events

MESSAGE, PRESENCE, TRANSIENT = 0, 1, 2
_PRIORITY_OF_TYPE: dict[type[events.Event], int] = {
    events.Joined: PRESENCE, events.Left: PRESENCE, events.Typing: TRANSIENT}
# A front end's own records (IRC guests, server notices) are ranked by their "event".
_PRIORITY_OF_EVENT = {"join": PRESENCE, "leave": PRESENCE, "typing": TRANSIENT}


class Outgoing:
    """An event (or a ready wire record) with its room id (for the text format) and
    render cache."""

    __slots__ = ("cache", "event", "priority", "record", "room_id")

    def __init__(self, event: events.Event, room_id: int | None = None) -> None:
        self.event: events.Event | None = event
        self.record: Mapping[str, Any] | None = None
        self.room_id = room_id
        self.priority = _PRIORITY_OF_TYPE.get(type(event), MESSAGE)
        self.cache: dict[int, bytes] = {}

    @classmethod
    def of_record(cls, record: Mapping[str, Any], room_id: int | None = None) -> Outgoing:
        """An item of a wire record a front end made itself (no domain event)."""
        item = cls.__new__(cls)
        item.event = None
        item.record = record
        item.room_id = room_id
        item.priority = _PRIORITY_OF_EVENT.get(record.get("event", ""), MESSAGE)
        item.cache = {}
        return item
