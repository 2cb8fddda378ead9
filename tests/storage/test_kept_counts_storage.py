"""What the kept notification counts and the batched audit entries ask of
storage, on both backends."""

from __future__ import annotations

import asyncio

from storage import Storage, chunks
from storage.chunks import CHUNK_ROWS, CHUNK_SIZES
from tests.backends import both

T0 = 1_700_000_000.0

backend = both


async def test_notification_counts_and_their_expiry_count_the_same_rows(
        storage: Storage) -> None:
    alice = await storage.create_user("alice", b"h", False, T0)
    bob = await storage.create_user("bob", b"h", False, T0)
    await storage.create_user("carol", b"h", False, T0)  # none: left out
    for user_id, ts in ((alice.id, T0), (alice.id, T0 + 10), (bob.id, T0), (alice.id, T0 + 1)):
        await storage.add_notification(user_id, "kicked", {"room": "dev"}, ts)
    assert await storage.notification_counts() == {alice.id: 3, bob.id: 1}
    assert await storage.expire_notifications(T0 + 5) == {alice.id: 2, bob.id: 1}
    assert await storage.notification_counts() == {alice.id: 1}
    assert await storage.expire_notifications(T0 + 5) == {}


async def test_notifications_dropped_past_the_bound_are_counted_until_taken(
        storage: Storage) -> None:
    alice = await storage.create_user("alice", b"h", False, T0)
    bob = await storage.create_user("bob", b"h", False, T0)
    for n in range(5):
        note, dropped = await storage.add_notification_kept(alice.id, "kicked", {"n": n},
                                                            T0 + n, 3)
        assert dropped == (1 if n >= 3 else 0)
    assert [n.payload["n"] for n in await storage.list_notifications(alice.id)] == [2, 3, 4]
    assert note.payload == {"n": 4}
    # Written at once, each drop is counted by one writer only.
    await asyncio.gather(*(storage.add_notification_kept(alice.id, "kicked", {}, T0, 3)
                           for _ in range(6)))
    assert await storage.count_notifications(alice.id) == 3
    # Read, the count stays for the listing to take (a log-in tells it).
    assert await storage.dropped_notifications(alice.id) == 8
    assert await storage.dropped_notification_counts() == {alice.id: 8}
    assert await storage.dropped_notifications(bob.id) == 0
    assert await storage.take_dropped_notifications(alice.id) == 8
    assert await storage.dropped_notification_counts() == {}
    assert await storage.take_dropped_notifications(alice.id) == 0
    assert await storage.take_dropped_notifications(bob.id) == 0
    await storage.add_notification_kept(alice.id, "kicked", {}, T0, 3)
    assert await storage.clear_notifications(alice.id) == 3
    assert await storage.take_dropped_notifications(alice.id) == 0


async def test_a_batch_of_audit_entries_is_stored_in_its_order(storage: Storage) -> None:
    entries = [(T0 + i, f"user{i}", "login", None, None, "", None) for i in range(5)]
    entries[2] = (T0 + 2, "alice", "kick", "bob", "dev", "too loud", 7)
    await storage.append_audit_entries(entries)
    await storage.append_audit_entries([])
    listed = await storage.list_audit(10)
    assert [(a.actor, a.action) for a in listed] == [(e[1], e[2]) for e in entries]
    assert [a.id for a in listed] == sorted(a.id for a in listed)
    kicked = listed[2]
    assert (kicked.target, kicked.room, kicked.reason) == ("bob", "dev", "too loud")


async def test_audit_batches_of_any_size_are_stored_whole_in_their_order(
        storage: Storage) -> None:
    """A batch goes in chunks of a few fixed sizes (storage.chunks), largest first,
    one after the other: its entries keep their order across the chunks."""
    chunks.insert_sql.cache_clear()
    made = 0
    for size in (CHUNK_ROWS + 188, 3, 255):
        await storage.append_audit_entries(
            [(T0 + made + i, f"user{made + i}", "login", None, None, "", None)
             for i in range(size)])
        made += size
    listed = await storage.list_audit(made)
    assert [a.actor for a in listed] == [f"user{i}" for i in range(made)]
    assert [a.id for a in listed] == sorted(a.id for a in listed)
    # SQLite: one compiled INSERT per chunk size, not one per batch size.
    assert chunks.insert_sql.cache_info().currsize <= len(CHUNK_SIZES)
