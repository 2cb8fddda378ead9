"""The message bus: how an item reaches a room's or a user's connections.

:class:`LocalBus` delivers to the sessions of this process. A bus shared by
several nodes (for example over Redis pub/sub) implements the same methods
and forwards what it receives to its local sessions (through a LocalBus).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from chatd.delivery.feed import RoomFeed
from chatd.delivery.issuer import issuer

if TYPE_CHECKING:
    from chatd.delivery.outgoing import Outgoing
    from chatd.domain.accounts import User
    from chatd.domain.room import Room
    from chatd.protocol.session import Session


class Bus(Protocol):
    def to_room(self, room: Room, item: Outgoing, skip: Session | None = None) -> None: ...
    def to_user(self, user: User, item: Outgoing, skip: Session | None = None) -> None: ...

    def end_turn(self) -> None:
        """The connections' output of this turn of the loop is being flushed."""


class LocalBus:
    """Delivers in-process. Never awaits: a slow client cannot stall a broadcast."""

    __slots__ = ("_fed",)

    def __init__(self) -> None:
        # The rooms with a feed: every feed belongs to the current turn.
        self._fed: list[Room] = []

    def end_turn(self) -> None:
        # The next message of each room starts a new feed; a room that goes
        # quiet keeps no bytes of its last turn.
        for room in self._fed:
            room.feed = None
        self._fed.clear()

    def to_room(self, room: Room, item: Outgoing, skip: Session | None = None) -> None:
        labelled = issuer()
        if labelled is not None and skip is None and labelled[0] in room.endpoints:
            # The issuing connection's copy is part of its command's reply.
            session, label = labelled
            self._to_room(room, item, session)
            session.send(item.record, label)
        else:
            self._to_room(room, item, skip)

    def _to_room(self, room: Room, item: Outgoing, skip: Session | None) -> None:
        if item.priority:
            # Presence and typing events may be shed per connection: one by one.
            for session in room.endpoints:
                if session is not skip:
                    session.deliver(item)
            return
        feed = room.feed
        if feed is None:
            feed = room.feed = RoomFeed(room.id)
            self._fed.append(room)
        if skip is not None and skip.out.feed is feed:
            skip.out.untap()
        feed.add(item)
        endpoints = room.endpoints
        if feed.taps != len(endpoints):
            # Someone is not tapped yet this turn, or was given something else since.
            for session in endpoints:
                if session.out.feed is not feed and session is not skip:
                    session.tap(feed, item)

    def to_user(self, user: User, item: Outgoing, skip: Session | None = None) -> None:
        labelled = issuer()
        for session in user.sessions:
            if session is skip:
                continue
            if labelled is not None and session is labelled[0]:
                session.send(item.record, labelled[1])
            else:
                session.deliver(item)
