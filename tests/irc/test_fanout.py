"""Room fan-out to IRC clients by the turn: lanes shared per tag mode, same output.

IRC sessions of a room take its plain messages of a turn from one lane per tag
mode (chatd.delivery.feed); anything else (a topic, a kick, a join) is given to
each client one by one. Each test drives the real LocalBus, IrcSessions and the
server's IRC front within one turn, and compares what every client gets with
what delivering each item to it alone gives.
"""

from __future__ import annotations

from chatd.delivery.bus import LocalBus
from chatd.delivery.feed import Outbox
from chatd.delivery.outgoing import Outgoing
from chatd.domain import events
from chatd.domain.accounts import User
from chatd.domain.room import Mode, Room
from chatd.irc.session import IrcSession
from tests.helpers import ChatServer

TS = 1_800_000_000.0


class Box(Outbox):
    """A connection's output without a transport: what a turn's flush would write."""

    congested = False

    def wake(self) -> bool:
        return True

    def close(self, reason: str, going_away: bool = False) -> None:
        pass


async def _members(server: ChatServer, count: int) -> tuple[Room, list[User]]:
    users = [await server.services.accounts.create(f"u{i}", "pw-long-enough")
             for i in range(count)]
    room = await server.services.rooms.create(users[0], "r", Mode.OPEN)
    return room, users


def _session(server: ChatServer, user: User, room: Room, caps: set[str]) -> IrcSession:
    assert server.irc is not None
    session = IrcSession(Box(), "127.0.0.1:1", 0.0, server.irc.front)
    session.nick = user.name
    session.user = user
    session.set_caps(caps)
    session.shown_joined(room.id)  # the channel was announced
    return session


def _taken(session: IrcSession) -> bytes:
    """The turn's output of ``session`` (its Box), as the flush takes it."""
    out = session.out
    assert isinstance(out, Box)
    return out.take()


def _message(n: int, sender: str = "u0") -> events.Message:
    return events.Message(sender, f"line {n}", TS + n, n, room="r")


def _alone(server: ChatServer, user: User, room: Room, caps: set[str],
           items: list[events.Event]) -> bytes:
    """What ``user`` gets when every item is delivered to it alone."""
    session = _session(server, user, room, caps)
    for event in items:
        session.deliver(Outgoing(event, room.id))
    return _taken(session)


CAPS = [set(), {"server-time"}, {"server-time", "message-tags"}, set()]


async def test_messages_and_other_events_of_one_turn_arrive_as_delivered_one_by_one(
        server: ChatServer) -> None:
    room, users = await _members(server, 4)
    sessions = [_session(server, u, room, caps) for u, caps in zip(users, CAPS, strict=True)]
    bus = LocalBus()
    bus.connect(room, sessions)
    items: list[events.Event] = [
        _message(1), _message(2), events.TopicChanged("r", "u0", "new topic"), _message(3),
        events.Kicked("r", "u3", "u0", "bye"), _message(4), _message(5)]
    for event in items:
        if isinstance(event, events.Kicked):
            bus.to_room(room, event)
            bus.disconnect(room, [sessions[3]])  # as the domain does after a kick
        else:
            bus.to_room(room, event)
    got = [_taken(session) for session in sessions]
    for user, taken, caps in zip(users, got, CAPS, strict=True):
        shown = items if user.name != "u3" else items[:5]
        assert taken == _alone(server, user, room, caps, shown)
    lines = got[0].decode().split("\r\n")
    assert [line.split(" ", 2)[1] for line in lines if line] == [
        "PRIVMSG", "PRIVMSG", "TOPIC", "PRIVMSG", "KICK", "PRIVMSG", "PRIVMSG"]
    assert b"@time=" in got[1] and b"msgid=" in got[2]
    assert sessions[3].joined == set()  # the kick took u3 out of the channel


async def test_clients_of_one_tag_mode_share_the_turns_bytes(server: ChatServer) -> None:
    room, users = await _members(server, 3)
    sessions = [_session(server, u, room, {"server-time"}) for u in users]
    bus = LocalBus()
    bus.connect(room, sessions)
    for n in range(3):
        bus.to_room(room, _message(n))
    taken = [_taken(s) for s in sessions]
    assert taken[0] is taken[1] is taken[2]  # one bytes object, joined once
    assert taken[0].count(b"PRIVMSG #r :line") == 3


async def test_a_held_client_gets_the_turns_later_messages_after_its_replies(
        server: ChatServer) -> None:
    room, users = await _members(server, 2)
    sessions = [_session(server, u, room, set()) for u in users]
    bus = LocalBus()
    bus.connect(room, sessions)
    bus.to_room(room, _message(1))
    held = sessions[1]
    held.hold()  # a JOIN or registration in progress
    bus.to_room(room, _message(2))
    held.write_lines([":chatd.local 366 u1 #x :End of /NAMES list"])
    held.release()
    got = _taken(held)
    first, reply, second = got.index(b"line 1"), got.index(b" 366 "), got.index(b"line 2")
    assert first < reply < second


async def test_a_capability_change_mid_turn_renders_later_messages_in_the_new_mode(
        server: ChatServer) -> None:
    room, users = await _members(server, 2)
    sessions = [_session(server, u, room, set()) for u in users]
    bus = LocalBus()
    bus.connect(room, sessions)
    bus.to_room(room, _message(1))
    sessions[1].set_caps({"server-time"})
    bus.to_room(room, _message(2))
    lines = _taken(sessions[1]).decode().split("\r\n")
    assert lines[0].startswith(":u0!") and lines[1].startswith("@time=")
