"""A daemon killed with SIGKILL: what the next start knows of what it lost.

A message is acknowledged (echoed) before the batched writer stores it; a
process killed meanwhile loses it. The next start must never issue its id
again, and /resume from before the crash must not say that nothing is missing.
Real ``chatd serve`` processes, a real client over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from pathlib import Path

import pytest

from chatd.client import ChatClient
from chatd.client.api import ClientError
from chatd.domain.sequence import RESERVE_AHEAD
from tests.helpers import PASSWORD
from tests.operations import ChatdProcess, write_config

# The writer held off for the test's length: every acknowledged message waits.
HELD_OFF = {"flush_interval": 3600, "max_batch": 100_000, "max_pending": 50}


async def _user(port: int, name: str, new: bool) -> ChatClient:
    client = await ChatClient.connect("127.0.0.1", port)
    verb = "register" if new else "login"
    await client.command(f"/{verb} {name} {PASSWORD}")
    return client


async def test_ids_acknowledged_before_a_crash_are_never_issued_again(tmp_path: Path) -> None:
    db = tmp_path / "chatd.db"
    first = write_config(tmp_path / "first.yaml")
    with ChatdProcess.serve(tmp_path, first, db) as daemon:
        _, port = await daemon.ready()
        alice = await _user(port, "alice", new=True)
        await alice.command("/create den")
        await alice.say("stored before the crash")
        await alice.close()
        daemon.signal(signal.SIGTERM)  # a clean stop: everything written
        assert await daemon.wait() == 0
    held = write_config(tmp_path / "held.yaml", storage=HELD_OFF)
    with ChatdProcess.serve(tmp_path, held, db) as daemon:
        _, port = await daemon.ready()
        assert "did not stop cleanly" not in daemon.log()
        alice = await _user(port, "alice", new=False)
        stored = (await alice.command("/history den"))["messages"][-1]["id"]
        acked = [(await alice.say(f"acknowledged, not written {i}"))["id"] for i in range(3)]
        assert acked == [stored + 1, stored + 2, stored + 3]
        daemon.signal(signal.SIGKILL)
        assert await daemon.wait() == -signal.SIGKILL
        await alice.close()
    with ChatdProcess.serve(tmp_path, first, db) as daemon:
        _, port = await daemon.ready()
        await daemon.wait_log("did not stop cleanly")
        alice = await _user(port, "alice", new=False)
        resumed = await alice.command(f"/resume {stored}")
        assert resumed["recovered"] is False
        # Above what the crashed daemon had reserved when it started.
        assert (await alice.say("after the crash"))["id"] == stored + RESERVE_AHEAD + 1
        later = await alice.command(f"/resume {stored + RESERVE_AHEAD + 1}")
        assert later["recovered"] is True
        await alice.close()


async def test_past_the_backlog_bound_posts_are_refused_with_busy(tmp_path: Path) -> None:
    """A database that cannot keep up (here: a writer held off) does not make
    acknowledged messages wait in memory without bound."""
    held = write_config(tmp_path / "held.yaml", storage=HELD_OFF | {"max_pending": 2})
    with ChatdProcess.serve(tmp_path, held) as daemon:
        _, port = await daemon.ready()
        alice = await _user(port, "alice", new=True)
        await alice.command("/create den")
        assert [(await alice.say(f"waits {i}"))["type"] for i in range(2)] == ["message"] * 2
        refused = await alice.say("one too many")
        assert refused["type"] == "error" and refused["code"] == "busy"
        assert refused["retry_ms"] > 0
        with pytest.raises(ClientError) as direct:
            await alice.command("/msg alice to myself")
        assert direct.value.code == "busy"
        await alice.close()
        daemon.signal(signal.SIGTERM)  # the two acknowledged ones are written at the stop
        assert await daemon.wait() == 0
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "plain.yaml")) as daemon:
        _, port = await daemon.ready()
        alice = await _user(port, "alice", new=False)
        texts = [m["text"] for m in (await alice.command("/history den"))["messages"]]
        assert texts == ["waits 0", "waits 1"]
        await alice.close()


async def test_a_database_file_deleted_under_the_daemon_is_said_in_the_log(
        tmp_path: Path) -> None:
    db = tmp_path / "chatd.db"
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as daemon:
        await daemon.ready()
        for suffix in ("", "-wal", "-shm"):
            await asyncio.to_thread(Path(f"{db}{suffix}").unlink, missing_ok=True)
        line = await daemon.wait_log("database file .* was deleted while chatd serves it",
                                     timeout=10)
        assert "level=error" in line


async def test_a_stop_that_loses_acknowledged_messages_exits_1(tmp_path: Path) -> None:
    """Another process holds the database (a sqlite3 shell in a transaction) while
    chatd stops with messages waiting: they are lost, and the exit status says so, so
    that the service manager shows a failed stop instead of a clean one."""
    db = tmp_path / "chatd.db"
    held = write_config(tmp_path / "held.yaml", storage=HELD_OFF)
    with ChatdProcess.serve(tmp_path, held, db) as daemon:
        _, port = await daemon.ready()
        alice = await _user(port, "alice", new=True)
        await alice.command("/create den")
        assert (await alice.say("never written"))["type"] == "message"
        await alice.close()
        with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as other:
            other.execute("BEGIN EXCLUSIVE")
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait(30) == 1
            other.execute("ROLLBACK")
    assert "what was not written is lost" in daemon.log()
