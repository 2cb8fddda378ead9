"""Turn wire records into bytes for one connection's output style.

A *record* is the JSON object of the wire contract (a dict with ``"type"``).
JSON output is that object on one line; text output is a short human line
(or several). Rendering is pure: it knows nothing of rooms or sessions, so the
same record can be rendered once per style and shared by every recipient.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatd.protocol.codec import encode_json
from chatd.protocol.records import record_for

if TYPE_CHECKING:
    from chatd.delivery.outgoing import Outgoing

Record = Mapping[str, Any]

# Record types that exist only to show humans something already carried by the
# final ``ok`` in JSON (an aligned table, a help page): JSON output skips them.
TEXT_ONLY = "text"


@dataclass(frozen=True, slots=True)
class Theme:
    """ANSI colour choices for the text format (SGR parameter strings)."""

    name: str
    error: str
    notice: str
    room: str
    names: tuple[str, ...]


THEMES: dict[str, Theme] = {
    "default": Theme("default", error="31", notice="2", room="1;36",
                     names=("32", "33", "34", "35", "36", "91", "92", "93", "94", "95", "96")),
    "mono": Theme("mono", error="1", notice="2", room="1", names=("1",)),
    # Bright colours for dark backgrounds; grey notices stay readable where dim fades.
    "dark": Theme("dark", error="1;91", notice="90", room="1;96",
                  names=("91", "92", "93", "94", "95", "96", "33", "36", "32")),
    # Darker colours for light backgrounds: no yellow, no bright cyan.
    "light": Theme("light", error="1;31", notice="90", room="1;34",
                   names=("31", "32", "34", "35", "36", "1;31", "1;32", "1;34", "1;35", "1;36")),
}


@dataclass(frozen=True, slots=True)
class Style:
    """How one connection wants its output. Instances are compared by value."""

    fmt: str = "text"  # "text" or "json"
    color: bool = False
    timestamps: bool = False
    theme: str = "default"


# Render-cache keys: each (style, is-current-room) pair gets a small int, so a
# fan-out looks the bytes up by an int instead of hashing a dataclass.
_KEYS: dict[tuple[Style, bool], int] = {}


def style_key(style: Style, current_room: bool) -> int:
    """The cache key of ``style`` (JSON output ignores the current room)."""
    pair = (style, current_room or style.fmt == "json")
    key = _KEYS.get(pair)
    if key is None:
        key = _KEYS[pair] = len(_KEYS)
    return key


# A room feed's lanes render through these (chatd.delivery.feed knows no styles):
# one function per cache key, shared by every connection of that style.
_RENDERERS: dict[int, Callable[[Outgoing], bytes]] = {}


def lane_renderer(style: Style, current_room: bool) -> Callable[[Outgoing], bytes]:
    """``render`` for ``style`` and a room that is (or not) the current room, as a
    one-argument function (the same object for the same cache key)."""
    key = style_key(style, current_room)
    function = _RENDERERS.get(key)
    if function is None:
        current = current_room or style.fmt == "json"

        def function(item: Outgoing) -> bytes:
            return render(record_for(item), style, current)

        _RENDERERS[key] = function
    return function


_RESET = "\x1b[0m"


class _Paint:
    """Applies (or, without colour, skips) a theme's colours."""

    __slots__ = ("theme",)

    def __init__(self, theme: Theme | None) -> None:
        self.theme = theme

    def _sgr(self, code: str, text: str) -> str:
        if not self.theme:
            return text
        # A name or a room painted inside ``text`` ends with a reset: this style
        # resumes after it, or the rest of an event line would lose its dim.
        inner = text.replace(_RESET, f"{_RESET}\x1b[{code}m") if _RESET in text else text
        return f"\x1b[{code}m{inner}{_RESET}"

    def error(self, text: str) -> str:
        return self._sgr(self.theme.error, text) if self.theme else text

    def notice(self, text: str) -> str:
        return self._sgr(self.theme.notice, text) if self.theme else text

    def room(self, name: str) -> str:
        return self._sgr(self.theme.room, f"#{name}") if self.theme else f"#{name}"

    def user(self, name: str) -> str:
        if not self.theme:
            return name
        names = self.theme.names
        # A stable colour per name: the same user looks the same everywhere.
        return self._sgr(names[zlib.crc32(name.lower().encode()) % len(names)], name)


def render(record: Record, style: Style, current_room: bool = False,
           label: str | None = None) -> bytes:
    """Bytes for ``record`` in ``style`` (empty when nothing is to be shown).

    ``current_room`` says the record's room is the recipient's current room,
    which the text format leaves implicit.
    """
    if style.fmt == "json":
        return _render_json(record, label)
    paint = _Paint(THEMES.get(style.theme, THEMES["default"]) if style.color else None)
    lines = _TEXT[record["type"]](record, style, paint, current_room)
    if not lines:
        if label is None:
            return b""
        lines = ["* ok"]
    prefix = f"@{label} " if label is not None else ""
    return show_invisible("".join(f"{prefix}{line}\r\n" for line in lines)).encode("utf-8")


# Characters a terminal does not show but obeys: bidirectional embeddings,
# overrides and isolates reorder the text around them, zero-width ones hide
# between letters, and the line and paragraph separators break lines. In text
# mode each is shown as its code point (``<U+202E>``); JSON keeps it.
_INVISIBLE = re.compile("[\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069"
                        "\ufeff]")


def show_invisible(text: str) -> str:
    """``text`` with every invisible formatting character written out as ``<U+XXXX>``."""
    if text.isascii() or _INVISIBLE.search(text) is None:
        return text
    return _INVISIBLE.sub(lambda match: f"<U+{ord(match.group()):04X}>", text)


def _render_json(record: Record, label: str | None) -> bytes:
    if record["type"] == TEXT_ONLY:
        return b""
    if label is None:
        return encode_json(record)
    return encode_json({**record, "label": label})


def _ok(record: Record, style: Style, paint: _Paint, current: bool) -> list[str]:
    message = record.get("message", "")
    return [paint.notice(f"* {line}") for line in message.split("\n")] if message else []


def _error(record: Record, style: Style, paint: _Paint, current: bool) -> list[str]:
    return [paint.error(f"! {record['code']}: {record['message']}")]


def _notice(record: Record, style: Style, paint: _Paint, current: bool) -> list[str]:
    first, *rest = str(record["text"]).split("\n")
    return [paint.notice(f"* {first}"), *(paint.notice(f"  {line}") for line in rest)]


def _text_block(record: Record, style: Style, paint: _Paint, current: bool) -> list[str]:
    return list(record["lines"])


def _message(record: Record, style: Style, paint: _Paint, current: bool) -> list[str]:
    head = f"[{record['ts'][11:16]}] " if style.timestamps else ""
    sender = paint.user(record["from"])
    # A notice (sent as IRC's NOTICE) has its author in dashes instead of angle
    # brackets, as IRC clients show one.
    opening, closing = ("-", "-") if record.get("notice") else ("<", ">")
    if "to" in record:
        head += f"{opening}{sender} -> {paint.user(record['to'])}{closing} "
    else:
        if not current:
            head += paint.room(record["room"]) + " "
        # An action keeps its author in angle brackets like any message: a line
        # a user wrote never starts with the "* " of the server's notices.
        head += f"<{sender}> * " if record.get("action") else f"{opening}{sender}{closing} "
    body = _message_body(record)
    first, *rest = body.split("\n")
    indent = " " * 4
    return [head + first, *(indent + line for line in rest)]


def _message_body(record: Record) -> str:
    if record.get("room_key"):
        return f"[end-to-end key for #{record['room_key']}]"
    if record.get("e2e"):
        return "[end-to-end encrypted message]"
    text = str(record.get("text", ""))
    extra = record.get("sticker_art") or (record.get("file") or {}).get("preview")
    return f"{text}\n{extra}" if extra else text


def _event(record: Record, style: Style, paint: _Paint, current: bool) -> list[str]:
    if record["event"] in _TOLD_BY_NOTIFICATION:
        return []
    fields = {key: value for key, value in record.items() if isinstance(value, str)}
    room = paint.room(record["room"]) if "room" in record else ""
    user = paint.user(record.get("user", ""))
    actor = paint.user(record.get("actor", ""))
    template = EVENT_TEXT.get(record["event"], "{event} {user} {room}")
    if record["event"] == "topic" and not record.get("topic"):
        template = CLEARED_TOPIC
    elif record["event"] == "mode":
        fields["mode"] = JOIN_MODE_WORDS.get(fields.get("mode", ""), fields.get("mode", ""))
    line = template.format_map(EventFields(fields, room=room, user=user, actor=actor))
    reason = record.get("reason")
    if reason:
        line += f" ({reason})"
    return [paint.notice(f"* {line}")]


class EventFields(dict[str, str]):
    """An event's fields for its sentence: one the record leaves out (an empty
    one) reads as nothing, never as an error in the middle of a fan-out."""

    def __missing__(self, key: str) -> str:
        return ""


def _data(record: Record, style: Style, paint: _Paint, current: bool) -> list[str]:
    return [str(record["data"])]


CLEARED_TOPIC = "{actor} cleared the topic of {room}"
# A join mode in a sentence: "alice made #dev request-only" (not "... request").
JOIN_MODE_WORDS = {"request": "request-only"}
# One sentence per event kind of the contract; fields come from the record.
EVENT_TEXT: dict[str, str] = {
    "join": "{user} joined {room}",
    "leave": "{user} left {room}",
    "kick": "{user} was kicked from {room} by {actor}",
    "ban": "{user} was banned from {room} by {actor}",
    "unban": "{user} was unbanned from {room} by {actor}",
    "mute": "{user} was muted in {room} by {actor}",
    "unmute": "{user} was unmuted in {room} by {actor}",
    "promote": "{user} is now an admin of {room}",
    "demote": "{user} is no longer an admin of {room}",
    "owner": "{user} is now the owner of {room}",
    "invite": "{actor} invited {user} to {room}",
    "request": "{user} asks to join {room}",
    "topic": "{actor} set the topic of {room}: {topic}",
    "mode": "{actor} made {room} {mode}",  # the mode's words: JOIN_MODE_WORDS
    "modes": "{actor} changed {room}: {summary}",
    "voice": "{actor} gave {user} voice in {room}",
    "devoice": "{actor} took the voice of {user} in {room}",
    "e2e": "{actor} turned end-to-end encryption {state} in {room}",
    "typing": "{user} is typing in {room}",
    "rename": "{user} is now known as {name} in {room}",
    "shutdown": "the server is shutting down",
}

# Events always followed by a notification that says the same and why (the
# termination of a room, to its last member): text mode shows the sentence once.
_TOLD_BY_NOTIFICATION: frozenset[str] = frozenset({"terminated"})

Renderer = Callable[[Record, Style, _Paint, bool], list[str]]
_TEXT: dict[str, Renderer] = {
    "ok": _ok,
    "error": _error,
    "notice": _notice,
    TEXT_ONLY: _text_block,
    "message": _message,
    "event": _event,
    "data": _data,
}
