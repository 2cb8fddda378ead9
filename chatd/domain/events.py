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
# The key of a message's ``extra`` that marks one a bot sent (a bot account's, or
# a webhook's): kept with the message, so history, replays and a cluster's other
# nodes show it as live delivery does, and bots can tell not to answer each other.
BOT_MARK: Final = "bot"


def bot_marked(extra: dict[str, Any] | None) -> dict[str, Any]:
    """``extra`` (a message's kind's fields) with the mark of a bot's message."""
    return {**extra, BOT_MARK: True} if extra else {BOT_MARK: True}


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
        # The one event made for every message: filled by a plain __init__ of a
        # class with the same slots, then made a Message (a frozen __init__ calls
        # object.__setattr__ per field, which costs three times as much).
        return cls.from_values(msg.sender_name, msg.text, msg.ts, msg.id, room, to, msg.kind,
                               msg.extra, history, offline)

    @staticmethod
    def from_values(sender: str, text: str, ts: float, id: int | None = None,
                    room: str | None = None, to: str | None = None, msg_kind: str = "text",
                    extra: dict[str, Any] | None = None, history: bool = False,
                    offline: bool = False) -> Message:
        """A Message of its fields' values in their order, the cheap way (a cluster
        node decodes every message of the log through it); the defaults are the
        dataclass's."""
        event = _MessageFill(sender, text, ts, id, room, to, msg_kind,
                             {} if extra is None else extra, history, offline)
        event.__class__ = Message  # type: ignore[assignment]
        return event  # type: ignore[return-value]


class _MessageFill(Event):
    """:class:`Message`'s slots, in its order, with a plain (unfrozen) __init__: an
    instance becomes a Message by assigning its class (same layout)."""

    __slots__ = Message.__slots__

    def __init__(self, sender: str, text: str, ts: float, id: int | None, room: str | None,
                 to: str | None, msg_kind: str, extra: dict[str, Any], history: bool,
                 offline: bool) -> None:
        self.sender, self.text, self.ts, self.id, self.room = sender, text, ts, id, room
        self.to, self.msg_kind, self.extra = to, msg_kind, extra
        self.history, self.offline = history, offline


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
    """``user`` is banned from ``room``, taken out of it if a member (``member``:
    said by the event, as a front end may render it after the departure was
    applied, another node's decision always)."""

    kind: ClassVar[str] = "ban"
    room: str
    user: str
    actor: str | None
    reason: str = ""
    member: bool = False


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
    # The member had voice, which the promotion ends (IRC is told -v).
    voiced: bool = False


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
    # The new owner had voice, which the transfer ends (IRC is told -v).
    voiced: bool = False
    # What ``previous`` is now: an admin, or a member when it is an IRC guest
    # (guests cannot be room admins).
    previous_role: str = "admin"


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
