"""Files of terminated rooms follow the history retention; blobs go with their last file."""

from __future__ import annotations

import os
import time

from chatd.domain.clock import ManualClock
from tests.content import blob_paths, member_of, text_file, upload
from tests.governance import users
from tests.helpers import ChatServer, Clients

DAY = 86400


async def test_files_of_terminated_rooms_are_deleted_after_the_retention(
        server: ChatServer, clients: Clients, clock: ManualClock) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await member_of(alice, "solo")
    await member_of(bob, "dev")
    shared = text_file(5)
    gone = await upload(alice, "a.txt", text_file(3), "solo")
    same = await upload(alice, "b.txt", shared, "solo")
    kept = await upload(bob, "b.txt", shared, "dev")  # the same content, in a live room
    assert len(blob_paths(server)) == 2
    await alice.command("/leave solo")  # the last member: the room terminates
    clock.advance(89 * DAY)
    assert (await server.housekeeping.run_once())["files_deleted"] == 0
    clock.advance(2 * DAY)
    assert (await server.housekeeping.run_once())["files_deleted"] == 2
    storage = server.services.storage
    assert await storage.get_file(gone["file_id"]) is None
    assert await storage.get_file(same["file_id"]) is None
    assert await storage.get_file(kept["file_id"]) is not None
    # b.txt's blob is still used in #dev; a.txt's is gone.
    assert len(blob_paths(server)) == 1
    assert (await bob.command(f"/download {kept['file_id']}")).ok


async def test_stale_staged_uploads_are_swept(server: ChatServer) -> None:
    staging = server.services.files.staging
    staging.mkdir(parents=True, exist_ok=True)
    old, fresh = staging / "upload-old.part", staging / "upload-new.part"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(old, (time.time() - 2 * DAY, time.time() - 2 * DAY))
    await server.housekeeping.run_once()
    assert not old.exists() and fresh.exists()
