"""Failed logins do the same work whether or not the account exists.

Timing is not measured (that would be flaky); the work is observed instead:
every password check is a call of ``bcrypt.checkpw``, and the cost of a
bcrypt hash is written in it (``$2b$06$...``). A name without an account must
be checked once, against a hash of the configured cost, as a real account is.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import bcrypt
import pytest

from chatd.domain.clock import ManualClock
from tests.helpers import PASSWORD, ChatServer
from tests.irc.helpers import IrcClient
from tests.protection import ProtectionClients, error_of, serving

# Not the cost the other tests use (4), so that a hash made at a fixed cost shows.
COST = 6


class CheckSpy:
    """Records the hash of every ``bcrypt.checkpw`` call (they run in executor threads)."""

    def __init__(self, real: Callable[[bytes, bytes], bool]) -> None:
        self._real = real
        self._lock = threading.Lock()
        self.hashes: list[bytes] = []

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        with self._lock:
            self.hashes.append(hashed)
        return self._real(password, hashed)

    def costs(self) -> list[int]:
        """The cost of each hash checked so far, then forgets them."""
        with self._lock:
            costs = [int(h.split(b"$")[2]) for h in self.hashes]
            self.hashes.clear()
        return costs


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> CheckSpy:
    recorder = CheckSpy(bcrypt.checkpw)
    monkeypatch.setattr(bcrypt, "checkpw", recorder)
    return recorder


@pytest.fixture
async def served(db_path: Path, clock: ManualClock
                 ) -> AsyncIterator[tuple[ChatServer, ProtectionClients]]:
    async with serving(db_path, clock, accounts__bcrypt_cost=COST, irc__enabled=True,
                       irc__port=0, limits__auth_failures=1000) as (server, clients):
        await clients.user("alice")
        yield server, clients


@pytest.mark.parametrize("line", [
    "/login alice wrong-password",        # the account exists
    f"/login nobody {PASSWORD}",          # it does not
    f"/login bad!name {PASSWORD}",        # no account could have that name
    f"/login alice {'x' * 73}",           # no password could be that long
    f"/login nobody {'x' * 73}",
])
async def test_every_failed_password_login_checks_one_hash_of_the_configured_cost(
        served: tuple[ChatServer, ProtectionClients], spy: CheckSpy, line: str) -> None:
    _, clients = served
    client = await clients.anonymous()
    spy.costs()
    assert (await error_of(client, line))["code"] == "auth-failed"
    assert spy.costs() == [COST]


async def test_irc_pass_and_sasl_of_an_unknown_account_check_a_hash_of_that_cost(
        served: tuple[ChatServer, ProtectionClients], spy: CheckSpy) -> None:
    server, _ = served
    assert server.irc is not None
    for account in ("alice", "nobody"):
        client = await IrcClient.connect(server.irc.port)
        try:
            spy.costs()
            client.send("CAP REQ :sasl")
            assert (await client.sasl(account, "wrong-password")).command == "904"
            assert spy.costs() == [COST]
            client.send(f"PASS {account}:wrong-password", f"NICK {account}",
                        f"USER {account} 0 * :{account}", "CAP END")
            assert any(" 464 " in line for line in await client.closed())
            assert spy.costs() == [COST]
        finally:
            await client.close()


async def test_the_dummy_hash_follows_a_new_cost_on_reload(
        served: tuple[ChatServer, ProtectionClients], spy: CheckSpy) -> None:
    server, clients = served
    config = server.services.config
    cheaper = dataclasses.replace(config, accounts=dataclasses.replace(config.accounts,
                                                                       bcrypt_cost=COST - 1))
    server.services.accounts.reconfigure(cheaper)
    client = await clients.anonymous()
    spy.costs()
    assert (await error_of(client, f"/login nobody {PASSWORD}"))["code"] == "auth-failed"
    assert spy.costs() == [COST - 1]


@pytest.mark.parametrize("name", ["alice", "nobody"])
async def test_a_failed_token_login_does_the_same_work_for_any_name(
        served: tuple[ChatServer, ProtectionClients], spy: CheckSpy, name: str) -> None:
    # A token is looked up by its SHA-256 before the name is compared: no bcrypt
    # for anyone, so an existing name costs what an unknown one costs.
    _, clients = served
    client = await clients.anonymous()
    spy.costs()
    line = f"/login {name} --token chatd_not-a-token"
    assert (await error_of(client, line))["code"] == "auth-failed"
    assert spy.costs() == []
