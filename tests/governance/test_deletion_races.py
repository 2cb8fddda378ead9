"""An account deleted while its own commands are under way: a login, a /create or a
/join that is in flight when /userdel runs gives the account nothing (no session,
no room, no membership), and no room is left live without its owner.

Each race is made deterministic by holding one storage call (the database being
slow) at the moment that matters, over real sockets (line protocol and IRC).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatd.domain.clock import ManualClock
from tests.governance import code_of, error_of, members_of, room_with, server_admin, users
from tests.helpers import PASSWORD, ChatServer, Clients, start_server
from tests.irc.helpers import IrcClient


@pytest.fixture
async def server(db_path: Path, clock: ManualClock,
                 storage_overrides: dict[str, Any]) -> AsyncIterator[ChatServer]:
    """The server with its IRC listener too (a SASL login is one of the races)."""
    srv = await start_server(db_path, clock=clock, irc__enabled=True, irc__port=0,
                             **storage_overrides)
    yield srv
    await srv.stop()


class Held:
    """The next call of one storage method waits, before or after the real call,
    until :meth:`release`: the database is slow at that moment, and only then."""

    def __init__(self, server: ChatServer, monkeypatch: pytest.MonkeyPatch, method: str,
                 after: bool = False) -> None:
        storage = server.services.storage
        real: Callable[..., Awaitable[Any]] = getattr(storage, method)
        self.entered = asyncio.Event()
        self._released = asyncio.Event()
        self._armed = True

        async def held(*args: Any, **kwargs: Any) -> Any:
            mine, self._armed = self._armed, False
            if mine and not after:
                await self._wait()
            result = await real(*args, **kwargs)
            if mine and after:
                await self._wait()
            return result

        monkeypatch.setattr(storage, method, held)

    async def _wait(self) -> None:
        self.entered.set()
        await self._released.wait()

    async def reached(self) -> None:
        """Wait until the held call has come (bounded: a test never hangs)."""
        await asyncio.wait_for(self.entered.wait(), 10)

    def release(self) -> None:
        self._released.set()


@pytest.fixture
def hold(server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Held]]:
    """``hold("create_room", after=True)``: a :class:`Held` call, released at the
    end of the test whatever happens (a failing test does not hang the server)."""
    made: list[Held] = []

    def make(method: str, after: bool = False) -> Held:
        made.append(Held(server, monkeypatch, method, after))
        return made[-1]

    yield make
    for held in made:
        held.release()


async def _stored_rooms(server: ChatServer) -> set[str]:
    return {r.name for r in await server.services.storage.load_active_rooms()}


async def _stored_members(server: ChatServer, room: str) -> list[str]:
    """The names of a live room's members as the database has them."""
    services = server.services
    room_id = services.rooms.require(room).id
    return [user.name for m in await services.storage.load_members()
            if m.room_id == room_id and (user := services.accounts.get(m.user_id))]


# -- logins --------------------------------------------------------------------------


async def test_a_login_while_the_account_is_being_deleted_is_refused(
        server: ChatServer, clients: Clients, hold: Callable[..., Held]) -> None:
    """The deletion has closed mallory's connections and waits for the database to
    delete her row: a login checked against that row now gets no session."""
    root = await server_admin(server, clients)
    await clients.user("mallory")
    held = hold("delete_user")
    deletion = asyncio.create_task(root.command("/userdel mallory"))
    await held.reached()
    late = await clients.anonymous()
    refused = await error_of(late, f"/login mallory {PASSWORD}")
    assert refused["code"] == "auth-failed"
    assert refused["message"] == "the account mallory was deleted."
    held.release()
    assert (await deletion)["user"] == "mallory"
    # A new account of the same name is somebody else: the refused connection is not it.
    await clients.user("mallory")
    assert await code_of(late, "/whoami") == "not-logged-in"


async def test_a_sasl_login_of_an_account_deleted_before_cap_end_gets_no_session(
        server: ChatServer, clients: Clients) -> None:
    """SASL succeeded (903) but registration had not ended when the account was
    deleted: CAP END then gets the refusal, never the welcome."""
    root = await server_admin(server, clients)
    await server.services.accounts.create("mallory", PASSWORD)
    assert server.irc is not None
    client = await IrcClient.connect(server.irc.port)
    try:
        client.send("CAP LS 302", "CAP REQ :sasl", "NICK mallory", "USER m 0 * :Mallory")
        assert (await client.expect("CAP")).params[1] == "LS"
        assert (await client.expect("CAP")).params[1] == "ACK"
        assert (await client.sasl("mallory", PASSWORD)).command == "903"
        await root.command("/userdel mallory")
        client.send("CAP END")
        answer = await client.expect("001", "464")
        assert answer.command == "464"
        assert answer.params[-1] == "the account mallory was deleted."
        # Then ERROR and the end of the link: it speaks for nobody, now or later.
        assert (await client.closed())[-1].startswith("ERROR :Closing Link: mallory")
        newcomer = await clients.user("mallory")
        assert await code_of(newcomer, "/whoami") == "ok"
        assert newcomer.pending_events() == []
    finally:
        await client.close()


# -- rooms ---------------------------------------------------------------------------


async def test_a_room_created_once_the_deletion_has_read_the_rooms_is_refused(
        server: ChatServer, clients: Clients, hold: Callable[..., Held]) -> None:
    """The deletion has read the rooms mallory is in when her /create arrives: the
    room would be one it never leaves, live and ownerless once she is gone."""
    root, mallory, bob = await server_admin(server, clients), *await users(
        clients, "mallory", "bob")
    held = hold("member_room_ids", after=True)
    deletion = asyncio.create_task(root.command("/userdel mallory"))
    await held.reached()
    refused = await error_of(mallory, "/create orphan")
    assert refused["code"] == "no-such-user"
    assert refused["message"] == "the account mallory was deleted."
    held.release()
    await deletion
    assert "orphan" not in await _stored_rooms(server)
    assert await code_of(bob, "/join orphan") == "no-such-room"


async def test_a_room_whose_creation_was_in_flight_during_the_deletion_never_lives(
        server: ChatServer, clients: Clients, hold: Callable[..., Held]) -> None:
    """mallory's room is written, not yet in memory, while her account is deleted
    from start to end: the room ends unborn, and its name is free."""
    root, mallory, bob = await server_admin(server, clients), *await users(
        clients, "mallory", "bob")
    held = hold("create_room", after=True)
    creation = asyncio.ensure_future(mallory.command("/create orphan", check=False))
    await held.reached()
    assert (await root.command("/userdel mallory"))["user"] == "mallory"
    held.release()
    # Behind mallory's creation (one at a time): the name is free, and bob owns the room.
    assert await code_of(bob, "/create orphan") == "ok"
    assert await members_of(bob, "orphan") == {"bob": "owner"}
    assert "orphan" in await _stored_rooms(server)
    with pytest.raises(ConnectionError):  # her connection was closed with the account
        await creation


async def test_a_join_once_the_deletion_has_read_the_rooms_is_refused(
        server: ChatServer, clients: Clients, hold: Callable[..., Held]) -> None:
    """The deletion has read the rooms mallory is in when her /join arrives: the
    membership would be one it never ends, and nobody would be told she left."""
    root, alice, mallory = await server_admin(server, clients), *await users(
        clients, "alice", "mallory")
    await alice.command("/create den")
    held = hold("member_room_ids", after=True)
    deletion = asyncio.create_task(root.command("/userdel mallory"))
    await held.reached()
    assert (await error_of(mallory, "/join den"))["code"] == "no-such-user"
    held.release()
    await deletion
    assert await members_of(alice, "den") == {"alice": "owner"}
    assert await _stored_members(server, "den") == ["alice"]


async def test_a_join_written_while_the_deletion_reads_the_rooms_is_undone(
        server: ChatServer, clients: Clients, hold: Callable[..., Held]) -> None:
    """mallory's /join passed its checks and writes her row while the deletion
    reads her rooms (without it): the join, seeing the deletion under way once
    written, takes its row back and is refused."""
    root, alice, mallory = await server_admin(server, clients), *await users(
        clients, "alice", "mallory")
    await alice.command("/create den")
    writing = hold("add_member")
    joining = asyncio.ensure_future(mallory.command("/join den", check=False))
    await writing.reached()
    reading = hold("member_room_ids", after=True)
    deletion = asyncio.create_task(root.command("/userdel mallory"))
    await reading.reached()
    writing.release()
    assert (await joining).final.get("code") == "no-such-user"
    reading.release()
    await deletion
    assert await members_of(alice, "den") == {"alice": "owner"}
    assert await _stored_members(server, "den") == ["alice"]


# -- notifications to an account deleted after the decision -----------------------


async def test_a_ban_whose_target_is_deleted_before_being_told_still_answers_ok(
        server: ChatServer, clients: Clients, hold: Callable[..., Held]) -> None:
    """The ban is decided; before its notification is written, carol's account is
    deleted (and her notifications with it): the ban stands, its admin is told
    so, and nobody is left to notify."""
    root = await server_admin(server, clients)
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "den", bob, carol)
    held = hold("add_notification")
    ban = asyncio.create_task(alice.command("/ban carol den", check=False))
    await held.reached()
    assert await code_of(root, "/userdel carol") == "ok"
    held.release()
    assert (await ban).ok, (await ban).final
    assert await members_of(alice, "den") == {"alice": "owner", "bob": "member"}
    last = (await alice.command("/audit den"))["entries"][-1]
    assert (last["action"], last["actor"], last["target"]) == ("ban", "alice", "carol")


async def test_the_deletion_of_an_owner_whose_last_member_is_deleted_meanwhile_completes(
        server: ChatServer, clients: Clients, hold: Callable[..., Held]) -> None:
    """alice's deletion ends her room with bob, its last member; bob's account is
    deleted before he is notified of the ending. alice's deletion still finishes:
    her account goes and the admin is answered ok, not half done."""
    root = await server_admin(server, clients)
    other_root = await clients.user("root")
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "den", bob)
    held = hold("add_notification")
    deletion = asyncio.create_task(root.command("/userdel alice", check=False))
    await held.reached()
    assert await code_of(other_root, "/userdel bob") == "ok"
    held.release()
    assert (await deletion).ok, (await deletion).final
    assert server.services.accounts.find("alice") is None
    assert server.services.rooms.find("den") is None
    assert (await error_of(await clients.anonymous(), f"/login alice {PASSWORD}"))["code"] \
        == "auth-failed"
