"""The command line in cluster mode: ``chatd useradd`` against the PostgreSQL
database, and ``chatd migrate --to postgresql://...`` from an embedded one.

The commands run in this process (``chatd.cli.main`` in a thread, with its own
event loop, its output captured); one runs as the installed program, end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chatd.cli import main
from chatd.domain.clock import ManualClock
from storage.api import EPOCH_META
from tests.backends import import_asyncpg
from tests.content import upload
from tests.helpers import PASSWORD, Clients, settle, start_server
from tests.operations import (
    CHATD,
    ChatdProcess,
    restored_logging,
    running_daemon,
    write_config,
)

import_asyncpg()
from storage.postgres.storage import PostgresStorage  # noqa: E402 - after the check

TIMEOUT = 60


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def chatd_program(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The installed ``chatd`` program, as a child process."""
    return subprocess.run([str(CHATD), *args], input=stdin, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


def chatd(*args: str, stdin: str = "") -> Ran:
    """``chatd ARGS`` in this process (call it from a thread: it runs its own loop)."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin, sys.modules.get("uvloop")
    sys.stdin = io.StringIO(stdin)
    # Plain asyncio: coverage loses the coroutines uvloop resumes in a thread.
    sys.modules["uvloop"] = None  # type: ignore[assignment]
    try:
        with restored_logging(), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            status = main(list(args))
    finally:
        sys.stdin = saved[0]
        if saved[1] is None:
            del sys.modules["uvloop"]
        else:
            sys.modules["uvloop"] = saved[1]
    return Ran(status, out.getvalue(), err.getvalue())


def cluster(url: str) -> dict[str, Any]:
    return {"enabled": True, "node_id": "n1", "postgres": url}


def on_postgres(url: str) -> dict[str, Any]:
    return {"cluster__enabled": True, "cluster__node_id": "n1", "cluster__postgres": url}


async def test_useradd_writes_the_account_into_the_cluster_database(
        tmp_path: Path, postgres_url: str) -> None:
    config = write_config(tmp_path / "node.yaml", cluster=cluster(postgres_url),
                          storage={"path": str(tmp_path / "node.db")})
    made = await asyncio.to_thread(chatd_program, "useradd", "root", "--admin",
                                   "--password-stdin", "--config", str(config),
                                   stdin=f"{PASSWORD}\n")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "created admin account root"
    assert not (tmp_path / "node.db").exists()  # nothing went to SQLite

    server = await start_server(tmp_path / "node.db", **on_postgres(postgres_url))
    clients = Clients(server)
    try:
        root = await clients.anonymous()
        assert (await root.command(f"/login root {PASSWORD}")).ok
        assert server.services.accounts.require("root").is_admin
    finally:
        await clients.close()
        await server.stop()


async def test_useradd_is_refused_while_a_node_it_cannot_reach_serves_the_database(
        tmp_path: Path, postgres_url: str) -> None:
    server = await start_server(tmp_path / "node.db", **on_postgres(postgres_url))
    try:
        config = write_config(tmp_path / "other.yaml", cluster=cluster(postgres_url),
                              control={"path": str(tmp_path / "nobody.sock")})
        made = await asyncio.to_thread(chatd, "useradd", "late", "--password-stdin",
                                       "--config", str(config), stdin=f"{PASSWORD}\n")
        assert made.returncode == 1
        assert "another chatd node is serving this database" in made.stderr
        assert "Traceback" not in made.stderr
        assert server.services.accounts.find("late") is None
    finally:
        await server.stop()


async def _embedded_history(db: Path) -> None:
    """An embedded daemon's life: accounts, a room, history, a ban, a pending DM."""
    server = await start_server(db, clock=ManualClock())
    clients = Clients(server)
    try:
        alice = await clients.user("alice")
        await alice.command("/create general")
        bob = await clients.user("bob")
        await bob.command("/join general")
        await settle(alice)
        for i in range(70):  # more than a block of plain text
            await alice.say(f"line {i}")
        await alice.command("/create den private")
        await clients.user("carol")
        await alice.command("/ban carol den")
        await bob.command("/msg carol are you there?")
    finally:
        await clients.close()
        await server.stop()


async def test_migrate_copies_an_embedded_database_a_node_then_serves(
        tmp_path: Path, postgres_url: str) -> None:
    db = tmp_path / "embedded.db"
    await _embedded_history(db)
    config = write_config(tmp_path / "chatd.yaml", storage={"path": str(db)},
                          control={"path": str(tmp_path / "ctl.sock")})
    moved = await asyncio.to_thread(chatd, "migrate", "--to", postgres_url,
                                    "--config", str(config))
    assert moved.returncode == 0, moved.stderr
    assert "users 3" in moved.stdout and "files 0" in moved.stdout
    # No uploaded file to carry: no files.dir to give the nodes.
    assert "files.dir" not in moved.stdout and "no uploaded files to carry" in moved.stdout

    server = await start_server(tmp_path / "node.db", **on_postgres(postgres_url))
    clients = Clients(server)
    try:
        bob = await clients.user("bob")
        history = (await bob.command("/history general 100"))["messages"]
        assert [m["text"] for m in history] == [f"line {i}" for i in range(70)]
        assert server.services.rooms.find("den") is not None
        # No file carried: no place recorded for the nodes to check theirs against.
        assert await server.storage.get_meta("blob_store") is None
    finally:
        await clients.close()
        await server.stop()

    again = await asyncio.to_thread(chatd, "migrate", "--to", postgres_url,
                                    "--config", str(config))
    assert again.returncode == 1 and "not empty" in again.stderr and "--force" in again.stderr
    forced = await asyncio.to_thread(chatd, "migrate", "--to", postgres_url, "--force",
                                     "--config", str(config))
    assert forced.returncode == 0, forced.stderr


async def test_migrate_asks_for_files_dir_only_when_there_are_files(
        tmp_path: Path, postgres_url: str) -> None:
    """The installed program, end to end: an embedded database without uploads is
    migrated without a word of files.dir; one with an upload names the directory
    its bytes are in, which the nodes must then share."""
    db = tmp_path / "embedded.db"
    await _embedded_history(db)
    config = write_config(tmp_path / "chatd.yaml", storage={"path": str(db)},
                          control={"path": str(tmp_path / "ctl.sock")})
    moved = await asyncio.to_thread(chatd_program, "migrate", "--to", postgres_url,
                                    "--config", str(config))
    assert moved.returncode == 0, moved.stderr
    assert "files.dir" not in moved.stdout and "files 0" in moved.stdout
    assert "no uploaded files to carry" in moved.stdout

    server = await start_server(db, clock=ManualClock())
    clients = Clients(server)
    try:
        alice = await clients.user("alice")
        assert (await upload(alice, "notes.txt", b"carried along\n", "general")).ok
    finally:
        await clients.close()
        await server.stop()
    again = await asyncio.to_thread(chatd_program, "migrate", "--to", postgres_url, "--force",
                                    "--config", str(config))
    assert again.returncode == 0, again.stderr
    files = str((tmp_path / "files").resolve())
    assert "files 1" in again.stdout and f"files.dir: {files}" in again.stdout
    assert "no uploaded files" not in again.stdout


async def test_a_node_whose_files_settings_miss_the_carried_files_says_where_they_are(
        tmp_path: Path, postgres_url: str) -> None:
    """Migrated with an upload, a node keeping files elsewhere (its own directory, as a
    new configuration per node has it) cannot serve the carried files: it says so at
    start, naming the directory to set. A node given that directory says nothing."""
    db = tmp_path / "embedded.db"
    server = await start_server(db, clock=ManualClock())
    clients = Clients(server)
    try:
        alice = await clients.user("alice")
        await alice.command("/create general")
        assert (await upload(alice, "notes.txt", b"carried along\n", "general")).ok
    finally:
        await clients.close()
        await server.stop()
    config = write_config(tmp_path / "chatd.yaml", storage={"path": str(db)},
                          control={"path": str(tmp_path / "ctl.sock")})
    moved = await asyncio.to_thread(chatd_program, "migrate", "--to", postgres_url,
                                    "--config", str(config))
    assert moved.returncode == 0, moved.stderr
    carried = (tmp_path / "files").resolve()

    async def start_log(name: str, files_dir: Path) -> str:
        (tmp_path / name).mkdir()
        node = write_config(tmp_path / name / "node.yaml", cluster=cluster(postgres_url),
                            backup={"interval": 0}, files={"dir": str(files_dir)})
        with ChatdProcess.serve(tmp_path / name, node, tmp_path / name / "node.db") as process:
            await process.started()
            return process.log()

    elsewhere = await start_log("n1", tmp_path / "n1" / "files")
    [line] = [line for line in elsewhere.splitlines() if "chatd migrate carried" in line]
    assert " level=warning " in line and f"set files.dir: {carried}" in line
    assert f"carried={carried}" in line and f"here={tmp_path / 'n1' / 'files'}" in line
    there = await start_log("n2", carried)
    assert "chatd migrate carried" not in there


async def test_the_warning_stops_once_the_carried_files_are_moved_to_the_nodes_directory(
        tmp_path: Path, postgres_url: str) -> None:
    """The operator copies the carried files into the directory the nodes share and
    gives the nodes that directory: no extra step, the node finds the blobs there.
    A copy missing one of them is not taken for the files moved."""
    db = tmp_path / "embedded.db"
    server = await start_server(db, clock=ManualClock())
    clients = Clients(server)
    try:
        alice = await clients.user("alice")
        await alice.command("/create general")
        for n in range(3):
            assert (await upload(alice, f"notes{n}.txt", b"carried %d\n" % n, "general")).ok
    finally:
        await clients.close()
        await server.stop()
    config = write_config(tmp_path / "chatd.yaml", storage={"path": str(db)},
                          control={"path": str(tmp_path / "ctl.sock")})
    moved = await asyncio.to_thread(chatd_program, "migrate", "--to", postgres_url,
                                    "--config", str(config))
    assert moved.returncode == 0, moved.stderr
    shared = tmp_path / "shared"
    await asyncio.to_thread(shutil.copytree, tmp_path / "files", shared)
    one = sorted((shared / "blobs").glob("*/*"))[0]  # every blob is in the sample
    one.rename(tmp_path / "set-aside")

    async def start_log(name: str) -> str:
        (tmp_path / name).mkdir()
        node = write_config(tmp_path / name / "node.yaml", cluster=cluster(postgres_url),
                            backup={"interval": 0}, files={"dir": str(shared)})
        with ChatdProcess.serve(tmp_path / name, node, tmp_path / name / "node.db") as process:
            await process.started()
            return process.log()

    [line] = [line for line in (await start_log("n1")).splitlines()
              if "chatd migrate carried" in line]
    assert " level=warning " in line and f"here={shared}" in line
    (tmp_path / "set-aside").rename(one)
    [line] = [line for line in (await start_log("n2")).splitlines()
              if "chatd migrate carried" in line]
    assert " level=info " in line and "were moved to this node's files directory" in line


async def test_migrate_refuses_while_the_embedded_daemon_runs(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        config = write_config(tmp_path / "chatd.yaml",
                              storage={"path": daemon.config.storage.path},
                              control={"path": str(tmp_path / "ctl.sock")})
        moved = await asyncio.to_thread(chatd, "migrate", "--to", "postgresql://x@127.0.0.1/x",
                                        "--config", str(config))
    assert moved.returncode == 1 and "stop it first" in moved.stderr


async def test_migrate_refuses_a_served_database_and_one_whose_daemon_crashed(
        tmp_path: Path, postgres_url: str) -> None:
    """A daemon without a control socket still holds the database's lock; one killed
    leaves it 'serving': the copy would lose what it acknowledged and never wrote,
    and then vouch for the old ids. Started and stopped once, the gap is recorded:
    the copy is made, and the cluster's first epoch doubts the older ids."""
    db = tmp_path / "embedded.db"
    config = write_config(tmp_path / "chatd.yaml", storage={"path": str(db)},
                          control={"enabled": False})
    with ChatdProcess.serve(tmp_path, config, db) as daemon:
        await daemon.started()
        moved = await asyncio.to_thread(chatd, "migrate", "--to", postgres_url,
                                        "--config", str(config))
        assert moved.returncode == 1 and "stop it first" in moved.stderr, moved.stderr
        daemon.signal(signal.SIGKILL)
        await daemon.wait()
    crashed = await asyncio.to_thread(chatd, "migrate", "--to", postgres_url,
                                      "--config", str(config))
    assert crashed.returncode == 1 and "did not stop cleanly" in crashed.stderr
    with ChatdProcess.serve(tmp_path, config, db) as daemon:
        await daemon.started()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
    moved = await asyncio.to_thread(chatd, "migrate", "--to", postgres_url,
                                    "--config", str(config))
    assert moved.returncode == 0, moved.stderr
    storage = PostgresStorage(postgres_url)
    await storage.open()
    try:
        assert await storage.get_meta(EPOCH_META) is None  # not MIGRATED: doubted
    finally:
        await storage.close()


@pytest.mark.parametrize(("args", "status", "said"), [
    (["--to", "mysql://db/chatd"], 2, "configuration error: --to: expected a URL"),
    (["--to", "postgresql://x@127.0.0.1/x", "--db", "/nonexistent/chatd.db"], 1,
     "no embedded database"),
])
async def test_migrate_says_what_is_wrong(args: list[str], status: int, said: str) -> None:
    moved = await asyncio.to_thread(chatd, "migrate", *args)
    assert moved.returncode == status and said in moved.stderr
    assert "Traceback" not in moved.stderr


def test_an_s3_blob_store_is_recorded_and_named() -> None:
    from chatd.app.migration import _report, blob_store
    from chatd.config import load_config

    config = load_config(None, {"files.backend": "s3", "files.s3_bucket": "chat",
                                "files.s3_endpoint": "http://127.0.0.1:9000",
                                "files.s3_prefix": "c/"})
    blobs = blob_store(config)
    assert blobs == {"backend": "s3", "endpoint": "http://127.0.0.1:9000", "bucket": "chat",
                     "region": "", "prefix": "c/"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        _report("chatd.db", {"users": 1, "files": 2}, blobs)
    assert "bucket chat (prefix c/)" in out.getvalue()


async def test_migrate_without_the_driver_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "chatd.db"
    db.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    for name in [m for m in sys.modules if m.startswith("storage.postgres")]:
        monkeypatch.delitem(sys.modules, name)
    moved = await asyncio.to_thread(chatd, "migrate", "--to", "postgresql://x@127.0.0.1/x",
                                    "--db", str(db))
    assert moved.returncode == 1 and "chatd[cluster]" in moved.stderr


async def test_a_node_without_the_driver_stops_with_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    for name in [m for m in sys.modules if m.startswith("storage.postgres")]:
        monkeypatch.delitem(sys.modules, name)
    config = write_config(tmp_path / "node.yaml",
                          cluster=cluster("postgresql://x@127.0.0.1:1/x"))
    made = await asyncio.to_thread(chatd, "useradd", "x", "--password-stdin", "--config",
                                   str(config), stdin=f"{PASSWORD}\n")
    assert made.returncode == 2 and "chatd[cluster]" in made.stderr
