"""Domain events as IRC lines.

The domain delivers events (``chatd.domain.events``); this module says what
each looks like to an IRC client, by its type: a message is PRIVMSG, a join
JOIN, a ban MODE +b, and what IRC has no command for a channel NOTICE.
Rendering depends on the recipient only through its *tag mode* (whether it
asked for ``server-time`` and ``message-tags``), except for notices and
errors, which are records addressed to the recipient's nick (:meth:`IrcRenderer.personal`):
so one room message is formatted once per tag mode for all IRC recipients
(see :func:`cache_key`), as :meth:`chatd.protocol.session.Session.deliver`
does per style.

Every user appears as ``name!username@<server name>``: the username their
IRC client gave in ``USER`` (the name itself for line-protocol users); chatd
shows no host, and hiding addresses is the point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from chatd.domain import events as ev
from chatd.domain.moderation import SERVER
from chatd.domain.modes import ModeChange, format_changes
from chatd.domain.names import CONSOLE
from chatd.irc.codec import MAX_BODY, add_tags, format_line, is_plain_middle, split_text
from chatd.protocol.codec import iso_ts
from chatd.protocol.records import record_of
from chatd.protocol.render import EVENT_TEXT, EventFields

if TYPE_CHECKING:
    from chatd.delivery.feed import Render
    from chatd.delivery.outgoing import Outgoing

Record = Mapping[str, Any]
# What a room's mode looks like as IRC channel modes ("+i" private, "+R" request).
MODE_CHANGE: Final = {"open": "-iR", "private": "+i-R", "request": "+R-i"}
MODE_FLAGS: Final = {"open": "", "private": "i", "request": "R"}
ENCRYPTED: Final = "[end-to-end encrypted message]"
# Where a message's client-only tags (IRCv3 ``+name=value``) ride in its extra
# fields, and the most bytes they may take (the IRCv3 limit for client tags).
CLIENT_TAGS: Final = "client_tags"
CLIENT_TAGS_MAX: Final = 4094


class Directory(Protocol):
    """Who people are for IRC (chatd.irc.people.People): the username a user's IRC
    client gave, and whether that client set the bot mode on itself."""

    def username(self, name: str) -> str: ...
    def in_bot_mode(self, name: str) -> bool: ...


class _Nobody:
    """A directory that knows no IRC client: usernames are names, nobody set ``+B``."""

    def username(self, name: str) -> str:
        return name

    def in_bot_mode(self, name: str) -> bool:
        return False


def cache_key(server_time: bool, message_tags: bool, multi_prefix: bool = False) -> int:
    """The render-cache key of a tag mode (and of whether the client sees the owner's
    ``~``, ``multi-prefix``): negative, so it never meets a style key."""
    return -1 - (int(server_time) | int(message_tags) << 1 | int(multi_prefix) << 2)


def lane_key(key: int) -> int:
    """The room-feed lane key of tag mode ``key``: apart from the render-cache keys
    (a lane caches only messages under its key, which ``IrcSession.deliver`` must
    not take for another event)."""
    return key - 8


# The tag mode of a client that negotiated neither server-time nor message-tags.
PLAIN: Final = cache_key(False, False)


def _from_a_bot(msg: ev.Message) -> bool:
    """Whether ``msg`` carries the mark of a bot's message (a bot account's or a
    webhook's), set when it was posted and stored with it: what the line protocol's
    ``"bot": true`` says too, live and in history alike, with no look-up of the sender."""
    return bool(msg.extra and msg.extra.get(ev.BOT_MARK))


def channel(room: str) -> str:
    return f"#{room}"


def user_mask(nick: str, username: str, server: str) -> str:
    """The ``nick!user@host`` source of a user; every user's host is the server."""
    return f"{nick}!{username}@{server}"


# Masks kept at most (the senders of recent messages); then they are made anew.
_MASKS_KEPT = 4096


class IrcRenderer:
    """Formats events (and the personal records of notices) for IRC; one per listener
    (it knows the server's name)."""

    def __init__(self, server_name: Callable[[], str], now: Callable[[], float]) -> None:
        self._server_name = server_name
        self._now = now
        self.directory: Directory = _Nobody()
        self._lanes: dict[int, tuple[int, Render]] = {}
        # Masks by name, each with the server name it was made with: a message
        # needs its sender's twice (to fit its text, then to render it).
        self._masks: dict[str, tuple[str, str]] = {}

    @property
    def server(self) -> str:
        return self._server_name()

    def mask(self, name: str) -> str:
        """The ``nick!user@host`` source of a user."""
        server = self._server_name()
        known = self._masks.get(name)
        if known is not None and known[0] == server:
            return known[1]
        mask = user_mask(name, self.directory.username(name), server)
        if len(self._masks) >= _MASKS_KEPT:
            self._masks.clear()
        self._masks[name] = (server, mask)
        return mask

    def forget_masks(self) -> None:
        """Somebody's username changed (the directory's identities): make masks anew."""
        self._masks.clear()

    def forget_mask(self, name: str) -> None:
        """``name`` came online: its mask may not be that of a guest once called so."""
        self._masks.pop(name, None)

    def source(self, actor: str | None) -> str:
        """The source of an action: the actor, or the server for the console and expiry."""
        if not actor or actor in (CONSOLE, SERVER):
            return self.server
        return self.mask(actor)

    # -- shared renderings (cached per tag mode) ------------------------------

    def shared(self, event: ev.Event, key: int) -> bytes | None:
        """The bytes of ``event`` for tag mode ``key``; None when they depend on the
        recipient (a notification: then :meth:`personal` renders its record)."""
        if isinstance(event, ev.Message):
            return _encode(self.message(event, key))
        if isinstance(event, ev.Notified):
            return None
        render = _EVENTS.get(type(event), IrcRenderer._as_notice)
        return _encode(self.tagged(render(self, event, key), key))

    def tagged(self, lines: list[str], key: int, at: float | None = None) -> list[str]:
        """The lines of an event with the tags tag mode ``key`` gives every event
        (``time`` with server-time: ``at``, or now). Also for the lines a command's
        reply tells its sender of its own act (its JOIN, PART, NICK, user MODE):
        the sender sees them tagged as everyone else does."""
        tags = self._tags(key, None if at is None else iso_ts(at), None)
        return [add_tags(line, tags) for line in lines] if tags else lines

    def tagging(self, lines: list[str]) -> Callable[[int], list[str]]:
        """The lines of one event that is not the domain's (an AWAY, a SETNAME, a
        WALLOPS), as each tag mode is shown them: :meth:`tagged` with the time of
        now, one time for every recipient, formatted once per tag mode."""
        at = self._now()
        shown: dict[int, list[str]] = {}

        def of(key: int) -> list[str]:
            found = shown.get(key)
            if found is None:
                found = shown[key] = self.tagged(lines, key, at)
            return found
        return of

    def lane(self, key: int) -> tuple[int, Render]:
        """The room-feed lane of tag mode ``key`` (chatd.delivery.feed): its lane key
        and its render, which takes room messages and refuses every other event (what
        a client is shown of those depends on its channels and nick: one by one)."""
        found = self._lanes.get(key)
        if found is None:
            found = self._lanes[key] = (lane_key(key), self._lane_render(key))
        return found

    def _lane_render(self, key: int) -> Render:
        def render(item: Outgoing) -> bytes | None:
            event = item.event
            if not isinstance(event, ev.Message):
                return None
            # Shared with IrcSession.deliver's cache, so the message is formatted
            # once per tag mode however its recipients take it.
            data = item.cache.get(key)
            if data is None:
                data = item.cache[key] = _encode(self.message(event, key))
            return data
        return render

    def message(self, msg: ev.Message, key: int) -> list[str]:
        """A room or direct message as PRIVMSG (NOTICE) lines; text longer than a line
        (from the line protocol, which allows more) or of several lines is split."""
        target = msg.to if msg.to is not None else channel(msg.room or "")
        source = self.mask(msg.sender)
        verb = "NOTICE" if msg.msg_kind == "notice" else "PRIVMSG"
        body = _body(msg)
        if not (-1 - key) & 3 and msg.msg_kind != "action":
            # Most messages: one short line of plain text, to a client that takes no
            # tags. It is written at once; what format_line would change (a line
            # break, a long text, an odd target) takes the general way below.
            line = f":{source} {verb} {target} :{body}"
            if ("\n" not in body and "\r" not in body and "\0" not in body
                    and _byte_length(line) + 2 <= MAX_BODY and is_plain_middle(target)):
                return [line]
        return self._lines(msg, key, target, source, verb, body)

    def _lines(self, msg: ev.Message, key: int, target: str, source: str, verb: str,
               body: str) -> list[str]:
        """:meth:`message`'s general way: tags, actions, and the splitting of long text
        or of several lines."""
        tags = self._message_tags(msg, key)
        # A msgid names one line: the first carries it, the lines that continue the
        # message do not (a client that drops repeated msgids would hide them).
        following = {name: value for name, value in tags.items() if name != "msgid"}
        overhead = len(f":{source} {verb} {target} :".encode()) + 2
        lines: list[str] = []
        for text in body.split("\n"):
            if msg.msg_kind == "action":
                pieces = [f"\x01ACTION {p}\x01" for p in split_text(text, MAX_BODY - overhead - 9)]
            else:
                pieces = split_text(text, MAX_BODY - overhead)
            lines += [format_line(verb, target, piece, source=source,
                                  tags=following if lines or index else tags)
                      for index, piece in enumerate(pieces)]
        return lines

    def _message_tags(self, msg: ev.Message, key: int) -> dict[str, str]:
        if not (-1 - key) & 3:
            return {}  # neither server-time nor message-tags: nothing to format
        tags = self._tags(key, iso_ts(msg.ts), msg.id)
        if (-1 - key) & 2:  # message-tags: the bot tag and the sender's client-only tags
            if _from_a_bot(msg) or self.directory.in_bot_mode(msg.sender):
                tags["bot"] = ""
            tags.update(msg.extra.get(CLIENT_TAGS) or {})
        return tags

    # -- event renderings -----------------------------------------------------

    def _join(self, e: ev.Joined, key: int) -> list[str]:
        return [format_line("JOIN", channel(e.room), source=self.mask(e.user), trailing=False)]

    def _leave(self, e: ev.Left, key: int) -> list[str]:
        params = [channel(e.room)]
        if e.reason:
            params.append(e.reason)
        return [format_line("PART", *params, source=self.mask(e.user),
                            trailing=len(params) > 1)]

    def _kick(self, e: ev.Kicked | ev.Banned, key: int) -> list[str]:
        reason = e.reason or e.actor or ""
        return [format_line("KICK", channel(e.room), e.user, reason,
                            source=self.source(e.actor))]

    def _ban(self, e: ev.Banned, key: int) -> list[str]:
        lines = self._mode(e.room, e.actor, "+b", f"{e.user}!*@*")
        # The ban event also tells the room a member is gone (chatd sends one event).
        if e.member:
            lines += self._kick(e, key)
        return lines

    def _mode(self, room: str, actor: str | None, change: str, *arguments: str) -> list[str]:
        return [format_line("MODE", channel(room), change, *arguments,
                            source=self.source(actor), trailing=False)]

    def _unban(self, e: ev.Unbanned, key: int) -> list[str]:
        return self._mode(e.room, e.actor, "-b", f"{e.user}!*@*")

    def _promote(self, e: ev.Promoted, key: int) -> list[str]:
        # Voice is a role: a voiced member made admin is no longer voiced.
        return self._roles(e.room, e.actor, [("v", e.user)] if e.voiced else [],
                           [("o", e.user)])

    def _demote(self, e: ev.Demoted, key: int) -> list[str]:
        return self._mode(e.room, e.actor, "-o", e.user)

    def _owner(self, e: ev.OwnerChanged, key: int) -> list[str]:
        taken = [("v", e.user)] if e.voiced else []
        # The old owner of a transfer stays an operator, unless it is a guest, which
        # becomes a member (guests cannot be room admins).
        if e.previous is not None and e.previous_role != "admin":
            taken.insert(0, ("o", e.previous))
        if not (-1 - key) & 4:
            # Without multi-prefix the owner is an operator like the admins.
            return self._roles(e.room, e.actor, taken, [("o", e.user)])
        if e.previous is not None:
            taken.insert(0, ("q", e.previous))
        return self._roles(e.room, e.actor, taken, [("q", e.user), ("o", e.user)])

    def _roles(self, room: str, actor: str | None, taken: list[tuple[str, str]],
               given: list[tuple[str, str]]) -> list[str]:
        """One MODE line taking then giving channel prefixes: (letter, nick) pairs."""
        spec = "".join(("-" if taken else "", *(m for m, _ in taken),
                        "+", *(m for m, _ in given)))
        return self._mode(room, actor, spec, *(nick for _, nick in taken),
                          *(nick for _, nick in given))

    def _voice(self, e: ev.Voiced, key: int) -> list[str]:
        return self._mode(e.room, e.actor, "+v", e.user)

    def _devoice(self, e: ev.Devoiced, key: int) -> list[str]:
        return self._mode(e.room, e.actor, "-v", e.user)

    def _modes(self, e: ev.ModesChanged, key: int) -> list[str]:
        # k is a type B mode (CHANMODES=b,k,...): it takes a parameter when unset
        # too, or a client gives the next one (+l's limit) to -k.
        spec, arguments = format_changes(
            ModeChange(False, "k", "*") if c.letter == "k" and not c.on else c
            for c in e.changes)
        return self._mode(e.room, e.actor, spec, *arguments)

    def _room_mode(self, e: ev.ModeChanged, key: int) -> list[str]:
        return self._mode(e.room, e.actor, MODE_CHANGE.get(e.mode, "+"))

    def _topic(self, e: ev.TopicChanged, key: int) -> list[str]:
        return [format_line("TOPIC", channel(e.room), e.topic, source=self.source(e.actor))]

    def _terminated(self, e: ev.Terminated, key: int) -> list[str]:
        room = channel(e.room)
        return [format_line("PART", room, f"{room} was terminated", source=self.mask(e.user))]

    def _renamed(self, e: ev.Renamed, key: int) -> list[str]:
        # The source is the old nick; its username is looked up under the new one.
        source = user_mask(e.user, self.directory.username(e.name), self.server)
        return [format_line("NICK", e.name, source=source)]

    def _typing(self, e: ev.Typing, key: int) -> list[str]:
        if not (-1 - key) & 2:
            return []  # a client-only tag: only for clients that take message tags
        line = format_line("TAGMSG", channel(e.room), source=self.mask(e.user), trailing=False)
        return [f"@+typing=active {line}"]

    def _as_notice(self, e: ev.Event, key: int) -> list[str]:
        # IRC has no command for the rest (mute, invite, request, e2e): the line
        # protocol's sentence, as a channel NOTICE from the server.
        record = record_of(e)
        fields = {k: v for k, v in record.items() if isinstance(v, str)}
        template = EVENT_TEXT.get(e.kind, "{event} {user} {room}")
        text = template.format_map(EventFields(fields, room=channel(record["room"]),
                                               user=record.get("user", ""),
                                               actor=record.get("actor", "")))
        if record.get("reason"):
            text += f" ({record['reason']})"
        return [format_line("NOTICE", channel(record["room"]), text, source=self.server)]

    # -- personal renderings ----------------------------------------------------

    def personal(self, record: Record, nick: str, key: int = PLAIN) -> bytes:
        """Records addressed to one recipient: notices (and invitations) and errors,
        tagged as tag mode ``key`` tags events: with the time of a notification
        (when it was stored, which a login's replay shows too), or of now."""
        kind = record["type"]
        if kind == "notice":
            note = record.get("notification") or {}
            at = note.get("ts_epoch")
            if note.get("kind") == "invitation" and note.get("room"):
                return _encode(self.tagged([format_line("INVITE", nick, channel(note["room"]),
                                                        source=self.source(note.get("actor")),
                                                        trailing=False)], key, at))
            return self.notice(nick, str(record.get("text", "")), key, at)
        if kind == "error":
            return self.notice(nick, str(record.get("message", "")), key)
        return b""

    def notice(self, nick: str, text: str, key: int = PLAIN, at: float | None = None) -> bytes:
        """A server NOTICE to ``nick``, one line per line of ``text``, tagged for tag
        mode ``key`` (with the time ``at``, or now)."""
        return _encode(self.tagged([format_line("NOTICE", nick, line, source=self.server)
                                    for line in text.split("\n")], key, at))

    # -- tags -----------------------------------------------------------------

    def _tags(self, key: int, ts: str | None, msgid: object) -> dict[str, str]:
        mode = -1 - key
        tags: dict[str, str] = {}
        if mode & 1:
            tags["time"] = ts or iso_ts(self._now())
        if mode & 2 and msgid is not None:
            tags["msgid"] = str(msgid)
        return tags


EventRenderer = Callable[[IrcRenderer, Any, int], list[str]]
_EVENTS: Final[dict[type[ev.Event], EventRenderer]] = {
    ev.Joined: IrcRenderer._join,
    ev.Left: IrcRenderer._leave,
    ev.Kicked: IrcRenderer._kick,
    ev.Banned: IrcRenderer._ban,
    ev.Unbanned: IrcRenderer._unban,
    ev.Promoted: IrcRenderer._promote,
    ev.Demoted: IrcRenderer._demote,
    ev.OwnerChanged: IrcRenderer._owner,
    ev.Voiced: IrcRenderer._voice,
    ev.Devoiced: IrcRenderer._devoice,
    ev.ModesChanged: IrcRenderer._modes,
    ev.ModeChanged: IrcRenderer._room_mode,
    ev.TopicChanged: IrcRenderer._topic,
    ev.Terminated: IrcRenderer._terminated,
    ev.Typing: IrcRenderer._typing,
    ev.Renamed: IrcRenderer._renamed,
}


def _body(msg: ev.Message) -> str:
    """The text of a message, with a file preview or sticker on the lines after it."""
    if msg.msg_kind in ev.ENVELOPE_KINDS:
        return ENCRYPTED
    extra = msg.extra.get("sticker_art") or (msg.extra.get("file") or {}).get("preview")
    return f"{msg.text}\n{extra}" if extra else msg.text


def _byte_length(text: str) -> int:
    """``text``'s length in UTF-8 without encoding it when it is ASCII (str.isascii
    reads a flag: most chat lines are encoded once, by _encode, not twice)."""
    return len(text) if text.isascii() else len(text.encode())


def _encode(lines: list[str]) -> bytes:
    if len(lines) == 1:  # most messages: no generator to join
        return (lines[0] + "\r\n").encode("utf-8", "replace")
    return "".join(f"{line}\r\n" for line in lines).encode("utf-8", "replace")
