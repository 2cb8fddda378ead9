"""Room and account decisions in one process: the LocalTransactions behind the
domain's RoomTransactions and AccountTransactions ports."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from chatd.domain.accounts import User
from chatd.domain.ports import AccountTransactions, RoomTransactions
from chatd.domain.room import Mode, Room
from chatd.domain.transactions import LocalTransactions
from storage.records import RoomRecord, UserRecord


def room(room_id: int) -> Room:
    return Room(RoomRecord(room_id, f"r{room_id}", Mode.OPEN.value, "", 0.0))


async def queued(transactions: LocalTransactions, on: Room, waiters: int) -> None:
    for _ in range(1000):
        if transactions.queued(on) == waiters:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{transactions.queued(on)} waiting, not {waiters}")


async def test_decisions_about_one_room_run_one_at_a_time_first_come_first_served() -> None:
    transactions: RoomTransactions = LocalTransactions()
    den = room(1)
    order: list[str] = []

    async def decide(name: str) -> None:
        async with transactions.room(den):
            order.append(f"{name} in")
            await asyncio.sleep(0)
            order.append(f"{name} out")

    await asyncio.gather(decide("a"), decide("b"), decide("c"))
    assert order == ["a in", "a out", "b in", "b out", "c in", "c out"]


async def test_another_room_is_not_held_up() -> None:
    transactions = LocalTransactions()
    den, hall = room(1), room(2)
    async with transactions.room(den):
        async with asyncio.timeout(1), transactions.room(hall) as txn:
            assert txn.room is hall
        assert transactions.queued(den) == 0


async def test_each_transaction_on_a_room_has_a_larger_fence_than_the_ones_before() -> None:
    transactions = LocalTransactions()
    den, hall = room(1), room(2)
    fences = []
    # Each time the room's lock is made anew (no decision in between): the
    # tokens still only grow.
    for each in (den, hall, den, den):
        async with transactions.room(each) as txn:
            fences.append(txn.fence)
    assert all(a < b for a, b in itertools.pairwise(fences))


async def test_a_refusal_inside_ends_the_transaction() -> None:
    transactions = LocalTransactions()
    den = room(1)
    with pytest.raises(ValueError, match="refused"):
        async with transactions.room(den):
            raise ValueError("refused")
    async with asyncio.timeout(1), transactions.room(den):
        pass
    assert transactions._entries == {}  # nothing kept for a room with no decision


async def test_a_waiter_cancelled_leaves_the_queue_and_the_room_behind() -> None:
    transactions = LocalTransactions()
    den = room(1)
    entered = []

    async def decide() -> None:
        async with transactions.room(den):
            entered.append(True)

    async with transactions.room(den):
        waiter = asyncio.create_task(decide())
        await queued(transactions, den, 1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert transactions.queued(den) == 0
    assert entered == [] and transactions.queued(den) == 0
    assert transactions._entries == {}


async def test_decisions_about_one_account_run_one_at_a_time_beside_its_rooms() -> None:
    transactions = LocalTransactions()
    accounts: AccountTransactions = transactions
    bob = User(UserRecord(7, "bob", b"", False, 0.0, {}))
    order: list[str] = []

    async def delete(name: str) -> None:
        async with accounts.account(bob) as txn:
            assert txn.user is bob
            order.append(f"{name} in")
            # Account first, then room: a room of the same id is another lock.
            async with transactions.room(room(bob.id)):
                await asyncio.sleep(0)
            order.append(f"{name} out")

    await asyncio.gather(delete("a"), delete("b"))
    assert order == ["a in", "a out", "b in", "b out"]
    assert transactions._entries == {}
