"""API tokens for bots: shown once, log in with /login --token or /auth,
revocable, expiring, and never stored or listed in the clear."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

from chatd.domain.clock import ManualClock
from tests.helpers import start_server
from tests.protection import ProtectionClients, error_of, serving


async def token_of(clients: ProtectionClients, user: str, line: str = "/token create bot"
                   ) -> str:
    owner = await clients.user(user)
    reply = await owner.command(line)
    token = reply["token"]
    assert isinstance(token, str) and len(token) >= 32
    return token


async def test_a_token_is_shown_once_and_logs_in(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (_, clients):
        alice = await clients.user("alice")
        created = await alice.command("/token create bot 1h")
        token = created["token"]
        assert created["name"] == "bot"
        assert created["expires"] == clock.time() + 3600
        listed = await alice.command("/token list")
        assert [t["name"] for t in listed["tokens"]] == ["bot"]
        everything = json.dumps([listed.final, *listed.lines])
        assert token not in everything
        # A name and the token ...
        bot = await clients.anonymous()
        reply = await bot.command(f"/login alice --token {token}")
        assert reply["user"] == "alice"
        assert (await bot.command("/whoami"))["user"] == "alice"
        # ... the name in any case ...
        bot2 = await clients.anonymous()
        assert (await bot2.command(f"/login ALICE --token {token}"))["user"] == "alice"
        # ... or the token alone.
        bot3 = await clients.anonymous()
        assert (await bot3.command(f"/auth {token}"))["user"] == "alice"
        assert (await alice.command("/whoami"))["connections"] == 4
        # Logged in already: neither form is accepted again.
        assert (await error_of(bot3, f"/auth {token}"))["code"] == "already-logged-in"
        assert (await error_of(bot3, f"/login alice --token {token}"))["code"] == \
            "already-logged-in"


async def test_a_revoked_token_fails(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (_, clients):
        alice = await clients.user("alice")
        token = (await alice.command("/token create bot"))["token"]
        keep = (await alice.command("/token create keep"))["token"]
        reply = await alice.command("/token revoke bot")
        assert reply["name"] == "bot"
        assert [t["name"] for t in (await alice.command("/token list"))["tokens"]] == ["keep"]
        bot = await clients.anonymous()
        assert (await error_of(bot, f"/login alice --token {token}"))["code"] == "auth-failed"
        assert (await error_of(bot, f"/auth {token}"))["code"] == "auth-failed"
        # The other token is untouched.
        assert (await bot.command(f"/auth {keep}"))["user"] == "alice"
        assert (await error_of(alice, "/token revoke bot"))["code"] == "no-such-token"


async def test_an_expired_token_fails(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (_, clients):
        alice = await clients.user("alice")
        token = (await alice.command("/token create short 10m"))["token"]
        forever = (await alice.command("/token create forever"))["token"]
        clock.advance(599)
        first = await clients.anonymous()
        assert (await first.command(f"/auth {token}"))["user"] == "alice"
        clock.advance(2)
        late = await clients.anonymous()
        assert (await error_of(late, f"/auth {token}"))["code"] == "auth-failed"
        assert (await error_of(late, f"/login alice --token {token}"))["code"] == "auth-failed"
        # A token without a ttl does not expire.
        clock.advance(400 * 86400)
        assert (await late.command(f"/login alice --token {forever}"))["user"] == "alice"


async def test_another_users_token_with_a_wrong_name_fails(
        db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (_, clients):
        await clients.user("alice")
        bob_token = await token_of(clients, "bob")
        client = await clients.anonymous()
        for name in ("alice", "nobody"):
            error = await error_of(client, f"/login {name} --token {bob_token}")
            assert error["code"] == "auth-failed"
        assert (await client.command(f"/login bob --token {bob_token}"))["user"] == "bob"


async def test_token_names_and_arguments(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (_, clients):
        alice = await clients.user("alice")
        assert (await alice.command("/token create"))["name"] == "default"
        assert (await error_of(alice, "/token create"))["code"] == "name-taken"
        await alice.command("/token create bot")
        assert (await error_of(alice, "/token create bot"))["code"] == "name-taken"
        assert (await error_of(alice, "/token create bot 1d"))["code"] == "name-taken"
        # Names are per user: bob may have a "bot" too.
        bob = await clients.user("bob")
        assert (await bob.command("/token create bot"))["name"] == "bot"
        assert (await error_of(alice, "/token revoke nosuch"))["code"] == "no-such-token"
        assert (await error_of(bob, "/token revoke default"))["code"] == "no-such-token"
        assert (await error_of(alice, "/token revoke"))["code"] == "bad-arguments"
        assert (await error_of(alice, "/token frobnicate"))["code"] == "bad-arguments"
        assert (await error_of(alice, "/token create x 0s"))["code"] == "bad-arguments"
        anon = await clients.anonymous()
        assert (await error_of(anon, "/token list"))["code"] == "not-logged-in"
        assert (await error_of(anon, "/token create x"))["code"] == "not-logged-in"
        assert (await error_of(anon, "/login alice --token"))["code"] == "bad-arguments"
        assert (await error_of(anon, "/login alice secret extra"))["code"] == "bad-arguments"
        assert (await error_of(anon, "/auth"))["code"] == "bad-arguments"


async def test_only_a_hash_is_stored_and_it_survives_a_restart(
        db_path: Path, clock: ManualClock) -> None:
    server = await start_server(db_path, clock=clock)
    clients = ProtectionClients(server)
    try:
        token = await token_of(clients, "alice")
    finally:
        await clients.close()
        await server.stop()
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        dump = "\n".join(db.iterdump())
    assert token not in dump
    server = await start_server(db_path, clock=clock)
    clients = ProtectionClients(server)
    try:
        bot = await clients.anonymous()
        assert (await bot.command(f"/auth {token}"))["user"] == "alice"
    finally:
        await clients.close()
        await server.stop()
