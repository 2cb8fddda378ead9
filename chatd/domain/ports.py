"""What the domain needs of the layers above it, as Protocols it owns.

The domain speaks to connections and to the message bus only through these:
a front end's session is an :class:`Endpoint`, and the delivery layer's bus is
a :class:`Bus`. The domain never imports the classes that implement them, so
it stays testable without sockets, and a bus shared by several nodes can take
the in-process one's place without the domain noticing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

    from chatd.domain.accounts import User
    from chatd.domain.events import Event
    from chatd.domain.room import Room


class Endpoint(Protocol):
    """One client connection as the domain sees it, whatever protocol it speaks."""

    @property
    def id(self) -> int: ...
    @property
    def peer(self) -> str: ...

    # The account logged in here; None before login and after logout.
    user: User | None

    @property
    def closing(self) -> bool:
        """The connection is going away: nothing more is done for it."""

    def signed_in(self, user: User, room: Room | None) -> None:
        """``user`` is logged in here now; ``room`` (if any) becomes its current room."""

    def signed_out(self, now: float) -> None:
        """Nobody is logged in here any more (since ``now``, a monotonic time)."""

    def gone(self) -> None:
        """The connection closed: drop what it was in the middle of; it is closing now."""

    def left_room(self, room: Room) -> None:
        """``room`` is no longer this connection's to use (left, terminated)."""

    def send(self, record: Mapping[str, Any] | Event, label: str | None = None) -> None:
        """Show ``record`` on this connection only, labelled ``label`` if given.

        What the domain itself tells (a message's labelled copy, a replay) is an
        event; a front end's own replies and notices may be wire records."""

    def close(self, reason: str) -> None: ...


class Routes(Protocol):
    """Who is connected where: the endpoints of each room and of each user.

    Rooms and users hold no connections: the delivery layer keeps them, next
    to the fan-out they serve, and the domain changes them through here.
    """

    def connect(self, room: Room, endpoints: Iterable[Endpoint]) -> None:
        """These endpoints receive the room's messages from now on."""

    def disconnect(self, room: Room, endpoints: Iterable[Endpoint]) -> None:
        """These endpoints receive nothing more of the room, not even this turn's."""

    def disconnect_user(self, room: Room, user_id: int) -> list[Endpoint]:
        """Disconnect the room's endpoints where ``user_id`` is logged in; return them."""

    def close_room(self, room: Room) -> list[Endpoint]:
        """Disconnect every endpoint of a room that ends; return them."""

    def in_room(self, room: Room) -> Collection[Endpoint]:
        """The endpoints connected to ``room`` (do not change it)."""

    def add_user(self, user: User, endpoint: Endpoint) -> None:
        """``endpoint`` is one of ``user``'s connections from now on."""

    def remove_user(self, user: User, endpoint: Endpoint) -> None: ...

    def of_user(self, user: User) -> Sequence[Endpoint]:
        """``user``'s connections, oldest first (do not change it)."""


class Bus(Routes, Protocol):
    """How the domain tells connections what happened.

    ``event`` is what happened (:mod:`chatd.domain.events`; each front end
    renders it its own way); ``room_id`` names the room it belongs to (a front
    end shows a room's events differently to the members for whom it is the
    current room). ``skip`` is the connection that
    is told otherwise (the sender, who gets a labelled acknowledgement).
    """

    def to_room(self, room: Room, event: Event, skip: Endpoint | None = None,
                label: str | None = None) -> None:
        """Tell ``room``'s connections; with ``label``, ``skip`` is shown the event as
        its reply labelled ``label`` (the sender's acknowledgement of its message)."""

    def to_user(self, user: User, event: Event, skip: Endpoint | None = None,
                room_id: int | None = None) -> None: ...

    def to_users(self, users: Iterable[User], event: Event,
                 skip: Endpoint | None = None, room_id: int | None = None) -> None:
        """:meth:`to_user` for each of ``users``, the event rendered once for them all."""

    def to_endpoints(self, endpoints: Iterable[Endpoint], record: Mapping[str, Any]) -> None:
        """Deliver ``record`` to each of ``endpoints`` (a server-wide notice of a front
        end, not an event of the domain)."""

    def end_turn(self) -> None:
        """The connections' output of this turn of the loop is being flushed."""
