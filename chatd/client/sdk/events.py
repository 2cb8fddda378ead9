"""Typed events: what a bot receives, as frozen dataclasses instead of JSON mappings.

:func:`parse` turns one unlabelled JSON record of the server into one of
these (or None for a record a bot has no use for). Every event keeps the
record it came from as ``raw``, so a field this module does not name is
still at hand. The record shapes are documented in docs/PROTOCOL.md (§5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    """A room message (``room`` set) or a direct message (``to`` set)."""

    id: int
    sender: str
    text: str
    room: str | None = None
    to: str | None = None
    ts: str = ""
    action: bool = False  # a /me
    encrypted: bool = False  # end-to-end: ``text`` is empty, the envelope is in ``raw``
    replayed: bool = False  # from history, an offline replay or a resume
    # IRC's NOTICE: never answered automatically (mention and command handlers
    # do not see it; ``on_message`` handlers do, and should not reply).
    notice: bool = False
    # Sent by a bot (a bot account, or a webhook): a bot that answers only people
    # never starts an endless exchange with another bot.
    bot: bool = False
    raw: Record = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_direct(self) -> bool:
        return self.room is None

    def mentions(self, name: str) -> bool:
        """Whether the text names ``name`` as a word, any case: ``bot``, ``@bot``,
        ``bot:``, ``bot,``, ``thanks, bot.`` ... anywhere in the text; not as part
        of a longer name, an address or a file name (``bot-2``, ``bot@example.com``,
        ``alice@bot``, ``bot.py``)."""
        pattern = _MENTION.format(name=re.escape(name))
        return re.search(pattern, self.text, re.IGNORECASE) is not None


# The name as a word: an optional "@" before it; before that, and after the name,
# nothing that would make it part of a longer word (letters, digits, "_", "-"), an
# address ("@") or a dotted name (a "." joined to more of it; a full stop after the
# name still ends a sentence that mentions it).
_MENTION = r"(?<![\w@.-])@?{name}(?![\w@-]|\.\w)"


@dataclass(frozen=True, slots=True)
class Join:
    """Someone joined a room the bot is in."""

    room: str
    user: str
    raw: Record = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Leave:
    """Someone left (or their account was deleted)."""

    room: str
    user: str
    actor: str | None = None
    reason: str | None = None
    raw: Record = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Invite:
    """The bot was invited to a room (an ``invitation`` notification)."""

    room: str
    actor: str
    expires: Any = None
    raw: Record = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """Any other room event: kick, ban, mute, topic, promote, mode, e2e, invite ..."""

    event: str
    room: str
    user: str | None = None
    actor: str | None = None
    raw: Record = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Typing:
    room: str
    user: str
    raw: Record = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Notice:
    """Something informational: a notification (``kind`` set), a broadcast, a shutdown."""

    text: str
    kind: str | None = None  # the notification's kind, if it is one
    raw: Record = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ServerError:
    """An error nobody asked for (an asynchronous ``rate-limited``, for example)."""

    code: str
    message: str
    raw: Record = field(default_factory=dict, compare=False, repr=False)


Event = Message | Join | Leave | Invite | RoomEvent | Typing | Notice | ServerError


def parse(record: Record, replayed: bool = False) -> Event | None:
    """The typed event for one record; None for what a bot has no use for."""
    kind = record.get("type")
    if kind == "message":
        return message(record, replayed)
    if kind == "event":
        return _event(record)
    if kind == "notice":
        return _notice(record)
    if kind == "error":
        return ServerError(str(record.get("code", "")), str(record.get("message", "")), record)
    return None


def message(record: Record, replayed: bool = False) -> Message:
    return Message(
        id=int(record.get("id", 0)), sender=str(record.get("from", "")),
        text=str(record.get("text", "")), room=record.get("room"), to=record.get("to"),
        ts=str(record.get("ts", "")), action=bool(record.get("action")),
        encrypted=bool(record.get("e2e")),
        replayed=replayed or bool(record.get("history") or record.get("offline")),
        notice=bool(record.get("notice")), bot=bool(record.get("bot")), raw=record)


def _event(record: Record) -> Event:
    name, room = str(record.get("event", "")), str(record.get("room", ""))
    user, actor = record.get("user"), record.get("actor")
    if name == "join" and user:
        return Join(room, str(user), record)
    if name == "leave" and user:
        return Leave(room, str(user), actor, record.get("reason"), record)
    if name == "typing" and user:
        return Typing(room, str(user), record)
    return RoomEvent(name, room, user, actor, record)


def _notice(record: Record) -> Event:
    notification = record.get("notification")
    if isinstance(notification, dict):
        kind = str(notification.get("kind", ""))
        if kind == "invitation":
            return Invite(str(notification.get("room", "")), str(notification.get("actor", "")),
                          notification.get("expires"), record)
        return Notice(str(record.get("text", "")), kind, record)
    return Notice(str(record.get("text", "")), None, record)
