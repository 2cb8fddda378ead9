"""The counts a write may be limited by (``storage.quotas``), on both backends:
what each measure counts, and writes through two storage objects on one database
(two nodes on PostgreSQL, two processes on SQLite) sent at once, which stop
exactly at the limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from storage import Storage
from storage.api import OverQuota
from storage.quotas import Measure, Quota
from storage.records import BOT_KIND, FileRecord, MessageRecord, UserBlockRecord
from tests.backends import both

T0 = 1_700_000_000.0
# Writes sent at once through each of the two storage objects.
EACH = 4
LIMIT = 3

backend = both

Write = Callable[[Storage, int], Awaitable[object]]


@pytest.fixture
async def two(unopened: Callable[[], Storage]) -> AsyncIterator[list[Storage]]:
    """Two storage objects of one database, opened."""
    stores = [unopened(), unopened()]
    for store in stores:
        await store.open()
    yield stores
    for store in stores:
        await store.close()


async def raced(stores: list[Storage], write: Write) -> list[str]:
    """``write`` number 0, 1, ... sent at once, EACH through each store; the
    outcomes, sorted: "ok" or "over"."""

    async def one(store: Storage, number: int) -> str:
        try:
            await write(store, number)
        except OverQuota:
            return "over"
        return "ok"

    return sorted(await asyncio.gather(*(one(store, n * len(stores) + i)
                                         for n in range(EACH)
                                         for i, store in enumerate(stores))))


EXACT = ["ok"] * LIMIT + ["over"] * (2 * EACH - LIMIT)


async def test_rooms_owned_at_once_through_two_stores_stop_at_the_limit(
        two: list[Storage]) -> None:
    ann = await two[0].create_user("ann", b"h", False, T0)
    owned = (Quota(Measure.OWNED_ROOMS, ann.id, LIMIT),)
    assert await raced(two, lambda store, n: store.create_room(
        f"r{n}", "open", ann.id, T0, owned)) == EXACT


async def test_an_ended_room_or_one_not_owned_is_not_counted(storage: Storage) -> None:
    ann = await storage.create_user("ann", b"h", False, T0)
    bob = await storage.create_user("bob", b"h", False, T0)
    owned = (Quota(Measure.OWNED_ROOMS, ann.id, 1),)
    ended, _ = await storage.create_room("ended", "open", ann.id, T0, owned)
    await storage.terminate_room(ended.id, T0 + 1)
    others, _ = await storage.create_room("bobs", "open", bob.id, T0)
    await storage.add_member(others.id, ann.id, "admin", T0)
    await storage.create_room("live", "open", ann.id, T0, owned)
    with pytest.raises(OverQuota) as refused:
        await storage.create_room("more", "open", ann.id, T0, owned)
    assert (refused.value.quota, refused.value.held) == (owned[0], 1)
    assert [r.name for r in await storage.load_active_rooms()] == ["bobs", "live"]


async def test_webhooks_at_once_through_two_stores_stop_at_the_limit(
        two: list[Storage]) -> None:
    ann = await two[0].create_user("ann", b"h", False, T0)
    room, _ = await two[0].create_room("hall", "open", ann.id, T0)
    full = (Quota(Measure.WEBHOOKS, room.id, LIMIT),)
    assert await raced(two, lambda store, n: store.create_webhook(
        room.id, f"hook{n}", f"s{n}", ann.id, T0, None, full)) == EXACT
    assert len(await two[0].list_webhooks(room.id)) == LIMIT


async def test_blocks_at_once_through_two_stores_stop_at_the_limit(
        two: list[Storage]) -> None:
    ann = await two[0].create_user("ann", b"h", False, T0)
    others = [await two[0].create_user(f"u{n}", b"h", False, T0) for n in range(2 * EACH)]
    most = (Quota(Measure.BLOCKS, ann.id, LIMIT),)
    assert await raced(two, lambda store, n: store.put_user_block(
        UserBlockRecord(ann.id, others[n].id, T0), most)) == EXACT
    assert len(await two[0].list_user_blocks(ann.id)) == LIMIT


async def test_a_block_there_already_is_no_write_and_passes_no_quota(
        two: list[Storage]) -> None:
    # At the limit, ann blocks again someone she blocks, through a store (a node)
    # that did not know: that was refused as over the quota; it adds nothing.
    ann = await two[0].create_user("ann", b"h", False, T0)
    others = [await two[0].create_user(f"u{n}", b"h", False, T0) for n in range(LIMIT + 1)]
    most = (Quota(Measure.BLOCKS, ann.id, LIMIT),)
    made = [await two[0].put_user_block(UserBlockRecord(ann.id, other.id, T0), most)
            for other in others[:LIMIT]]
    again = await two[1].put_user_block(UserBlockRecord(ann.id, others[0].id, T0 + 9), most)
    assert (made, again) == ([True] * LIMIT, False)
    with pytest.raises(OverQuota):
        await two[1].put_user_block(UserBlockRecord(ann.id, others[LIMIT].id, T0), most)
    kept = await two[0].list_user_blocks(ann.id)
    assert [(b.blocked_id, b.created_at) for b in kept] == [(o.id, T0) for o in others[:LIMIT]]


async def test_one_block_sent_at_once_through_two_stores_is_added_once_at_the_last_place(
        two: list[Storage]) -> None:
    # One place left: the same block, sent at once through both stores, takes it
    # once; every other finds it there (none is over the quota it filled).
    ann = await two[0].create_user("ann", b"h", False, T0)
    others = [await two[0].create_user(f"u{n}", b"h", False, T0) for n in range(LIMIT)]
    most = (Quota(Measure.BLOCKS, ann.id, LIMIT),)
    for other in others[:-1]:
        await two[0].put_user_block(UserBlockRecord(ann.id, other.id, T0), most)

    async def block(store: Storage, number: int) -> str:
        try:
            added = await store.put_user_block(
                UserBlockRecord(ann.id, others[-1].id, T0 + number), most)
        except OverQuota:
            return "over"
        return "added" if added else "there"

    outcomes = await asyncio.gather(*(block(store, n) for n in range(EACH) for store in two))
    assert sorted(outcomes) == ["added"] + ["there"] * (2 * EACH - 1)
    assert len(await two[0].list_user_blocks(ann.id)) == LIMIT


async def test_bots_at_once_through_two_stores_stop_at_the_limit(
        two: list[Storage]) -> None:
    ann = await two[0].create_user("ann", b"h", False, T0)
    most = (Quota(Measure.BOTS, ann.id, LIMIT),)
    assert await raced(two, lambda store, n: store.create_user(
        f"bot{n}", b"", False, T0, kind=BOT_KIND, owner_id=ann.id, quotas=most)) == EXACT


def upload(uploader_id: int, room_id: int, number: int, size: int) -> FileRecord:
    return FileRecord(0, room_id, uploader_id, "ann", f"f{number}", size, "text/plain",
                      f"sha{number}", f"sha{number}", "", T0)


async def test_files_at_once_through_two_stores_stop_at_their_count_or_their_bytes(
        two: list[Storage]) -> None:
    ann = await two[0].create_user("ann", b"h", False, T0)
    room, _ = await two[0].create_room("hall", "open", ann.id, T0)

    def quotas(size: int, files: int, most_bytes: int) -> tuple[Quota, Quota]:
        return (Quota(Measure.FILES, ann.id, files),
                Quota(Measure.FILE_BYTES, ann.id, most_bytes, size))

    assert await raced(two, lambda store, n: store.add_file(
        upload(ann.id, room.id, n, 0), quotas(0, LIMIT, 1000))) == EXACT
    # Now by bytes: LIMIT files held, room for two more of 10 bytes.
    assert await raced(two, lambda store, n: store.add_file(
        upload(ann.id, room.id, 100 + n, 10), quotas(10, 100, 20))) == (
        ["ok"] * 2 + ["over"] * (2 * EACH - 2))
    assert await two[0].user_file_usage(ann.id) == (LIMIT + 2, 20)


async def test_a_files_blob_is_ensured_once_counted_and_dropped_with_its_last_row(
        storage: Storage) -> None:
    """The blob's fate is decided with the row, in its transaction: a refused file
    makes sure of none, a deletion drops the blob only when no other row of the same
    content is left, and so does the drop of a refused upload's blob."""
    ann = await storage.create_user("ann", b"h", False, T0)
    room, _ = await storage.create_room("hall", "open", ann.id, T0)
    written: list[tuple[str, str]] = []

    async def ensure(key: str) -> None:
        written.append(("ensure", key))

    async def drop(key: str) -> None:
        written.append(("drop", key))

    one = (Quota(Measure.FILES, ann.id, 2),)
    first = await storage.add_file(upload(ann.id, room.id, 1, 5), one, ensure)
    second = await storage.add_file(upload(ann.id, room.id, 1, 5), one, ensure)
    with pytest.raises(OverQuota):
        await storage.add_file(upload(ann.id, room.id, 2, 5), one, ensure)
    assert written == [("ensure", "sha1"), ("ensure", "sha1")]
    # (More keys than SQLite binds in one statement, in pieces.)
    assert await storage.used_blobs([f"k{n}" for n in range(1200)] + ["sha1", "sha2"]) == {"sha1"}
    assert not await storage.drop_unused_blob("sha1", drop)  # two rows use it
    assert await storage.drop_unused_blob("sha2", drop)  # the refused one's
    assert written[2:] == [("drop", "sha2")]
    assert await storage.delete_file(first.id) == "sha1"
    assert not await storage.drop_unused_blob("sha1", drop)  # the second still uses it
    assert await storage.delete_file(second.id) == "sha1"
    assert await storage.delete_file(second.id) is None
    assert written[3:] == []  # a deletion drops no blob itself
    assert await storage.drop_unused_blob("sha1", drop)
    assert written[3:] == [("drop", "sha1")]


async def test_api_tokens_at_once_through_two_stores_stop_at_the_limit(
        two: list[Storage]) -> None:
    ann = await two[0].create_user("ann", b"h", False, T0)
    most = (Quota(Measure.TOKENS, ann.id, LIMIT),)
    assert await raced(two, lambda store, n: store.create_token(
        ann.id, f"t{n}", f"hash{n}", T0, None, quotas=most)) == EXACT


async def test_session_tokens_are_not_counted_among_api_tokens(storage: Storage) -> None:
    """A browser tab's tokens have their own bound: however many an account holds,
    its API tokens still have all their places."""
    ann = await storage.create_user("ann", b"h", False, T0)
    for n in range(LIMIT + 1):
        await storage.create_session_token(ann.id, f"web-{n}", f"s{n}", T0, None, "read",
                                           most=LIMIT + 1)
    most = (Quota(Measure.TOKENS, ann.id, LIMIT),)
    for n in range(LIMIT):
        await storage.create_token(ann.id, f"t{n}", f"hash{n}", T0, None, quotas=most)
    with pytest.raises(OverQuota) as refused:
        await storage.create_token(ann.id, "one-more", "hash", T0, None, quotas=most)
    assert refused.value.held == LIMIT


async def test_session_tokens_made_at_once_through_two_stores_keep_to_the_bound(
        two: list[Storage]) -> None:
    """Each made at once through either store is made (none refused), and the
    account is left with exactly the bound: each revoked the least recently made."""
    ann = await two[0].create_user("ann", b"h", False, T0)

    async def make(store: Storage, n: int) -> int:
        _, revoked = await store.create_session_token(ann.id, f"web-{n}", f"s{n}", T0 + n,
                                                      None, "read", most=LIMIT)
        return len(revoked)

    made = await asyncio.gather(*(make(store, n * len(two) + i)
                                  for n in range(EACH) for i, store in enumerate(two)))
    assert sum(made) == 2 * EACH - LIMIT
    held = [t for t in await two[1].list_tokens(ann.id) if t.kind == "session"]
    assert len(held) == LIMIT


async def test_waiting_keys_count_one_senders_undelivered_keys_for_one_member(
        storage: Storage) -> None:
    """One statement for both backends: what one member left another and that
    waits, and nothing else (another sender's, another member's, a delivered
    one, an ordinary direct message)."""
    ann, bob, cat = [await storage.create_user(name, b"h", False, T0)
                     for name in ("ann", "bob", "cat")]

    def key(number: int, sender: int, to: int, kind: str = "e2e-key",
            delivered: bool = False) -> MessageRecord:
        return MessageRecord(number, sender, "x", "", T0, recipient_id=to, kind=kind,
                             delivered=delivered)

    await storage.append_messages([
        key(1, ann.id, bob.id), key(2, ann.id, bob.id), key(3, ann.id, bob.id, delivered=True),
        key(4, cat.id, bob.id), key(5, ann.id, cat.id), key(6, ann.id, bob.id, kind="text")])
    waiting = Quota(Measure.WAITING_KEYS, ann.id, LIMIT, of=bob.id)
    assert await storage.held(waiting) == 2
    assert await storage.held(Quota(Measure.WAITING_KEYS, bob.id, LIMIT, of=ann.id)) == 0


@pytest.mark.parametrize("backend", ["postgres"])
async def test_waiting_keys_stored_at_once_through_two_nodes_stop_at_the_limit(
        two: list[Storage]) -> None:
    """A cluster's node stores a key left for an offline member in the count's own
    transaction (store_direct_counted); the id is taken only once it is counted."""
    ann = await two[0].create_user("ann", b"h", False, T0)
    bob = await two[0].create_user("bob", b"h", False, T0)
    waiting = Quota(Measure.WAITING_KEYS, ann.id, LIMIT, of=bob.id)
    numbers = iter(range(1, 100))

    async def keep(store: Storage, _: int) -> object:
        async def numbered() -> MessageRecord:
            return MessageRecord(next(numbers), ann.id, "ann", "", T0, recipient_id=bob.id,
                                 kind="e2e-key", delivered=False)
        counted = getattr(store, "store_direct_counted")  # noqa: B009 - PostgreSQL's alone
        return await counted([waiting], numbered)

    assert await raced(two, keep) == EXACT
    assert await two[1].held(waiting) == LIMIT
    assert next(numbers) == LIMIT + 1  # a refusal took no id
