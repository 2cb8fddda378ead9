"""A token that can no longer log in ends the sessions it opened: revoked (by its
owner, or an operator) or expired, the connections logged in with it, and with the
resume tokens made from it, are told why and closed; the others stay."""

from __future__ import annotations

from typing import Any

import pytest

from chatd.client import ChatClient
from chatd.domain.clock import ManualClock
from tests.helpers import ChatServer, Clients, room_with


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
    # ends too, as its token no longer stands behind it.
    other, _ = await _logged_in(clients, f"/auth {made['token']}")
    with pytest.raises(ConnectionError):
        await other.command("/token revoke default")
    assert (await _ended(bot))["code"] == "token-revoked"
    helper = server.services.accounts.find("helper")
    assert helper is not None and helper.connections == 0
    # Its other token still logs it in.
    again, _ = await _logged_in(clients, f"/auth {spare['token']}")
    assert (await again.command("/say general back"))["type"] == "ok"


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

