"""Files of equal content share one blob: a file's removal through one node never
deletes the blob of a file of the same content being stored through another
(docs/CLUSTER.md, "Files of equal content"). The storing node is held at its
quota's count by the test, which holds that lock in PostgreSQL itself, and the
removal is sent meanwhile: under the old rule it found the blob unused and
deleted it. Or the storing node is held between its blob's put and its row's
transaction, which holds nothing in PostgreSQL meanwhile: the removal deletes the
blob, and the upload's transaction puts it again. And housekeeping's sweep of
blobs no file uses decides under the blob's lock too: a row added meanwhile
keeps the blob."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest

from chatd.app.app import App
from chatd.client import ChatClient, Reply
from chatd.domain.clock import ManualClock
from storage.postgres.host import BLOB_LOCKS, QUOTA_LOCKS
from storage.quotas import Holder
from tests.backends import import_asyncpg
from tests.cluster.conftest import StartNode, login, register
from tests.cluster.test_accounts import everywhere
from tests.content import HeldPut, blob_path, download, upload

asyncpg = import_asyncpg()

pytestmark = pytest.mark.asyncio

DATA = b"the same content, uploaded twice\n" * 64


@pytest.fixture
async def nodes(start_node: StartNode, tmp_path: Path) -> list[App]:
    """Two nodes sharing one blob directory, as a cluster's nodes must."""
    shared = {"files__dir": str(tmp_path / "blobs")}
    first = await start_node(1, **shared)
    await register(first, "ann", "bob")
    nodes = [first, await start_node(2, **shared)]
    await everywhere(nodes, lambda app: app.services.accounts.find("bob") is not None)
    return nodes


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[Any]:
    connection = await asyncpg.connect(postgres_url)
    yield connection
    await connection.close()


async def waiting_for_locks(database: Any, count: int, *done: Awaitable[Any]) -> None:
    """Until ``count`` transactions wait for an advisory lock, or one of ``done``
    ended (bounded)."""
    futures = [asyncio.ensure_future(d) for d in done]
    async with asyncio.timeout(10):
        while not any(f.done() for f in futures):
            waiting = await database.fetchval(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            if waiting >= count:
                return
            await asyncio.sleep(0.01)


class HeldAccount:
    """The quota lock of one account, held by the test: that account's uploads stop
    at their count, inside their transaction, until it is released."""

    def __init__(self, postgres_url: str, user_id: int) -> None:
        self._url = postgres_url
        self._user_id = user_id
        self._connection: Any = None
        self._transaction: Any = None

    async def __aenter__(self) -> HeldAccount:
        self._connection = await asyncpg.connect(self._url)
        self._transaction = self._connection.transaction()
        await self._transaction.start()
        await self._connection.execute("SELECT pg_advisory_xact_lock($1, $2)",
                                       QUOTA_LOCKS[Holder.ACCOUNT], self._user_id)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._transaction.rollback()
        await self._connection.close()


async def room_on_two_nodes(nodes: list[App]) -> tuple[ChatClient, ChatClient]:
    ann, bob = await login(nodes[0], "ann"), await login(nodes[1], "bob")
    await ann.command("/create dev")
    await everywhere(nodes, lambda app: app.services.rooms.find("dev") is not None)
    await bob.command("/join dev")
    await everywhere(nodes, lambda app: len(app.services.rooms.require("dev").members) == 2)
    return ann, bob


def user_id(app: App, name: str) -> int:
    return app.services.accounts.require(name).id


async def test_a_file_removed_through_one_node_keeps_the_blob_stored_through_another(
        nodes: list[App], postgres_url: str, database: Any) -> None:
    ann, bob = await room_on_two_nodes(nodes)
    first = await upload(ann, "a.txt", DATA, "dev")
    assert first.ok
    async with HeldAccount(postgres_url, user_id(nodes[1], "bob")):
        storing = asyncio.ensure_future(upload(bob, "b.txt", DATA, "dev"))
        await waiting_for_locks(database, 1, storing)
        removing = asyncio.ensure_future(ann.command(f"/rmfile {first['file_id']}"))
        await waiting_for_locks(database, 2, removing)
    stored: Reply = await storing
    assert stored.ok and (await removing).ok
    assert (await download(bob, stored["file_id"]))[0] == DATA
    for client in (ann, bob):
        await client.close()



async def test_the_last_file_removed_between_an_uploads_put_and_its_row_leaves_it_whole(
        nodes: list[App], monkeypatch: pytest.MonkeyPatch) -> None:
    ann, bob = await room_on_two_nodes(nodes)
    first = await upload(ann, "a.txt", DATA, "dev")
    async with HeldPut(monkeypatch) as put:
        storing = asyncio.ensure_future(upload(bob, "b.txt", DATA, "dev"))
        await put.reached(storing)
        # No lock is held across the put: the removal does not wait for the upload.
        async with asyncio.timeout(10):
            assert (await ann.command(f"/rmfile {first['file_id']}")).ok
        assert not blob_path(nodes[1], first["sha256"]).exists()
    stored: Reply = await storing
    assert stored.ok, stored.final
    assert (await download(ann, stored["file_id"]))[0] == DATA
    for client in (ann, bob):
        await client.close()


async def test_an_uploads_put_holds_no_lock_nor_transaction_in_postgresql(
        nodes: list[App], database: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # An S3 upload of a large file takes long: a transaction open meanwhile would hold
    # a pooled connection, the blob's lock and the account's quota lock all along.
    ann, bob = await room_on_two_nodes(nodes)
    async with HeldPut(monkeypatch) as put:
        storing = asyncio.ensure_future(upload(bob, "b.txt", DATA, "dev"))
        await put.reached(storing)
        # (This test's database only: the server may serve others' at the same time.)
        held = await database.fetchval(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid::bigint = ANY($1::bigint[]) AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
            [BLOB_LOCKS, *QUOTA_LOCKS.values()])
        idle_in_transaction = await database.fetchval(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' "
            "AND datname = current_database() AND pid <> pg_backend_pid()")
        assert (held, idle_in_transaction) == (0, 0)
    assert (await storing).ok
    for client in (ann, bob):
        await client.close()


class HeldBlob:
    """The lock of one blob, held by the test in a transaction of its own, which
    commits what the test wrote in it as the lock is released."""

    def __init__(self, postgres_url: str, key: str) -> None:
        self._url = postgres_url
        self._key = key
        self.connection: Any = None
        self._transaction: Any = None

    async def __aenter__(self) -> HeldBlob:
        self.connection = await asyncpg.connect(self._url)
        self._transaction = self.connection.transaction()
        await self._transaction.start()
        await self.connection.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))",
                                      BLOB_LOCKS, self._key)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._transaction.commit()
        await self.connection.close()


async def test_the_sweep_of_unused_blobs_decides_under_the_blobs_lock(
        nodes: list[App], postgres_url: str, database: Any) -> None:
    # The sweep finds a blob no row uses, old enough; the test holds its lock meanwhile
    # and adds a row using it, as the upload of a file of the same content does
    # through another node. The sweep waits for the lock, then sees the row.
    ann, bob = await room_on_two_nodes(nodes)
    key = hashlib.sha256(DATA).hexdigest()
    blob = blob_path(nodes[0], key)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(DATA)
    clock = nodes[0].clock
    assert isinstance(clock, ManualClock)
    os.utime(blob, (clock.time() - 2 * 3600,) * 2)
    async with HeldBlob(postgres_url, key) as held:
        sweeping = asyncio.ensure_future(nodes[0].housekeeping.run_once())
        await waiting_for_locks(database, 1, sweeping)
        assert not sweeping.done()  # it waits for the blob's lock
        file_id = await held.connection.fetchval(
            "INSERT INTO files (room_id, uploader_id, uploader_name, name, size, mime, sha256, "
            "blob_key, preview, created_at) VALUES ($1, $2, 'bob', 'b.txt', $3, 'text/plain', "
            "$4, $4, '', $5) RETURNING id", nodes[1].services.rooms.require("dev").id,
            user_id(nodes[1], "bob"), len(DATA), key, clock.time())
    assert (await sweeping)["orphan_blobs_deleted"] == 0
    assert blob.exists()
    assert (await download(ann, file_id))[0] == DATA
    for client in (ann, bob):
        await client.close()
