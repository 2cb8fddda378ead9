"""The S3 backend against a real S3-compatible server (moto, on loopback)."""

from __future__ import annotations

import asyncio
import os
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatd.config import ConfigError, FilesConfig
from chatd.domain.clock import ManualClock
from tests.backends import on_both
from tests.content import (
    download,
    image,
    interrupted_download,
    member_of,
    no_staged_files,
    sha,
    text_file,
    upload,
)
from tests.helpers import ChatServer, Clients, start_server
from tests.services import import_needed

boto3 = import_needed("boto3", "boto3 (chatd's s3 extra)")
moto_server = import_needed("moto.server", "moto (the test extra)")

BUCKET = "chatd-files"
KEYS = {"s3_access_key": "testing", "s3_secret_key": "testing", "s3_region": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def objects(endpoint: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix="chatd/")
    return [item["Key"] for item in listed.get("Contents", [])]


@pytest.fixture
async def s3_server(db_path: Path, s3_endpoint: str) -> AsyncIterator[ChatServer]:
    overrides: dict[str, Any] = {f"files__{key}": value for key, value in KEYS.items()}
    server = await start_server(db_path, files__backend="s3", files__s3_endpoint=s3_endpoint,
                                files__s3_bucket=BUCKET, **overrides)
    yield server
    await server.stop()


async def test_files_round_trip_through_the_object_store(s3_server: ChatServer,
                                                         s3_endpoint: str) -> None:
    clients = Clients(s3_server)
    try:
        alice, bob = await clients.user("alice"), await clients.user("bob")
        await member_of(alice, "general", bob)
        data = image("PNG", (200, 100))
        reply = await upload(alice, "cat.png", data, "general")
        assert reply.ok, reply.final
        assert f"chatd/{sha(data)}" in objects(s3_endpoint)
        assert await no_staged_files(s3_server)
        file = next(line for line in reply.lines if line["type"] == "message")["file"]
        assert file["preview"].startswith("PNG image, 200x100")
        # The announcement carries a pre-signed link that fetches the very bytes.
        fetched = await asyncio.to_thread(lambda: urllib.request.urlopen(file["url"]).read())
        assert fetched == data
        got, done = await download(bob, reply["file_id"])
        assert got == data and done["sha256"] == sha(data) and done["url"].startswith("http")
        await alice.command(f"/rmfile {reply['file_id']}")
        assert f"chatd/{sha(data)}" not in objects(s3_endpoint)
    finally:
        await clients.close()


async def test_a_failed_upload_leaves_no_object(s3_server: ChatServer, s3_endpoint: str) -> None:
    clients = Clients(s3_server)
    try:
        alice = await clients.user("alice")
        await member_of(alice, "general")
        data = text_file(7)
        reply = await upload(alice, "a.txt", data, checksum="f" * 64)
        assert reply.final["code"] == "checksum-mismatch"
        assert f"chatd/{sha(data)}" not in objects(s3_endpoint)
        assert await no_staged_files(s3_server)
    finally:
        await clients.close()


@pytest.fixture
async def s3_big_server(db_path: Path, s3_endpoint: str) -> AsyncIterator[ChatServer]:
    """The S3 server, taking files of 8 MiB and their upload's lines at once."""
    overrides: dict[str, Any] = {f"files__{key}": value for key, value in KEYS.items()}
    server = await start_server(db_path, files__backend="s3", files__s3_endpoint=s3_endpoint,
                                files__s3_bucket=BUCKET, files__max_size=9 * 1024 * 1024,
                                limits__message_burst=100_000, **overrides)
    yield server
    await server.stop()


async def test_an_object_deleted_during_a_download_ends_the_block_then_says_so(
        s3_big_server: ChatServer, s3_endpoint: str) -> None:
    """The object read a range at a time, one deleted midway is missed at the next
    range: the data block still ends with its ".", then no-such-file says what failed."""
    clients = Clients(s3_big_server)
    try:
        alice = await clients.user("alice")
        await member_of(alice, "general")
        data = os.urandom(8 * 1024 * 1024)
        reply = await upload(alice, "big.bin", data, width=4000)
        assert reply.ok, reply.final
    finally:
        await clients.close()
    store = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="testing",
                         aws_secret_access_key="testing", region_name="us-east-1")

    async def delete() -> None:
        await asyncio.to_thread(store.delete_object, Bucket=BUCKET, Key=f"chatd/{sha(data)}")

    got, final = await interrupted_download(s3_big_server, "alice", reply["file_id"], delete)
    assert final.startswith("! no-such-file: ") and "incomplete" in final, final
    assert len(got) < len(data) and data.startswith(got)


@pytest.fixture
def now() -> ManualClock:
    """Now: an object's age is its LastModified on this clock."""
    return ManualClock(time.time())


@pytest.fixture
async def s3_swept(db_path: Path, s3_endpoint: str, now: ManualClock,
                   storage_overrides: dict[str, Any]) -> AsyncIterator[ChatServer]:
    """The S3 server under a prefix of its own (the bucket's other objects are no
    concern of its sweep), looking at two objects a housekeeping pass."""
    overrides: dict[str, Any] = {f"files__{key}": value for key, value in KEYS.items()}
    server = await start_server(db_path, clock=now, files__backend="s3",
                                files__s3_endpoint=s3_endpoint, files__s3_bucket=BUCKET,
                                files__s3_prefix="swept/", housekeeping__orphan_batch=2,
                                **overrides, **storage_overrides)
    yield server
    await server.stop()


@on_both
async def test_objects_no_file_uses_are_deleted_once_older_than_the_grace(
        s3_swept: ChatServer, s3_endpoint: str, now: ManualClock) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    clients = Clients(s3_swept)
    try:
        alice = await clients.user("alice")
        await member_of(alice, "general")
        used = await upload(alice, "a.txt", text_file(3))
        orphans = [text_file(size) for size in range(4, 7)]
        for data in orphans:
            client.put_object(Bucket=BUCKET, Key=f"swept/{sha(data)}", Body=data)
        # Not a blob's name: another program's object under the prefix stays.
        client.put_object(Bucket=BUCKET, Key="swept/notes.txt", Body=b"mine")

        async def passes(count: int) -> list[int]:
            return [(await s3_swept.housekeeping.run_once())["orphan_blobs_deleted"]
                    for _ in range(count)]

        # Five objects, two listed a pass (in pages, each going on where the last
        # stopped): three passes look at every one.
        assert await passes(3) == [0, 0, 0]  # young yet
        now.advance(2 * 3600)
        deleted = await passes(3)
        assert sum(deleted) == 3 and max(deleted) <= 2, deleted
        listed = client.list_objects_v2(Bucket=BUCKET, Prefix="swept/")["Contents"]
        assert sorted(item["Key"] for item in listed) == [f"swept/{used['sha256']}",
                                                          "swept/notes.txt"]
        assert (await download(alice, used["file_id"]))[0] == text_file(3)
    finally:
        await clients.close()


def test_the_s3_backend_needs_a_bucket() -> None:
    from chatd.content.blobs import open_blob_store

    with pytest.raises(ConfigError, match="s3_bucket"):
        open_blob_store(FilesConfig(backend="s3"), "chatd.db")
