"""The bus's routes (chatd.delivery.bus.LocalBus): who is connected to which room
and user. Rooms and users hold no connections; these tests pin what they moved to."""

from __future__ import annotations

from chatd.delivery.bus import LocalBus
from chatd.delivery.feed import Outbox
from chatd.delivery.outgoing import Outgoing
from chatd.domain import events
from chatd.domain.accounts import User
from chatd.domain.room import Room
from chatd.protocol.session import Session
from storage.records import RoomRecord, UserRecord


class Box(Outbox):
    congested = False

    def wake(self) -> bool:
        return True

    def close(self, reason: str, going_away: bool = False) -> None:
        pass


def session(user: User | None = None) -> Session:
    made = Session(Box(), "127.0.0.1:1")
    made.user = user
    return made


def user(uid: int, name: str) -> User:
    return User(UserRecord(uid, name, b"", False, 0.0))


def test_a_user_s_endpoints_are_kept_oldest_first_until_removed() -> None:
    bus, alice = LocalBus(), user(1, "alice")
    first, second = session(alice), session(alice)
    bus.add_user(alice, first)
    bus.add_user(alice, second)
    assert list(bus.of_user(alice)) == [first, second]
    bus.remove_user(alice, first)
    bus.remove_user(alice, first)  # twice: nothing more happens
    assert list(bus.of_user(alice)) == [second]
    bus.remove_user(alice, second)
    assert list(bus.of_user(alice)) == []


def test_disconnecting_a_user_from_a_room_leaves_the_others_connected() -> None:
    bus, room = LocalBus(), Room(RoomRecord(1, "general", "open", "", 0.0))
    alice, bob = user(1, "alice"), user(2, "bob")
    a1, a2, b1, anonymous = session(alice), session(alice), session(bob), session()
    bus.connect(room, (a1, a2, b1, anonymous))
    assert sorted(s.id for s in bus.disconnect_user(room, alice.id)) == sorted([a1.id, a2.id])
    assert set(bus.in_room(room)) == {b1, anonymous}
    assert set(bus.close_room(room)) == {b1, anonymous}
    assert len(bus.in_room(room)) == 0


def test_a_disconnected_endpoint_loses_its_tap_on_the_room_s_feed() -> None:
    bus, room = LocalBus(), Room(RoomRecord(1, "general", "open", "", 0.0))
    bob = session(user(2, "bob"))
    bus.connect(room, (bob,))
    bus.to_room(room, events.Message("a", "hi", 0.0, 1, room="general"))
    feed = bus.feed_of(room)
    assert feed is not None and feed.taps == 1 and bob.out.feed is feed
    bus.disconnect(room, (bob,))
    assert feed.taps == 0 and bob.out.feed is None
    bus.end_turn()
    assert bus.feed_of(room) is None


class Recording(Session):
    """A session that keeps the items delivered to it."""

    __slots__ = ("items",)

    def __init__(self, user: User) -> None:
        super().__init__(Box(), "127.0.0.1:1")
        self.user = user
        self.items: list[Outgoing] = []

    def deliver(self, item: Outgoing) -> None:
        self.items.append(item)


def test_to_users_makes_one_item_for_every_recipient() -> None:
    bus, alice, bob = LocalBus(), user(1, "alice"), user(2, "bob")
    to_alice, to_bob = Recording(alice), Recording(bob)
    bus.add_user(alice, to_alice)
    bus.add_user(bob, to_bob)
    bus.to_users((alice, bob), events.JoinRequested("general", "carol"), skip=None)
    [item] = to_alice.items
    assert to_bob.items == [item] and item.room_id is None
