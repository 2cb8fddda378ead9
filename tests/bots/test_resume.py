"""Resume tokens over real sockets: log in again without bcrypt, rotated at each use."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from chatd.domain import hashing
from chatd.domain.clock import ManualClock
from chatd.domain.resume import MAX_PER_USER
from chatd.domain.tokens import Grant
from storage.api import Unavailable
from tests.backends import both
from tests.helpers import ChatServer, Clients, error_of, room_with, start_server

# Resume tokens are rotated in one transaction and survive a restart, on both backends.
backend = both


@pytest.fixture
def bcrypt_checks(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every password check bcrypt is asked for (the check still runs)."""
    seen: list[bytes] = []
    real = hashing.check

    async def counted(secret: bytes, stored: bytes) -> bool:
        seen.append(secret)
        return await real(secret, stored)

    monkeypatch.setattr(hashing, "check", counted)
    return seen


async def _resume(clients: Clients, token: str) -> dict[str, Any]:
    client = await clients.anonymous()
    return (await client.command(f"/login --resume {token}", check=False)).final


async def test_a_password_login_gets_a_resume_token_that_logs_in_without_bcrypt(
        clients: Clients, bcrypt_checks: list[bytes], clock: ManualClock) -> None:
    await room_with(clients, "alice")
    first = await clients.anonymous()
    login = await first.command("/login alice secret-pw --resume")
    assert login["resume"].startswith("chatdr_")
    assert login["resume_expires"] == clock.time() + 30 * 86400
    assert login["scopes"] == ["read", "post", "moderate", "admin"]
    checks = len(bcrypt_checks)

    again = await _resume(clients, login["resume"])
    assert again["type"] == "ok" and again["user"] == "alice"
    assert again["rooms"] == ["general"]
    assert again["resume"] != login["resume"]
    assert len(bcrypt_checks) == checks  # no password check


async def test_a_resume_token_works_once(clients: Clients) -> None:
    await clients.user("alice")
    first = await clients.anonymous()
    token = (await first.command("/login alice secret-pw --resume"))["resume"]
    rotated = await _resume(clients, token)
    reused = await _resume(clients, token)
    assert reused["type"] == "error" and reused["code"] == "auth-failed"
    assert "resume token" in reused["message"]
    assert (await _resume(clients, rotated["resume"]))["type"] == "ok"


async def test_the_same_token_presented_twice_at_once_logs_in_once(clients: Clients) -> None:
    await clients.user("alice")
    first = await clients.anonymous()
    token = (await first.command("/login alice secret-pw --resume"))["resume"]
    replies = await asyncio.gather(_resume(clients, token), _resume(clients, token))
    assert sorted(r["type"] for r in replies) == ["error", "ok"]


async def test_resume_tokens_survive_a_restart(tmp_path: Path, clock: ManualClock,
                                               bcrypt_checks: list[bytes],
                                               storage_overrides: dict[str, Any]) -> None:
    db_path = tmp_path / "resume.db"
    server = await start_server(db_path, clock=clock, **storage_overrides)
    clients = Clients(server)
    await room_with(clients, "alice")
    token = (await (await clients.anonymous()).command(
        "/login alice secret-pw --resume"))["resume"]
    await clients.close()
    await server.stop()

    server = await start_server(db_path, clock=clock, **storage_overrides)
    clients = Clients(server)
    try:
        checks = len(bcrypt_checks)
        again = await _resume(clients, token)
        assert again["user"] == "alice" and again["rooms"] == ["general"]
        assert len(bcrypt_checks) == checks
    finally:
        await clients.close()
        await server.stop()


async def test_a_token_login_resumes_with_the_tokens_scopes(clients: Clients) -> None:
    alice = await clients.user("alice")
    api = (await alice.command("/token create reader read"))["token"]
    bot = await clients.anonymous()
    login = await bot.command(f"/auth {api} --resume")
    assert login["scopes"] == ["read"]
    client = await clients.anonymous()
    again = await client.command(f"/login --resume {login['resume']}")
    assert again["scopes"] == ["read"]
    assert (await error_of(client, "/say general hi"))["code"] == "scope"
    named = await (await clients.anonymous()).command(f"/login alice --token {api} --resume")
    assert named["scopes"] == ["read"] and named["resume"]


async def test_a_resume_counts_as_a_use_of_the_api_token_it_descends_from(
        clients: Clients, server: ChatServer, clock: ManualClock) -> None:
    alice = await clients.user("alice")
    api = (await alice.command("/token create daily"))["token"]
    await alice.command("/token create idle")
    login = await (await clients.anonymous()).command(f"/auth {api} --resume")
    first = clock.time()
    for _ in range(2):  # a bot that resumes each day, never logging in with the token
        clock.advance(86400)
        login = await (await clients.anonymous()).command(f"/login --resume {login['resume']}")
    used = {t["name"]: t["last_used"] for t in (await alice.command("/token list"))["tokens"]}
    assert used == {"daily": first + 2 * 86400, "idle": None}
    # Written in the batch as any token log-in's use is, and read back as stored.
    assert await server.services.tokens.flush_use() == 1
    stored = await server.services.storage.list_tokens(alice_id(server))
    assert {r.name: r.last_used_at for r in stored} == used


def alice_id(server: ChatServer) -> int:
    return server.services.accounts.require("alice").id


async def test_revoking_the_api_token_ends_its_resume_tokens(clients: Clients) -> None:
    alice = await clients.user("alice")
    api = (await alice.command("/token create t 1h"))["token"]
    login = await (await clients.anonymous()).command(f"/auth {api} --resume")
    # Never past the API token's own expiry.
    assert login["resume_expires"] == (await alice.command("/token list"))["tokens"][0][
        "expires"]
    await alice.command("/token revoke t")
    assert (await _resume(clients, login["resume"]))["code"] == "auth-failed"


async def test_logout_passwd_and_revoke_resume_end_resume_tokens(clients: Clients) -> None:
    alice = await clients.user("alice")
    session = await clients.anonymous()
    kept = (await session.command("/login alice secret-pw --resume"))["resume"]
    await session.command("/logout")
    assert (await _resume(clients, kept))["code"] == "auth-failed"

    tokens = [(await (await clients.anonymous()).command(
        "/login alice secret-pw --resume"))["resume"] for _ in range(2)]
    assert (await alice.command("/token list"))["resume_tokens"] == 2
    assert (await alice.command("/token revoke-resume"))["revoked"] == 2
    assert (await _resume(clients, tokens[0]))["code"] == "auth-failed"

    token = (await (await clients.anonymous()).command(
        "/login alice secret-pw --resume"))["resume"]
    await alice.command("/passwd secret-pw new-secret")
    assert (await _resume(clients, token))["code"] == "auth-failed"


async def test_expired_resume_tokens_fail_and_housekeeping_removes_them(
        clients: Clients, server: ChatServer, clock: ManualClock) -> None:
    await clients.user("alice")
    token = (await (await clients.anonymous()).command(
        "/login alice secret-pw --resume"))["resume"]
    clock.advance(30 * 86400 + 1)
    assert (await _resume(clients, token))["code"] == "auth-failed"
    await (await clients.anonymous()).command("/login alice secret-pw --resume")
    clock.advance(30 * 86400 + 1)
    assert await server.services.resume.expire() == 2
    assert await server.services.storage.load_resume_tokens(0) == []


async def test_an_account_keeps_its_newest_resume_tokens(clients: Clients,
                                                         server: ChatServer) -> None:
    await clients.user("alice")
    alice = server.services.accounts.require("alice")
    issued = [await server.services.resume.issue(Grant(alice))
              for _ in range(MAX_PER_USER + 1)]
    assert server.services.resume.count(alice) == MAX_PER_USER
    assert (await _resume(clients, issued[0].secret))["code"] == "auth-failed"
    assert (await _resume(clients, issued[-1].secret))["type"] == "ok"
    assert len(await server.services.storage.load_resume_tokens(0)) == MAX_PER_USER


async def test_a_token_revoked_while_it_rotates_fails(clients: Clients,
                                                      server: ChatServer) -> None:
    await clients.user("alice")
    alice = server.services.accounts.require("alice")
    issued = await server.services.resume.issue(Grant(alice))
    # Gone from the database (another node revoked it), still in this one's memory.
    await server.services.storage.delete_resume_tokens([issued.id])
    assert (await _resume(clients, issued.secret))["code"] == "auth-failed"


async def test_bad_resume_forms(clients: Clients) -> None:
    client = await clients.anonymous()
    assert (await error_of(client, "/login --resume"))["code"] == "bad-arguments"
    assert (await error_of(client, "/login --resume a b"))["code"] == "bad-arguments"
    assert (await error_of(client, "/login --resume a --resume"))["code"] == "bad-arguments"
    assert (await error_of(client, "/login alice pw --nope"))["code"] == "bad-arguments"
    wrong = await error_of(client, "/login --resume chatdr_nothing")
    assert wrong["code"] == "auth-failed"


async def test_failed_resumes_count_as_failed_logins(clients: Clients) -> None:
    client = await clients.anonymous()
    codes = [(await error_of(client, f"/login --resume chatdr_{n}"))["code"]
             for n in range(6)]
    assert codes == ["auth-failed"] * 5 + ["rate-limited"]


async def test_resumes_at_once_rotate_together_each_decided_alone(
        clients: Clients, server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = server.services.storage
    batches: list[int] = []
    real = storage.rotate_resume_tokens

    async def counted(rotations: Any) -> Any:
        batches.append(len(rotations))
        return await real(rotations)

    monkeypatch.setattr(storage, "rotate_resume_tokens", counted)
    await clients.user("alice")
    alice = server.services.accounts.require("alice")
    issued = [await server.services.resume.issue(Grant(alice)) for _ in range(6)]
    # One of them is gone from the database (another node revoked it) but not from memory.
    await storage.delete_resume_tokens([issued[2].id])
    replies = await asyncio.gather(*(_resume(clients, i.secret) for i in issued),
                                   _resume(clients, issued[0].secret))
    assert [r["type"] for r in replies] == ["ok", "ok", "error", "ok", "ok", "ok", "error"]
    assert sum(batches) == 6 and len(batches) < 6  # fewer commits than rotations
    again = [r["resume"] for r in replies if r["type"] == "ok"]
    assert [r["type"] for r in await asyncio.gather(*(_resume(clients, s) for s in again))] == [
        "ok"] * 5


async def test_a_rotation_the_database_refuses_fails_that_login(
        clients: Clients, server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    await clients.user("alice")
    alice = server.services.accounts.require("alice")
    issued = await server.services.resume.issue(Grant(alice))

    async def refused(rotations: Any) -> Any:
        raise Unavailable("the database is away")

    monkeypatch.setattr(server.services.storage, "rotate_resume_tokens", refused)
    assert (await _resume(clients, issued.secret))["code"] == "busy"
