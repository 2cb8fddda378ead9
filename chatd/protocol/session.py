"""The protocol state of one client connection.

A session knows who is logged in, which room plain lines go to, and how the
client wants its output; it renders what the domain delivers and hands bytes
to its :class:`Output` (the connection). It never touches a socket itself.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Awaitable, Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Protocol

from chatd.delivery.outgoing import PRESENCE, Outgoing
from chatd.domain.events import Event, Message
from chatd.protocol.records import record_for, record_of
from chatd.protocol.render import Style, lane_renderer, render, style_key

if TYPE_CHECKING:
    from chatd.delivery.feed import Lane, RoomFeed
    from chatd.domain.accounts import User
    from chatd.domain.room import Room
    from chatd.domain.scopes import Scope
    from chatd.protocol.pipeline import Posts

log = logging.getLogger(__name__)
_ids = itertools.count(1)

# Every connection starts in the default style: one shared instance (styles are
# frozen) and its lane keys and renderers, looked up once, not per connection.
DEFAULT_STYLE = Style()
# A logged-in session's anonymous start: its login timeout never falls due.
_NEVER: Final = math.inf
# A session keeps, for messages of its current room and of the others, the
# lane key and renderer of its style as one pair each (two slots, not four).
_DEFAULT_LANES = ((style_key(DEFAULT_STYLE, True), lane_renderer(DEFAULT_STYLE, True)),
                  (style_key(DEFAULT_STYLE, False), lane_renderer(DEFAULT_STYLE, False)))


class SessionState(Enum):
    """Where a connection is in its life; commands declare the states they accept."""

    CONNECTED = "connected"
    AUTHENTICATED = "authenticated"
    CLOSING = "closing"


class LineSink(Protocol):
    """Takes a connection's raw lines for a while (an upload's data lines)."""

    def line(self, text: str) -> Awaitable[None] | None: ...
    def abort(self, code: str) -> None: ...


class Output(Protocol):
    """What a session needs from its transport (a :class:`chatd.delivery.feed.Outbox`).

    ``feed`` is the room feed the output is tapped on, if any.
    """

    feed: RoomFeed | None

    def tap(self, feed: RoomFeed, lane: Lane) -> None: ...
    def untap(self) -> None: ...

    @property
    def congested(self) -> bool: ...
    @property
    def peer(self) -> str: ...
    def write(self, data: bytes) -> None: ...
    def close(self, reason: str, going_away: bool = False) -> None: ...


class Session:
    """One connection's protocol state and its delivery entry point."""

    __slots__ = (
        "_current",
        "_other",
        "_peer",
        "_room",
        "_room_id",
        "anonymous_since",
        "coalesced",
        "held",
        "id",
        "line_sink",
        "out",
        "posts",
        "resume_id",
        "scopes",
        "state",
        "style",
        "token_id",
        "user",
    )

    def __init__(self, out: Output, peer: str | None = None, now: float = 0.0) -> None:
        self.id = next(_ids)
        # Since when nobody is logged in here (connect or logout): the login timeout's start.
        self.anonymous_since = now
        self.out = out
        # None: the output knows (a connection asks its socket, rather than keep
        # a string of its own for life: 64 bytes of each held connection).
        self._peer = peer
        self.state = SessionState.CONNECTED
        self.user: User | None = None
        # What the login may do: None for every scope (a password login), else
        # the token's (chatd.domain.scopes); the dispatcher checks each command.
        self.scopes: frozenset[Scope] | None = None
        # The resume token handed out at this login, revoked at /logout.
        self.resume_id: int | None = None
        # The API token of this login (chatd.domain.ports.Endpoint.token_id). A
        # slot, not an entry in an index of token sessions: the session's object
        # stays in the same allocator size class with it (168 -> 176 bytes, 296 ->
        # 304 for IRC), where an index cost every token log-in some 50 bytes.
        self.token_id: int | None = None
        self._room: Room | None = None
        self._room_id = -1
        # While set, received lines go to it instead of the command dispatcher.
        self.line_sink: LineSink | None = None
        # Posts waiting for a cluster's order (chatd.protocol.pipeline); made at the first.
        self.posts: Posts | None = None
        # Presence events skipped under output pressure, summarised once it eases.
        self.coalesced = 0
        # While set, what the bus delivers waits here (a /resume replays first).
        self.held: list[Outgoing] | None = None
        self.style = DEFAULT_STYLE
        self._current, self._other = _DEFAULT_LANES

    @property
    def peer(self) -> str:
        """The client's address, ``host:port``."""
        return self._peer if self._peer is not None else self.out.peer

    @property
    def logged_in(self) -> bool:
        return self.state is SessionState.AUTHENTICATED

    @property
    def current_room(self) -> Room | None:
        """Where plain lines go; messages of this room are shown without its name."""
        return self._room

    @current_room.setter
    def current_room(self, room: Room | None) -> None:
        self.out.untap()  # a tapped lane renders for the old current room
        self._room = room
        self._room_id = room.id if room is not None else -1

    def set_style(self, style: Style) -> None:
        """Change the output style (format, colour, timestamps, theme)."""
        self.out.untap()
        self.style = style
        self._current = (style_key(style, True), lane_renderer(style, True))
        self._other = (style_key(style, False), lane_renderer(style, False))

    def tap(self, feed: RoomFeed, item: Outgoing) -> None:
        """Take the room's messages of this turn from ``item`` on (see chatd.delivery.feed):
        the room fan-out's fast path for messages."""
        if self.held is not None:
            self.held.append(item)
            return
        if self.coalesced:
            self.deliver(item)
            return
        if feed.room_id == self._room_id:
            key, render = self._current
        else:
            key, render = self._other
        lane = feed.lanes.get(key)  # RoomFeed.lane's lookup, without its call
        if lane is None:
            lane = feed.lane(key, render, item)
        self.out.tap(feed, lane)

    def deliver(self, item: Outgoing) -> None:
        """Queue ``item`` for this connection. The fan-out hot path: keep it lean."""
        if self.held is not None:
            self.held.append(item)
            return
        key = self._current[0] if item.room_id == self._room_id else self._other[0]
        if item.priority and self.out.congested:
            self._shed(item)
            return
        if self.coalesced:
            self._summarise_coalesced()
        data = item.cache.get(key)
        if data is None:
            data = item.cache[key] = render(record_for(item), self.style,
                                            key == self._current[0])
        if data:
            self.out.write(data)

    def hold_live(self) -> None:
        """Keep what the bus delivers from now on until :meth:`end_hold` (the
        replay of ``/resume`` goes first, in id order)."""
        self.out.untap()
        if self.held is None:
            self.held = []

    def end_hold(self, found: Sequence[Message], after_id: int,
                label: str | None) -> list[Message]:
        """Stop holding: show the replay of the messages ``found`` above ``after_id``
        (in id order; labelled ``label``, marked ``replay``), then deliver what was
        held. A held message up to the replay's last id takes its place in the
        replay (once, if it was found too); the rest follows in the order it
        came, so the ids this connection sees keep increasing. Returns the replay."""
        held, self.held = self.held or [], None
        replay, live = _merged(found, held, after_id)
        for event in replay:
            self.send({**record_of(event), "replay": True}, label)
        for item in live:
            self.deliver(item)
        return replay

    def _shed(self, item: Outgoing) -> None:
        if item.priority == PRESENCE:
            self.coalesced += 1
            # The summary must come before the room's next message: no tap may
            # carry that message past it.
            self.out.untap()

    def _summarise_coalesced(self) -> None:
        count, self.coalesced = self.coalesced, 0
        self.send({"type": "notice", "coalesced": count,
                   "text": f"{count} join/leave event{'s' * (count != 1)} skipped while your "
                           "connection was behind; /who shows who is in a room."})

    # -- the domain's Endpoint (chatd.domain.ports) ---------------------------

    @property
    def closing(self) -> bool:
        return self.state is SessionState.CLOSING

    def signed_in(self, user: User, room: Room | None) -> None:
        self.user = user
        self.state = SessionState.AUTHENTICATED
        # Not anonymous until a log-out: the login timeout cannot fall due (and
        # the float of the connection's start need not stay).
        self.anonymous_since = _NEVER
        if room is not None:
            self.current_room = room

    def signed_out(self, now: float) -> None:
        self.user = None
        self.scopes = None
        self.resume_id = None
        self.token_id = None
        self.current_room = None
        self.anonymous_since = now
        if self.state is SessionState.AUTHENTICATED:
            self.state = SessionState.CONNECTED

    def take_lines(self, sink: LineSink) -> None:
        """Give the lines that follow to ``sink``. A connection that closed while the
        command installing it awaited sends none, and found no sink to end when it
        went: the sink is ended now, as a disconnect ends it (an upload's staging
        file and its place in the quota are freed)."""
        if self.closing:
            sink.abort("disconnected")
            return
        self.line_sink = sink

    def gone(self) -> None:
        if self.line_sink is not None:
            self.line_sink.abort("disconnected")
            self.line_sink = None
        self.state = SessionState.CLOSING

    @property
    def congested(self) -> bool:
        """The connection's output is behind (a download waits for it)."""
        return self.out.congested

    def left_room(self, room: Room) -> None:
        if self._room is room:
            self.current_room = None

    def reply(self, item: Outgoing, label: str) -> None:
        """Show a delivered item as part of the reply labelled ``label``."""
        self.send(record_for(item), label)

    def send(self, record: Mapping[str, Any] | Event, label: str | None = None) -> None:
        """Render and queue one record (or event) meant for this connection only."""
        if isinstance(record, Event):
            record = record_of(record)
        room = self.current_room
        current = room is not None and record.get("room") == room.name
        data = render(record, self.style, current, label)
        if data:
            self.out.write(data)

    def close(self, reason: str, going_away: bool = False) -> None:
        self.state = SessionState.CLOSING
        self.out.close(reason, going_away)

    def __repr__(self) -> str:
        who = self.user.name if self.user else "-"
        return f"<Session {self.id} {who} {self.peer}>"


def _merged(found: Sequence[Message], held: list[Outgoing],
            after_id: int) -> tuple[list[Message], list[Outgoing]]:
    """The replay (``found`` and the held messages in its range, by id, once each)
    and the held items left to deliver live after it."""
    top = max((m.id for m in found if m.id is not None), default=after_id)
    replay: dict[int, Message] = {m.id: m for m in found if m.id is not None}
    live: list[Outgoing] = []
    for item in held:
        event = item.event
        if isinstance(event, Message) and event.id is not None and after_id < event.id <= top:
            replay.setdefault(event.id, event)
        else:
            live.append(item)
    return [replay[i] for i in sorted(replay)], live
