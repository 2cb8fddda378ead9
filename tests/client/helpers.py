"""What the client tests share: a bot account with a token, and waiting for a condition."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import bcrypt

from chatd.client import ChatClient
from chatd.client.sdk import Backoff, Bot
from tests.helpers import ChatServer, Clients

WAIT = 8.0  # seconds for anything to happen


async def until(condition: Callable[[], bool], what: Callable[[], str] | str = "a condition",
                timeout: float = WAIT) -> None:
    """Poll ``condition`` (no fixed sleep): the server runs in this loop meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            said = what if isinstance(what, str) else what()
            raise AssertionError(f"timed out waiting for {said}")
        await asyncio.sleep(0.01)


async def bot_token(clients: Clients, name: str, scopes: str = "") -> str:
    """Register ``name`` and make it an API token, as a bot's owner would: with
    ``scopes`` (``read,post,moderate``), or the server's default ones."""
    client = await clients.user(name)
    token = str((await client.command(f"/token create sdk {scopes}".rstrip()))["token"])
    await client.command("/logout")
    return token


def quick_backoff() -> Backoff:
    """Reconnection waits of a few milliseconds, always the same."""
    return Backoff(first=0.01, ceiling=0.05, floor=0.005, rng=lambda: 0.5)


def fixed_backoff(seconds: float) -> Backoff:
    """A reconnection after ``seconds`` each time: long enough to post meanwhile."""
    return Backoff(first=seconds, ceiling=seconds, floor=seconds, rng=lambda: 0.5)


async def started(bot: Bot) -> asyncio.Task[None]:
    """Run ``bot`` in the background until it is logged in and in its rooms."""
    task = asyncio.ensure_future(bot.run())
    await until(lambda: bot.connected.is_set() or task.done(), "the bot to log in")
    if task.done():
        task.result()
    return task


async def stopped(bot: Bot, task: asyncio.Task[None]) -> None:
    await bot.stop()
    await asyncio.wait_for(task, WAIT)


async def said(client: ChatClient, text: str) -> dict[str, object]:
    """The next message whose text contains ``text``."""
    return await client.next_event(
        lambda e: e.get("type") == "message" and text in str(e.get("text", "")), WAIT)


def port_of(server: ChatServer) -> int:
    return server.port


def change_password_offline(db: Path, name: str, password: str = "changed-while-down") -> None:
    """Give ``name`` another password straight in the database of a stopped server.

    Unlike /passwd this revokes no resume token, so a client that logs in again
    afterwards can only have done so with its resume token: its password is wrong.
    """
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4))
    with sqlite3.connect(db) as database:
        changed = database.execute("UPDATE users SET password_hash = ? WHERE name = ?",
                                   (hashed, name)).rowcount
    assert changed == 1, f"no account {name} in {db}"
