"""What the full-screen client knows, without a terminal: conversations and who types.

A *conversation* is a room (``general``) or a direct exchange with one person
(``@bob``), plus the *server* conversation for what belongs to neither before
any room is open. Each keeps its own bounded scrollback of
:class:`~chatd.client.tui.lines.Line` values, its unread and mention counts,
and how far up the person has scrolled. Nothing here draws or awaits: the
screen reads this state, the controller changes it, tests check it directly.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

from chatd.client.tui.lines import Line

SERVER = ""  # the key of the server conversation
SCROLLBACK = 5000  # lines kept per conversation; older ones are fetched again on demand
TYPING_SHOWN = 6.0  # seconds a typing notice stays up (the server sends one per second at most)


def dm_key(name: str) -> str:
    """The key of the direct conversation with ``name``: names are case-insensitive,
    so ``/query BOB`` and a message from ``bob`` are one conversation."""
    return f"@{name.lower()}"


@dataclass
class Conversation:
    """One room's or one person's lines, newest last."""

    key: str
    lines: deque[Line] = field(default_factory=lambda: deque(maxlen=SCROLLBACK))
    unread: int = 0
    mentions: int = 0
    scroll: int = 0  # screen rows between the bottom of the view and the newest line
    # Lines added below a view scrolled up: the screen, which alone knows how many rows
    # they wrap to, adds those rows to ``scroll`` (``unplaced``) so that the lines read
    # stay where they are; ``below`` counts them for the person until the bottom is back.
    unplaced: int = 0
    below: int = 0
    history_done: bool = False  # the server has nothing older to give
    loaded: bool = False  # its history was fetched once

    @property
    def is_room(self) -> bool:
        return self.key not in (SERVER,) and not self.key.startswith("@")

    @property
    def title(self) -> str:
        if self.key == SERVER:
            return "server"
        return self.key if self.key.startswith("@") else f"#{self.key}"

    @property
    def oldest_id(self) -> int | None:
        return next((line.message_id for line in self.lines if line.message_id is not None),
                    None)

    def append(self, line: Line) -> None:
        """A newer line: the view follows it at the bottom, else stays where it is."""
        self.lines.append(line)
        if self.scroll:
            self.unplaced += 1
            self.below += 1

    def scroll_by(self, rows: int) -> None:
        """Up (``rows`` > 0) or down; back at the bottom, the view follows new lines."""
        self.scroll = max(0, self.scroll + rows)
        if not self.scroll:
            self.to_bottom()

    def to_bottom(self) -> None:
        self.scroll = self.unplaced = self.below = 0

    def known_ids(self) -> set[int]:
        return {line.message_id for line in self.lines if line.message_id is not None}

    def prepend(self, older: list[Line]) -> int:
        """Put older lines (oldest first) before the ones held; how many were new."""
        known, oldest = self.known_ids(), self.oldest_id
        fresh = [line for line in older if line.message_id is None
                 or (line.message_id not in known and (oldest is None or line.message_id < oldest))]
        room = SCROLLBACK - len(self.lines)
        for line in reversed(fresh[-room:] if room > 0 else []):
            self.lines.appendleft(line)
        return len(fresh)


class ChatState:
    """Every conversation, the one on screen, who is typing, and the connection."""

    def __init__(self, me: str | None = None) -> None:
        self.me = me
        self.conversations: dict[str, Conversation] = {SERVER: Conversation(SERVER)}
        self.current = SERVER
        self.connection = "connecting"
        self.theme = "default"
        self._typing: dict[tuple[str, str], float] = {}

    # -- the list of conversations ----------------------------------------------------

    def open(self, key: str) -> Conversation:
        """The conversation ``key``, made (empty) if new."""
        found = self.conversations.get(key)
        if found is None:
            found = self.conversations[key] = Conversation(key)
        return found

    def close(self, key: str) -> None:
        """Forget a conversation (a room left); the view moves to a neighbour."""
        if key == SERVER or key not in self.conversations:
            return
        keys = self.keys()
        if self.current == key:
            at = keys.index(key)
            self.current = keys[at - 1] if at > 0 else SERVER
        del self.conversations[key]

    def keys(self) -> list[str]:
        """In the order of the list on screen: server, rooms by name, then people."""
        rooms = sorted(k for k in self.conversations if k and not k.startswith("@"))
        people = sorted(k for k in self.conversations if k.startswith("@"))
        return [SERVER, *rooms, *people]

    def switch(self, key: str) -> Conversation:
        """Show ``key``: its unread counts are cleared."""
        shown = self.open(key)
        self.current = key
        shown.unread = shown.mentions = 0
        return shown

    def step(self, by: int) -> Conversation:
        """Show the next (``by`` = 1) or previous (-1) conversation in the list."""
        keys = self.keys()
        return self.switch(keys[(keys.index(self.current) + by) % len(keys)])

    @property
    def shown(self) -> Conversation:
        return self.conversations[self.current]

    # -- lines ------------------------------------------------------------------------------

    def key_of(self, line: Line, home: str | None = None) -> str:
        """Which conversation a line belongs to: its room, its other person, else
        ``home`` (when given) or the one shown."""
        if line.room:
            return line.room
        if line.to is not None and line.sender is not None:
            mine = self.me is not None and line.sender.casefold() == self.me.casefold()
            return dm_key(line.to if mine else line.sender)
        return self.current if home is None else home

    def add(self, line: Line, home: str | None = None) -> Conversation:
        """File a line where it belongs (a line of no room nor person: in ``home``, else
        the conversation shown), counting it as unread when it is out of sight."""
        conversation = self.open(self.key_of(line, home))
        conversation.append(line)
        if line.kind == "message" and line.sender is not None:
            self.stopped_typing(conversation.key, line.sender)
            if conversation.key != self.current and not self._mine(line):
                conversation.unread += 1
                if line.to is not None or self.mentions_me(line.text):  # a direct one too
                    conversation.mentions += 1
        return conversation

    def _mine(self, line: Line) -> bool:
        return self.me is not None and (line.sender or "").casefold() == self.me.casefold()

    def mentions_me(self, text: str) -> bool:
        """Whether ``text`` names this user as a word (``alice``, ``@alice:``), any case."""
        if not self.me:
            return False
        return re.search(rf"(?<![\w-])@?{re.escape(self.me)}(?![\w-])", text, re.I) is not None

    # -- typing -------------------------------------------------------------------------------

    def typing(self, room: str, user: str, now: float) -> None:
        self._typing[(room, user)] = now + TYPING_SHOWN

    def stopped_typing(self, room: str, user: str) -> None:
        self._typing.pop((room, user), None)

    def typers(self, room: str, now: float) -> list[str]:
        """Who is typing in ``room`` now, by name; expired notices are dropped."""
        for key in [k for k, until in self._typing.items() if until <= now]:
            del self._typing[key]
        return sorted(user for (where, user) in self._typing if where == room)
