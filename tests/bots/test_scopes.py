"""Scoped API tokens over real sockets: each command's declared scope is enforced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatd.domain.clock import ManualClock
from chatd.domain.tokens import token_hash
from chatd.protocol.registry import COMMANDS
from storage.api import StorageError
from tests.backends import both
from tests.helpers import (
    ChatServer,
    Clients,
    error_of,
    room_with,
    start_server,
    text_client,
    text_run,
)

# Scopes and last use of tokens are stored alike on both backends.
backend = both


async def _token_login(clients: Clients, token: str):  # type: ignore[no-untyped-def]
    client = await clients.anonymous()
    await client.command(f"/auth {token}")
    return client


async def test_a_read_token_reads_but_cannot_post(clients: Clients) -> None:
    alice, = await room_with(clients, "alice")
    token = (await alice.command("/token create reader read"))["token"]
    reader = await _token_login(clients, token)
    assert (await reader.command("/whoami"))["user"] == "alice"
    assert (await reader.command("/history general"))["room"] == "general"
    assert (await reader.command("/switch general"))["room"] == "general"

    refused = await error_of(reader, "/say general hello")
    assert refused["code"] == "scope" and refused["scope"] == "post"
    assert "post scope" in refused["message"]
    reader.send_line("a plain line")
    plain = await reader.next_event(lambda e: e.get("type") == "error")
    assert plain["code"] == "scope" and plain["command"] == "message"
    assert (await error_of(reader, "/token list"))["scope"] == "admin"
    assert (await error_of(reader, "/kick bob"))["scope"] == "moderate"


async def test_a_read_token_reads_the_topic_and_only_a_moderate_one_sets_it(
        clients: Clients) -> None:
    """Reading a topic is reading (as IRC's TOPIC without text is); setting it governs
    the room."""
    alice, = await room_with(clients, "alice")
    await alice.command("/topic general Say hello")
    reader = await _token_login(
        clients, (await alice.command("/token create reader read"))["token"])
    assert (await reader.command("/topic general"))["topic"] == "Say hello"
    refused = await error_of(reader, "/topic general Something else")
    assert refused["code"] == "scope" and refused["scope"] == "moderate"
    assert "setting a topic" in refused["message"]
    moderator = await _token_login(
        clients, (await alice.command("/token create mod read,moderate"))["token"])
    assert (await moderator.command("/topic general New"))["topic"] == "New"
    assert (await reader.command("/topic general"))["topic"] == "New"


async def test_a_read_token_reads_public_keys_and_only_a_post_one_publishes(
        clients: Clients) -> None:
    """A public key is there to be read: /keys get and /keys room are reads; publishing
    one speaks for the account."""
    alice, _ = await room_with(clients, "alice", "bob")
    key = "A" * 43 + "="
    await alice.command(f"/keys publish {key}")
    reader = await _token_login(
        clients, (await alice.command("/token create reader read"))["token"])
    assert (await reader.command("/keys get alice"))["keys"][0]["key"] == key
    listed = await reader.command("/keys room general")
    assert ([k["user"] for k in listed["keys"]], listed["missing"]) == (["alice"], ["bob"])
    refused = await error_of(reader, f"/keys publish {key}")
    assert refused["code"] == "scope" and refused["scope"] == "post"
    assert "publishing a key" in refused["message"]
    poster = await _token_login(
        clients, (await alice.command("/token create poster read,post"))["token"])
    assert (await poster.command(f"/keys publish {key}"))["keys"][0]["user"] == "alice"


async def test_default_scopes_post_but_do_not_moderate(clients: Clients) -> None:
    alice, _ = await room_with(clients, "alice", "bob")
    made = await alice.command("/token create")
    assert made["scopes"] == ["read", "post"] and made["name"] == "default"
    poster = await _token_login(clients, made["token"])
    await poster.command("/say general from a token")
    assert (await error_of(poster, "/kick bob"))["code"] == "scope"
    # A moderation bot needs no post scope.
    moderator = await _token_login(
        clients, (await alice.command("/token create mod read,moderate"))["token"])
    await moderator.command("/kick bob general being tested")
    assert (await error_of(moderator, "/say general hi"))["code"] == "scope"


async def test_a_token_cannot_make_a_stronger_token(clients: Clients) -> None:
    alice = await clients.user("alice")
    admin_token = (await alice.command("/token create boss admin,read"))["token"]
    boss = await _token_login(clients, admin_token)
    refused = await error_of(boss, "/token create more all")
    assert refused["code"] == "scope" and refused["scope"] == "post,moderate"
    assert (await boss.command("/token create weaker read"))["scopes"] == ["read"]
    # A password login has every scope.
    assert (await alice.command("/token create full all"))["scopes"] == [
        "read", "post", "moderate", "admin"]


async def test_token_create_reads_name_scopes_and_ttl_in_any_sensible_order(
        clients: Clients) -> None:
    alice = await clients.user("alice")
    lifetime = await alice.command("/token create 7d")
    assert (lifetime["name"], lifetime["scopes"]) == ("default", ["read", "post"])
    await alice.command("/token revoke default")
    scoped = await alice.command("/token create read")
    assert (scoped["name"], scoped["scopes"], scoped["expires"]) == ("default", ["read"], None)
    named = await alice.command("/token create ci READ 1h")
    assert (named["name"], named["scopes"]) == ("ci", ["read"])
    assert named["expires"] is not None
    assert (await error_of(alice, "/token create x read,nope"))["code"] == "bad-arguments"
    assert (await error_of(alice, "/token create 0s"))["code"] == "bad-arguments"
    # A lifetime first, then scopes: still a lifetime, never a name.
    await alice.command("/token revoke default")
    short = await alice.command("/token create 2h read,post")
    assert (short["name"], short["scopes"]) == ("default", ["read", "post"])
    assert short["expires"] is not None and "read,post, expires 20" in short["message"]
    assert "never expires" in scoped["message"]
    assert "lifetime" in (await error_of(alice, "/token create 2h read 3d"))["message"]
    # An unknown scope is named as such, not taken for a lifetime.
    for line in ("/token create t3 read,bogus", "/token create read,bogus"):
        said = (await error_of(alice, line))["message"].split(" Usage: ")[0]
        assert "bogus" in said and "ttl" not in said, line
        assert "name" not in said, line
    for name in ("bad!name", "x" * 33):
        refused = await error_of(alice, f"/token create {name}")
        assert refused["code"] == "bad-arguments" and "token's name" in refused["message"]
    assert (await alice.command(f"/token create {'x' * 32}"))["name"] == "x" * 32


async def test_listing_shows_scopes_expiry_and_last_use_written_in_batches(
        clients: Clients, server: ChatServer, clock: ManualClock) -> None:
    alice = await clients.user("alice")
    made = await alice.command("/token create bot read 1d")
    listed = (await alice.command("/token list"))["tokens"]
    assert listed == [{"name": "bot", "kind": "api", "scopes": ["read"],
                       "created": made["expires"] - 86400, "expires": made["expires"],
                       "last_used": None}]
    clock.advance(60)
    await _token_login(clients, made["token"])
    used = (await alice.command("/token list"))["tokens"][0]["last_used"]
    assert used == clock.time()
    # Noted in memory only: nothing written per login ...
    storage = server.services.storage
    [stored] = await storage.load_tokens()
    assert stored.last_used_at is None
    # ... until the batch is flushed.
    assert await server.services.tokens.flush_use() == 1
    [stored] = await storage.load_tokens()
    assert stored.last_used_at == used
    assert await server.services.tokens.flush_use() == 0
    # Written, the last use is still listed (the record in memory holds it now).
    assert (await alice.command("/token list"))["tokens"][0]["last_used"] == used
    # Kept to the second: a use within a second of the last noted one is noted
    # with that time (one float for a wave of log-ins); a later one with its own.
    clock.advance(0.5)
    await _token_login(clients, made["token"])
    assert (await alice.command("/token list"))["tokens"][0]["last_used"] == used
    clock.advance(0.6)
    await _token_login(clients, made["token"])
    assert (await alice.command("/token list"))["tokens"][0]["last_used"] == clock.time()


async def test_token_list_in_text_mode(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/token create bot read,post")
    await alice.command("/token create tab read 1d --session")
    person = await text_client(clients, "alice")
    lines = await text_run(person, "/token list")
    assert lines[0].split() == ["name", "kind", "scopes", "created", "(UTC)", "expires",
                                "(UTC)", "last", "used", "(UTC)"]
    assert lines[1].split()[:3] == ["bot", "api", "read,post"]
    assert lines[1].split()[-2:] == ["never"] * 2
    assert lines[2].split()[:3] == ["tab", "session", "read"]
    assert lines[-1] == "* 2 tokens; 0 resume tokens."


async def test_session_written_alone_or_mistyped_is_the_flag_never_a_tokens_name(
        clients: Clients) -> None:
    """``/token create --session`` is a session token named ``default``, not an api
    token named "--session"; the flag mistyped is refused and makes nothing."""
    alice = await clients.user("alice")
    made = await alice.command("/token create --session")
    assert (made["name"], made["kind"]) == ("default", "session")
    for line, told in [("/token create --sesion", 'expected --session, not "--sesion".'),
                       ("/token create --sessions read", 'expected --session, not "--sessions".'),
                       ("/token create ci --sesion", 'expected --session, not "--sesion".')]:
        error = await error_of(alice, line)
        assert error["code"] == "bad-arguments", (line, error)
        assert error["message"].startswith(told), (line, error)
    listed = (await alice.command("/token list"))["tokens"]
    assert [(t["name"], t["kind"]) for t in listed] == [("default", "session")]


async def test_an_expired_token_fails(clients: Clients, clock: ManualClock) -> None:
    alice = await clients.user("alice")
    token = (await alice.command("/token create short 1h"))["token"]
    await _token_login(clients, token)
    clock.advance(3601)
    late = await clients.anonymous()
    assert (await error_of(late, f"/auth {token}"))["code"] == "auth-failed"
    assert (await alice.command("/passwd secret-pw new-secret"))["valid_tokens"] == 0


async def test_revoked_and_unknown_tokens_fail_without_the_database(
        clients: Clients, server: ChatServer) -> None:
    alice = await clients.user("alice")
    token = (await alice.command("/token create t"))["token"]
    await alice.command("/token revoke T")
    other = await clients.anonymous()
    assert (await error_of(other, f"/auth {token}"))["code"] == "auth-failed"
    assert (await error_of(alice, "/token revoke t"))["code"] == "no-such-token"
    assert await server.services.storage.find_token(token_hash(token)) is None


async def test_a_log_in_that_fails_half_way_never_has_more_than_its_token(
        clients: Clients, server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The log-in signs the connection in, then replays the direct messages that
    # waited: the database failing there answers an error, and the connection,
    # logged in, may still do only what its read token grants.
    alice, bob = await clients.user("alice"), await clients.user("bob")
    token = (await alice.command("/token create r read"))["token"]
    await alice.command("/logout")
    await bob.command("/msg alice while you were away")

    async def failing(user_id: int) -> list[Any]:
        raise StorageError("the database does not answer")

    monkeypatch.setattr(server.services.storage, "direct_backlog", failing)
    client = await clients.anonymous()
    assert (await error_of(client, f"/auth {token}"))["code"] == "internal-error"
    refused = await error_of(client, "/token create full read,post,moderate,admin")
    assert refused["code"] == "scope"


async def test_scopes_reset_at_logout(clients: Clients) -> None:
    alice = await clients.user("alice")
    token = (await alice.command("/token create r read"))["token"]
    client = await _token_login(clients, token)
    await client.command("/logout")
    await client.command("/login alice secret-pw")
    assert (await client.command("/token list"))["tokens"][0]["name"] == "r"


def test_every_command_declares_a_scope() -> None:
    import commands

    table = commands.load()
    assert table is COMMANDS
    scopes = {cmd.name: cmd.scope.value for cmd in table.all()}
    assert scopes["say"] == "post" and scopes["who"] == "read"
    assert scopes["kick"] == "moderate" and scopes["useradd"] == "admin"
    assert scopes["token"] == "admin" and scopes["bot"] == "admin"


async def test_a_token_name_is_taken_once(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/token create ci")
    taken = await error_of(alice, "/token create CI read")
    assert taken["code"] == "name-taken" and "/token revoke" in taken["message"]
    assert (await error_of(alice, "/token revoke"))["code"] == "bad-arguments"


async def test_last_use_survives_a_restart_and_a_failed_write(
        tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
        storage_overrides: dict[str, Any]) -> None:
    db_path = tmp_path / "tokens.db"
    server = await start_server(db_path, clock=clock, **storage_overrides)
    clients = Clients(server)
    alice = await clients.user("alice")
    token = (await alice.command("/token create ci"))["token"]
    clock.advance(10)
    await _token_login(clients, token)
    storage = server.services.storage

    async def broken(used: object) -> None:
        raise StorageError("disk full")

    monkeypatch.setattr(storage, "set_tokens_used", broken)
    assert await server.services.tokens.flush_use() == 0  # kept for the next try
    monkeypatch.undo()
    await clients.close()
    await server.stop()  # the last flush, at stop

    server = await start_server(db_path, clock=clock, **storage_overrides)
    clients = Clients(server)
    try:
        alice = await clients.user("alice")
        assert (await alice.command("/token list"))["tokens"][0]["last_used"] == clock.time()
    finally:
        await clients.close()
        await server.stop()


async def test_a_bot_refused_a_token_stronger_than_the_session_is_not_made(
        clients: Clients, server: ChatServer) -> None:
    # The scope check refuses the bot's first token: the bot must not be left behind,
    # tokenless, taking its name and a place in its owner's quota.
    alice = await clients.user("alice")
    boss = await _token_login(
        clients, (await alice.command("/token create boss admin,read,post"))["token"])
    refused = await error_of(boss, "/bot create helper all")
    assert refused["code"] == "scope" and refused["scope"] == "moderate"
    assert (await alice.command("/bot list"))["bots"] == []
    assert server.services.accounts.find("helper") is None
    made = await boss.command("/bot create helper read,post")
    assert made["user"] == "helper" and made["scopes"] == ["read", "post"]
