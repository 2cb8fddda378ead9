"""Room fan-out by the turn (chatd.feed): shared lanes, taps, and order kept exactly.

The real LocalBus, Room, Session and Outbox are used; the only stand-in is the
Outbox's abstract ``wake`` hook (a connection schedules its flush there).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.delivery import LocalBus
from chatd.feed import Outbox
from chatd.messaging import message_record
from chatd.outgoing import Outgoing
from chatd.ratelimit import TokenBucket
from chatd.render import Style, render
from chatd.room import Room
from chatd.session import Session
from storage.records import MessageRecord, RoomRecord

JSON, TEXT = Style(fmt="json"), Style(fmt="text")


class TurnOutbox(Outbox):
    """An outbox whose turn ends when the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False
        self.woken = 0
        self.received = bytearray()

    def wake(self) -> bool:
        if self.closing:
            return False
        self.woken += 1
        return True

    @property
    def congested(self) -> bool:
        return False

    def close(self, reason: str) -> None:
        self.closing = True

    def flush(self) -> None:
        self.received += self.take()


class World:
    """A bus, rooms and sessions; ``end_turn`` flushes every outbox as the scheduler does."""

    def __init__(self, styles: list[Style], rooms: int = 2) -> None:
        self.bus = LocalBus()
        self.rooms = [Room(RoomRecord(i + 1, f"room{i + 1}", "open", "", 0.0))
                      for i in range(rooms)]
        self.outs = [TurnOutbox() for _ in styles]
        self.sessions = [Session(out, f"peer{i}", TokenBucket(1e6, 1e6, lambda: 0.0))
                         for i, out in enumerate(self.outs)]
        for session, style in zip(self.sessions, styles, strict=True):
            session.set_style(style)
        self.next_id = 1

    def message(self, room: Room, text: str = "") -> Outgoing:
        msg = MessageRecord(self.next_id, 1, "ann", text or f"m{self.next_id}", 0.0,
                            room_id=room.id)
        self.next_id += 1
        return Outgoing(message_record(msg, room_name=room.name), room.id)

    def direct(self, message_id: int) -> dict[str, Any]:
        msg = MessageRecord(message_id, 2, "bob", "dm", 0.0, recipient_id=1)
        return message_record(msg, to="ann")

    def post(self, room: Room, skip: Session | None = None, text: str = "") -> Outgoing:
        item = self.message(room, text)
        self.bus.to_room(room, item, skip)
        return item

    def end_turn(self) -> None:
        self.bus.end_turn()
        for out in self.outs:
            out.flush()


def ids(data: bytes | bytearray) -> list[int]:
    return [json.loads(line)["id"] for line in bytes(data).splitlines() if b'"id"' in line]


def test_a_message_is_rendered_once_and_shared_whole() -> None:
    world = World([JSON] * 5)
    room = world.rooms[0]
    room.connect(world.sessions)
    first = world.post(room)
    world.post(room)
    assert room.feed is not None and room.feed.taps == 5
    assert len(first.cache) == 1  # one style, one rendering
    taken = [out.take() for out in world.outs]
    assert all(data is taken[0] for data in taken)  # one joined bytes object for all
    assert ids(taken[0]) == [1, 2]


def test_a_full_room_costs_no_per_member_work_after_the_first_message() -> None:
    world = World([JSON] * 3)
    room = world.rooms[0]
    room.connect(world.sessions)
    world.post(room)
    woken = [out.woken for out in world.outs]
    world.post(room)
    world.post(room)
    assert [out.woken for out in world.outs] == woken == [1, 1, 1]
    world.end_turn()
    assert all(ids(out.received) == [1, 2, 3] for out in world.outs)


def test_a_direct_item_between_room_messages_keeps_its_place() -> None:
    world = World([JSON, JSON])
    room = world.rooms[0]
    room.connect(world.sessions)
    world.post(room)
    alone = world.sessions[0]
    alone.deliver(Outgoing(world.direct(100)))
    world.post(room)
    alone.send({"type": "ok", "id": 101})
    world.post(room)
    world.end_turn()
    assert ids(world.outs[0].received) == [1, 100, 2, 101, 3]
    assert ids(world.outs[1].received) == [1, 2, 3]


def test_skip_leaves_out_exactly_one_message() -> None:
    world = World([JSON, JSON])
    room = world.rooms[0]
    room.connect(world.sessions)
    sender = world.sessions[0]
    world.post(room)
    world.post(room, skip=sender)
    world.post(room)
    world.end_turn()
    assert ids(world.outs[0].received) == [1, 3]
    assert ids(world.outs[1].received) == [1, 2, 3]


def test_two_rooms_interleaving_keep_the_order_of_a_member_of_both() -> None:
    world = World([JSON, JSON, JSON])
    first, second = world.rooms
    first.connect(world.sessions[:2])
    second.connect(world.sessions[1:])
    for room in (first, second, first, first, second):
        world.post(room)
    world.end_turn()
    assert ids(world.outs[0].received) == [1, 3, 4]
    assert ids(world.outs[1].received) == [1, 2, 3, 4, 5]
    assert ids(world.outs[2].received) == [2, 5]


def test_joining_and_leaving_mid_turn() -> None:
    world = World([JSON, JSON, JSON])
    room = world.rooms[0]
    room.connect(world.sessions[:2])
    world.post(room)
    room.connect(world.sessions[2:])
    world.post(room)
    room.disconnect(world.sessions[:1])
    world.post(room)
    assert room.feed is not None and room.feed.taps == 2
    world.end_turn()
    assert ids(world.outs[0].received) == [1, 2]
    assert ids(world.outs[1].received) == [1, 2, 3]
    assert ids(world.outs[2].received) == [2, 3]


def test_the_current_room_and_style_change_how_later_messages_look() -> None:
    world = World([TEXT])
    room = world.rooms[0]
    session = world.sessions[0]
    room.connect([session])
    world.post(room, text="before")
    session.current_room = room
    world.post(room, text="current")
    session.set_style(JSON)
    world.post(room, text="as json")
    world.end_turn()
    lines = bytes(world.outs[0].received).splitlines()
    assert b"room1" in lines[0] and b"before" in lines[0]
    assert b"room1" not in lines[1] and b"current" in lines[1]
    assert lines[2].startswith(b"{") and b"as json" in lines[2]


def test_a_new_turn_starts_a_new_feed() -> None:
    world = World([JSON, JSON])
    room = world.rooms[0]
    room.connect(world.sessions)
    world.post(room)
    old = room.feed
    world.end_turn()
    world.post(room)
    assert room.feed is not old and room.feed is not None and room.feed.taps == 2
    world.end_turn()
    assert all(ids(out.received) == [1, 2] for out in world.outs)


def test_coalesced_presence_is_summarised_before_the_next_message() -> None:
    world = World([JSON, JSON])
    room = world.rooms[0]
    room.connect(world.sessions)
    world.sessions[0].coalesced = 2
    world.post(room)
    world.post(room)
    world.end_turn()
    lines = bytes(world.outs[0].received).splitlines()
    assert b'"coalesced":2' in lines[0]
    assert ids(b"\n".join(lines[1:])) == [1, 2]
    assert ids(world.outs[1].received) == [1, 2]


def test_a_closing_connection_gets_nothing_and_hurts_nobody() -> None:
    world = World([JSON, JSON])
    room = world.rooms[0]
    room.connect(world.sessions)
    world.outs[0].closing = True
    world.post(room)
    world.post(room)
    assert room.feed is not None and room.feed.taps == 1
    world.end_turn()
    assert world.outs[0].received == b""
    assert ids(world.outs[1].received) == [1, 2]


def test_discard_releases_the_tap() -> None:
    world = World([JSON, JSON])
    room = world.rooms[0]
    room.connect(world.sessions)
    world.post(room)
    world.outs[0].discard()
    assert room.feed is not None and room.feed.taps == 1
    world.post(room)
    world.end_turn()
    assert ids(world.outs[1].received) == [1, 2]


def test_presence_events_go_one_by_one_in_order() -> None:
    world = World([JSON, JSON])
    room = world.rooms[0]
    room.connect(world.sessions)
    world.post(room)
    world.bus.to_room(room, Outgoing({"type": "event", "event": "join", "room": room.name,
                                      "user": "zed", "id": 50}, room.id))
    world.post(room)
    world.end_turn()
    assert all(ids(out.received) == [1, 50, 2] for out in world.outs)


# -- the model: every item reaches every current endpoint at once, rendered as
# Session.deliver renders it; the feed must produce exactly the same bytes.

operations = st.lists(st.one_of(
    st.tuples(st.just("post"), st.integers(0, 1), st.none() | st.integers(0, 3)),
    st.tuples(st.just("direct"), st.integers(0, 3), st.none()),
    st.tuples(st.just("send"), st.integers(0, 3), st.none()),
    st.tuples(st.just("connect"), st.integers(0, 1), st.integers(0, 3)),
    st.tuples(st.just("disconnect"), st.integers(0, 1), st.integers(0, 3)),
    st.tuples(st.just("current"), st.integers(-1, 1), st.integers(0, 3)),
    st.tuples(st.just("style"), st.integers(0, 1), st.integers(0, 3)),
    st.tuples(st.just("turn"), st.none(), st.none()),
), max_size=60)


class Model:
    def __init__(self, styles: list[Style]) -> None:
        self.styles = list(styles)
        self.current: list[int | None] = [None] * len(styles)
        self.members: list[set[int]] = [set(), set()]
        self.out = [bytearray() for _ in styles]

    def deliver(self, who: int, record: dict[str, Any], room_id: int | None) -> None:
        self.out[who] += render(record, self.styles[who],
                                room_id is not None and room_id == self.current[who])


def apply(world: World, model: Model, op: tuple[str, Any, Any]) -> None:
    kind, a, b = op
    if kind == "post":
        room = world.rooms[a]
        item = world.post(room, None if b is None else world.sessions[b])
        for who in sorted(model.members[a]):
            if who != b:
                model.deliver(who, item.record, room.id)
    elif kind == "direct":
        record = world.direct(1000 + world.next_id)
        world.next_id += 1
        world.sessions[a].deliver(Outgoing(record))
        model.deliver(a, record, None)
    elif kind == "send":
        record = {"type": "ok", "id": 2000 + world.next_id}
        world.next_id += 1
        world.sessions[a].send(record)
        model.deliver(a, record, None)
    elif kind == "connect":
        world.rooms[a].connect([world.sessions[b]])
        model.members[a].add(b)
    elif kind == "disconnect":
        world.rooms[a].disconnect([world.sessions[b]])
        model.members[a].discard(b)
    elif kind == "current":
        world.sessions[b].current_room = None if a < 0 else world.rooms[a]
        model.current[b] = None if a < 0 else world.rooms[a].id
    elif kind == "style":
        style = (JSON, TEXT)[a]
        world.sessions[b].set_style(style)
        model.styles[b] = style
    else:
        world.end_turn()


@settings(max_examples=300, deadline=None)
@given(ops=operations, styles=st.lists(st.sampled_from([JSON, TEXT]), min_size=4, max_size=4))
def test_the_feed_delivers_exactly_what_one_by_one_delivery_would(
        ops: list[tuple[str, Any, Any]], styles: list[Style]) -> None:
    world, model = World(styles), Model(styles)
    for op in ops:
        apply(world, model, op)
        for room in world.rooms:
            feed = room.feed
            if feed is not None and feed.turn == world.bus.turn:
                tapped = sum(out.feed is feed for out in world.outs)
                assert feed.taps == tapped
    world.end_turn()
    assert [bytes(out.received) for out in world.outs] == [bytes(b) for b in model.out]
