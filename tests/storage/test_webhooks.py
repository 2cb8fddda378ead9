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


async def test_a_hook_is_read_with_the_token_that_made_it(storage: Storage) -> None:
    """A hook made with an API token is read with that token as it is now: its
    expiry, and once the token is revoked (its row deleted), that it is gone; the
    hook itself stays. A hook made from a password session names no token."""
    alice = await storage.create_user("alice", b"h", False, T0)
    dev, _ = await storage.create_room("dev", "open", alice.id, T0)
    forever = await storage.create_token(alice.id, "forever", "t1", T0, None)
    brief = await storage.create_token(alice.id, "brief", "t2", T0, T0 + 60)
    by_password = await storage.create_webhook(dev.id, "manual", "h0", alice.id, T0)
    by_token = await storage.create_webhook(dev.id, "ci", "h1", alice.id, T0, forever.id)
    by_brief = await storage.create_webhook(dev.id, "cron", "h2", alice.id, T0, brief.id)
    assert (by_password.token_id, by_password.token_expires_at, by_password.token_gone) == \
        (None, None, False)
    assert (by_token.token_id, by_token.token_expires_at, by_token.token_gone) == \
        (forever.id, None, False)
    assert (by_brief.token_id, by_brief.token_expires_at, by_brief.token_gone) == \
        (brief.id, T0 + 60, False)
    assert await storage.get_webhook(by_token.id) == by_token
    assert await storage.delete_token(alice.id, "forever")
    revoked = await storage.get_webhook(by_token.id)
    assert revoked is not None and (revoked.token_id, revoked.token_gone) == (forever.id, True)
    assert await storage.list_webhooks(dev.id) == [by_password, revoked, by_brief]
    # A token made after it never takes the revoked one's id: the hook stays dead.
    await storage.create_token(alice.id, "forever", "t3", T0, None)
    assert await storage.get_webhook(by_token.id) == revoked
