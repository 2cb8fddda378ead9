"""An IRC endpoint of the domain: a :class:`chatd.protocol.session.Session` that speaks IRC.

The domain treats it like any session: it logs in, it is attached to its
user's rooms, and :meth:`IrcSession.deliver` receives room messages, events,
notices and direct messages. What differs is only the rendering (IRC lines,
cached per tag mode like ``Session`` caches per style) and a little IRC
bookkeeping: which channels the client has been told it is in, its nick,
and capabilities.

Two things keep the output in an order IRC clients accept:

* a channel is *announced* (JOIN, topic, names) before anything else of that
  room reaches the client, also when the room was joined or created from
  another connection of the same account;
* while registration or a JOIN is in progress, deliveries are *held* and
  released after the command's own replies (so no PRIVMSG precedes 001, or
  precedes the JOIN of its channel).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol

from chatd.domain import events
from chatd.domain.events import Event
from chatd.domain.names import name_key
from chatd.irc.codec import format_line
from chatd.irc.render import cache_key
from chatd.irc.views import join_lines
from chatd.protocol.records import record_for, record_of
from chatd.protocol.session import Session

if TYPE_CHECKING:
    from chatd.delivery.feed import RoomFeed
    from chatd.delivery.outgoing import Outgoing
    from chatd.domain.accounts import User
    from chatd.domain.room import Room
    from chatd.domain.tokens import Grant
    from chatd.irc.render import IrcRenderer
    from chatd.protocol.services import Services
    from chatd.protocol.session import Output


class IrcFront(Protocol):
    """What an IRC session needs of the IRC front end (chatd.irc.front): its
    renderer and the services. A Protocol, so that the session, which the
    front end's dispatcher and guests know, knows neither of them."""

    @property
    def renderer(self) -> IrcRenderer: ...
    @property
    def services(self) -> Services: ...
    @property
    def guests(self) -> Quitting: ...


class Replies(Protocol):
    """The IRC command being handled (chatd.irc.commands.IrcContext), as far as
    the session adds to its reply: the sender's echo of a labelled message
    joins the command's labelled batch."""

    lines: list[str]
    # The command's label (``@label=``), None when it has none.
    label: str | None

# Events that take the named user out of the room's channel.
_DEPARTURES = (events.Left, events.Kicked, events.Banned, events.Terminated)
# The reason of a guest's departures from its rooms when its connection ends:
# IRC clients are shown one QUIT instead of a PART per channel.
QUIT_PREFIX = "Quit: "
# What a QUIT without a message says after QUIT_PREFIX.
NO_QUIT_MESSAGE = "Client Quit"
# Quits remembered per client (see IrcState.quitted) before the memory is reset.
_QUITS_KEPT = 64


class Quitting(Protocol):
    """Whether a departure is a guest's quit, and which guest has a nick
    (chatd.irc.guests.Guests)."""

    def quitting(self, name: str) -> bool: ...

    def find(self, nick: str) -> User | None: ...


# What an IRC state starts with, shared: an idle connection holds no empty set
# or dict of its own (10,000 held connections, three empty sets each, were
# 650 of the 3,400 bytes each cost). The state replaces them when they change.
_NONE: frozenset[Any] = frozenset()
# Kept among a connection's capabilities, though no capability: the client sent
# CAP LS 302 (or later), which holds for the rest of the connection. A member of
# the set it already has, not a slot of every connection; CAP LIST leaves it out.
CAP_302: Final = "302"
# Every distinct set of capabilities held, each once: the connections that hold the
# same one share it (nearly every client of a kind asks for the same), so the marker
# costs no connection a larger set of its own (a fifth or eighth member grows a
# frozenset from 216 to 472, and to 728, bytes). At most 2**12 sets: only the
# capabilities CAP REQ takes (checked there) and the marker are ever members.
_CAP_SETS: dict[frozenset[str], frozenset[str]] = {_NONE: _NONE}
_CAP_SETS_MAX: Final = 4096
_NO_NICKS: Mapping[str, str] = MappingProxyType({})
# The user modes, in the order MODE shows them: i (invisible), o (OPER
# succeeded: a server admin), w (receives WALLOPS), B (a bot, IRCv3 bot mode).
USER_MODES: Final = "iowB"
# The label chatd's messaging is given so the sender's copy comes through send():
# IRC decides there whether to echo it (echo-message) and how to label it.
ECHO = ""


class Registering:
    """What an IRC connection holds only until it registers: the ``PASS`` secret,
    what SASL authenticated, and whether CAP negotiation is open. Apart, so
    that a registered connection keeps none of it."""

    __slots__ = ("account_changes", "grant", "negotiating", "password", "sasl")

    def __init__(self) -> None:
        self.password: str | None = None
        # Between CAP LS/REQ and CAP END, registration waits.
        self.negotiating = False
        # What SASL authenticated (an account, and a token's scopes), logged in
        # when registration completes.
        self.grant: Grant | None = None
        # The account's count of password changes then: a change before
        # registration voids a password login.
        self.account_changes = 0
        self.sasl: bytearray | None = None


class IrcState(Session):
    """A session's IRC side: registration, capabilities, channels. A base of
    :class:`IrcSession` rather than an object it holds: one object less for
    each held connection (some 40 bytes of the 2 KiB each may cost)."""

    __slots__ = ("caps", "context", "held_lines", "joined", "key", "lane", "last_rename",
                 "listener", "modes", "monitoring", "nick", "pending", "quit_message",
                 "quitted", "realname", "username")

    def __init__(self, out: Output, peer: str | None, now: float, listener: IrcFront) -> None:
        super().__init__(out, peer, now)
        self.listener = listener
        self.nick = "*"
        self.username = ""
        self.realname = ""
        self.caps: Set[str] = _NONE
        # Until registration completes; then None (see Registering).
        self.pending: Registering | None = Registering()
        # The user modes set, in USER_MODES order: a string, not a flag each.
        self.modes = ""
        # The nicks this client monitors (MONITOR), by key.
        self.monitoring: Mapping[str, str] = _NO_NICKS
        # QUIT's message, for the guest's departure from its rooms.
        self.quit_message = ""
        # Guests whose QUIT this client was shown: their departures from the
        # other channels it shares with them are not shown again as PARTs.
        self.quitted: frozenset[str] = _NONE
        self.last_rename: tuple[str, str] | None = None
        # Ids of the rooms this client has been shown as joined channels: the
        # shared empty set until the first, then a set of its own.
        self.joined: Set[int] = _NONE
        # While set, IRC output waits here (registration, a JOIN's replies).
        self.held_lines: list[bytes] | None = None
        self.context: Replies | None = None
        self.key = cache_key(False, False)
        # The room-feed lane of this tag mode: its key and render.
        self.lane = listener.renderer.lane(self.key)

    @property
    def registered(self) -> bool:
        return self.pending is None

    def completed(self) -> None:
        """Registration is complete: what it needed goes."""
        self.pending = None

    def has_mode(self, flag: str) -> bool:
        return len(flag) == 1 and flag in self.modes

    def set_mode(self, flag: str, on: bool) -> bool:
        """Set or clear user mode ``flag`` (one of USER_MODES); whether it changed."""
        if len(flag) != 1 or flag not in USER_MODES or (flag in self.modes) == on:
            return False
        kept = self.modes + flag if on else self.modes.replace(flag, "")
        self.modes = "".join(mode for mode in USER_MODES if mode in kept)
        return True

    def share_names(self) -> None:
        """One string where the username or real name repeats the nick (as many
        clients send them): a held connection keeps no copy of it."""
        if self.username == self.nick:
            self.username = self.nick
        if self.realname == self.nick:
            self.realname = self.nick

    def set_caps(self, caps: Set[str]) -> None:
        """Change the capabilities; a tapped lane renders the old tag mode."""
        self.out.untap()
        self.caps = _shared_caps(caps)
        self.key = cache_key("server-time" in caps, "message-tags" in caps,
                             "multi-prefix" in caps)
        self.lane = self.listener.renderer.lane(self.key)

    @property
    def speaks_302(self) -> bool:
        """Whether the client sent CAP LS 302 (or later) at some point."""
        return CAP_302 in self.caps

    def spoke_302(self) -> None:
        if not self.speaks_302:
            self.set_caps(self.caps | {CAP_302})

    def shown_joined(self, room_id: int) -> None:
        if isinstance(self.joined, set):
            self.joined.add(room_id)  # (a copy per JOIN would cost a member of
        else:                         # thousands of rooms a square at log-in)
            self.joined = {room_id}

    def shown_parted(self, room_id: int) -> None:
        if isinstance(self.joined, set):
            self.joined.discard(room_id)

    def shown_quit(self, key: str) -> None:
        """Remember that this client was shown the QUIT of ``key`` (a few at most)."""
        quitted = self.quitted if len(self.quitted) < _QUITS_KEPT else _NONE
        self.quitted = quitted | {key}

    def forget_quit(self, key: str) -> None:
        if key in self.quitted:
            self.quitted = self.quitted - {key} or _NONE

    def monitor(self, key: str, nick: str) -> None:
        self.monitoring = {**self.monitoring, key: nick}

    def unmonitor(self, key: str) -> None:
        if key in self.monitoring:
            self.monitoring = {k: v for k, v in self.monitoring.items() if k != key} or _NO_NICKS


class IrcSession(IrcState):
    """A session whose output is IRC."""

    __slots__ = ()

    # -- what the domain calls ----------------------------------------------------

    def tap(self, feed: RoomFeed, item: Outgoing) -> None:
        """Take the room's messages of this turn from ``item`` on, on the lane of this
        client's tag mode (see chatd.delivery.feed), when nothing about them depends
        on this client: a message to a channel it was shown, no output held, no
        summary due. Anything else is delivered one by one (the lane refuses events
        other than messages, so later ones of the turn come here again)."""
        if (self.held_lines is None and not self.coalesced and feed.room_id in self.joined
                and isinstance(item.event, events.Message)):
            key, render = self.lane
            lane = feed.lanes.get(key)  # RoomFeed.lane's lookup, without its call
            if lane is None:
                lane = feed.lane(key, render, item)
            self.out.tap(feed, lane)
        else:
            self.deliver(item)

    def deliver(self, item: Outgoing) -> None:
        """Queue ``item`` as IRC lines (rendered once per tag mode for all recipients)."""
        if item.priority and self.out.congested:
            self._shed(item)
            return
        if self.coalesced:
            self._summarise_coalesced()
        event = item.event
        room_id = item.room_id
        if room_id is not None and room_id not in self.joined and self._announce_for(event,
                                                                                   room_id):
            return
        if (event is not None and not isinstance(event, events.Message)
                and self._told_otherwise(event)):
            return
        data = item.cache.get(self.key)
        if data is None:
            renderer = self.listener.renderer
            shared = None if event is None else renderer.shared(event, self.key)
            if shared is None:
                data = renderer.personal(record_for(item), self.nick, self.key)
            else:
                data = item.cache[self.key] = shared
        self._queue(data)
        if room_id is not None and isinstance(event, _DEPARTURES) and self._is_me(event.user):
            self.shown_parted(room_id)
        elif isinstance(event, events.Joined) and "away-notify" in self.caps:
            self._away_after_join(event.user)

    def _told_otherwise(self, event: Event) -> bool:
        """Whether ``event`` reaches this client as something else, or not again: a
        guest's quit is one QUIT for all the channels it shared with this client,
        and a rename one NICK."""
        if isinstance(event, events.Joined):
            self.forget_quit(name_key(event.user))
            return False
        if isinstance(event, events.Renamed):
            # One event per shared room, one NICK line; the renamed client itself
            # was told by its NICK command's reply.
            rename = (event.user, event.name)
            if rename == self.last_rename or self._is_me(event.name):
                return True
            self.last_rename = rename
            return False
        if not isinstance(event, events.Left) or not _quit_reason(event.reason):
            return False
        key = name_key(event.user)
        if not self.listener.guests.quitting(event.user):
            return False
        if key not in self.quitted:
            self.shown_quit(key)
            renderer = self.listener.renderer
            # Tagged as the departure it stands for would have been. A reason the
            # room held back (a muted guest's, or any in an end-to-end room) is still
            # a quit: shown as one without a message.
            said = event.reason or QUIT_PREFIX + NO_QUIT_MESSAGE
            self._queue(_encode(renderer.tagged(
                [format_line("QUIT", said, source=renderer.mask(event.user))], self.key)))
        return True

    def _away_after_join(self, name: str) -> None:
        """away-notify: the AWAY of a user who joins while away follows the JOIN (the
        spec: "when a user joins and has an away message set"); an account that
        joins while offline (a request accepted meanwhile) is ``AWAY :offline``, as
        its last connection's end showed it."""
        listener = self.listener
        if self._is_me(name):
            return  # a client is told its own away state by 305 and 306
        user = listener.services.accounts.find(name) or listener.guests.find(name)
        if user is None:
            return
        text = listener.services.presence.away(user) if user.online else "offline"
        if text:
            renderer = listener.renderer
            self._queue(_encode(renderer.tagged(
                [format_line("AWAY", text, source=renderer.mask(name))], self.key)))

    def reply(self, item: Outgoing, label: str) -> None:
        self.send(item.event if item.event is not None else record_for(item), label)

    def send(self, record: Mapping[str, Any] | Event, label: str | None = None) -> None:
        """A record for this connection only: the sender's copy of its own message,
        a replayed direct message, or a notice or error of the server."""
        renderer = self.listener.renderer
        if isinstance(record, events.Message):
            if label is not None and record.to is not None and self._is_me(record.to):
                # A message to oneself: received as its target, and echoed if asked.
                self._queue(_encode(renderer.message(record, self.key)))
            if label is not None and "echo-message" not in self.caps:
                return  # IRC clients show their own messages unless they ask for echoes
            lines = renderer.message(record, self.key)
            context = self.context
            if (label is not None and context is not None and context.label is not None
                    and "labeled-response" in self.caps):
                # The labelled command's response: it goes out with its reply.
                context.lines.extend(lines)
                return
            # Written now, in its place among what this connection receives: on a
            # cluster the log's reader sends it, between other messages.
            self._queue("".join(f"{line}\r\n" for line in lines).encode())
            return
        if isinstance(record, Event):
            record = record_of(record)
        if record["type"] in ("notice", "error") and "version" not in record:
            # (The line protocol's banner has a "version": IRC has its welcome instead.)
            self._queue(renderer.personal(record, self.nick, self.key))

    # -- IRC bookkeeping ------------------------------------------------------------

    def _is_me(self, name: str) -> bool:
        return name_key(name) == name_key(self.nick)

    def _announce_for(self, event: Event | None, room_id: int) -> bool:
        """Show the client the channel of ``room_id`` if it is in that room and was not
        shown it yet; True when that announcement stands for ``event`` itself."""
        user = self.user
        room = self.listener.services.rooms.get(room_id)
        if user is None or room is None or not room.is_member(user.id):
            return False
        self.announce(room)
        # A join the announcement's names already list is not shown again.
        return isinstance(event, events.Joined) and (
            self._is_me(event.user) or _lists(room, event.user))

    def announce(self, room: Room) -> None:
        """Tell the client it is in ``room``'s channel: JOIN, topic and names."""
        self.shown_joined(room.id)
        lines = join_lines(self.listener.renderer, self.nick, room, self.key, self.caps)
        self._queue("".join(f"{line}\r\n" for line in lines).encode())

    def queue_lines(self, lines: list[str]) -> None:
        """Lines of an event told to this client alone (MONITOR, away-notify, NICK ...),
        behind any held output."""
        self._queue(_encode(lines))

    def write_lines(self, lines: list[str]) -> None:
        """Write reply lines now, ahead of any held deliveries."""
        if lines:
            self.out.write("".join(f"{line}\r\n" for line in lines).encode("utf-8", "replace"))

    def hold(self) -> None:
        """Keep deliveries back until :meth:`release` (replies still go out)."""
        self.out.untap()  # what a tap takes from now on would not be held
        if self.held_lines is None:
            self.held_lines = []

    def release(self) -> None:
        held, self.held_lines = self.held_lines, None
        for data in held or ():
            self.out.write(data)

    def _queue(self, data: bytes) -> None:
        if not data:
            return
        held = self.held_lines
        if held is not None:
            held.append(data)
        else:
            self.out.write(data)


def _lists(room: Room, name: str) -> bool:
    """Whether ``name`` is among ``room``'s members (a scan: only at an announcement)."""
    key = name_key(name)
    return any(name_key(member.name) == key for member in room.members.values())


def _encode(lines: list[str]) -> bytes:
    return "".join(f"{line}\r\n" for line in lines).encode("utf-8", "replace")


def _quit_reason(reason: str) -> bool:
    """Whether a leave's ``reason`` may be a guest's quit: one said with QUIT_PREFIX,
    or none, which the room held back (a PART's own message is no quit)."""
    return not reason or reason.startswith(QUIT_PREFIX)


def _shared_caps(caps: Set[str]) -> frozenset[str]:
    """The one set of the capabilities ``caps`` that every connection holding them
    shares (:data:`_CAP_SETS`)."""
    kept = frozenset(caps)
    shared = _CAP_SETS.get(kept)
    if shared is not None:
        return shared
    if len(_CAP_SETS) < _CAP_SETS_MAX:
        _CAP_SETS[kept] = kept
    return kept
