"""Room fan-out by the turn (chatd.delivery.feed) without sockets.

The real LocalBus, Room, Session, Outgoing and RoomFeed/Lane/Outbox are driven
directly. The only stand-in is :class:`Box`, an :class:`Outbox` whose ``wake()``
records that it was woken and refuses once it is closing (as a closing
connection does); everything else, ``write`` included, is the real Outbox.

Every test checks what each connection gets against what a naive delivery would
give: each item rendered with :func:`chatd.protocol.render.render` for each recipient,
at once, as :meth:`Session.deliver` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from chatd.delivery.bus import LocalBus
from chatd.delivery.feed import Outbox
from chatd.delivery.outgoing import PRESENCE, Outgoing
from chatd.domain import events
from chatd.domain.accounts import User
from chatd.domain.room import Member, Role, Room
from chatd.protocol.records import record_for
from chatd.protocol.render import Style, render
from chatd.protocol.session import Session
from storage.records import RoomRecord, UserRecord

TEXT = Style()
JSON = Style(fmt="json")
TEXT_TS = Style(timestamps=True)
TEXT_COLOUR = Style(color=True, theme="dark")
TS = "2027-01-15T08:00:00.000Z"
TS_EPOCH = datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()  # TS


class Box(Outbox):
    """A connection's output without a transport: what a turn's flush would write."""

    def __init__(self) -> None:
        super().__init__()
        self.wakes = 0
        self.closing = False
        self.congested = False

    def wake(self) -> bool:
        if self.closing:
            return False
        self.wakes += 1
        return True

    def close(self, reason: str, going_away: bool = False) -> None:
        self.closing = True

    def peek(self) -> bytes:
        """What take() would return now, without taking it."""
        tapped = b"" if self.lane is None else b"".join(self.lane.chunks[self.lane_start:])
        return b"".join(self.pending) + tapped


# -- building blocks ---------------------------------------------------------------


def make_room(room_id: int = 1, name: str = "general") -> Room:
    return Room(RoomRecord(room_id, name, "open", "", 0.0))


def make_session(style: Style = TEXT, current: Room | None = None,
                 rooms: Iterable[Room] = (), bus: LocalBus | None = None) -> Session:
    session = Session(Box(), "127.0.0.1:1")
    if style != TEXT:
        session.set_style(style)
    session.current_room = current
    for room in rooms:
        assert bus is not None
        bus.connect(room, (session,))
    return session


def box(session: Session) -> Box:
    out = session.out
    assert isinstance(out, Box)
    return out


_ids = iter(range(1, 10**9))


def room_msg(room: Room, text: str, sender: str = "alice", action: bool = False) -> Outgoing:
    return Outgoing(events.Message(sender, text, TS_EPOCH, next(_ids), room=room.name,
                                   msg_kind="action" if action else "text"), room.id)


_EVENTS: dict[str, Any] = {"join": events.Joined, "kick": events.Kicked,
                           "topic": events.TopicChanged, "typing": events.Typing}


def room_event(room: Room, event: str, **fields: str) -> Outgoing:
    if event == "leave":
        return Outgoing(events.Left(room.name, fields["user"], fields["user"]), room.id)
    return Outgoing(_EVENTS[event](room=room.name, **fields), room.id)


def direct_msg(to: str, text: str, sender: str = "carol") -> Outgoing:
    return Outgoing(events.Message(sender, text, TS_EPOCH, next(_ids), to=to))


def naive(session: Session, item: Outgoing) -> bytes:
    """The bytes Session.deliver gives ``session`` for ``item`` (no summary, not shed)."""
    room = session.current_room
    current = room is not None and item.room_id == room.id
    return render(record_for(item), session.style, current)


def summary(count: int) -> dict[str, Any]:
    """The notice of coalesced presence events (docs/PROTOCOL.md §5.6)."""
    return {"type": "notice", "coalesced": count,
            "text": f"{count} join/leave event{'s' * (count != 1)} skipped while your "
                    "connection was behind; /who shows who is in a room."}


def check_taps(bus: LocalBus, rooms: Iterable[Room], sessions: Iterable[Session]) -> None:
    """A room feed's ``taps`` is the number of connections tapped on it, all of them members."""
    sessions = list(sessions)
    for room in rooms:
        feed = bus.feed_of(room)
        if feed is None:
            continue
        tapped = [s for s in sessions if s.out.feed is feed]
        assert feed.taps == len(tapped), (room.name, feed.taps, tapped)
        assert all(s in bus.in_room(room) for s in tapped)
    for session in sessions:
        out = box(session)
        assert (out.feed is None) == (out.lane is None)
        if out.feed is not None:
            assert out.lane is not None and out.lane in out.feed.lanes.values()


def end_turn(bus: LocalBus, sessions: Iterable[Session]) -> dict[Session, bytes]:
    """What FlushScheduler.flush does: end the turn, then take every connection's output."""
    bus.end_turn()
    return {session: box(session).take() for session in sessions}


# -- one room, one turn --------------------------------------------------------------


def test_a_message_is_rendered_once_per_style_and_shared_by_every_member() -> None:
    bus, room = LocalBus(), make_room()
    texts = [make_session(TEXT, room, [room], bus) for _ in range(6)]
    jsons = [make_session(JSON, room, [room], bus) for _ in range(4)]
    members = texts + jsons
    items = [room_msg(room, f"m{n}") for n in range(3)]
    for item in items:
        bus.deliver_to_room(room, item)
        check_taps(bus, [room], members)
        assert bus.feed_of(room) is not None and bus.feed_of(room).taps == len(members)
    # Two lanes (one per style), each message rendered once per lane: the
    # render cache of each item holds one rendering per style.
    assert bus.feed_of(room) is not None and len(bus.feed_of(room).lanes) == 2
    assert all(len(item.cache) == 2 for item in items)
    # Every member was woken once for the turn, whatever the number of messages.
    assert [box(s).wakes for s in members] == [1] * len(members)
    feed = bus.feed_of(room)
    out = end_turn(bus, members)
    check_taps(bus, [room], members)
    for group in (texts, jsons):
        expected = b"".join(naive(group[0], item) for item in items)
        assert out[group[0]] == expected
        # Whole-lane takers share one bytes object.
        assert all(out[s] is out[group[0]] for s in group)
    assert out[texts[0]] == b"<alice> m0\r\n<alice> m1\r\n<alice> m2\r\n"
    assert feed.taps == 0 and bus.feed_of(room) is None


def test_the_messages_of_a_turn_come_out_in_order_events_and_actions_included() -> None:
    bus, room = LocalBus(), make_room()
    members = [make_session(TEXT, room, [room], bus), make_session(JSON, room, [room], bus),
               make_session(TEXT_TS, None, [room], bus),
               make_session(TEXT_COLOUR, None, [room], bus)]
    items = []
    for n in range(40):
        if n % 13 == 5:
            item = room_event(room, "topic", actor="alice", topic=f"topic {n}")
        elif n % 7 == 3:
            item = room_msg(room, f"waves {n}", action=True)
        else:
            item = room_msg(room, f"line {n}", sender=("alice", "bob")[n % 2])
        items.append(item)
        bus.deliver_to_room(room, item)
        check_taps(bus, [room], members)
    out = end_turn(bus, members)
    for session in members:
        assert out[session] == b"".join(naive(session, item) for item in items)
    # Not current: the text format names the room.
    assert out[members[2]].startswith(b"[08:00] #general <alice> line 0\r\n")


def test_an_empty_turn_takes_nothing_and_wakes_nobody() -> None:
    bus, room = LocalBus(), make_room()
    members = [make_session(TEXT, room, [room], bus)]
    assert end_turn(bus, members) == {members[0]: b""}
    assert box(members[0]).wakes == 0


# -- something else queued between room messages -----------------------------------


@pytest.mark.parametrize("how", ["deliver", "send", "send-labelled", "presence"])
def test_a_direct_item_between_two_room_messages_lands_between_them_for_that_member_only(
        how: str) -> None:
    bus, room = LocalBus(), make_room()
    bob = make_session(TEXT, room, [room], bus)
    others = [make_session(TEXT, room, [room], bus), make_session(JSON, None, [room], bus)]
    members = [bob, *others]
    first, second, third = (room_msg(room, f"m{n}") for n in range(3))
    bus.deliver_to_room(room, first)
    if how == "deliver":
        extra = direct_msg("bob", "psst")
        bob.deliver(extra)
        between = naive(bob, extra)
    elif how == "presence":
        # A presence event delivered one by one, to bob only.
        extra = room_event(room, "join", user="dave")
        assert extra.priority == PRESENCE
        bob.deliver(extra)
        between = naive(bob, extra)
    else:
        label = "l1" if how == "send-labelled" else None
        reply = {"type": "ok", "command": "whoami", "message": "you are bob"}
        bob.send(reply, label)
        between = render(reply, bob.style, False, label)
    check_taps(bus, [room], members)
    assert box(bob).feed is None
    bus.deliver_to_room(room, second)
    bus.deliver_to_room(room, third)
    check_taps(bus, [room], members)
    out = end_turn(bus, members)
    assert between
    assert out[bob] == naive(bob, first) + between + naive(bob, second) + naive(bob, third)
    for session in others:
        assert out[session] == b"".join(naive(session, i) for i in (first, second, third))
    assert out[others[0]] is not out[bob]


def test_skip_leaves_out_exactly_that_message_for_the_skipped_session() -> None:
    bus, room = LocalBus(), make_room()
    alice = make_session(TEXT, room, [room], bus)
    bob, carol = make_session(JSON, room, [room], bus), make_session(TEXT, room, [room], bus)
    members = [alice, bob, carol]
    items = [room_msg(room, f"m{n}") for n in range(5)]
    bus.deliver_to_room(room, items[0])
    bus.deliver_to_room(room, items[1], skip=alice)
    check_taps(bus, [room], members)
    # The sender's own copy (its acknowledgement) goes right after, labelled.
    alice.send(record_for(items[1]), "ack")
    bus.deliver_to_room(room, items[2], skip=alice)  # skipped twice in a row
    check_taps(bus, [room], members)
    bus.deliver_to_room(room, items[3])
    bus.deliver_to_room(room, items[4], skip=bob)
    check_taps(bus, [room], members)
    out = end_turn(bus, members)
    assert out[alice] == (naive(alice, items[0]) + render(record_for(items[1]), TEXT, True, "ack")
                          + naive(alice, items[3]) + naive(alice, items[4]))
    assert out[bob] == b"".join(naive(bob, items[n]) for n in (0, 1, 2, 3))
    assert out[carol] == b"".join(naive(carol, item) for item in items)
    assert out[alice] == b"<alice> m0\r\n@ack <alice> m1\r\n<alice> m3\r\n<alice> m4\r\n"


def test_a_session_skipped_on_the_turns_first_message_takes_a_slice_of_the_lane() -> None:
    bus, room = LocalBus(), make_room()
    alice, bob = make_session(TEXT, room, [room], bus), make_session(TEXT, room, [room], bus)
    items = [room_msg(room, f"m{n}") for n in range(3)]
    bus.deliver_to_room(room, items[0], skip=alice)
    assert box(alice).wakes == 0 and box(alice).pending == []
    bus.deliver_to_room(room, items[1])
    bus.deliver_to_room(room, items[2])
    check_taps(bus, [room], [alice, bob])
    out = end_turn(bus, [alice, bob])
    assert out[alice] == b"<alice> m1\r\n<alice> m2\r\n"
    assert out[bob] == b"<alice> m0\r\n<alice> m1\r\n<alice> m2\r\n"


def test_skip_of_a_session_that_is_no_member_changes_nothing() -> None:
    bus, room = LocalBus(), make_room()
    members = [make_session(TEXT, room, [room], bus), make_session(JSON, room, [room], bus)]
    stranger = make_session(TEXT, None)
    items = [room_msg(room, "a"), room_msg(room, "b")]
    bus.deliver_to_room(room, items[0])
    bus.deliver_to_room(room, items[1], skip=stranger)
    check_taps(bus, [room], [*members, stranger])
    out = end_turn(bus, [*members, stranger])
    assert out[stranger] == b""
    for session in members:
        assert out[session] == b"".join(naive(session, item) for item in items)


def test_two_rooms_interleaving_for_a_member_of_both_keep_the_global_order() -> None:
    bus = LocalBus()
    general, dev = make_room(1, "general"), make_room(2, "dev")
    both_text = make_session(TEXT, general, [general, dev], bus)
    both_json = make_session(JSON, dev, [general, dev], bus)
    only_general = make_session(TEXT, general, [general], bus)
    only_dev = make_session(TEXT, dev, [dev], bus)
    sessions = [both_text, both_json, only_general, only_dev]
    rooms = [general, dev]
    sent: list[Outgoing] = []
    for n, room in enumerate([general, general, dev, general, dev, dev, general, dev]):
        item = room_msg(room, f"m{n}")
        sent.append(item)
        bus.deliver_to_room(room, item)
        check_taps(bus, rooms, sessions)
    out = end_turn(bus, sessions)
    check_taps(bus, rooms, sessions)
    for session in sessions:
        received = [i for i in sent if session in (bus.in_room(general) if i.room_id == 1
                                                   else bus.in_room(dev))]
        assert out[session] == b"".join(naive(session, i) for i in received)
    assert out[both_text].split(b"\r\n")[:4] == [b"<alice> m0", b"<alice> m1",
                                                  b"#dev <alice> m2", b"<alice> m3"]


# -- membership changes in the middle of a turn --------------------------------------


def test_a_member_disconnected_mid_turn_receives_nothing_after() -> None:
    bus, room = LocalBus(), make_room()
    bob = make_session(TEXT, room, [room], bus)
    others = [make_session(TEXT, room, [room], bus), make_session(JSON, room, [room], bus)]
    members = [bob, *others]
    before = [room_msg(room, f"before {n}") for n in range(3)]
    after = [room_msg(room, f"after {n}") for n in range(3)]
    for item in before:
        bus.deliver_to_room(room, item)
    bus.disconnect(room, (bob,))
    check_taps(bus, [room], members)
    assert bob not in bus.in_room(room) and box(bob).feed is None
    for item in after:
        bus.deliver_to_room(room, item)
        check_taps(bus, [room], members)
    out = end_turn(bus, members)
    assert out[bob] == b"".join(naive(bob, item) for item in before)
    for session in others:
        assert out[session] == b"".join(naive(session, i) for i in before + after)


def test_a_member_disconnected_mid_turn_keeps_what_another_room_sends() -> None:
    bus = LocalBus()
    general, dev = make_room(1, "general"), make_room(2, "dev")
    bob = make_session(TEXT, general, [general, dev], bus)
    carol = make_session(TEXT, general, [general, dev], bus)
    a, b, c, d = (room_msg(general, "a"), room_msg(dev, "b"), room_msg(general, "c"),
                  room_msg(dev, "d"))
    bus.deliver_to_room(general, a)
    bus.deliver_to_room(dev, b)  # bob's tap moves to dev's feed
    bus.disconnect(general, (bob,))  # not tapped on general's feed: nothing to close
    check_taps(bus, [general, dev], [bob, carol])
    bus.deliver_to_room(general, c)
    bus.deliver_to_room(dev, d)
    out = end_turn(bus, [bob, carol])
    assert out[bob] == b"".join(naive(bob, i) for i in (a, b, d))
    assert out[carol] == b"".join(naive(carol, i) for i in (a, b, c, d))


def test_a_kicked_member_gets_the_kick_event_and_nothing_after() -> None:
    """The room service's kick: the event to the room, then the departure applied."""
    bus, room = LocalBus(), make_room()
    users: dict[str, User] = {}
    sessions: dict[str, list[Session]] = {}
    for uid, (name, style) in enumerate([("alice", TEXT), ("bob", JSON), ("carol", TEXT)], 1):
        user = users[name] = User(UserRecord(uid, name, b"", False, 0.0))
        room.members[uid] = Member(uid, name, Role.OWNER if uid == 1 else Role.MEMBER,
                                   0.0, 0.0, uid)
        # bob has two connections, the second in another style and with no current room.
        for session_style, current in ([(style, room), (TEXT, None)] if name == "bob"
                                       else [(style, room)]):
            session = make_session(session_style, current, [room], bus)
            session.user = user
            bus.add_user(user, session)
            sessions.setdefault(name, []).append(session)
    everyone = [s for group in sessions.values() for s in group]
    before = [room_msg(room, "one"), room_msg(room, "two")]
    kick = room_event(room, "kick", user="bob", actor="alice", reason="spam")
    after = [room_msg(room, "three"), room_event(room, "topic", actor="alice", topic="t"),
             room_msg(room, "four")]
    for item in [*before, kick]:
        bus.deliver_to_room(room, item)
    departure = room.plan_departure(users["bob"].id, 0.0)
    gone = room.apply_departure(departure, 1.0)
    left = [e for user_id in gone for e in bus.disconnect_user(room, user_id)]
    assert sorted(s.id for s in left) == sorted(s.id for s in sessions["bob"])
    for endpoint in left:  # as Rooms does after a departure
        endpoint.left_room(room)
    check_taps(bus, [room], everyone)
    for item in after:
        bus.deliver_to_room(room, item)
        check_taps(bus, [room], everyone)
    out = end_turn(bus, everyone)
    for session, is_current in zip(sessions["bob"], (True, False), strict=True):
        # Rendered as it was when the kick came.
        assert out[session] == b"".join(render(record_for(i), session.style, is_current)
                                        for i in [*before, kick])
    for name in ("alice", "carol"):
        [session] = sessions[name]
        assert out[session] == b"".join(naive(session, i) for i in [*before, kick, *after])


def test_a_member_connected_mid_turn_receives_only_later_messages() -> None:
    bus, room = LocalBus(), make_room()
    members = [make_session(TEXT, room, [room], bus), make_session(JSON, room, [room], bus)]
    late_text, late_json = make_session(TEXT, room), make_session(JSON, None)
    everyone = [*members, late_text, late_json]
    before = [room_msg(room, f"before {n}") for n in range(3)]
    after = [room_msg(room, f"after {n}") for n in range(3)]
    for item in before:
        bus.deliver_to_room(room, item)
    bus.connect(room, (late_text, late_json))
    check_taps(bus, [room], everyone)
    for item in after:
        bus.deliver_to_room(room, item)
        check_taps(bus, [room], everyone)
    out = end_turn(bus, everyone)
    for session in (late_text, late_json):
        assert out[session] == b"".join(naive(session, item) for item in after)
        # A slice of the lane, not the whole of it.
        assert box(session).feed is None
    for session in members:
        assert out[session] == b"".join(naive(session, i) for i in before + after)


def test_a_member_who_left_and_came_back_in_the_same_turn_misses_only_the_gap() -> None:
    bus, room = LocalBus(), make_room()
    bob, carol = make_session(TEXT, room, [room], bus), make_session(TEXT, room, [room], bus)
    items = [room_msg(room, f"m{n}") for n in range(6)]
    bus.deliver_to_room(room, items[0])
    bus.deliver_to_room(room, items[1])
    bus.disconnect(room, (bob,))
    bus.deliver_to_room(room, items[2])
    bus.deliver_to_room(room, items[3])
    bus.connect(room, (bob,))
    check_taps(bus, [room], [bob, carol])
    bus.deliver_to_room(room, items[4])
    bus.deliver_to_room(room, items[5])
    check_taps(bus, [room], [bob, carol])
    out = end_turn(bus, [bob, carol])
    assert out[bob] == b"".join(naive(bob, items[n]) for n in (0, 1, 4, 5))
    assert out[carol] == b"".join(naive(carol, item) for item in items)


# -- a member's way of seeing changes in the middle of a turn ------------------------


def test_a_change_of_current_room_mid_turn_renders_later_messages_for_the_new_room() -> None:
    bus = LocalBus()
    general, dev = make_room(1, "general"), make_room(2, "dev")
    bob = make_session(TEXT, general, [general, dev], bus)
    carol = make_session(TEXT, general, [general, dev], bus)
    sessions = [bob, carol]
    bus.deliver_to_room(general, room_msg(general, "one"))
    bus.deliver_to_room(dev, room_msg(dev, "two"))
    bob.current_room = dev
    check_taps(bus, [general, dev], sessions)
    bus.deliver_to_room(dev, room_msg(dev, "three"))
    bus.deliver_to_room(general, room_msg(general, "four"))
    bob.current_room = None
    bus.deliver_to_room(general, room_msg(general, "five"))
    check_taps(bus, [general, dev], sessions)
    out = end_turn(bus, sessions)
    assert out[bob].decode().split("\r\n") == [
        "<alice> one", "#dev <alice> two", "<alice> three", "#general <alice> four",
        "#general <alice> five", ""]
    assert out[carol].decode().split("\r\n") == [
        "<alice> one", "#dev <alice> two", "#dev <alice> three", "<alice> four",
        "<alice> five", ""]


def test_a_change_of_style_mid_turn_renders_later_messages_in_the_new_style() -> None:
    bus, room = LocalBus(), make_room()
    bob, carol = make_session(TEXT, room, [room], bus), make_session(TEXT, room, [room], bus)
    items = [room_msg(room, f"m{n}") for n in range(6)]
    bus.deliver_to_room(room, items[0])
    bus.deliver_to_room(room, items[1])
    bob.set_style(JSON)
    check_taps(bus, [room], [bob, carol])
    bus.deliver_to_room(room, items[2])
    bus.deliver_to_room(room, items[3])
    bob.set_style(TEXT_TS)
    bus.deliver_to_room(room, items[4])
    bus.deliver_to_room(room, items[5])
    check_taps(bus, [room], [bob, carol])
    out = end_turn(bus, [bob, carol])
    assert out[bob] == (b"".join(render(record_for(i), TEXT, True) for i in items[:2])
                        + b"".join(render(record_for(i), JSON, True) for i in items[2:4])
                        + b"".join(render(record_for(i), TEXT_TS, True) for i in items[4:]))
    assert out[carol] == b"".join(naive(carol, item) for item in items)
    assert out[bob].startswith(b'<alice> m0\r\n<alice> m1\r\n{"type":"message"')


# -- turns -----------------------------------------------------------------------------


def test_end_of_turn_then_new_messages_start_a_fresh_feed() -> None:
    bus, room = LocalBus(), make_room()
    members = [make_session(TEXT, room, [room], bus), make_session(JSON, room, [room], bus)]
    first = [room_msg(room, "a"), room_msg(room, "b")]
    for item in first:
        bus.deliver_to_room(room, item)
    old = bus.feed_of(room)
    out = end_turn(bus, members)
    for session in members:
        assert out[session] == b"".join(naive(session, i) for i in first)
        assert box(session).feed is None and box(session).pending == []
    assert old is not None and old.taps == 0
    assert bus.feed_of(room) is None  # a finished turn's bytes are not kept
    second = [room_msg(room, "c"), room_msg(room, "d")]
    for item in second:
        bus.deliver_to_room(room, item)
        check_taps(bus, [room], members)
    assert bus.feed_of(room) is not old and bus.feed_of(room) is not None
    assert all(box(s).feed is bus.feed_of(room) for s in members)  # tapped on the new turn's feed
    # The old feed took nothing more.
    assert all(len(lane.chunks) == 2 for lane in old.lanes.values())
    out = end_turn(bus, members)
    for session in members:
        assert out[session] == b"".join(naive(session, i) for i in second)
        assert box(session).wakes == 2  # once per turn
    assert end_turn(bus, members) == dict.fromkeys(members, b"")


def test_a_turn_taken_early_by_a_closing_connection_does_not_disturb_the_others() -> None:
    """Connection.close flushes (takes) mid-turn, then refuses everything after."""
    bus, room = LocalBus(), make_room()
    bob = make_session(TEXT, room, [room], bus)
    others = [make_session(TEXT, room, [room], bus), make_session(JSON, room, [room], bus)]
    members = [bob, *others]
    items = [room_msg(room, f"m{n}") for n in range(5)]
    bus.deliver_to_room(room, items[0])
    bus.deliver_to_room(room, items[1])
    early = box(bob).take()
    box(bob).close("bye")
    check_taps(bus, [room], members)
    for item in items[2:]:
        bus.deliver_to_room(room, item)
        check_taps(bus, [room], members)
    bob.send({"type": "notice", "text": "too late"})
    bob.deliver(direct_msg("bob", "too late"))
    out = end_turn(bus, members)
    assert early == naive(bob, items[0]) + naive(bob, items[1])
    assert out[bob] == b""
    for session in others:
        assert out[session] == b"".join(naive(session, item) for item in items)


def test_a_closing_outbox_gets_nothing_and_does_not_break_the_others() -> None:
    bus, room = LocalBus(), make_room()
    closing = make_session(TEXT, room, [room], bus)
    box(closing).close("going")
    others = [make_session(TEXT, room, [room], bus), make_session(JSON, room, [room], bus)]
    members = [closing, *others]
    items = [room_msg(room, f"m{n}") for n in range(4)]
    for item in items:
        bus.deliver_to_room(room, item)
        check_taps(bus, [room], members)
        assert bus.feed_of(room) is not None and bus.feed_of(room).taps == 2
    out = end_turn(bus, members)
    assert out[closing] == b"" and box(closing).wakes == 0
    for session in others:
        assert out[session] == b"".join(naive(session, item) for item in items)


def test_a_discarded_outbox_releases_its_tap() -> None:
    """connection_lost: the turn's output is dropped and the feed's count follows."""
    bus, room = LocalBus(), make_room()
    bob, carol = make_session(TEXT, room, [room], bus), make_session(TEXT, room, [room], bus)
    bus.deliver_to_room(room, room_msg(room, "a"))
    box(bob).discard()
    box(bob).close("lost")
    check_taps(bus, [room], [bob, carol])
    assert bus.feed_of(room) is not None and bus.feed_of(room).taps == 1
    bus.deliver_to_room(room, room_msg(room, "b"))
    bus.disconnect(room, (bob,))
    bus.deliver_to_room(room, room_msg(room, "c"))
    check_taps(bus, [room], [bob, carol])
    out = end_turn(bus, [bob, carol])
    assert out[bob] == b""
    assert out[carol] == b"<alice> a\r\n<alice> b\r\n<alice> c\r\n"


# -- coalesced presence --------------------------------------------------------------


def test_a_session_with_coalesced_presence_gets_its_summary_first() -> None:
    bus, room = LocalBus(), make_room()
    bob, carol = make_session(TEXT, room, [room], bus), make_session(JSON, room, [room], bus)
    box(bob).congested = True
    for user in ("dave", "erin"):
        bus.deliver_to_room(room, room_event(room, "join", user=user))
    bus.deliver_to_room(room, room_event(room, "typing", user="dave"))  # transient: dropped
    assert bob.coalesced == 2
    box(bob).congested = False
    items = [room_msg(room, f"m{n}") for n in range(3)]
    for item in items:
        bus.deliver_to_room(room, item)
        check_taps(bus, [room], [bob, carol])
    assert bob.coalesced == 0
    out = end_turn(bus, [bob, carol])
    assert out[bob] == (render(summary(2), TEXT, False)
                        + b"".join(naive(bob, item) for item in items))
    assert out[bob].startswith(b"* 2 join/leave events skipped")
    presence = [room_event(room, "join", user=u) for u in ("dave", "erin")]
    typing = room_event(room, "typing", user="dave")
    # carol was not congested: she got everything, one by one then tapped.
    assert out[carol] == b"".join(naive(carol, i) for i in [*presence, typing, *items])


def test_presence_shed_while_tapped_is_summarised_before_the_next_message() -> None:
    """A member tapped on the room's feed falls behind: the join event is coalesced.
    Session.deliver puts the summary before the next message; a member still
    tapped must get it there too, not after the rest of the turn's messages."""
    bus, room = LocalBus(), make_room()
    bob, carol = make_session(TEXT, room, [room], bus), make_session(TEXT, room, [room], bus)
    first, second = room_msg(room, "first"), room_msg(room, "second")
    bus.deliver_to_room(room, first)
    box(bob).congested = True
    bus.deliver_to_room(room, room_event(room, "join", user="dave"))
    assert bob.coalesced == 1
    bus.deliver_to_room(room, second)
    out = end_turn(bus, [bob, carol])
    assert out[bob] == (naive(bob, first) + render(summary(1), TEXT, False)
                        + naive(bob, second))


# -- the whole against a naive model -------------------------------------------------

STYLES = (TEXT, JSON, TEXT_TS, TEXT_COLOUR)
SESSIONS = 4
ROOMS = 2

session_index = st.integers(0, SESSIONS - 1)
room_index = st.integers(0, ROOMS - 1)
maybe_room = st.none() | room_index
maybe_skip = st.none() | session_index
words = st.sampled_from(["hi", "yes", "no way", "ok\nsecond line", "é ü"])
post_kinds = st.sampled_from(["message", "message", "message", "action", "topic"])
presence_events = st.sampled_from(["join", "leave", "typing"])


class ModelSession:
    """What a connection should have received so far this turn, the naive way."""

    def __init__(self, style: Style, current: int | None) -> None:
        self.style = style
        self.current = current
        self.expected = b""
        self.coalesced = 0
        self.congested = False
        self.closing = False


class FeedMachine(RuleBasedStateMachine):
    """Random room posts, direct items, membership and view changes, and turn ends,
    checked after every step against a model that delivers each item to each
    recipient at once, as Session.deliver does.

    ``shed_presence`` lets the connections fall behind (presence events coalesced).
    """

    shed_presence = True

    def __init__(self) -> None:
        super().__init__()
        self.bus = LocalBus()
        self.rooms = [make_room(n + 1, f"room{n + 1}") for n in range(ROOMS)]
        self.sessions: list[Session] = []
        self.model: list[ModelSession] = []
        self.members: list[set[int]] = [set() for _ in range(ROOMS)]

    @initialize(styles=st.lists(st.sampled_from(STYLES), min_size=SESSIONS,
                                max_size=SESSIONS),
                currents=st.lists(maybe_room, min_size=SESSIONS, max_size=SESSIONS),
                # Mostly members of both rooms: the interesting cases need overlap.
                membership=st.lists(st.just({0, 1}) | st.sets(room_index),
                                    min_size=SESSIONS, max_size=SESSIONS))
    def start(self, styles: list[Style], currents: list[int | None],
              membership: list[set[int]]) -> None:
        for index, (style, current, rooms) in enumerate(
                zip(styles, currents, membership, strict=True)):
            room = None if current is None else self.rooms[current]
            self.sessions.append(
                make_session(style, room, [self.rooms[r] for r in rooms], self.bus))
            self.model.append(ModelSession(style, current))
            for r in rooms:
                self.members[r].add(index)

    # -- the model ---------------------------------------------------------------

    def _current(self, model: ModelSession, room_id: int | None) -> bool:
        return model.current is not None and self.rooms[model.current].id == room_id

    def _queue(self, model: ModelSession, data: bytes) -> None:
        if not model.closing:
            model.expected += data

    def _deliver(self, index: int, item: Outgoing) -> None:
        model = self.model[index]
        if item.priority and model.congested:
            if item.priority == PRESENCE:
                model.coalesced += 1
            return
        if model.coalesced:
            self._queue(model, render(summary(model.coalesced), model.style, False))
            model.coalesced = 0
        self._queue(model, render(record_for(item), model.style,
                                  self._current(model, item.room_id)))

    # -- rules -------------------------------------------------------------------

    def _to_room(self, r: int, item: Outgoing, skip: int | None) -> None:
        self.bus.deliver_to_room(self.rooms[r], item,
                         skip=None if skip is None else self.sessions[skip])
        for index in self.members[r]:
            if index != skip:
                self._deliver(index, item)

    def _post(self, r: int, skip: int | None, kind: str, text: str) -> None:
        room = self.rooms[r]
        if kind == "topic":
            item = room_event(room, "topic", actor="alice", topic=text)
        else:
            item = room_msg(room, text, action=kind == "action")
        self._to_room(r, item, skip)

    def _presence(self, r: int, skip: int | None, event: str, behind: set[int]) -> None:
        """A presence or typing event; the connections ``behind`` are congested for it."""
        if not self.shed_presence:
            behind = set()
        for i in behind:
            box(self.sessions[i]).congested = self.model[i].congested = True
        self._to_room(r, room_event(self.rooms[r], event, user="dave"), skip)
        for i in behind:
            box(self.sessions[i]).congested = self.model[i].congested = False

    @rule(r=room_index, skip=maybe_skip, kind=post_kinds, text=words)
    def post(self, r: int, skip: int | None, kind: str, text: str) -> None:
        self._post(r, skip, kind, text)

    @rule(r=room_index, skip=maybe_skip, event=presence_events, behind=st.sets(session_index))
    def presence(self, r: int, skip: int | None, event: str, behind: set[int]) -> None:
        self._presence(r, skip, event, behind)

    @rule(r=room_index, steps=st.lists(
        st.tuples(st.just("post"), maybe_skip, post_kinds, words)
        | st.tuples(st.just("presence"), maybe_skip, presence_events, st.sets(session_index)),
        min_size=2, max_size=8))
    def busy_room(self, r: int, steps: list[tuple[Any, ...]]) -> None:
        """Several items to one room in a row, as in a busy room's turn."""
        for what, skip, kind, extra in steps:
            if what == "post":
                self._post(r, skip, kind, extra)
            else:
                self._presence(r, skip, kind, extra)

    @rule(i=session_index, text=words)
    def direct(self, i: int, text: str) -> None:
        item = direct_msg("bob", text)
        self.sessions[i].deliver(item)
        self._deliver(i, item)

    @rule(i=session_index, label=st.none() | st.just("l1"), r=maybe_room)
    def send(self, i: int, label: str | None, r: int | None) -> None:
        record: dict[str, Any] = {"type": "ok", "command": "x", "message": "done"}
        if r is not None:
            record["room"] = self.rooms[r].name
        self.sessions[i].send(record, label)
        model = self.model[i]
        current = model.current is not None and r == model.current
        self._queue(model, render(record, model.style, current, label))

    @rule(i=session_index, r=room_index)
    def connect(self, i: int, r: int) -> None:
        self.bus.connect(self.rooms[r], (self.sessions[i],))
        self.members[r].add(i)

    @rule(i=session_index, r=room_index)
    def disconnect(self, i: int, r: int) -> None:
        self.bus.disconnect(self.rooms[r], (self.sessions[i],))
        self.members[r].discard(i)

    @rule(i=session_index, r=maybe_room)
    def set_current(self, i: int, r: int | None) -> None:
        self.sessions[i].current_room = None if r is None else self.rooms[r]
        self.model[i].current = r

    @rule(i=session_index, style=st.sampled_from(STYLES))
    def set_style(self, i: int, style: Style) -> None:
        self.sessions[i].set_style(style)
        self.model[i].style = style

    @rule(i=session_index)
    def close(self, i: int) -> None:
        """Connection.close: flush what is queued, then refuse everything."""
        out = box(self.sessions[i])
        assert out.take() == self.model[i].expected
        self.model[i].expected = b""
        out.close("bye")
        self.model[i].closing = True

    @rule()
    def turn(self) -> None:
        for session, data in end_turn(self.bus, self.sessions).items():
            model = self.model[self.sessions.index(session)]
            assert data == model.expected
            model.expected = b""
        for room in self.rooms:
            assert self.bus.feed_of(room) is None or self.bus.feed_of(room).taps == 0

    # -- invariants ----------------------------------------------------------------

    @invariant()
    def outputs_match_the_model(self) -> None:
        for session, model in zip(self.sessions, self.model, strict=True):
            assert box(session).peek() == model.expected
            assert session.coalesced == model.coalesced

    @invariant()
    def taps_are_counted(self) -> None:
        check_taps(self.bus, self.rooms, self.sessions)
        for r, room in enumerate(self.rooms):
            assert self.bus.in_room(room) == {self.sessions[i] for i in self.members[r]}
        # No connection holds a tap on a finished turn's feed.
        feeds = [feed for room in self.rooms if (feed := self.bus.feed_of(room)) is not None]
        for session in self.sessions:
            assert box(session).feed is None or any(box(session).feed is f for f in feeds)


class FeedMachineKeepingUp(FeedMachine):
    """The same, with connections that never fall behind (no presence shed)."""

    shed_presence = False


# Derandomized and without an example database: the same runs every time.
MACHINE_SETTINGS = settings(max_examples=120, stateful_step_count=40, deadline=None,
                            derandomize=True, database=None,
                            suppress_health_check=[HealthCheck.too_slow])


def test_feed_matches_naive_delivery_for_connections_that_keep_up() -> None:
    run_state_machine_as_test(FeedMachineKeepingUp, settings=MACHINE_SETTINGS)


def test_feed_matches_naive_delivery_with_presence_shed() -> None:
    # Not shrunk: shrinking a failure here takes half a minute, and the smallest
    # failing case known is test_presence_shed_while_tapped_is_summarised_before_...
    run_state_machine_as_test(FeedMachine, settings=settings(
        MACHINE_SETTINGS, phases=[Phase.explicit, Phase.generate]))
