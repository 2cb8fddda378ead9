"""``chatctl backup``: the daemon streams its copy, chatctl writes it (0600, or stdout).

The daemon never writes where the backup goes, so the command works under
the shipped unit (ProtectSystem=strict, PrivateTmp) as documented.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from chatd.app.app import App
from chatd.ops.chatctl import main
from chatd.ops.control_client import ControlClient
from tests.content import download, sha, upload
from tests.helpers import Clients, start_server
from tests.operations import (
    CHATCTL,
    PROCESS_TIMEOUT,
    ChatdProcess,
    running_daemon,
    wait_for,
    write_config,
)

TIMEOUT = 30
PICTURE = bytes(range(256)) * 300  # 76,800 bytes: more than one chunk of the stream


def chatctl(*args: str, stdin: str = "") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(CHATCTL), *args], input=stdin.encode(), capture_output=True,
                          timeout=TIMEOUT, check=False)


def users_in(database: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return sorted(row[0] for row in db.execute("SELECT name FROM users"))


async def run_chatctl(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def test_backup_to_standard_output(tmp_path: Path) -> None:
    db = tmp_path / "state" / "chatd.db"
    db.parent.mkdir()
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as daemon:
        await daemon.ready()
        made = await asyncio.to_thread(chatctl, "--db", str(db), "useradd", "alice",
                                       stdin="pw-of-alice\n")
        assert made.returncode == 0, made.stderr
        copy = await asyncio.to_thread(chatctl, "--db", str(db), "backup", "-")
        assert copy.returncode == 0 and copy.stderr == b""
        assert copy.stdout.startswith(b"SQLite format 3\0")
        # The private copy the daemon made in its state directory is gone.
        assert sorted(p.name for p in db.parent.iterdir() if "backup" in p.name) == []
    (tmp_path / "copy.db").write_bytes(copy.stdout)
    assert users_in(tmp_path / "copy.db") == ["alice"]


async def test_backup_to_standard_output_on_a_terminal_is_refused(tmp_path: Path) -> None:
    """"backup -" with standard output on a terminal would print the database there."""
    db = tmp_path / "chatd.db"
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as daemon:
        await daemon.ready()
        master, slave = os.openpty()
        try:
            done = await asyncio.to_thread(
                subprocess.run, [str(CHATCTL), "--db", str(db), "backup", "-"], stdout=slave,
                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=TIMEOUT, check=False)
            os.close(slave)
            shown = b""
            with contextlib.suppress(OSError):  # EIO once the terminal is drained
                while chunk := os.read(master, 65536):
                    shown += chunk
        finally:
            os.close(master)
    assert done.returncode == 1 and shown == b""
    assert done.stderr.decode() == (
        "chatctl: backup - writes the database to standard output, which is a terminal: "
        "redirect it (> FILE, | ssh HOST 'cat > FILE'), or give a file name\n")


def test_a_missing_directory_is_refused_before_asking_the_daemon(tmp_path: Path) -> None:
    # No daemon runs: the answer is about the directory, not about the daemon.
    target = tmp_path / "no" / "such" / "dir" / "b.db"
    done = chatctl("--db", str(tmp_path / "chatd.db"), "backup", str(target))
    assert done.returncode == 1 and done.stdout == b""
    assert done.stderr.decode() == f"chatctl: cannot write the backup: no directory " \
                                   f"{target.parent}\n"
    into_a_directory = chatctl("--db", str(tmp_path / "chatd.db"), "backup", str(tmp_path))
    assert into_a_directory.returncode == 1 and b"is a directory" in into_a_directory.stderr
    empty = chatctl("--db", str(tmp_path / "chatd.db"), "backup", "")
    assert empty.returncode == 1
    assert empty.stderr.decode() == ("chatctl: cannot write the backup: no path given "
                                     "(- writes to standard output)\n")


async def test_a_target_that_is_no_regular_file_is_refused_not_replaced(
        tmp_path: Path) -> None:
    # The copy is renamed into place: over a FIFO (or, run as root, over /dev/null)
    # that rename would put a regular file where the pipe or the device was.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    db = tmp_path / "chatd.db"
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as daemon:
        await daemon.ready()
        for target in (fifo, link):
            done = await asyncio.to_thread(chatctl, "--db", str(db), "backup", str(target))
            assert done.returncode == 1 and done.stdout == b""
            assert done.stderr.decode() == (f"chatctl: cannot write the backup: {target} is "
                                             "not a regular file (- writes to standard "
                                             "output)\n")
    assert stat.S_ISFIFO(fifo.stat().st_mode) and link.is_symlink()
    assert [name for name in os.listdir(tmp_path) if name.startswith(".chatctl-backup-")] == []


async def test_a_backup_over_the_served_database_is_refused(tmp_path: Path) -> None:
    """The copy is renamed into place: over the live database (or its write-ahead
    log) everything the daemon writes after it would be lost."""
    db = tmp_path / "chatd.db"
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as daemon:
        await daemon.ready()
        made = await asyncio.to_thread(chatctl, "--db", str(db), "useradd", "alice",
                                       stdin="pw-of-alice\n")
        assert made.returncode == 0, made.stderr
        served = db.stat().st_ino
        (tmp_path / "same.db").symlink_to(db)
        for target, named in ((db, db), (Path(f"{db}-wal"), Path(f"{db}-wal")),
                              (tmp_path / "same.db", db)):
            done = await asyncio.to_thread(chatctl, "--db", str(db), "backup", str(target))
            assert done.returncode == 1 and done.stdout == b"", target
            assert done.stderr.decode() == (f"chatctl: bad-arguments: cannot write the backup "
                                             f"over {named}: chatd serves that file; write "
                                             "the backup elsewhere\n")
        assert db.stat().st_ino == served
        assert "was replaced" not in daemon.log()
        assert [name for name in os.listdir(tmp_path) if name.startswith(".chatctl-")] == []
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
    assert users_in(db) == ["alice"]


async def test_a_backup_dir_that_is_a_file_is_said_to_be_one(tmp_path: Path) -> None:
    """Scheduled backups into a backup.dir that is a file: the log says what is wrong
    with it, not mkdir's bare "File exists" at every interval."""
    taken = tmp_path / "backups"
    taken.write_text("a file\n")
    config = write_config(tmp_path / "chatd.yaml", backup={"interval": 0.2, "dir": str(taken)})
    with ChatdProcess.serve(tmp_path, config) as daemon:
        await daemon.ready()
        failed = await daemon.wait_log(r'msg="scheduled backup failed"')
    assert f"backup.dir {taken} is not a directory" in failed
    assert taken.read_text() == "a file\n"


async def uploaded(daemon: App) -> int:
    clients = Clients(daemon)
    try:
        alice = await clients.user("alice")
        await alice.command("/create lounge")
        reply = await upload(alice, "picture.bin", PICTURE, "lounge")
        assert reply.ok, reply.final
        file_id: int = reply.final["file_id"]
        return file_id
    finally:
        await clients.close()


async def test_with_files_is_a_tar_that_restores(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "backup.tar"
    async with running_daemon(tmp_path) as daemon:
        file_id = await uploaded(daemon)
        code, out, err = await run_chatctl(capsys, "--socket", daemon.control.path,
                                           "backup", str(target), "--with-files", "--json")
        assert code == 0, err
    summary = json.loads(out)
    assert (summary["files"], summary["blobs"]) == (2, "included")
    assert summary["bytes"] > len(PICTURE)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with tarfile.open(target) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["blobs/" + sha(PICTURE)[:2] + "/" + sha(PICTURE),
                                   "chatd.db"]
        assert all(m.mode == 0o600 and m.isfile() for m in members.values())
        # Restore as documented: the database, and the blobs into files/blobs.
        restored = tmp_path / "restored"
        tar.extractall(restored, filter="data")
    (restored / "files").mkdir()
    shutil.move(restored / "blobs", restored / "files" / "blobs")
    server = await start_server(restored / "chatd.db")
    clients = Clients(server)
    try:
        alice = await clients.user("alice")
        data, _ = await download(alice, file_id)
        assert data == PICTURE
    finally:
        await clients.close()
        await server.stop()


async def test_with_files_to_standard_output(tmp_path: Path) -> None:
    config = write_config(tmp_path / "chatd.yaml")
    async with running_daemon(tmp_path) as daemon:
        await uploaded(daemon)
        done = await asyncio.to_thread(chatctl, "--socket", daemon.control.path,
                                       "backup", "-", "--with-files")
    assert done.returncode == 0, done.stderr
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        names = tar.getnames()
        database = tar.extractfile("chatd.db")
        assert database is not None and database.read(16) == b"SQLite format 3\0"
    assert names[0] == "chatd.db" and len(names) == 2
    assert config.exists()


async def test_the_audit_names_where_the_backup_went(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    async with running_daemon(tmp_path) as daemon:
        target = tmp_path / "copy.db"
        code, _, err = await run_chatctl(capsys, "--socket", daemon.control.path,
                                         "backup", str(target))
        assert code == 0, err
        entries = await daemon.services.audit.entries(5)
    assert (entries[-1].action, entries[-1].actor, entries[-1].reason) == (
        "backup", "console", str(target))


async def test_leftovers_of_an_interrupted_backup_are_removed(tmp_path: Path) -> None:
    """A daemon killed mid-backup leaves its private copy; the next start removes it."""
    ours, theirs = tmp_path / ".chatd.db.backup-x1.tmp", tmp_path / ".other.db.backup-x2.tmp"
    for folder in (ours, theirs):
        folder.mkdir(mode=0o700)
        (folder / "chatd.db").write_bytes(b"half a copy")
    async with running_daemon(tmp_path):
        assert not ours.exists()
        assert theirs.exists()  # another database's: another daemon may be using it


async def test_blobs_in_an_object_store_are_said_to_be_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """chatctl tells its operator when the daemon could not include the uploaded files."""
    database = b"SQLite format 3\0" + bytes(4080)  # what chatctl writes, it does not read

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        answer = {"ok": True, "result": {"database": "chatd.db",
                                         "blobs": "in-s3-not-included"}}
        frames = [answer, {"name": "chatd.db", "size": len(database), "mtime": 0}]
        writer.write(b"".join(json.dumps(f).encode() + b"\n" for f in frames) + database)
        writer.write(json.dumps({"end": True, "files": 1, "bytes": len(database)}).encode()
                     + b"\n")
        await writer.drain()
        writer.close()

    path = str(tmp_path / "fake.sock")
    server = await asyncio.start_unix_server(serve, path)
    try:
        code, _, err = await run_chatctl(capsys, "--socket", path, "backup",
                                         str(tmp_path / "b.tar"), "--with-files")
    finally:
        server.close()
    assert code == 0
    assert err == ("chatctl: the uploaded files live in the object store (files.backend: s3) "
                   "and are not in this backup\n")
    with tarfile.open(tmp_path / "b.tar") as tar:
        assert tar.getnames() == ["chatd.db"]


async def test_a_reader_that_stalls_holds_up_nobody_else(tmp_path: Path) -> None:
    """The stream waits for its own reader only: chat and other chatctl calls go on."""
    async with running_daemon(tmp_path) as daemon:
        await uploaded(daemon)
        reader, writer = await asyncio.open_unix_connection(daemon.control.path)
        try:
            writer.write(json.dumps({"cmd": "backup", "files": True}).encode() + b"\n")
            assert json.loads(await reader.readline())["ok"] is True
            # This reader stops here, with most of the stream unread.
            clients = Clients(daemon)
            try:
                bob = await clients.user("bob")
                assert (await bob.command("/ping")).ok
            finally:
                await clients.close()
            status = await ControlClient(daemon.control.path).call("status")
            assert status["users"] == 2
        finally:
            writer.close()


async def test_a_reader_that_goes_away_mid_stream_is_no_failure(tmp_path: Path) -> None:
    """chatctl backup - | head: the pipe closes, chatctl goes, and the daemon logs no
    error (it logged an unhandled exception, or "backup failed")."""
    db = tmp_path / "chatd.db"
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as daemon:
        await daemon.ready()
        for _ in range(3):
            reader, writer = await asyncio.open_unix_connection(daemon.control_path)
            writer.write(json.dumps({"cmd": "backup", "files": True}).encode() + b"\n")
            assert json.loads(await reader.readline())["ok"] is True
            writer.close()  # with the copy unread
        status = await ControlClient(daemon.control_path).call("status")
        assert status["users"] == 0

        def ended() -> str | None:
            """The log once each of the three streams ended (or a traceback came):
            a fixed 0.5 s was too short for a loaded machine's daemon to notice."""
            log = daemon.log()
            done = sum(log.count(f'msg="{line}') for line in (
                "backup cut short", "backup sent", "backup failed"))
            return log if done >= 3 or "Traceback" in log else None

        log = await wait_for(ended, PROCESS_TIMEOUT)
    assert "backup cut short" in log
    assert "level=error" not in log and "Traceback" not in log, log
