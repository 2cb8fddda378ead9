"""A token that can no longer log in ends the sessions it opened: revoked (by its
owner, or an operator) or expired, the connections logged in with it, and with the
resume tokens made from it, are told why and closed; the others stay."""

from __future__ import annotations

from typing import Any

from chatd.client import ChatClient
from chatd.domain.clock import ManualClock
from tests.helpers import ChatServer, Clients, error_of, room_with


async def _ended(client: ChatClient) -> dict[str, Any]:
    """The error a closed session was told, having checked that it then closed."""
    told = await client.next_event()
    assert told["type"] == "error", told
    assert (await client.next_event())["type"] == "closed"
    return told


async def _logged_in(clients: Clients, line: str) -> tuple[ChatClient, dict[str, Any]]:
    client = await clients.anonymous()
    reply = await client.command(line)
    return client, dict(reply.final)


async def test_revoking_a_token_closes_its_sessions_and_their_resumed_ones(
        clients: Clients) -> None:
    alice, = await room_with(clients, "alice")
    token = (await alice.command("/token create bot"))["token"]
    other = (await alice.command("/token create other"))["token"]
    bot, login = await _logged_in(clients, f"/login alice --token {token} --resume")
    resumed, _ = await _logged_in(clients, f"/login --resume {login['resume']}")
    kept, _ = await _logged_in(clients, f"/auth {other}")

    reply = await alice.command("/token revoke bot")
    assert reply["name"] == "bot"
    for closed in (bot, resumed):
        told = await _ended(closed)
        assert told["code"] == "token-revoked" and told["token"] == "bot"
        assert told["message"] == ("your token bot was revoked; this connection is closed. "
                                   "Log in again with a valid token.")
    # The password's session and the other token's stay logged in.
    assert (await kept.command("/whoami"))["connections"] == 2
    assert (await alice.command("/say general still here"))["type"] == "ok"


async def test_a_bots_token_revoked_by_the_owner_stops_the_bot_posting(
        clients: Clients, server: ChatServer) -> None:
    alice, = await room_with(clients, "alice")
    made = await alice.command("/bot create helper read,post,admin")
    spare = await alice.command("/bot token helper")
    bot, _ = await _logged_in(clients, f"/auth {made['token']}")
    await bot.command("/join general")
    # The bot's own admin-scoped session revokes the token it logged in with: it
    # ends too, as its token no longer stands behind it, and that end is the
    # command's answer, under its label (the reply came: it was matched by it).
    other, _ = await _logged_in(clients, f"/auth {made['token']}")
    answer = await other.command("/token revoke default", check=False)
    assert (answer.final["type"], answer.final["code"]) == ("error", "token-revoked")
    assert answer.final["command"] == "token"  # as every command's error names it
    assert (await other.next_event())["type"] == "closed"
    assert (await _ended(bot))["code"] == "token-revoked"
    helper = server.services.accounts.find("helper")
    assert helper is not None and helper.connections == 0
    # Its other token still logs it in.
    again, _ = await _logged_in(clients, f"/auth {spare['token']}")
    assert (await again.command("/say general back"))["type"] == "ok"


async def test_the_owner_revokes_one_of_a_bots_tokens_and_its_sessions_close(
        clients: Clients, server: ChatServer) -> None:
    alice, = await room_with(clients, "alice")
    bob = await clients.user("bob")
    made = await alice.command("/bot create helper")
    spare = await alice.command("/bot token helper")
    bot, login = await _logged_in(clients, f"/auth {made['token']} --resume")
    resumed, _ = await _logged_in(clients, f"/login --resume {login['resume']}")
    kept, _ = await _logged_in(clients, f"/auth {spare['token']}")

    assert (await error_of(bob, "/bot revoke helper default"))["code"] == "not-permitted"
    missing = await error_of(alice, "/bot revoke helper nosuch")
    assert missing["code"] == "no-such-token"
    assert missing["message"] == ('helper has no token named "nosuch"; '
                                  "/bot tokens helper lists them.")
    assert (await error_of(alice, "/bot revoke helper"))["code"] == "bad-arguments"
    assert (await error_of(alice, "/bot revoke helper default x"))["code"] == "bad-arguments"

    reply = await alice.command("/bot revoke helper default")
    assert (reply["user"], reply["name"]) == ("helper", "default")
    for closed in (bot, resumed):
        told = await _ended(closed)
        assert told["code"] == "token-revoked" and told["token"] == "default"
    # The bot's other token still stands, and its session with it.
    assert (await kept.command("/whoami"))["user"] == "helper"
    tokens = await alice.command("/bot tokens helper")
    assert [t["name"] for t in tokens["tokens"]] == ["token2"]
    again = await clients.anonymous()
    assert (await error_of(again, f"/auth {made['token']}"))["code"] == "auth-failed"
    entry = next(e for e in await server.services.audit.entries(20)
                 if e.action == "token-revoked")
    assert (entry.actor, entry.target, entry.reason) == ("alice", "helper", "default")
    described = (await alice.command("/schema bot"))["schema"]
    assert "/bot revoke <name> <token-name>" in described["usage"]
    assert "no-such-token" in described["errors"]
    params = {param["name"]: param for param in described["params"]}
    assert params["token_name"] == {"name": "token_name", "type": "word", "optional": False,
                                    "rest": False, "sub_commands": ["revoke"]}
    assert params["page"]["sub_commands"] == ["list"]  # /bot list [page]


async def test_an_expired_token_closes_its_sessions_at_the_next_sweep(
        clients: Clients, server: ChatServer, clock: ManualClock) -> None:
    alice = await clients.user("alice")
    short = (await alice.command("/token create short 2s"))["token"]
    later = (await alice.command("/token create later 1h"))["token"]
    bot, login = await _logged_in(clients, f"/auth {short} --resume")
    resumed, _ = await _logged_in(clients, f"/login --resume {login['resume']}")
    kept, _ = await _logged_in(clients, f"/auth {later}")
    clock.advance(1)
    server.sweep_once()
    assert (await bot.command("/whoami"))["user"] == "alice"
    clock.advance(2)
    server.sweep_once()
    for closed in (bot, resumed):
        told = await _ended(closed)
        assert told["code"] == "token-expired" and told["token"] == "short"
        assert told["message"].startswith("your token short expired;")
    assert (await kept.command("/whoami"))["connections"] == 2
    clock.advance(3600)
    server.sweep_once()
    assert (await _ended(kept))["code"] == "token-expired"
    assert (await alice.command("/whoami"))["connections"] == 1

