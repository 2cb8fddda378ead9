"""Domain records as IRC lines.

The domain delivers events (``chatd.domain.events``); the IRC session
renders the wire record the line protocol builds of each, once per message
(``message``, ``event``, ``notice``, ``error``), and this module says what
each looks like to an IRC client. Rendering depends on the recipient only through its *tag
mode* (whether it asked for ``server-time`` and ``message-tags``), except
for notices, which are addressed to the recipient's nick: so one room
message is formatted once per tag mode for all IRC recipients (see
:func:`cache_key`), as :meth:`chatd.protocol.session.Session.deliver` does per style.

Every user appears as ``name!name@<server name>``: chatd has no ident or
host to show, and hiding addresses is the point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from chatd.domain.moderation import CONSOLE, SERVER
from chatd.irc.codec import MAX_BODY, add_tags, format_line, split_text
from chatd.protocol.codec import iso_ts
from chatd.protocol.render import EVENT_TEXT

Record = Mapping[str, Any]
# Whether a user named by a record is a member of the room named by it.
MemberCheck = Callable[[str, str], bool]

# What a room's mode looks like as IRC channel modes ("+i" private, "+R" request).
MODE_CHANGE: Final = {"open": "-iR", "private": "+i-R", "request": "+R-i"}
MODE_FLAGS: Final = {"open": "", "private": "i", "request": "R"}
ENCRYPTED: Final = "[end-to-end encrypted message]"


def cache_key(server_time: bool, message_tags: bool) -> int:
    """The render-cache key of a tag mode: negative, so it never meets a style key."""
    return -1 - (int(server_time) | int(message_tags) << 1)


def channel(room: str) -> str:
    return f"#{room}"


class IrcRenderer:
    """Formats records for IRC; one per listener (it knows the server's name)."""

    def __init__(self, server_name: Callable[[], str], now: Callable[[], float],
                 is_member: MemberCheck) -> None:
        self._server_name = server_name
        self._now = now
        self._is_member = is_member

    @property
    def server(self) -> str:
        return self._server_name()

    def mask(self, name: str) -> str:
        """The ``nick!user@host`` source of a user."""
        return f"{name}!{name}@{self.server}"

    def source(self, actor: str | None) -> str:
        """The source of an action: the actor, or the server for the console and expiry."""
        if not actor or actor in (CONSOLE, SERVER):
            return self.server
        return self.mask(actor)

    # -- shared renderings (cached per tag mode) ------------------------------

    def shared(self, record: Record, key: int) -> bytes | None:
        """The bytes of ``record`` for tag mode ``key``; None when they depend on the
        recipient (then :meth:`personal` renders them)."""
        kind = record["type"]
        if kind == "message":
            return _encode(self.message(record, key))
        if kind == "event":
            return _encode(self.event(record, key))
        if kind == "notice":
            return None
        return b""

    def message(self, record: Record, key: int) -> list[str]:
        """A room or direct message as PRIVMSG lines (long or multi-line text is split)."""
        target = record["to"] if "to" in record else channel(record["room"])
        source = self.mask(record["from"])
        tags = self._tags(key, record.get("ts"), record.get("id"))
        overhead = len(f":{source} PRIVMSG {target} :".encode()) + 2
        lines = []
        for text in _body(record).split("\n"):
            if record.get("action"):
                pieces = [f"\x01ACTION {p}\x01" for p in split_text(text, MAX_BODY - overhead - 9)]
            else:
                pieces = split_text(text, MAX_BODY - overhead)
            lines += [format_line("PRIVMSG", target, piece, source=source, tags=tags)
                      for piece in pieces]
        return lines

    def event(self, record: Record, key: int) -> list[str]:
        """A room event as the IRC command that says the same (or a channel NOTICE)."""
        render = _EVENTS.get(record["event"], IrcRenderer._as_notice)
        tags = self._tags(key, None, None)
        return [add_tags(line, tags) for line in render(self, record, key)]

    # -- event renderings -----------------------------------------------------

    def _join(self, record: Record, key: int) -> list[str]:
        return [format_line("JOIN", channel(record["room"]), source=self.mask(record["user"]),
                            trailing=False)]

    def _leave(self, record: Record, key: int) -> list[str]:
        params = [channel(record["room"])]
        if record.get("reason"):
            params.append(record["reason"])
        return [format_line("PART", *params, source=self.mask(record["user"]),
                            trailing=len(params) > 1)]

    def _kick(self, record: Record, key: int) -> list[str]:
        reason = record.get("reason") or record.get("actor") or ""
        return [format_line("KICK", channel(record["room"]), record["user"], reason,
                            source=self.source(record.get("actor")))]

    def _ban(self, record: Record, key: int) -> list[str]:
        lines = self._mode(record, "+b", f"{record['user']}!*@*")
        # The ban event also tells the room a member is gone (chatd sends one event).
        if self._is_member(record["room"], record["user"]):
            lines += self._kick(record, key)
        return lines

    def _mode(self, record: Record, change: str, argument: str | None = None) -> list[str]:
        params = [channel(record["room"]), change]
        if argument is not None:
            params.append(argument)
        return [format_line("MODE", *params, source=self.source(record.get("actor")),
                            trailing=False)]

    def _unban(self, record: Record, key: int) -> list[str]:
        return self._mode(record, "-b", f"{record['user']}!*@*")

    def _promote(self, record: Record, key: int) -> list[str]:
        return self._mode(record, "+o", record["user"])

    def _demote(self, record: Record, key: int) -> list[str]:
        return self._mode(record, "-o", record["user"])

    def _owner(self, record: Record, key: int) -> list[str]:
        return self._mode(record, "+q", record["user"])

    def _room_mode(self, record: Record, key: int) -> list[str]:
        return self._mode(record, MODE_CHANGE.get(record.get("mode", ""), "+"))

    def _topic(self, record: Record, key: int) -> list[str]:
        return [format_line("TOPIC", channel(record["room"]), record.get("topic", ""),
                            source=self.source(record.get("actor")))]

    def _terminated(self, record: Record, key: int) -> list[str]:
        room = channel(record["room"])
        return [format_line("PART", room, f"{room} was terminated",
                            source=self.mask(record["user"]))]

    def _typing(self, record: Record, key: int) -> list[str]:
        if not (-1 - key) & 2:
            return []  # a client-only tag: only for clients that take message tags
        line = format_line("TAGMSG", channel(record["room"]), source=self.mask(record["user"]),
                           trailing=False)
        return [f"@+typing=active {line}"]

    def _as_notice(self, record: Record, key: int) -> list[str]:
        fields = {k: v for k, v in record.items() if isinstance(v, str)}
        template = EVENT_TEXT.get(record["event"], "{event} {user} {room}")
        text = template.format_map({**fields, "room": channel(record["room"]),
                                    "user": record.get("user", ""),
                                    "actor": record.get("actor", "")})
        if record.get("reason"):
            text += f" ({record['reason']})"
        return [format_line("NOTICE", channel(record["room"]), text, source=self.server)]

    # -- personal renderings ----------------------------------------------------

    def personal(self, record: Record, nick: str) -> bytes:
        """Records addressed to one recipient: notices (and invitations) and errors."""
        kind = record["type"]
        if kind == "notice":
            note = record.get("notification") or {}
            if note.get("kind") == "invitation" and note.get("room"):
                return _encode([format_line("INVITE", nick, channel(note["room"]),
                                            source=self.source(note.get("actor")),
                                            trailing=False)])
            return self.notice(nick, str(record.get("text", "")))
        if kind == "error":
            return self.notice(nick, str(record.get("message", "")))
        return b""

    def notice(self, nick: str, text: str) -> bytes:
        """A server NOTICE to ``nick``, one line per line of ``text``."""
        return _encode([format_line("NOTICE", nick, line, source=self.server)
                        for line in text.split("\n")])

    # -- tags -----------------------------------------------------------------

    def _tags(self, key: int, ts: str | None, msgid: object) -> dict[str, str]:
        mode = -1 - key
        tags: dict[str, str] = {}
        if mode & 1:
            tags["time"] = ts or iso_ts(self._now())
        if mode & 2 and msgid is not None:
            tags["msgid"] = str(msgid)
        return tags


EventRenderer = Callable[[IrcRenderer, Record, int], list[str]]
_EVENTS: Final[dict[str, EventRenderer]] = {
    "join": IrcRenderer._join,
    "leave": IrcRenderer._leave,
    "kick": IrcRenderer._kick,
    "ban": IrcRenderer._ban,
    "unban": IrcRenderer._unban,
    "promote": IrcRenderer._promote,
    "demote": IrcRenderer._demote,
    "owner": IrcRenderer._owner,
    "mode": IrcRenderer._room_mode,
    "topic": IrcRenderer._topic,
    "terminated": IrcRenderer._terminated,
    "typing": IrcRenderer._typing,
}


def _body(record: Record) -> str:
    """The text of a message, with a file preview or sticker on the lines after it."""
    if record.get("e2e"):
        return ENCRYPTED
    text = str(record.get("text", ""))
    extra = record.get("sticker_art") or (record.get("file") or {}).get("preview")
    return f"{text}\n{extra}" if extra else text


def _encode(lines: list[str]) -> bytes:
    return "".join(f"{line}\r\n" for line in lines).encode("utf-8", "replace")
