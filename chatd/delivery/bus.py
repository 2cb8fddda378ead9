"""The message bus: how an item reaches a room's or a user's connections.

:class:`LocalBus` implements the domain's :class:`chatd.domain.ports.Bus`: it
keeps who is connected where (per room id the connected endpoints and the
feed of the current turn, per user id their endpoints) and delivers to the
connections of this process. Every item the domain emits passes through that
interface, so it is the seam for a cluster: a bus shared by several nodes
(for example over Redis streams) implements the same methods, publishes what
the domain gives it, and feeds what it receives to its node's LocalBus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, cast

from chatd.delivery.feed import RoomFeed
from chatd.delivery.issuer import issuer, told
from chatd.delivery.outgoing import Outgoing

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

    from chatd.delivery.feed import Outbox
    from chatd.domain.accounts import User
    from chatd.domain.events import Event
    from chatd.domain.room import Room

from chatd.domain.ports import Bus, Endpoint

# The interface LocalBus implements is the domain's; it is named here as well
# for the code that wires the bus.
__all__ = ["Bus", "LocalBus", "Receiver"]


class Receiver(Endpoint, Protocol):
    """What the bus needs of an endpoint to deliver to it (a front end's session).

    Every endpoint this process connects is one: the domain hands them over
    typed as its :class:`Endpoint`, which knows nothing of delivery."""

    @property
    def out(self) -> Outbox: ...
    def deliver(self, item: Outgoing) -> None: ...
    def tap(self, feed: RoomFeed, item: Outgoing) -> None: ...
    def reply(self, item: Outgoing, label: str) -> None:
        """Show ``item`` here as part of the reply to the command labelled ``label``."""


_NONE: frozenset[Any] = frozenset()

# A user's connections: the one connection itself (no container for the usual
# case: ~56 bytes less per logged-in connection), or a tuple of two or more.
_UserConnections = Receiver | tuple[Receiver, ...]


def _listed(known: _UserConnections) -> tuple[Receiver, ...]:
    return known if isinstance(known, tuple) else (known,)


class LocalBus:
    """Delivers in-process. Never awaits: a slow client cannot stall a broadcast."""

    __slots__ = ("_feeds", "_rooms", "_users")

    def __init__(self) -> None:
        # Connections of online members by room id: the fan-out list of a room message.
        # Changed through connect/disconnect only: they keep the feed's taps right.
        self._rooms: dict[int, set[Receiver]] = {}
        # This turn's messages of each room, shared by its connections (chatd.delivery.feed).
        self._feeds: dict[int, RoomFeed] = {}
        # Every connection of each logged-in user, by user id, oldest first: the
        # connection itself for most users, who have one; a tuple, replaced on
        # change, for the others (see _UserConnections).
        self._users: dict[int, _UserConnections] = {}

    # -- routes --------------------------------------------------------------

    def connect(self, room: Room, endpoints: Iterable[Endpoint]) -> None:
        connected = self._rooms.get(room.id)
        if connected is not None:
            connected.update(_receivers(endpoints))
        elif fresh := set(_receivers(endpoints)):
            # A room nobody is connected to has no entry (see disconnect).
            self._rooms[room.id] = fresh

    def disconnect(self, room: Room, endpoints: Iterable[Endpoint]) -> None:
        connected = self._rooms.get(room.id)
        if connected is None:
            return
        feed = self._feeds.get(room.id)
        for receiver in list(_receivers(endpoints)):
            connected.discard(receiver)
            if feed is not None and receiver.out.feed is feed:
                receiver.out.untap()
        if not connected:
            del self._rooms[room.id]

    def disconnect_user(self, room: Room, user_id: int) -> list[Endpoint]:
        left: list[Endpoint] = [r for r in self._rooms.get(room.id, _NONE)
                                if r.user is not None and r.user.id == user_id]
        self.disconnect(room, left)
        return left

    def close_room(self, room: Room) -> list[Endpoint]:
        left: list[Endpoint] = list(self._rooms.get(room.id, _NONE))
        self.disconnect(room, left)
        return left

    def in_room(self, room: Room) -> Collection[Endpoint]:
        return self._rooms.get(room.id, _NONE)

    def add_user(self, user: User, endpoint: Endpoint) -> None:
        known = self._users.get(user.id)
        receiver = _receiver(endpoint)
        self._users[user.id] = receiver if known is None else (*_listed(known), receiver)

    def remove_user(self, user: User, endpoint: Endpoint) -> None:
        endpoints = self._users.get(user.id)
        if endpoints is None:
            return
        listed = _listed(endpoints)
        try:
            # (tuple.index compares by identity first, in C: a user holding many
            # connections does not pay a Python loop over them at each close)
            at = listed.index(endpoint)
        except ValueError:
            return
        remaining = listed[:at] + listed[at + 1:]
        if len(remaining) > 1:
            self._users[user.id] = remaining
        elif remaining:
            self._users[user.id] = remaining[0]
        else:
            del self._users[user.id]

    def of_user(self, user: User) -> Sequence[Endpoint]:
        known = self._users.get(user.id)
        return () if known is None else _listed(known)

    def feed_of(self, room: Room) -> RoomFeed | None:
        """``room``'s feed of this turn, if a message went to it."""
        return self._feeds.get(room.id)

    # -- delivery ------------------------------------------------------------

    def end_turn(self) -> None:
        # The next message of each room starts a new feed; a room that goes
        # quiet keeps no bytes of its last turn.
        self._feeds.clear()

    def placed(self, message_id: int) -> None:
        """A message is in its place once delivered: at once, in this process."""
        return

    def to_room(self, room: Room, event: Event, skip: Endpoint | None = None,
                label: str | None = None) -> int:
        item = Outgoing(event, room.id)
        connected = self._rooms.get(room.id, _NONE)
        if skip is not None:
            # A message's path (the sender is known): no issuer to look for.
            self._to_room(room.id, connected, item, _receiver(skip))
            if label is not None:
                # After the fan-out, as a reply: it shares the record the fan-out built.
                _receiver(skip).reply(item, label)
        else:
            self._deliver(room.id, connected, item)
        return len(connected)

    def deliver_to_room(self, room: Room, item: Outgoing, skip: Endpoint | None = None) -> None:
        """:meth:`to_room` for an item already made (a front end's own events)."""
        connected = self._rooms.get(room.id, _NONE)
        if skip is not None:
            self._to_room(room.id, connected, item, _receiver(skip))
        else:
            self._deliver(room.id, connected, item)

    def _deliver(self, room_id: int, connected: Collection[Receiver], item: Outgoing) -> None:
        """Deliver with no one skipped, except that the issuer of the command this
        event answers is given its copy as the command's reply."""
        labelled = told(connected)
        if labelled is not None:
            # The issuing connection's copy is part of its command's reply.
            session, label = labelled
            self._to_room(room_id, connected, item, _receiver(session))
            _receiver(session).reply(item, label)
        else:
            self._to_room(room_id, connected, item, None)

    def _to_room(self, room_id: int, connected: Collection[Receiver], item: Outgoing,
                 skip: Receiver | None) -> None:
        if item.priority:
            # Presence and typing events may be shed per connection: one by one.
            for session in connected:
                if session is not skip:
                    session.deliver(item)
            return
        feed = self._feeds.get(room_id)
        if feed is None:
            feed = self._feeds[room_id] = RoomFeed(room_id)
        if skip is not None and skip.out.feed is feed:
            skip.out.untap()
        if not feed.add(item):
            _untap_closed(connected)
        if feed.taps != len(connected):
            # Someone is not tapped yet this turn, or was given something else since.
            for session in connected:
                if session.out.feed is not feed and session is not skip:
                    session.tap(feed, item)

    def to_user(self, user: User, event: Event, skip: Endpoint | None = None,
                room_id: int | None = None) -> None:
        self.deliver_to_user(user, Outgoing(event, room_id), skip)

    def to_users(self, users: Iterable[User], event: Event,
                 skip: Endpoint | None = None, room_id: int | None = None,
                 echo: bool = False, label: str | None = None) -> None:
        item = Outgoing(event, room_id)
        for user in users:
            self.deliver_to_user(user, item, skip)
        if echo and skip is not None:
            skip.send(event, label)

    def to_each(self, endpoints: Iterable[Endpoint], event: Event,
                room_id: int | None = None) -> None:
        """``event`` to each of ``endpoints`` (a cluster's departure, told to those it
        took out of the room before it was delivered there)."""
        item = Outgoing(event, room_id)
        for receiver in _receivers(endpoints):
            receiver.deliver(item)

    def to_endpoints(self, endpoints: Iterable[Endpoint], record: Mapping[str, Any]) -> None:
        item = Outgoing.of_record(record)
        for receiver in _receivers(endpoints):
            receiver.deliver(item)

    def deliver_to_user(self, user: User, item: Outgoing, skip: Endpoint | None = None) -> None:
        """:meth:`to_user` for an item already made."""
        labelled = issuer()
        known = self._users.get(user.id)
        for session in () if known is None else _listed(known):
            if session is skip:
                continue
            if labelled is not None and session is labelled[0]:
                session.reply(item, labelled[1])
            else:
                session.deliver(item)


def _untap_closed(connected: Collection[Receiver]) -> None:
    """Untap the connections of lanes that refused an item: they keep what they took,
    and the fan-out then gives them the item one by one."""
    for session in connected:
        lane = session.out.lane
        if lane is not None and lane.closed:
            session.out.untap()


def _receiver(endpoint: Endpoint) -> Receiver:
    return cast("Receiver", endpoint)


def _receivers(endpoints: Iterable[Endpoint]) -> Iterable[Receiver]:
    return cast("Iterable[Receiver]", endpoints)
