"""An account deleted while its own commands are under way: a login that is in
flight when /userdel runs gives the account no session.

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
from tests.governance import code_of, error_of, server_admin
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
        # Whoever takes the name next is not spoken for by this connection.
        newcomer = await clients.user("mallory")
        client.send("PRIVMSG mallory :it is me")
        assert (await client.expect("451", "PRIVMSG")).command == "451"  # not registered
        assert await code_of(newcomer, "/whoami") == "ok"
        assert newcomer.pending_events() == []
    finally:
        await client.close()
