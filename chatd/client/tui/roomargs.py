"""Server commands whose room, left out, is the server's current room: aimed at the view.

``/topic``, ``/who``, ``/kick <user>``, ``/leave`` ... take an optional room
that defaults to the session's current room on the server, which is the room
shown last, not necessarily the conversation on screen. The full screen knows
these commands from the server's own ``/schema`` (a parameter whose default is
``current-room``), and before sending one it aims it: in a room's view, a
command that names no room gets that room named explicitly (``#room``); in the
server or a direct conversation it is refused, saying to name a room.

Whether the typed words already name a room follows the server's rule for an
optional room (PROTOCOL.md): a word in its place names one when it starts with
``#``, when it is the last word and the room the last parameter (the server
then requires a room), or when it is a room the client knows.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from chatd.client.tui.lines import Line, error

CURRENT_ROOM = "current-room"  # /schema's default of such a room parameter
# Commands that act on the current room and have no room to name (/me): refused
# outside a room's view, sent as typed in one (showing a room makes it current).
UNNAMED = frozenset({"me"})


@dataclass(frozen=True, slots=True)
class RoomSlot:
    """Where the room goes among a command's words."""

    first: int  # the required parameters before it: the earliest word that may name it
    at: int  # its position among the parameters: the latest
    last: bool  # nothing follows it
    first_word: bool = False  # the word in its place always names it (/leave)
    text_after: bool = False  # a rest-of-line text follows it (a reason, a topic)


class RoomDefaults:
    """The commands that fall back on the server's current room, by name and alias."""

    def __init__(self) -> None:
        self._slots: dict[str, RoomSlot] = {}

    def learn(self, commands: Iterable[dict[str, Any]]) -> None:
        """The ``commands`` field of ``/schema``'s ok."""
        for entry in commands:
            slot = _slot(entry.get("params") or [])
            if slot is None:
                continue
            for name in [entry.get("name"), *(entry.get("aliases") or [])]:
                if isinstance(name, str) and name:
                    self._slots[name.lower()] = slot

    def aim(self, text: str, room: str | None, known: Collection[str]) -> str | Line:
        """``text`` as it is to be sent from a view of ``room`` (None: the server or a
        person), or the error that refuses it."""
        name, _, args = text[1:].partition(" ")
        slot = self._slots.get(name.lower()) if text.startswith("/") else None
        words = args.split()
        if room is None and name.lower() in UNNAMED:
            return error(f"/{name} acts on the room on screen, and this conversation is none: "
                         "show a room first (Ctrl-N, Alt-2 ...).")
        if slot is None or _names_room(slot, words, {k.casefold() for k in known}):
            return text
        if room is None:
            return error(f"/{name} acts on a room, and this conversation is none: name the "
                         f"room (#room), or show it first (Ctrl-N, Alt-2 ...).")
        at = min(len(words), slot.at)
        return " ".join([f"/{name}", *words[:at], f"#{room}", *words[at:]])


def _slot(params: list[dict[str, Any]]) -> RoomSlot | None:
    for at, param in enumerate(params):
        if param.get("type") == "room" and param.get("default") == CURRENT_ROOM:
            first = sum(1 for before in params[:at] if not before.get("optional"))
            return RoomSlot(first, at, at == len(params) - 1, bool(param.get("first_word")),
                            any(after.get("rest") for after in params[at + 1:]))
    return None


def _names_room(slot: RoomSlot, words: list[str], known: set[str]) -> bool:
    if slot.first_word:
        return len(words) > slot.first
    for index in range(slot.first, min(slot.at + 1, len(words))):
        word = words[index]
        if word.startswith("#") or word.casefold() in known:
            return True
        if slot.last and index == slot.at == len(words) - 1:  # the server requires a room
            return True
    # A room named after its place (/who 2 general, /mute bob 10m dev): sent as typed,
    # the server says it goes first; the view's room put in too, it said "too many
    # arguments". Not where words after the room are free text (a ban's reason).
    return not slot.text_after and any(
        word.startswith("#") or word.casefold() in known for word in words[slot.at + 1:])
