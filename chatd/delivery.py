"""The message bus: how an item reaches a room's or a user's connections.

:class:`LocalBus` delivers to the sessions of this process. A bus shared by
several nodes (for example over Redis pub/sub) implements the same two
methods and forwards what it receives to its local sessions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from chatd.accounts import User
    from chatd.outgoing import Outgoing
    from chatd.room import Room
    from chatd.session import Session


class Bus(Protocol):
    def to_room(self, room: Room, item: Outgoing, skip: Session | None = None) -> None: ...
    def to_user(self, user: User, item: Outgoing, skip: Session | None = None) -> None: ...


class LocalBus:
    """Delivers in-process. Never awaits: a slow client cannot stall a broadcast."""

    __slots__ = ()

    def to_room(self, room: Room, item: Outgoing, skip: Session | None = None) -> None:
        for session in room.endpoints:
            if session is not skip:
                session.deliver(item)

    def to_user(self, user: User, item: Outgoing, skip: Session | None = None) -> None:
        for session in user.sessions:
            if session is not skip:
                session.deliver(item)
