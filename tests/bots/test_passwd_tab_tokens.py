"""A changed password ends the browser tabs logged in with the old one: their
session tokens are revoked (a tab would log itself in again with its token), but
the one the changing session logged in with; scripts' API tokens stay."""

from __future__ import annotations

from chatd.client import ChatClient
from tests.backends import both
from tests.helpers import PASSWORD, Clients, error_of

# Deleted in one statement alike on SQLite and on PostgreSQL.
backend = both


async def _logged_in_with(clients: Clients, token: str) -> ChatClient:
    tab = await clients.anonymous()
    await tab.command(f"/login alice --token {token}")
    return tab


async def test_passwd_revokes_the_other_tabs_tokens_and_keeps_its_own(
        clients: Clients) -> None:
    alice = await clients.user("alice")
    script = (await alice.command("/token create ci read"))["token"]
    tabs = [(await alice.command(f"/token create web-{n} all 7d --session"))["token"]
            for n in range(3)]
    changing = await _logged_in_with(clients, tabs[0])

    reply = await changing.command(f"/passwd {PASSWORD} new-password")
    assert reply["revoked_session_tokens"] == 2 and reply["valid_tokens"] == 2
    assert "2 browser session tokens were revoked" in reply.final["message"]
    for gone in tabs[1:]:
        refused = await error_of(await clients.anonymous(), f"/login alice --token {gone}")
        assert refused["code"] == "auth-failed"
    for kept in (tabs[0], script):
        assert (await (await _logged_in_with(clients, kept)).command("/whoami"))["user"] == \
            "alice"
    listed = await changing.command("/token list")
    assert [t["name"] for t in listed["tokens"]] == ["ci", "web-0"]


async def test_passwd_from_a_password_session_revokes_every_tab_token(
        clients: Clients) -> None:
    alice = await clients.user("alice")
    tab = (await alice.command("/token create web all 7d --session"))["token"]
    reply = await alice.command(f"/passwd {PASSWORD} new-password")
    assert reply["revoked_session_tokens"] == 1 and reply["valid_tokens"] == 0
    refused = await error_of(await clients.anonymous(), f"/login alice --token {tab}")
    assert refused["code"] == "auth-failed"
