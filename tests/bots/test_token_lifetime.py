"""A token made by a session logged in with a token lives no longer than that token,
over real sockets: a leaked short-lived token cannot mint a lasting one."""

from __future__ import annotations

from chatd.client import ChatClient
from chatd.domain.clock import ManualClock
from tests.backends import both
from tests.helpers import Clients

# A token's expiry is stored alike on both backends: the cap must hold on each.
backend = both

CAPPED = "expires with the token this session logged in with"


async def _logged_in_with(clients: Clients, token: str) -> ChatClient:
    client = await clients.anonymous()
    await client.command(f"/auth {token}")
    return client


async def test_a_token_made_with_a_token_expires_with_it(
        clients: Clients, clock: ManualClock) -> None:
    alice = await clients.user("alice")
    short = await alice.command("/token create short all 1h")
    scripted = await _logged_in_with(clients, short["token"])

    forever = await scripted.command("/token create forever all")
    assert forever["expires"] == short["expires"] and forever["capped"] is True
    assert CAPPED in forever["message"]
    longer = await scripted.command("/token create longer all 30d")
    assert longer["expires"] == short["expires"] and longer["capped"] is True
    # A lifetime within the token's is what was asked, and says nothing more.
    shorter = await scripted.command("/token create shorter all 10m")
    assert shorter["expires"] == clock.time() + 600
    assert shorter.get("capped") is None and CAPPED not in shorter["message"]
    # A session logged in with a password still makes a token that never expires.
    unbound = await alice.command("/token create unbound all")
    assert unbound["expires"] is None and unbound.get("capped") is None
    assert "never expires" in unbound["message"]


async def test_a_bot_token_made_by_an_owner_logged_in_with_a_token_expires_with_it(
        clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/bot create helper")
    short = await alice.command("/token create short all 2h")
    scripted = await _logged_in_with(clients, short["token"])

    made = await scripted.command("/bot token helper read,post")
    assert made["user"] == "helper" and made["expires"] == short["expires"]
    assert made["capped"] is True and CAPPED in made["message"]
    created = await scripted.command("/bot create other read 90d")
    assert created["expires"] == short["expires"] and created["capped"] is True
