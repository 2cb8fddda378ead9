"""Edges: unexpected failures, output pressure, guests at their limits."""

from __future__ import annotations

import pytest

from chatd.delivery.feed import Outbox
from chatd.delivery.outgoing import Outgoing
from chatd.domain import events
from chatd.domain.room import Mode
from chatd.irc.guests import MAX_GUEST_ROOMS
from chatd.irc.session import IrcSession
from tests.helpers import ChatServer
from tests.irc.conftest import IrcFactory


async def test_an_unexpected_failure_is_logged_and_answered_400(
        server: ChatServer, irc: IrcFactory, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    bob = await irc("bob")
    bob.send("JOIN #x")
    await bob.expect("366")

    async def broken_topic(*args: object) -> None:
        raise RuntimeError("disk on fire")

    def broken_list(*args: object) -> None:
        raise RuntimeError("also on fire")

    monkeypatch.setattr(server.services.rooms, "set_topic", broken_topic)
    monkeypatch.setattr(server.services.rooms, "listed_for", broken_list)
    bob.send("TOPIC #x :new", "LIST")
    for command in ("TOPIC", "LIST"):
        failed = await bob.expect("400")
        assert failed.params[1:] == (command, "something went wrong on the server; it has "
                                     "been logged.")
    assert "disk on fire" not in " ".join(bob.lines)
    assert any(r.message == "IRC command failed" for r in caplog.records)


class _Pressured(Outbox):
    """An output that is behind: congested, collecting what is written."""

    congested = True
    peer = "127.0.0.1:1"

    def wake(self) -> bool:
        return True

    @property
    def data(self) -> bytes:
        return b"".join(self.pending)

    def close(self, reason: str, going_away: bool = False) -> None:
        pass


async def test_under_pressure_joins_are_coalesced_and_messages_kept(server: ChatServer) -> None:
    assert server.irc is not None
    out = _Pressured()
    session = IrcSession(out, "127.0.0.1:1", 0.0, server.irc.front)
    session.nick = "bob"
    for user in ("a", "b"):
        session.deliver(Outgoing(events.Joined("r", user)))
    session.deliver(Outgoing(events.Typing("r", "a")))
    assert out.data == b""
    out.congested = False
    session.deliver(Outgoing(events.Message("a", "hi", 0.0, 1, to="bob")))
    assert out.data.decode().split("\r\n")[:2] == [
        ":chatd.local NOTICE bob :2 join/leave events skipped while your connection was "
        "behind; /who shows who is in a room.",
        ":a!a@chatd.local PRIVMSG bob :hi"]


@pytest.mark.server(accounts__guests=True)
async def test_a_guest_in_too_many_rooms_and_leaving_them(server: ChatServer,
                                                         irc: IrcFactory) -> None:
    owner = await server.services.accounts.create("owner", "owner-pw")
    for i in range(MAX_GUEST_ROOMS + 1):
        await server.services.rooms.create(owner, f"r{i}", Mode.OPEN)
    visitor = await irc()
    await visitor.register("visitor")
    visitor.send("JOIN " + ",".join(f"#r{i}" for i in range(MAX_GUEST_ROOMS + 1)))
    assert (await visitor.expect("405")).params[1] == f"#r{MAX_GUEST_ROOMS}"
    visitor.send("JOIN #r0", "PART #r1 :later")
    assert (await visitor.expect("PART")).params == ("#r1", "later")
    room = server.services.rooms.find("r1")
    assert room is not None and len(room.members) == 1
    visitor.send("JOIN 0")
    for _ in range(MAX_GUEST_ROOMS - 1):
        await visitor.expect("PART")
    assert all(len(r.members) == 1 for r in server.services.rooms.listed_for(None))


async def test_refused_commands_and_channels_are_echoed_without_control_characters(
        irc: IrcFactory) -> None:
    """421 and 476 repeat what the client sent: never its control characters (IRC
    formatting included), which a client would show or act on."""
    bob = await irc("bob")
    bob.send_raw(b"\x01\x02\x03FOO\r\nPRIV\x00MSG #x :y\r\nPRIVMSG #gen\x00eral :x\r\n"
                 b"JOIN #a\x0304b\r\n")
    assert await bob.raw() == ":chatd.local 421 bob FOO :Unknown command"
    assert await bob.raw() == ":chatd.local 421 bob PRIVMSG :Unknown command"
    assert await bob.raw() == ":chatd.local 476 bob #general :Bad Channel Mask"
    assert await bob.raw() == ":chatd.local 476 bob #ab :Bad Channel Mask"
