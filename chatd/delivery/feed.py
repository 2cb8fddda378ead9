"""Room fan-out by the turn: a room's messages of one loop turn, shared by its members.

Handing every message to every member's connection costs one Python call per
delivery, which dominated the server's CPU in busy rooms. Instead a room keeps
a :class:`RoomFeed` for the current turn of the event loop. Each message is
rendered once per output style and appended to that style's :class:`Lane`
(the connection that opens a lane brings the style's render function: the
feed knows nothing of formats).
A member's connection (its :class:`Outbox`) *taps* the lane: it remembers the
lane and the index of the first message it takes, and later messages of the
room in the same turn reach it without any work per member. At the turn's
flush, a connection that took the whole lane writes the lane's bytes, joined
once for all such connections; any other takes its slice.

Order is kept exactly. A connection holds at most one tap, always after
everything else it has queued; before anything else is queued for it (a reply,
a direct message, another room's message), the tap is closed: the messages it
took so far become ordinary queued bytes. The room keeps a count of tapped
members, so while every member is tapped a message costs a few appends
whatever the room's size; otherwise the untapped members are tapped again.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd.delivery.outgoing import Outgoing

# One output style's rendering of an item, for the room that is (or is not)
# the recipients' current room: made by the front end once per style change
# (it builds the item's record from its event on first use). None refuses the
# item: what the connections on the lane show of it depends on each of them
# (an IRC client's channels, for example), so they take it one by one.
Render = Callable[["Outgoing"], "bytes | None"]


class Lane:
    """One output style's bytes of a room's messages in the current turn."""

    __slots__ = ("_joined", "_joined_count", "chunks", "closed", "key", "render")

    def __init__(self, key: int, render: Render) -> None:
        self.key = key
        # The style's rendering, for the room as the connections on this lane see
        # it (the text format leaves the name of the current room out).
        self.render = render
        self.chunks: list[bytes] = []
        self._joined = b""
        self._joined_count = 0
        # Set when the lane refused an item: it takes no more.
        self.closed = False

    def add(self, item: Outgoing) -> bool:
        """Append ``item``'s bytes; False (and the lane closed) when the render refuses
        it, as an IRC lane refuses what is not a plain message."""
        key = self.key
        data = item.cache.get(key)
        if data is None:
            data = self.render(item)
            if data is None:
                self.closed = True
                return False
            item.cache[key] = data
        self.chunks.append(data)
        return True

    def joined(self) -> bytes:
        """Every chunk so far as one bytes object, joined once for all who take it whole."""
        if self._joined_count != len(self.chunks):
            self._joined = b"".join(self.chunks)
            self._joined_count = len(self.chunks)
        return self._joined


class RoomFeed:
    """A room's messages of one turn, one lane per output style in use."""

    __slots__ = ("lanes", "room_id", "taps")

    def __init__(self, room_id: int) -> None:
        self.room_id = room_id
        self.lanes: dict[int, Lane] = {}
        # How many connections hold a tap on this feed now.
        self.taps = 0

    def add(self, item: Outgoing) -> bool:
        """Append a message to every lane (the members already tapped receive it).

        False when a lane refused it (see :class:`Lane`): that lane is closed and
        dropped from the feed, and its connections must be untapped (it took the
        messages before) and given ``item`` one by one."""
        refused = False
        for lane in self.lanes.values():
            if not lane.add(item):
                refused = True
        if refused:
            self.lanes = {key: lane for key, lane in self.lanes.items() if not lane.closed}
        return not refused

    def lane(self, key: int, render: Render, item: Outgoing) -> Lane:
        """The lane of ``key`` (rendered by ``render``); a new one starts with ``item``,
        the message being added."""
        lane = self.lanes.get(key)
        if lane is None:
            lane = self.lanes[key] = Lane(key, render)
            lane.add(item)
        return lane


class Outbox(abc.ABC):
    """A connection's output of the current turn: queued bytes, then at most one tap.

    ``wake()`` is called before the first output of a turn: the owner schedules
    its flush then, and returns False when it is closing (nothing is queued).
    """

    __slots__ = ("_pending", "feed", "lane", "lane_start")

    def __init__(self) -> None:
        # The bytes queued this turn; None when there are none, so the many
        # connections with nothing to send hold no list.
        self._pending: list[bytes] | None = None
        self.feed: RoomFeed | None = None
        self.lane: Lane | None = None
        self.lane_start = 0

    @property
    def pending(self) -> list[bytes]:
        """A copy of the bytes queued so far this turn (the tap's not included)."""
        return list(self._pending or ())

    def held(self) -> int:
        """How many bytes wait for this turn's flush, the tap's included."""
        held = sum(map(len, self._pending)) if self._pending is not None else 0
        lane = self.lane
        if lane is not None:
            held += sum(map(len, lane.chunks[self.lane_start:]))
        return held

    @abc.abstractmethod
    def wake(self) -> bool:
        """Output starts for this turn: schedule the flush; False once closing."""

    def write(self, data: bytes) -> None:
        """Queue ``data`` after everything queued or tapped so far."""
        if self.lane is not None:
            self.untap()
        pending = self._pending
        if pending is not None:
            pending.append(data)
        elif self.wake():
            self._pending = [data]

    def tap(self, feed: RoomFeed, lane: Lane) -> None:
        """Take ``lane`` from its last chunk on, until untapped or taken."""
        if self.lane is not None:
            self.untap()
        if self._pending is not None or self.wake():
            self.feed = feed
            self.lane = lane
            self.lane_start = len(lane.chunks) - 1
            feed.taps += 1

    def untap(self) -> None:
        """Something else comes next: queue what the tap took so far as plain bytes
        (nothing to do without a tap)."""
        lane = self.lane
        if lane is None:
            return
        taken = lane.chunks[self.lane_start:]
        if self._pending is None:
            self._pending = taken
        else:
            self._pending.extend(taken)
        self._release()

    def take(self) -> bytes:
        """The turn's output as one bytes object (b"" if none); the outbox is empty after."""
        lane = self.lane
        if lane is not None:
            if self._pending is None and self.lane_start == 0:
                # The common case, a whole lane: _release inlined (once per
                # connection per turn).
                feed = self.feed
                assert feed is not None
                feed.taps -= 1
                self.feed = self.lane = None
                return lane.joined()
            self.untap()
        pending, self._pending = self._pending, None
        if not pending:
            return b""
        return pending[0] if len(pending) == 1 else b"".join(pending)

    def discard(self) -> None:
        """Drop the turn's output (the connection is gone)."""
        self._pending = None
        if self.feed is not None:
            self._release()

    def _release(self) -> None:
        feed = self.feed
        assert feed is not None
        feed.taps -= 1
        self.feed = self.lane = None
