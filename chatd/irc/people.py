"""What the IRC front end knows of people beyond the domain.

The domain knows accounts and guests by name. IRC also shows, for each
user, the username and real name their IRC client gave in ``USER`` (in
``nick!username@host`` and in WHOIS/WHO), whether they are a bot (a bot
account always is; any other client may say so of itself with ``+B``), the
nicks recently gone (WHOWAS), and who asked to be told when a nick comes and
goes (MONITOR). All of it lives in memory, bounded, and is
forgotten when its user's last connection ends (WHOWAS keeps the last
:data:`WHOWAS_MAX` departures).

It watches presence (``chatd.domain.presence.PresenceWatcher``): a user
coming online or going offline, from either listener, is told to the IRC
sessions that monitor them (``730``/``731``) and, as ``AWAY``, to those
sharing a channel that negotiated ``away-notify``.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from chatd.domain.names import name_key
from chatd.irc import numerics as n
from chatd.irc.codec import format_line
from chatd.irc.guests import is_guest
from chatd.irc.session import IrcSession

if TYPE_CHECKING:
    from chatd.domain.accounts import User
    from chatd.irc.render import IrcRenderer
    from chatd.protocol.services import Services

# WHOWAS remembers this many departures (renames and disconnections), newest last.
WHOWAS_MAX: Final = 200
# Nicks one connection may monitor (ISUPPORT MONITOR=).
MONITOR_MAX: Final = 100
# The longest username kept (ISUPPORT USERLEN=); what else is in it is dropped.
USER_LEN: Final = 16
_USER_CHARS: Final = re.compile(r"[^A-Za-z0-9._-]")


def clean_username(raw: str, fallback: str) -> str:
    """The username shown for ``raw`` (USER's first parameter): ident characters only."""
    return _USER_CHARS.sub("", raw)[:USER_LEN] or fallback


class Identity(Protocol):
    """What one IRC client said about its user: USER's username and real name. The
    client's session serves while it is connected (an object of its own for each
    would cost every held connection about 70 bytes); once the connection has
    ended, a :class:`Told` copy."""

    @property
    def username(self) -> str: ...
    @property
    def realname(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Told:
    """What an ended connection said in USER, kept while its account is still online
    elsewhere (the ended session itself is not kept: it holds its connection)."""

    username: str
    realname: str


@dataclass(frozen=True, slots=True)
class Departed:
    """A nick that went (WHOWAS): by a rename or the end of its last connection."""

    nick: str
    username: str
    realname: str
    at: float


class People:
    """Usernames, real names and bots by nick; WHOWAS; MONITOR lists."""

    def __init__(self, services: Services, renderer: IrcRenderer) -> None:
        self._services = services
        self._renderer = renderer
        self._identities: dict[str, Identity] = {}
        self._bots: set[str] = set()
        self.whowas: deque[Departed] = deque(maxlen=WHOWAS_MAX)
        # Monitored nick (its key) -> the sessions monitoring it.
        self._monitors: dict[str, set[IrcSession]] = {}
        # The registered sessions that asked for away-notify: every log-in and
        # log-out looks for them, so they are kept apart (a pass over every
        # session made each log-in cost in proportion to the connections held).
        self._away_notify: set[IrcSession] = set()
        # User id -> how many of its registered sessions here are invisible (+i):
        # counted as the mode changes, for LUSERS answers at every log-in.
        self._invisible: dict[int, int] = {}

    # -- identities --------------------------------------------------------------

    def username(self, name: str) -> str:
        """The USER name of ``name``'s newest IRC connection; for a guest that is
        gone, the last one WHOWAS keeps (its QUIT is rendered after it left); else
        the name itself (an account without an IRC connection, a line-protocol user:
        never the USER of a guest that once had its name)."""
        identity = self._identities.get(name_key(name))
        if identity is not None:
            return identity.username
        if self._services.accounts.find(name) is None:
            gone = self.departed(name)
            if gone:
                return gone[0].username
        return name

    def realname(self, name: str) -> str:
        identity = self._identities.get(name_key(name))
        return identity.realname if identity is not None else name

    def is_bot(self, name: str) -> bool:
        """A bot account (chatd's own kind), or a client that set ``+B`` on itself."""
        return self.in_bot_mode(name) or self._services.accounts.is_bot(name)

    def in_bot_mode(self, name: str) -> bool:
        """A client that set ``+B`` on itself (a bot account's messages carry their
        own mark, so the bot tag of a message needs only this besides)."""
        return name_key(name) in self._bots

    def registered(self, session: IrcSession) -> None:
        """``session`` completed registration: its USER becomes its user's identity
        (the newest IRC connection of an account speaks for it)."""
        self.caps_changed(session)
        self._identities[name_key(session.nick)] = session
        self._renderer.forget_masks()

    def caps_changed(self, session: IrcSession) -> None:
        """``session``'s capabilities changed (or it registered with them)."""
        if session.registered and "away-notify" in session.caps:
            self._away_notify.add(session)
        else:
            self._away_notify.discard(session)

    def set_realname(self, session: IrcSession, realname: str) -> None:
        session.realname = realname
        self._identities[name_key(session.nick)] = session
        self._renderer.forget_masks()

    def set_bot(self, name: str, on: bool) -> None:
        if on:
            self._bots.add(name_key(name))
        else:
            self._bots.discard(name_key(name))

    def renamed(self, old: str, new: str) -> None:
        """A guest's nick changed: its identity and bot mode follow it; WHOWAS keeps the old."""
        identity = self._identities.pop(name_key(old), None)
        if identity is not None:
            self._identities[name_key(new)] = identity
            self._renderer.forget_masks()
        if name_key(old) in self._bots:
            self._bots.discard(name_key(old))
            self._bots.add(name_key(new))
        self._remember(old, identity)

    # -- invisible users (user mode +i) ----------------------------------------------

    def set_invisible(self, session: IrcSession, on: bool) -> None:
        """``session`` (registered) took or dropped user mode +i."""
        if session.user is not None:
            user_id = session.user.id
            count = self._invisible.get(user_id, 0) + (1 if on else -1)
            if count > 0:
                self._invisible[user_id] = count
            else:
                self._invisible.pop(user_id, None)

    def invisible(self) -> Collection[int]:
        """The ids of the users with an invisible (+i) IRC session here."""
        return self._invisible.keys()

    def ended(self, session: IrcSession) -> None:
        """The connection of ``session`` ended: its monitor list goes with it."""
        self._away_notify.discard(session)
        if session.has_mode("i"):
            self.set_invisible(session, False)
        key = name_key(session.nick)
        if self._identities.get(key) is session:
            self._identities[key] = Told(session.username, session.realname)
        for nick in list(session.monitoring):
            self.unmonitor(session, nick)

    def _remember(self, nick: str, identity: Identity | None) -> None:
        username = identity.username if identity is not None else nick
        realname = identity.realname if identity is not None else nick
        self.whowas.append(Departed(nick, username, realname, self._services.clock.time()))

    def departed(self, nick: str) -> list[Departed]:
        """WHOWAS entries of ``nick``, newest first."""
        key = name_key(nick)
        return [entry for entry in reversed(self.whowas) if name_key(entry.nick) == key]

    # -- MONITOR -------------------------------------------------------------------

    def monitor(self, session: IrcSession, nick: str) -> bool:
        """Add ``nick`` to the list of ``session``; False when the list is full."""
        key = name_key(nick)
        if key in session.monitoring:
            return True
        if len(session.monitoring) >= MONITOR_MAX:
            return False
        session.monitor(key, nick)
        self._monitors.setdefault(key, set()).add(session)
        return True

    def unmonitor(self, session: IrcSession, nick: str) -> None:
        key = name_key(nick)
        session.unmonitor(key)
        watchers = self._monitors.get(key)
        if watchers is not None:
            watchers.discard(session)
            if not watchers:
                del self._monitors[key]

    # -- presence (chatd.domain.presence.PresenceWatcher) -----------------------------

    def came_online(self, user: User) -> None:
        # Every log-in of either listener comes here: the mask is rendered only
        # for a name somebody monitors.
        self._renderer.forget_mask(user.name)
        if name_key(user.name) in self._monitors:
            self._tell_monitors(user.name, n.RPL_MONONLINE, self._renderer.mask(user.name))
        self._tell_away(user, "")

    def went_offline(self, user: User) -> None:
        identity = self._identities.pop(name_key(user.name), None)
        if identity is not None:
            self._renderer.forget_masks()
        self._bots.discard(name_key(user.name))
        self._remember(user.name, identity)
        self._tell_monitors(user.name, n.RPL_MONOFFLINE, user.name)
        if not is_guest(user):  # (a guest is not offline but gone: its QUIT says so)
            self._tell_away(user, "offline")

    def away_changed(self, user: User, text: str) -> None:
        self._tell_away(user, text)

    def _tell_monitors(self, name: str, numeric: str, target: str) -> None:
        server = self._renderer.server
        for session in self._monitors.get(name_key(name), ()):
            session.queue_lines([format_line(numeric, session.nick, target, source=server)])

    def _tell_away(self, user: User, text: str) -> None:
        """``away-notify``: the new away state of ``user`` to the sessions sharing a
        channel with them (``AWAY :text``, or ``AWAY`` when back)."""
        # Every login and logout of either listener comes here: the common case,
        # nobody asking for away-notify, costs nothing.
        if not self._away_notify:
            return
        listening = list(self._away_notify)
        params = (text,) if text else ()
        lines = self._renderer.tagging([format_line("AWAY", *params,
                                                    source=self._renderer.mask(user.name))])
        for session in self.sharing_channel(user, listening):
            if session.user is not user:
                session.queue_lines(lines(session.key))

    def sharing_channel(self, user: User,
                        among: Iterable[IrcSession] | None = None) -> Iterator[IrcSession]:
        """The registered IRC sessions (of ``among``) shown a channel ``user`` is in."""
        rooms = {room.id for room in self._services.rooms.of_user(user)}
        for session in list(self.sessions() if among is None else among):
            if session.registered and not rooms.isdisjoint(session.joined):
                yield session


    def sessions(self) -> list[IrcSession]:
        """Every registered IRC session (WALLOPS, WHO masks, SETNAME): the
        presence's connections are the one list of them (a set of its own here
        cost each held connection about 40 bytes, for these rare passes)."""
        return [s for s in self._services.presence.sessions
                if isinstance(s, IrcSession) and s.registered]
