"""The incoming webhooks of rooms in storage, on both backends."""

from __future__ import annotations

import pytest

from storage import Conflict, Storage
from tests.backends import both

T0 = 1_700_000_000.0

backend = both


async def test_hooks_are_stored_listed_and_deleted_per_room(storage: Storage) -> None:
    alice = await storage.create_user("alice", b"h", False, T0)
    dev, _ = await storage.create_room("dev", "open", alice.id, T0)
    ops, _ = await storage.create_room("ops", "open", alice.id, T0)
    ci = await storage.create_webhook(dev.id, "CI", "hash-ci", alice.id, T0 + 1)
    deploy = await storage.create_webhook(dev.id, "deploy", "hash-d", alice.id, T0 + 2)
    await storage.create_webhook(ops.id, "ci", "hash-ops", alice.id, T0 + 3)  # another room
    with pytest.raises(Conflict):
        await storage.create_webhook(dev.id, "ci", "hash-again", alice.id, T0 + 4)

    assert await storage.get_webhook(ci.id) == ci
    assert await storage.get_webhook(10_000) is None
    assert await storage.list_webhooks(dev.id) == [ci, deploy]
    assert not await storage.delete_webhook(ops.id, ci.id)  # not that room's hook
    assert await storage.delete_webhook(dev.id, ci.id)
    assert not await storage.delete_webhook(dev.id, ci.id)
    assert await storage.list_webhooks(dev.id) == [deploy]


async def test_a_creators_hooks_go_with_the_account(storage: Storage) -> None:
    alice = await storage.create_user("alice", b"h", False, T0)
    bob = await storage.create_user("bob", b"h", False, T0)
    dev, _ = await storage.create_room("dev", "open", alice.id, T0)
    kept = await storage.create_webhook(dev.id, "alice's", "h1", alice.id, T0)
    await storage.create_webhook(dev.id, "bob's", "h2", bob.id, T0)
    await storage.delete_user(bob.id)
    assert await storage.list_webhooks(dev.id) == [kept]
