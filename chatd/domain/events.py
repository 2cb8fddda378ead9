"""What happened, in the domain's words: the events it hands the bus.

Events are the domain's vocabulary. A room message, a join, a ban or a
notification is one of these frozen values, and the domain never knows how it
is shown: each front end renders them its own way (the line protocol builds
its wire record in ``chatd.protocol.records``, once per message, and renders
that per output style; IRC turns them into IRC lines). A bus shared by several
nodes would carry these values, not any front end's bytes.

Each class names its kind in ``kind``, the ``event`` of its wire record. Names
are account names as the domain knows them; an ``actor`` of None is the server
acting on its own (succession, expiry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final

if TYPE_CHECKING:
    from chatd.domain.modes import ModeChange, RoomModes
    from storage.records import MessageRecord, NotificationRecord


class Event:
    """Something the domain tells connections about. Subclasses are frozen and slotted."""

    __slots__ = ()

    kind: ClassVar[str]


# The message kinds that carry an end-to-end envelope instead of text: a message,
# and a member's sender key for a room handed to another member (docs/E2E.md).
ROOM_KEY: Final = "e2e-key"
ENVELOPE_KINDS: Final = frozenset({"e2e", ROOM_KEY})


@dataclass(frozen=True, slots=True)
class Message(Event):
    """A message posted to ``room`` or sent directly ``to`` a user.

    ``msg_kind`` is ``text`` (plain), ``action`` (``/me``), ``notice`` (IRC's
    NOTICE: never answered automatically), ``e2e``, ``e2e-key``, ``file`` or
    ``sticker``; ``extra`` holds that kind's fields (and an IRC message's
    client-only tags). ``id`` is None for a message that is never stored. ``history`` and
    ``offline`` mark a message shown again (history, a replay at login).
    """

    kind: ClassVar[str] = "message"

    sender: str
    text: str
    ts: float
    id: int | None = None
    room: str | None = None
    to: str | None = None
    msg_kind: str = "text"
    extra: dict[str, Any] = field(default_factory=dict)
    history: bool = False
    offline: bool = False

    @classmethod
    def of(cls, msg: MessageRecord, room: str | None = None, to: str | None = None,
           history: bool = False, offline: bool = False) -> Message:
        """The event of a stored or new message."""
        # Every message posted is one of these: filled through its slots rather
        # than the frozen __init__, whose object.__setattr__ per field cost
        # twice as much (the value is as frozen once made).
        event = _new(Message)
        _s_sender(event, msg.sender_name)
        _s_text(event, msg.text)
        _s_ts(event, msg.ts)
        _s_id(event, msg.id)
        _s_room(event, room)
        _s_to(event, to)
        _s_msg_kind(event, msg.kind)
        _s_extra(event, msg.extra)
        _s_history(event, history)
        _s_offline(event, offline)
        return event


_new = object.__new__
# The slot descriptors' setters, one per field of Message (a test checks none is missed).
(_s_sender, _s_text, _s_ts, _s_id, _s_room, _s_to, _s_msg_kind, _s_extra, _s_history,
 _s_offline) = [vars(Message)[name].__set__ for name in (
    "sender", "text", "ts", "id", "room", "to", "msg_kind", "extra", "history", "offline")]


@dataclass(frozen=True, slots=True)
class Joined(Event):
    kind: ClassVar[str] = "join"
    room: str
    user: str


@dataclass(frozen=True, slots=True)
class Left(Event):
    """``user`` left ``room`` of their own accord (``actor`` is the user)."""

    kind: ClassVar[str] = "leave"
    room: str
    user: str
    actor: str | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Kicked(Event):
    kind: ClassVar[str] = "kick"
    room: str
    user: str
    actor: str | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Banned(Event):
    """``user`` is banned from ``room``, taken out of it if a member."""

    kind: ClassVar[str] = "ban"
    room: str
    user: str
    actor: str | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Unbanned(Event):
    kind: ClassVar[str] = "unban"
    room: str
    user: str
    actor: str


@dataclass(frozen=True, slots=True)
class Muted(Event):
    kind: ClassVar[str] = "mute"
    room: str
    user: str
    actor: str
    until: float | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Unmuted(Event):
    kind: ClassVar[str] = "unmute"
    room: str
    user: str
    actor: str


@dataclass(frozen=True, slots=True)
class Promoted(Event):
    """``user`` is an admin (``role``) of ``room`` now; by succession when ``actor`` is None."""

    kind: ClassVar[str] = "promote"
    room: str
    user: str
    actor: str | None
    role: str


@dataclass(frozen=True, slots=True)
class Demoted(Event):
    kind: ClassVar[str] = "demote"
    room: str
    user: str
    actor: str
    role: str


@dataclass(frozen=True, slots=True)
class OwnerChanged(Event):
    """``user`` owns ``room`` now: by succession (no ``actor``) or by transfer from
    ``previous``."""

    kind: ClassVar[str] = "owner"
    room: str
    user: str
    actor: str | None
    role: str
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class TopicChanged(Event):
    kind: ClassVar[str] = "topic"
    room: str
    actor: str
    topic: str


@dataclass(frozen=True, slots=True)
class ModeChanged(Event):
    kind: ClassVar[str] = "mode"
    room: str
    actor: str
    mode: str


@dataclass(frozen=True, slots=True)
class ModesChanged(Event):
    """``actor`` changed ``room``'s modes beyond who may join (``changes``, in order,
    each with its argument: ``+k`` with the key, ``+l`` with the limit); ``modes``
    is the state they leave. Told to members only, who may know the key."""

    kind: ClassVar[str] = "modes"
    room: str
    actor: str
    changes: tuple[ModeChange, ...]
    modes: RoomModes


@dataclass(frozen=True, slots=True)
class Voiced(Event):
    """``user`` has voice in ``room`` now: they speak while it is moderated."""

    kind: ClassVar[str] = "voice"
    room: str
    user: str
    actor: str
    role: str


@dataclass(frozen=True, slots=True)
class Devoiced(Event):
    kind: ClassVar[str] = "devoice"
    room: str
    user: str
    actor: str
    role: str


@dataclass(frozen=True, slots=True)
class E2eChanged(Event):
    """``room`` is end-to-end only (``on``) or not any more."""

    kind: ClassVar[str] = "e2e"
    room: str
    actor: str
    on: bool


@dataclass(frozen=True, slots=True)
class Invited(Event):
    kind: ClassVar[str] = "invite"
    room: str
    user: str
    actor: str


@dataclass(frozen=True, slots=True)
class JoinRequested(Event):
    """``user`` asks to join ``room`` (told to its admins)."""

    kind: ClassVar[str] = "request"
    room: str
    user: str


@dataclass(frozen=True, slots=True)
class Terminated(Event):
    """``room`` ended when ``user``, its last member, went."""

    kind: ClassVar[str] = "terminated"
    room: str
    user: str


@dataclass(frozen=True, slots=True)
class Renamed(Event):
    """``user``, a member of ``room``, is called ``name`` from now on (an IRC guest's
    NICK: account names never change)."""

    kind: ClassVar[str] = "rename"
    room: str
    user: str
    name: str


@dataclass(frozen=True, slots=True)
class Typing(Event):
    """``user`` is typing in ``room`` (never stored; shed first under pressure)."""

    kind: ClassVar[str] = "typing"
    room: str
    user: str


@dataclass(frozen=True, slots=True)
class AccountDeleted(Event):
    """Told to each connection of ``user`` as the deletion closes it."""

    kind: ClassVar[str] = "account-deleted"
    user: str


@dataclass(frozen=True, slots=True)
class FloodDisconnected(Event):
    """Told to a connection that flood control closes (the ``rate-limited`` error)."""

    kind: ClassVar[str] = "flood-disconnect"
    user: str


@dataclass(frozen=True, slots=True)
class Notified(Event):
    """A stored notification, pushed to its user's connections."""

    kind: ClassVar[str] = "notification"
    note: NotificationRecord
