"""A browser tab's session tokens have their own bound per account
(accounts.max_session_tokens): making one more revokes the least recently used,
whose connections are closed as a revocation's are, and never the one the
session asking logged in with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatd.client import ChatClient
from chatd.domain.clock import ManualClock
from tests.backends import both
from tests.helpers import ChatServer, Clients, start_server, text_client, text_run

BOUND = 3
# Picked in the insert's transaction alike on SQLite and on PostgreSQL.
backend = both


@pytest.fixture
async def server(db_path: Path, clock: ManualClock,
                 storage_overrides: dict[str, Any]) -> AsyncIterator[ChatServer]:
    srv = await start_server(db_path, clock=clock, accounts__max_session_tokens=BOUND,
                             **storage_overrides)
    yield srv
    await srv.stop()


async def _tab(clients: Clients, token: str) -> ChatClient:
    """A connection logged in with ``token``, as the web client logs a tab in again."""
    tab = await clients.anonymous()
    await tab.command(f"/login alice --token {token}")
    return tab


async def test_a_session_token_past_the_bound_revokes_the_least_recently_used(
        clients: Clients, clock: ManualClock) -> None:
    alice = await clients.user("alice")
    await alice.command("/token create ci read")
    made = {}
    for n in range(BOUND):
        made[n] = (await alice.command(f"/token create web-{n} all 7d --session"))["token"]
        clock.advance(1)
    # Used in another order than made: web-1 first, then web-0, then web-2.
    tabs = {}
    for n in (1, 0, 2):
        tabs[n] = await _tab(clients, made[n])
        clock.advance(1)

    reply = await alice.command("/token create web-3 all 7d --session")
    assert reply["kind"] == "session"
    told = await tabs[1].next_event()
    assert (told["code"], told["token"]) == ("token-revoked", "web-1")
    assert (await tabs[1].next_event())["type"] == "closed"
    listed = await alice.command("/token list")
    assert [(t["name"], t["kind"]) for t in listed["tokens"]] == [
        ("ci", "api"), ("web-0", "session"), ("web-2", "session"), ("web-3", "session")]

    # web-0's tab, now the least recently used, makes one more: its own token stays,
    # and the next least recent goes (web-2, last used before web-3 was made).
    renewed = await tabs[0].command("/token create web-4 all 7d --session")
    assert renewed["kind"] == "session"
    told = await tabs[2].next_event()
    assert (told["code"], told["token"]) == ("token-revoked", "web-2")
    assert (await tabs[0].command("/whoami"))["user"] == "alice"
    names = [t["name"] for t in (await alice.command("/token list"))["tokens"]]
    assert names == ["ci", "web-0", "web-3", "web-4"]


async def test_the_reply_names_the_session_token_revoked_to_make_room(
        clients: Clients, clock: ManualClock) -> None:
    """Nobody chose the token revoked past the bound: the reply says which it was, in
    JSON (``revoked``) and in the text sentence; within the bound it says nothing."""
    alice = await clients.user("alice")
    for n in range(BOUND):
        made = await alice.command(f"/token create web-{n} --session")
        assert "revoked" not in made.final and "revoked" not in made["message"]
        clock.advance(1)

    made = await alice.command("/token create web-3 --session")
    assert made["revoked"] == ["web-0"]
    assert made["message"].endswith("(revoked the least recently used tab token web-0).")

    text = await text_client(clients, "alice")
    lines = await text_run(text, "/token create web-4 --session")
    assert lines[-1].startswith("* Session token web-4 for alice")
    assert lines[-1].endswith("(revoked the least recently used tab token web-1).")
