"""Online backups: under load, restored the documented way, and on a schedule."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from chatd.app.app import App
from chatd.client import ChatClient
from chatd.config import BackupConfig
from chatd.ops.backups import Backups
from chatd.ops.control_client import ControlClient
from storage.blocks import read_block
from tests.helpers import Clients, start_server
from tests.operations import running_daemon, umask, wait_for

SENDERS = ("alice", "bob", "carol")
# A bound: three senders stay under the 5000 messages one /history shows.
MOST_PER_SENDER = 1600
BEFORE, AFTER = 90, 30  # acknowledged messages before the backup, and after it
HISTORY = {"rooms__history_max": 5000}


async def load(daemon: App, backup_path: Path, flush_first: bool,
               **overrides: object) -> tuple[set[int], set[int], list[int]]:
    """Three members talk while the control socket takes a backup in the middle.

    Returns the ids acknowledged before the backup was requested, those
    acknowledged before it returned, and every acknowledged id.
    """
    clients = Clients(daemon)
    acked: list[int] = []
    try:
        members = [await clients.user(name) for name in SENDERS]
        await members[0].command("/create lounge")
        for member in members[1:]:
            await member.command("/join lounge")

        done = asyncio.Event()

        async def talk(client: ChatClient, name: str) -> None:
            for n in range(MOST_PER_SENDER):
                if done.is_set():
                    return
                reply = await client.command(f"/say lounge {name} {n}")
                acked.append(reply["id"])

        talkers = [asyncio.ensure_future(talk(c, n)) for c, n in zip(members, SENDERS, strict=True)]
        try:
            await wait_for(lambda: len(acked) >= BEFORE)
            requested = set(acked)
            if flush_first:
                await daemon.services.writer.flush()
            with backup_path.open("wb") as out:
                result = await ControlClient(daemon.control.path).backup(out, False,
                                                                         str(backup_path))
            returned = set(acked)
            assert result["files"] == 1 and result["bytes"] > 0
            # More talk after the backup, unless a slow backup outlasted the whole bound.
            await wait_for(lambda: len(acked) >= len(returned) + AFTER
                           or all(task.done() for task in talkers))
            done.set()
            await asyncio.wait_for(asyncio.gather(*talkers), 10.0)
        finally:
            for task in talkers:
                task.cancel()
            await asyncio.gather(*talkers, return_exceptions=True)
    finally:
        await clients.close()
    # The talk went on before and (usually) during and after the backup.
    assert len(requested) >= BEFORE and len(acked) > len(requested)
    return requested, returned, acked


async def restored_history(backup: Path, tmp_path: Path) -> list[int]:
    """Restore as documented (daemon stopped, copy the file, start) and read /history."""
    restored = tmp_path / "restored" / "chatd.db"
    restored.parent.mkdir(parents=True)
    shutil.copy(backup, restored)
    server = await start_server(restored, **HISTORY)
    clients = Clients(server)
    try:
        alice = await clients.user("alice")
        history = await alice.command("/history lounge 5000")
        return [m["id"] for m in history["messages"]]
    finally:
        await clients.close()
        await server.stop()


def integrity(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


async def test_backup_under_load_after_a_flush(tmp_path: Path) -> None:
    backup = tmp_path / "backup.db"
    async with running_daemon(tmp_path, **HISTORY) as daemon:
        requested, _, acked = await load(daemon, backup, flush_first=True)
    assert integrity(backup) == "ok"
    ids = await restored_history(backup, tmp_path)
    assert requested <= set(ids)
    # A consistent copy: the messages it has are the oldest ones, none missing in between.
    assert ids == sorted(acked)[:len(ids)]
    # The original database has everything (the shutdown flushes the rest).
    assert await restored_history(tmp_path / "chatd.db", tmp_path / "original") == sorted(acked)


async def test_backup_under_load_has_every_message_acknowledged_before_it(
        tmp_path: Path) -> None:
    backup = tmp_path / "backup.db"
    # A long flush interval makes the window deterministic: nothing is flushed on its own.
    async with running_daemon(tmp_path, storage__flush_interval=60, **HISTORY) as daemon:
        requested, _, _ = await load(daemon, backup, flush_first=False)
    ids = await restored_history(backup, tmp_path)
    assert requested <= set(ids), f"{len(requested - set(ids))} acknowledged messages lost"


async def test_a_backup_holds_accounts_rooms_and_audit(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        clients = Clients(daemon)
        try:
            alice = await clients.user("alice")
            await alice.command("/create lounge")
            await alice.command("/say lounge kept")
        finally:
            await clients.close()
        await daemon.services.writer.flush()
        path = (await daemon.backups.take()).resolve()
    assert path.parent == (tmp_path / "backups").resolve()
    assert not path.with_name(path.name + ".partial").exists()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert [r[0] for r in db.execute("SELECT name FROM users")] == ["alice"]
        [block] = db.execute("SELECT room_id, count, numbers, strings FROM message_blocks")
        assert [m.text for m in read_block(*block)] == ["kept"]
    assert integrity(path) == "ok"


async def test_retention_keeps_the_newest(tmp_path: Path) -> None:
    server = await start_server(tmp_path / "chatd.db")
    try:
        directory = tmp_path / "kept"
        backups = Backups(server.storage, BackupConfig(interval=3600, dir=str(directory), keep=2),
                          str(tmp_path / "chatd.db"))
        day = 1_700_000_000.0
        taken = [await backups.take(now=day + n * 3600) for n in range(3)]
        assert len(set(taken)) == 3
        remaining = sorted(directory.iterdir())
        assert remaining == sorted(taken[1:])
        for path in remaining:
            assert integrity(path) == "ok"
        # A file that does not look like a backup is never pruned.
        (directory / "notes.txt").write_text("mine")
        await backups.take(now=day + 4 * 3600)
        newest = "chatd-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime(day + 4 * 3600)) + ".db"
        assert sorted(p.name for p in directory.iterdir()) == sorted(
            [taken[2].name, newest, "notes.txt"])
    finally:
        await server.stop()


async def test_a_backup_named_in_the_future_goes_first_never_the_one_just_made(
        tmp_path: Path) -> None:
    # Made while the clock was wrong: taken as the newest, it was never pruned, and
    # with keep of them the backup just made was deleted at once.
    server = await start_server(tmp_path / "chatd.db")
    try:
        directory = tmp_path / "kept"
        directory.mkdir()
        future = directory / "chatd-20991231-235959.db"
        future.write_bytes(b"made while the clock said 2099")
        backups = Backups(server.storage, BackupConfig(interval=3600, dir=str(directory), keep=1),
                          str(tmp_path / "chatd.db"))
        day = 1_700_000_000.0
        first = await backups.take(now=day)
        assert sorted(directory.iterdir()) == [first] and integrity(first) == "ok"
        second = await backups.take(now=day + 3600)
        assert sorted(directory.iterdir()) == [second]
    finally:
        await server.stop()


async def test_two_databases_in_one_directory_keep_their_own_backups(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    # A file of the operator's own, named as the README's chatctl example names one.
    (directory / "chatd-2026-11-21.db").write_text("mine")
    servers = [await start_server(tmp_path / f"{name}.db") for name in ("a", "b")]
    try:
        kept = BackupConfig(interval=3600, dir=str(directory), keep=1)
        made = [Backups(server.storage, kept, str(tmp_path / f"{name}.db"))
                for server, name in zip(servers, "ab", strict=True)]
        day = 1_700_000_000.0
        for n in range(2):
            for backups in made:
                await backups.take(now=day + n * 3600)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(day + 3600))
        assert sorted(p.name for p in directory.iterdir()) == sorted(
            [f"a-{stamp}.db", f"b-{stamp}.db", "chatd-2026-11-21.db"])
    finally:
        for server in servers:
            await server.stop()


async def test_reloads_never_put_the_next_backup_off(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "steady"
    async with running_daemon(tmp_path, backup__interval=0.3, backup__dir=str(directory),
                              backup__keep=0) as daemon:
        with caplog.at_level(logging.INFO, logger="chatd.ops.backups"):
            # A reload every 0.1 s (as a certificate renewal reloads, only faster),
            # until two backups were taken: a reload that put the next one off would
            # see none. (Ten reloads, a second, left a loaded machine's slower copies
            # one backup.) Counted in the log: backups of one second share a file name.
            def taken() -> int:
                return sum(r.getMessage() == "backup" for r in caplog.records)

            deadline = time.monotonic() + 10.0
            while taken() < 2 and time.monotonic() < deadline:
                assert daemon.reload() is None
                await asyncio.sleep(0.1)
        assert taken() >= 2


async def test_a_restart_counts_from_the_last_backup_in_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "older"
    server = await start_server(tmp_path / "chatd.db")
    try:
        backups = Backups(server.storage, BackupConfig(interval=3600, dir=str(directory), keep=3),
                          str(tmp_path / "chatd.db"))
        await backups.take(now=time.time() - 7200)  # two hours ago: one is overdue
        backups.start()
        found = await wait_for(lambda: len(list(directory.glob("chatd-*.db"))) == 2)
        assert found
        backups.stop()
    finally:
        await server.stop()


async def test_scheduled_backups_run_and_stop(tmp_path: Path) -> None:
    directory = tmp_path / "scheduled"
    async with running_daemon(tmp_path, backup__interval=0.05, backup__dir=str(directory),
                              backup__keep=1) as daemon:
        assert daemon.backups.config.interval == 0.05
        found = await wait_for(lambda: list(directory.glob("chatd-*.db")))
        assert len(found) == 1
    # Stopped with the daemon: nothing more is written afterwards.
    before = sorted(directory.iterdir())
    await asyncio.sleep(0.15)
    assert sorted(directory.iterdir()) == before


async def test_backups_off_by_default(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        assert daemon.backups.config.interval == 0
        assert daemon.backups._task is None
    assert not (tmp_path / "backups").exists()


async def test_reload_changes_the_backup_directory(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, backup__dir=str(tmp_path / "old")) as daemon:
        config = tmp_path / "chatd.yaml"
        config.write_text(f"backup:\n  dir: {tmp_path / 'new'}\n")
        daemon.config_path = str(config)
        daemon.overrides.pop("backup.dir")
        assert daemon.reload() is None
        assert daemon.backups.config.dir == str(tmp_path / "new")
        path = await daemon.backups.take()
    assert path.parent == tmp_path / "new"


async def test_reload_turns_scheduled_backups_on(tmp_path: Path) -> None:
    directory = tmp_path / "later"
    async with running_daemon(tmp_path, backup__dir=str(directory)) as daemon:
        config = tmp_path / "chatd.yaml"
        config.write_text("backup:\n  interval: 0.05\n")
        daemon.config_path = str(config)
        assert daemon.reload() is None
        assert daemon.backups.config.interval == 0.05
        # Waited for, not slept on: a copy of the database may take longer than the
        # interval on a loaded machine.
        await wait_for(lambda: list(directory.glob("chatd-*.db")))


async def test_scheduled_backups_are_owner_only(tmp_path: Path) -> None:
    with umask(0o022):
        async with running_daemon(tmp_path) as daemon:
            path = await daemon.backups.take()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # A scheduled backup interrupted by a crash leaves a private copy: the next one removes it.
    (path.parent / ".chatd.db.backup-x1.tmp").mkdir()
    async with running_daemon(tmp_path) as daemon:
        second = await daemon.backups.take(now=1_700_000_000.0)
    # Nothing of the private copies is left beside them.
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, second.name])
