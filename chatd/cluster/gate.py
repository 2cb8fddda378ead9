"""Who may no longer post in a room, as the shared log orders it.

A node checks a post against its own memory of the room before it asks for an
id, but another node's decision may be made in the meantime: the member's
message and the decision are then numbered in either order. The order is what
counts, so the log's reader decides: every node reads the same entries in the
same order and applies them to its :class:`Gate` alone, and a room message whose
sender a sanction ordered before it took out (kick, ban, leave) or silenced
(mute, until its end by the message's own time) is dropped on every node alike.
The sender's node tells the sender (:meth:`chatd.cluster.bus.ClusterBus.placed`).

A change of standing silences too: a room made moderated (``+m``), or a member's
voice or admin role taken (devoice, demotion), drops what a member without voice
says to a moderated room after it, and a webhook's post after its creator stopped
being an admin of the room. Whether they may speak is asked of the rules every
post is checked by (:mod:`chatd.domain.permissions`), on the room's modes and the
member's role as the log last said them, and as this node's copy of the room has
them where the log said nothing since the node started reading. Only entries that
say so (``g``, written only while every live node reads format 6: keys.LOG_STANDING)
change the gate's standing: while a node of a version before is live, every node
leaves such races to the posting node's check, alike. An IRC guest's role lives on
its own node: its post is judged by the log's changes of its role alone.

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

from typing import TYPE_CHECKING, Final, TypeVar

from chatd.domain.events import (
    Banned,
    Demoted,
    Devoiced,
    Joined,
    Kicked,
    Left,
    ModesChanged,
    Muted,
    OwnerChanged,
    Promoted,
    Unmuted,
    Voiced,
)
from chatd.domain.names import name_key
from chatd.domain.permissions import (
    administering,
    hook_unadministered,
    speaks_when_moderated,
    unvoiced,
)
from chatd.domain.room import Role
from chatd.errors import ChatError, Code

if TYPE_CHECKING:
    from collections.abc import Callable

    from chatd.domain.accounts import User
    from chatd.domain.events import Event, Message
    from chatd.domain.room import Room

# The most sanctions (and roles, and rooms' modes) remembered; the oldest are
# forgotten first (each node forgets the same ones: the same entries in the same order).
LIMIT: Final = 100_000

K = TypeVar("K")
V = TypeVar("V")

# The events that give a member a role in the room (OwnerChanged's previous owner too).
ROLE_CHANGES: Final = (Promoted, Demoted, Voiced, Devoiced, OwnerChanged)
# The events whose entries say whether the gate takes them as changes of standing.
STANDING: Final = (*ROLE_CHANGES, ModesChanged)


class Gate:
    """The sanctions and changes of standing the log ordered, per room and user,
    and what they refuse."""

    def __init__(self, account_of: Callable[[int], User | None] = lambda _id: None) -> None:
        # (room id, name key) -> (code, until): until None is for good.
        self._closed: dict[tuple[int, str], tuple[Code, float | None]] = {}
        # room id -> whether it takes messages from outside (-n), as the log last said.
        self._outside: dict[int, bool] = {}
        # room id -> whether it is moderated (+m), as the log last said.
        self._moderated: dict[int, bool] = {}
        # (room id, name key) -> the member's role, as the log last said.
        self._roles: dict[tuple[int, str], Role] = {}
        # The account of a message's sender (or of whom a webhook's post speaks for).
        self._account_of = account_of

    def __len__(self) -> int:
        return len(self._closed)

    def apply(self, room_id: int, event: Event, standing: bool = True) -> None:
        """Take ``event`` (read from the log in order) into account. ``standing``:
        whether its entry says to take a change of role or modes into account
        (:data:`STANDING`; an entry of a node of a version before does not)."""
        if isinstance(event, Kicked | Left | Banned):
            # Out of the room: a role is given anew by a join (as its copy has it).
            # A departure after a ban of the name (an IRC guest of another node,
            # taken out by its own node once it read the ban) leaves it banned.
            code = Code.BANNED if isinstance(event, Banned) or self._banned(
                room_id, event.user) else Code.NOT_IN_ROOM
            self._roles.pop(self._close(room_id, event.user, code, None), None)
        elif isinstance(event, Muted):
            self._close(room_id, event.user, Code.MUTED, event.until)
        elif isinstance(event, Joined | Unmuted):
            self._closed.pop((room_id, name_key(event.user)), None)
        elif isinstance(event, ModesChanged):
            _remember(self._outside, room_id, not event.modes.no_external)
            if standing:
                _remember(self._moderated, room_id, event.modes.moderated)
        elif standing and isinstance(event, ROLE_CHANGES):
            self._take_roles(room_id, event)

    def _banned(self, room_id: int, user: str) -> bool:
        closed = self._closed.get((room_id, name_key(user)))
        return closed is not None and closed[0] is Code.BANNED

    def _take_roles(self, room_id: int, event: Event) -> None:
        assert isinstance(event, ROLE_CHANGES)
        _remember(self._roles, (room_id, name_key(event.user)), Role(event.role))
        if isinstance(event, OwnerChanged) and event.previous is not None:
            _remember(self._roles, (room_id, name_key(event.previous)),
                      Role(event.previous_role))

    def takes_outside(self, room_id: int, room: Room | None) -> bool:
        """Whether the room takes messages from outside (``-n``) at this point of the
        log: as its last modes entry read said, else as this node's copy has it."""
        known = self._outside.get(room_id)
        if known is not None:
            return known
        return room is not None and not room.modes.no_external

    def refusal(self, room_id: int, room: str, message: Message,
                speaks_for: str | None = None, speaker_id: int | None = None,
                copy: Room | None = None) -> ChatError | None:
        """Why ``message`` may not take its place in ``room`` now; None when it may.
        ``speaks_for``: the account a webhook's message speaks for, whose sanctions
        refuse it (None: its sender's); ``speaker_id``: that account's id (or the
        sender's); ``copy``: this node's copy of the room. A leave or kick refuses
        with ``not-in-room``, which a room that takes messages from outside (-n) may
        excuse (:meth:`takes_outside`; the caller knows who may post from outside,
        and then asks :meth:`unheard`)."""
        key = (room_id, name_key(speaks_for or message.sender))
        closed = self._closed.get(key)
        if closed is not None:
            code, until = closed
            if until is None or message.ts < until:
                return ChatError(code, _WHY[code].format(room=room), until=until)
            del self._closed[key]  # the mute ended before the message was sent
        if key not in self._roles and room_id not in self._moderated:
            return None  # (nearly every message: the log changed nothing of its standing)
        return self._unheard(key, room, message, speaks_for, speaker_id, copy)

    def unheard(self, room_id: int, room: str, message: Message,
                speaks_for: str | None = None, speaker_id: int | None = None,
                copy: Room | None = None) -> ChatError | None:
        """Why ``message`` would not be heard in ``room`` as the log's changes of
        standing have it (``moderated``; a webhook's whose creator is no longer an
        admin there, ``not-permitted``); None when it would, or when the log said
        nothing of the room's moderation nor of the speaker's role since this node
        started reading (the sender's node checked what was before)."""
        key = (room_id, name_key(speaks_for or message.sender))
        return self._unheard(key, room, message, speaks_for, speaker_id, copy)

    def _unheard(self, key: tuple[int, str], room: str, message: Message,
                 speaks_for: str | None, speaker_id: int | None,
                 copy: Room | None) -> ChatError | None:
        role = self._roles.get(key)
        moderated = self._moderated.get(key[0])
        if (role is None and moderated is None) or copy is None:
            return None
        account = self._speaker(key[1], speaker_id)
        if role is None:
            if account is None:
                return None  # a guest: its role is its own node's
            role = copy.role_of(account.id)
        server_admin = account is not None and account.is_admin
        if moderated is None:
            moderated = copy.modes.moderated
        if moderated and not speaks_when_moderated(role, server_admin):
            return unvoiced(room)
        if speaks_for is not None and key in self._roles and \
                not administering(role, server_admin):
            return hook_unadministered(message.sender, speaks_for, room)
        return None

    def _speaker(self, name: str, speaker_id: int | None) -> User | None:
        """The account named ``name`` (a key) whose id the entry gave, if this node
        knows it (an older node's webhook entry gives its creator's id, not named)."""
        account = self._account_of(speaker_id) if speaker_id is not None else None
        if account is None or name_key(account.name) != name:
            return None
        return account

    def _close(self, room_id: int, user: str, code: Code,
               until: float | None) -> tuple[int, str]:
        key = (room_id, name_key(user))
        _remember(self._closed, key, (code, until))
        return key


def _remember(memory: dict[K, V], key: K, value: V) -> None:
    """Set ``key`` as the newest of ``memory``, forgetting the oldest past LIMIT."""
    memory.pop(key, None)
    memory[key] = value
    if len(memory) > LIMIT:
        del memory[next(iter(memory))]


_WHY: Final = {
    Code.NOT_IN_ROOM: "you are no longer in #{room}: your message came after you left it.",
    Code.BANNED: "you are banned from #{room}: your message came after the ban.",
    Code.MUTED: "you are muted in #{room}: your message came after the mute.",
}
