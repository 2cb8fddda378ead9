"""Blobs no file uses, left by a failure between an upload's put and its row, are
deleted by housekeeping once older than housekeeping.orphan_grace, a batch a pass;
on both storage backends, with the local store (the S3 store: test_s3.py)."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatd.content.blobs import COPYING
from chatd.content.orphans import COPY_IDLE
from chatd.domain.clock import ManualClock
from tests.backends import both
from tests.content import (
    HeldPut,
    blob_path,
    blob_paths,
    download,
    no_staged_files,
    sha,
    text_file,
    upload,
)
from tests.helpers import ChatServer, Clients, start_server

backend = both

HOUR = 3600.0


@pytest.fixture
def clock() -> ManualClock:
    """Now: a blob's age is its file's time of writing on this clock."""
    return ManualClock(time.time())


def orphan(server: ChatServer, data: bytes, written: float | None = None) -> Path:
    """A blob no file uses, as a failed upload leaves it; written at ``written``."""
    path = blob_path(server, sha(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if written is not None:
        os.utime(path, (written, written))
    return path


async def sweep(server: ChatServer) -> int:
    return (await server.housekeeping.run_once())["orphan_blobs_deleted"]


async def test_an_orphan_older_than_the_grace_is_deleted_a_young_or_used_blob_kept(
        server: ChatServer, clients: Clients, clock: ManualClock) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    used = await upload(alice, "a.txt", text_file(3))
    os.utime(blob_path(server, used["sha256"]), (clock.time() - 2 * HOUR,) * 2)
    old = orphan(server, text_file(4), clock.time() - HOUR - 1)
    young = orphan(server, text_file(5), clock.time() - HOUR + 60)
    assert await sweep(server) == 1
    assert not old.exists() and young.exists()
    assert (await download(alice, used["file_id"]))[0] == text_file(3)
    clock.advance(60)
    assert await sweep(server) == 1
    assert blob_paths(server) == [blob_path(server, used["sha256"])]
    assert (await download(alice, used["file_id"]))[0] == text_file(3)


@pytest.fixture
async def small_batches(db_path: Path, clock: ManualClock,
                        storage_overrides: dict[str, Any]) -> AsyncIterator[ChatServer]:
    server = await start_server(db_path, clock=clock, housekeeping__orphan_batch=2,
                                **storage_overrides)
    yield server
    await server.stop()


async def test_a_pass_looks_at_a_batch_of_blobs_the_next_goes_on_from_there(
        small_batches: ChatServer, clock: ManualClock) -> None:
    server = small_batches
    clients = Clients(server)
    try:
        alice = await clients.user("alice")
        await alice.command("/create general")
        used = await upload(alice, "a.txt", text_file(3))
        for size in range(4, 9):
            orphan(server, text_file(size))
        clock.advance(2 * HOUR)
        # Six blobs, two looked at a pass: three passes, then the first blob again.
        deleted = [await sweep(server) for _ in range(3)]
        assert sum(deleted) == 5 and max(deleted) <= 2, deleted
        assert blob_paths(server) == [blob_path(server, used["sha256"])]
        assert await sweep(server) == 0
    finally:
        await clients.close()


async def test_an_upload_held_between_its_put_and_its_row_while_the_sweep_deletes_its_blob(
        server: ChatServer, clients: Clients, clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The sweep deletes the blob under its lock, as a removal does: the upload's
    # transaction, under the same lock, finds it gone and puts it again.
    alice = await clients.user("alice")
    await alice.command("/create general")
    data = text_file(6)
    async with HeldPut(monkeypatch) as put:
        storing = asyncio.ensure_future(upload(alice, "a.txt", data))
        await put.reached(storing)
        clock.advance(2 * HOUR)  # an upload held past the grace: the worst case
        assert await sweep(server) == 1
        assert not blob_path(server, sha(data)).exists()
    stored = await storing
    assert stored.ok, stored.final
    assert blob_path(server, sha(data)).exists()
    assert (await download(alice, stored["file_id"]))[0] == data
    assert await no_staged_files(server)
    assert await sweep(server) == 0  # used now


def left_copy(server: ChatServer, shard: str, written: float) -> Path:
    """A temporary copy of a blob, as a process killed while copying it into place
    (a files directory without hard links) leaves it; written at ``written``."""
    directory = blob_path(server, shard * 32).parent
    directory.mkdir(parents=True, exist_ok=True)
    # Named as the copy names it (LocalBlobs._copy).
    fd, name = tempfile.mkstemp(prefix=COPYING, suffix=".tmp", dir=directory)
    with os.fdopen(fd, "wb") as copy:
        copy.write(b"part of a blob")
    path = Path(name)
    os.utime(path, (written, written))
    return path


async def test_a_temporary_copy_older_than_the_grace_is_removed_a_young_one_kept(
        server: ChatServer, clients: Clients, clock: ManualClock) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    used = await upload(alice, "a.txt", text_file(3))
    old = left_copy(server, used["sha256"][:2], clock.time() - HOUR - 1)
    alone = left_copy(server, "ff" if used["sha256"][:2] != "ff" else "00",
                      clock.time() - 2 * HOUR)
    young = left_copy(server, "ab", clock.time() - HOUR + 60)
    assert await sweep(server) == 0  # no blob deleted: copies are not blobs
    assert not old.exists() and not alone.exists() and young.exists()
    clock.advance(60)
    await sweep(server)
    assert not young.exists()
    assert blob_paths(server) == [blob_path(server, used["sha256"])]
    assert (await download(alice, used["file_id"]))[0] == text_file(3)


@pytest.fixture
async def no_grace(db_path: Path, clock: ManualClock,
                   storage_overrides: dict[str, Any]) -> AsyncIterator[ChatServer]:
    server = await start_server(db_path, clock=clock, housekeeping__orphan_grace=0,
                                **storage_overrides)
    yield server
    await server.stop()


async def test_without_a_grace_a_copy_being_written_is_kept(
        no_grace: ChatServer, clock: ManualClock) -> None:
    # A copy written a moment ago may be a put's, still writing it: it is kept for
    # COPY_IDLE whatever the grace, and removed after.
    being_written = left_copy(no_grace, "ab", clock.time() - 1)
    left = left_copy(no_grace, "cd", clock.time() - COPY_IDLE - 1)
    assert await sweep(no_grace) == 0
    assert being_written.exists() and not left.exists()
    clock.advance(COPY_IDLE)
    await sweep(no_grace)
    assert not being_written.exists()
