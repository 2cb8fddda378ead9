"""What a log-in reads from memory instead of the database: notification counts, and
the log-in's audit entry, written in a batch."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from chatd.domain.accounts import User
from chatd.domain.notifications import Notifier
from storage.api import StorageError
from tests.commands.conftest import Chat
from tests.helpers import PASSWORD

DAY = 86400.0


async def stored(chat: Chat, user: User) -> int:
    return await chat.server.services.storage.count_notifications(user.id)


async def offline_user(chat: Chat, name: str) -> User:
    await (await chat.user(name)).say("/logout")
    user = chat.server.services.accounts.find(name)
    assert user is not None
    return user


async def test_the_count_follows_every_write(chat: Chat) -> None:
    notifier = chat.server.services.notifier
    bob = await offline_user(chat, "bob")
    for n in range(3):
        await notifier.notify(bob, "kicked", f"kick {n}")
    assert await notifier.unread(bob) == await stored(chat, bob) == 3
    peer = await chat.anonymous()
    await peer.say("/format json")
    welcome = await peer.final(f"/login bob {PASSWORD}")
    assert welcome["notifications"] == 3
    assert "3 unread notifications" in str(welcome["message"])
    await peer.say("/notifications clear")
    assert await notifier.unread(bob) == await stored(chat, bob) == 0
    assert (await peer.final("/logout"))["type"] == "ok"
    assert (await peer.final(f"/login bob {PASSWORD}"))["notifications"] == 0


async def test_concurrent_writes_leave_memory_and_storage_agreeing(chat: Chat) -> None:
    notifier = chat.server.services.notifier
    bob = await offline_user(chat, "bob")
    for round_ in range(10):
        await asyncio.gather(notifier.notify(bob, "kicked", f"a{round_}"),
                             notifier.clear(bob),
                             notifier.notify(bob, "kicked", f"b{round_}"))
        assert await notifier.unread(bob) == await stored(chat, bob)


async def test_expiry_lowers_each_users_count(chat: Chat) -> None:
    services, clock = chat.server.services, chat.clock
    bob, carol = await offline_user(chat, "bob"), await offline_user(chat, "carol")
    await services.notifier.notify(bob, "kicked", "old")
    await services.notifier.notify(carol, "kicked", "old")
    clock.advance(40 * DAY)
    await services.notifier.notify(bob, "kicked", "new")
    done = await chat.server.housekeeping.run_once()  # retention: 30 days
    assert done["notifications_deleted"] == 2
    assert (await services.notifier.unread(bob), await services.notifier.unread(carol)) == (1, 0)
    assert (await stored(chat, bob), await stored(chat, carol)) == (1, 0)


async def test_counts_are_loaded_at_start(chat: Chat) -> None:
    services = chat.server.services
    bob = await offline_user(chat, "bob")
    await services.notifier.notify(bob, "kicked", "x")
    await services.notifier.notify(bob, "muted", "y")
    fresh = Notifier(services.storage, services.bus, chat.clock)
    assert await fresh.unread(bob) == 0
    await fresh.load()
    assert await fresh.unread(bob) == 2


async def test_a_deleted_account_leaves_no_count(chat: Chat) -> None:
    services = chat.server.services
    dave = await offline_user(chat, "dave")
    await services.notifier.notify(dave, "kicked", "x")
    assert await services.notifier.unread(dave) == 1
    await services.presence.delete_account(dave, actor="root")  # what /userdel does
    assert services.accounts.find("dave") is None
    assert await services.notifier.unread(dave) == 0


async def test_a_login_entry_is_written_in_order_before_any_read(chat: Chat) -> None:
    audit = chat.server.services.audit
    await chat.user("alice")  # registered: account-created (written), login (noted)
    audit.note("login", actor="bob")
    await audit.record("kick", actor="carol", target="dave")
    entries = await audit.entries(10)
    assert [(e.action, e.actor) for e in entries[-4:]] == [
        ("account-created", "alice"), ("login", "alice"), ("login", "bob"),
        ("kick", "carol")]


async def test_a_failed_batch_is_kept_and_written_later(chat: Chat, tmp_path: Path) -> None:
    audit, storage = chat.server.services.audit, chat.server.services.storage

    def rename(old: str, new: str) -> None:
        # Another process breaks the table (in a thread: the loop keeps going).
        with sqlite3.connect(tmp_path / "chatd.db", timeout=10) as conn:
            conn.execute(f"ALTER TABLE {old} RENAME TO {new}")

    await asyncio.to_thread(rename, "audit", "audit_away")
    audit.note("login", actor="erin")
    with pytest.raises(StorageError):
        await audit.flush()
    await asyncio.to_thread(rename, "audit_away", "audit")
    assert [e.actor for e in await storage.list_audit(10)] == []
    await audit.flush()
    assert [(e.action, e.actor) for e in await storage.list_audit(10)] == [("login", "erin")]


async def test_closing_writes_noted_entries_at_once(chat: Chat) -> None:
    audit, storage = chat.server.services.audit, chat.server.services.storage
    audit.note("login", actor="frank")
    await audit.close()
    assert [(e.action, e.actor) for e in await storage.list_audit(10)] == [("login", "frank")]
    audit.note("login", actor="grace")  # noted after closing: written by the next flush
    await audit.flush()
    assert [e.actor for e in await storage.list_audit(10)] == ["frank", "grace"]
