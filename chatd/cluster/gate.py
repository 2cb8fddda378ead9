"""Who may no longer post in a room, as the shared log orders it.

A node checks a post against its own memory of the room before it asks for an
id, but another node's sanction may be decided in the meantime: the member's
message and the sanction are then numbered in either order. The order is what
counts, so the log's reader decides: every node reads the same entries in the
same order and applies them to its :class:`Gate` alone, and a room message whose
sender a sanction ordered before it took out (kick, ban, leave) or silenced
(mute, until its end by the message's own time) is dropped on every node alike.
The sender's node tells the sender (:meth:`chatd.cluster.bus.ClusterBus.placed`).

A webhook's post is sent by its bot (``name[bot]``) but speaks for the account
that made the hook, whose sanctions are the ones that count: its entry names that
account (``w``, :meth:`chatd.cluster.bus.ClusterBus.to_room`), and the gate checks
that name instead of the sender's. An entry without it (written by a node of an
older version, or while one is live: keys.LOG_SPEAKERS) is checked by its sender's
name on every node alike, as those nodes check it.

The gate knows only what the log said since the node started reading; what was
decided before is in every node's memory, which the sender's node checks first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from chatd.domain.events import Banned, Joined, Kicked, Left, ModesChanged, Muted, Unmuted
from chatd.domain.names import name_key
from chatd.errors import ChatError, Code

if TYPE_CHECKING:
    from chatd.domain.events import Event, Message
    from chatd.domain.room import Room

# The most sanctions remembered; the oldest are forgotten first (each node
# forgets the same ones: the same entries in the same order).
LIMIT: Final = 100_000


class Gate:
    """The sanctions the log ordered, per room and user, and what they refuse."""

    def __init__(self) -> None:
        # (room id, name key) -> (code, until): until None is for good.
        self._closed: dict[tuple[int, str], tuple[Code, float | None]] = {}
        # room id -> whether it takes messages from outside (-n), as the log last said.
        self._outside: dict[int, bool] = {}

    def __len__(self) -> int:
        return len(self._closed)

    def apply(self, room_id: int, event: Event) -> None:
        """Take ``event`` (read from the log in order) into account."""
        if isinstance(event, Kicked | Left):
            self._close(room_id, event.user, Code.NOT_IN_ROOM, None)
        elif isinstance(event, Banned):
            self._close(room_id, event.user, Code.BANNED, None)
        elif isinstance(event, Muted):
            self._close(room_id, event.user, Code.MUTED, event.until)
        elif isinstance(event, Joined | Unmuted):
            self._closed.pop((room_id, name_key(event.user)), None)
        elif isinstance(event, ModesChanged):
            self._outside.pop(room_id, None)
            self._outside[room_id] = not event.modes.no_external
            if len(self._outside) > LIMIT:
                del self._outside[next(iter(self._outside))]

    def takes_outside(self, room_id: int, room: Room | None) -> bool:
        """Whether the room takes messages from outside (``-n``) at this point of the
        log: as its last modes entry read said, else as this node's copy has it."""
        known = self._outside.get(room_id)
        if known is not None:
            return known
        return room is not None and not room.modes.no_external

    def refusal(self, room_id: int, room: str, message: Message,
                speaks_for: str | None = None) -> ChatError | None:
        """Why ``message`` may not take its place in ``room`` now; None when it may.
        ``speaks_for``: the account a webhook's message speaks for, whose sanctions
        refuse it (None: its sender's). A leave or kick refuses with ``not-in-room``,
        which a room that takes messages from outside (-n) may excuse
        (:meth:`takes_outside`; the caller knows who may post from outside)."""
        key = (room_id, name_key(speaks_for or message.sender))
        closed = self._closed.get(key)
        if closed is None:
            return None
        code, until = closed
        if until is not None and message.ts >= until:
            del self._closed[key]  # the mute ended before the message was sent
            return None
        return ChatError(code, _WHY[code].format(room=room), until=until)

    def _close(self, room_id: int, user: str, code: Code, until: float | None) -> None:
        key = (room_id, name_key(user))
        self._closed.pop(key, None)
        self._closed[key] = (code, until)
        if len(self._closed) > LIMIT:
            del self._closed[next(iter(self._closed))]


_WHY: Final = {
    Code.NOT_IN_ROOM: "you are no longer in #{room}: your message came after you left it.",
    Code.BANNED: "you are banned from #{room}: your message came after the ban.",
    Code.MUTED: "you are muted in #{room}: your message came after the mute.",
}
