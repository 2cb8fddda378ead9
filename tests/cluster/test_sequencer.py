"""The cluster's sequencer: ids are futures answered by one INCRBY per turn of
the loop, so taking an id never blocks the event loop (chatd/cluster/sequencer.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio

from chatd.cluster import keys
from chatd.cluster.sequencer import AnotherDatabase, ClusterSequencer, EpochChanged
from chatd.errors import ChatError, Code
from storage.api import DATABASE_META, StorageError

pytestmark = pytest.mark.asyncio


class _Stored:
    """The storage the sequencer reads its seed from: its largest id."""

    def __init__(self, largest: int) -> None:
        self.largest = largest
        self.meta: dict[str, str] = {}

    async def max_message_id(self) -> int:
        return self.largest

    async def get_meta(self, key: str) -> str | None:
        return self.meta.get(key)

    async def set_meta(self, key: str, value: str) -> None:
        self.meta[key] = value

    async def meta_once(self, key: str, value: str) -> str:
        return self.meta.setdefault(key, value)


async def sequencer_on(shared: Any, largest: int = 0,
                       stored: _Stored | None = None) -> ClusterSequencer:
    """A node's sequencer on ``stored`` (nodes of one database share it)."""
    sequencer = ClusterSequencer(stored or _Stored(largest), shared)  # type: ignore[arg-type]
    await sequencer.load()
    return sequencer


async def test_the_asks_of_one_turn_take_one_round_trip_in_order(
        shared: redis.asyncio.Redis) -> None:
    sequencer = await sequencer_on(shared, largest=41)
    asked = [sequencer.for_room(1), sequencer.for_direct(2), sequencer.for_room(1)]
    ids = [await future for future in asked]
    assert ids == [41 + keys.SEED_MARGIN + n for n in (1, 2, 3)]
    assert sequencer.batches == 1
    later = await sequencer.for_room(3)
    assert later == ids[-1] + 1
    assert sequencer.batches == 2


async def test_two_nodes_never_share_an_id(shared: redis.asyncio.Redis) -> None:
    database = _Stored(0)
    one, two = await sequencer_on(shared, stored=database), await sequencer_on(shared,
                                                                               stored=database)
    assert one.epoch == two.epoch  # the second node joined the first one's counter
    asked = [node.next() for _ in range(50) for node in (one, two)]
    ids = await asyncio.gather(*asked)
    assert len(set(ids)) == 100


async def test_a_redis_that_numbered_another_database_is_refused_until_emptied(
        shared: redis.asyncio.Redis) -> None:
    # A trial copy's nodes used this Redis; this database is another copy: its
    # counter and log are not this database's.
    await sequencer_on(shared)
    with pytest.raises(AnotherDatabase, match="served another database"):
        await sequencer_on(shared)
    await shared.flushall()
    assert (await sequencer_on(shared)).epoch


async def test_an_epoch_seeded_before_redis_named_its_database_takes_the_first_to_come(
        shared: redis.asyncio.Redis) -> None:
    # A cluster running a version that did not name its database: the first node of
    # this version names it, the next ones (of the same database) agree.
    database = _Stored(0)
    older = await sequencer_on(shared, stored=database)
    await shared.delete(keys.DATABASE)
    newer = await sequencer_on(shared, stored=database)
    assert newer.epoch == older.epoch
    assert (await shared.get(keys.DATABASE)).decode() == database.meta[DATABASE_META]
    with pytest.raises(AnotherDatabase):
        await sequencer_on(shared)


async def test_asks_made_while_a_batch_is_in_flight_form_the_next_one(
        shared: redis.asyncio.Redis) -> None:
    sequencer = await sequencer_on(shared)
    first = sequencer.next()
    while sequencer._asks.asked:  # noqa: ASYNC110 - until the first batch is sent
        await asyncio.sleep(0)
    more = [sequencer.next() for _ in range(5)]
    ids = [await first, *[await f for f in more]]
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert sequencer.batches == 2


class _Silent:
    """A Redis that seeds, then never answers a batch of ids (a frozen server)."""

    def __init__(self, shared: redis.asyncio.Redis) -> None:
        self.eval = shared.eval
        self.register_script = shared.register_script

    async def evalsha(self, *args: Any) -> int:
        await asyncio.Event().wait()
        raise AssertionError("never answers")


async def test_a_silent_redis_refuses_with_busy_and_the_loop_keeps_turning(
        shared: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("chatd.cluster.sequencer.TIMEOUT", 0.05)
    sequencer = await sequencer_on(_Silent(shared))
    asked = sequencer.next()
    turns = 0
    while not asked.done():
        turns += 1  # the loop runs other work while the id is awaited
        await asyncio.sleep(0.001)
    assert turns > 5
    with pytest.raises(ChatError) as refused:
        await asked
    assert refused.value.code is Code.BUSY
    assert refused.value.details["retry_ms"] > 0


async def test_redis_gone_refuses_with_busy(shared: redis.asyncio.Redis) -> None:
    sequencer = await sequencer_on(shared)
    gone = redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    sequencer._shared = gone
    with pytest.raises(ChatError) as refused:
        await sequencer.for_room(1)
    assert refused.value.code is Code.BUSY
    await gone.aclose()


async def test_caught_up_waits_for_every_id_asked_so_far(shared: redis.asyncio.Redis) -> None:
    sequencer = await sequencer_on(shared)
    await sequencer.caught_up()  # nothing asked: at once
    asked = [sequencer.next() for _ in range(3)]
    await sequencer.caught_up()
    assert all(future.done() for future in asked)


class _Away:
    """A database that does not answer."""

    async def max_message_id(self) -> int:
        raise StorageError("PostgreSQL unreachable")


async def test_a_redis_that_lost_its_data_refuses_one_batch_then_a_new_epoch_numbers(
        shared: redis.asyncio.Redis) -> None:
    sequencer = await sequencer_on(shared, largest=10)
    changes: list[str] = []

    async def changed() -> None:
        changes.append(sequencer.epoch)

    sequencer.epoch_changed = changed
    first = await sequencer.for_room(1)
    sequencer._storage.largest = first  # type: ignore[attr-defined] - stored meanwhile
    old = sequencer.epoch
    await shared.flushall()  # Redis restarted without its data
    with pytest.raises(ChatError) as refused:
        await sequencer.for_room(1)  # no epoch: no ids, rather than ids from 1 again
    assert refused.value.code is Code.BUSY
    async with asyncio.timeout(10):
        while not changes:  # noqa: ASYNC110 - the renewal runs beside the posts
            await asyncio.sleep(0.01)
    assert changes == [sequencer.epoch] and sequencer.epoch != old
    assert sequencer.epoch_changes == 1
    assert await sequencer.for_room(1) == first + keys.SEED_MARGIN + 1
    await sequencer.check_epoch()  # the same epoch: nothing to do
    assert sequencer.epoch_changes == 1


async def test_a_new_epoch_waits_for_the_database(shared: redis.asyncio.Redis) -> None:
    sequencer = await sequencer_on(shared)
    await shared.flushall()
    sequencer._storage = _Away()  # type: ignore[assignment]
    with pytest.raises(EpochChanged):
        await sequencer.check_epoch()
    sequencer.renew_later()  # the batch's renewal logs the same and gives up
    while sequencer._renewal is not None:  # noqa: ASYNC110 - bounded by the renewal's end
        await asyncio.sleep(0.01)
    assert sequencer.epoch_changes == 0


async def test_messages_are_refused_while_the_log_is_backlogged(
        shared: redis.asyncio.Redis) -> None:
    sequencer = await sequencer_on(shared)
    sequencer.backlogged = lambda: True
    with pytest.raises(ChatError) as refused:
        await sequencer.for_direct(2)
    assert refused.value.code is Code.BUSY and refused.value.details["retry_ms"] > 0
    assert await sequencer.next() > 0  # an event's number is not a message: taken
