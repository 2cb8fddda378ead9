"""The command line in cluster mode: ``chatd useradd`` against the PostgreSQL
database, and ``chatd migrate --to postgresql://...`` from an embedded one."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chatd.domain.clock import ManualClock
from tests.backends import import_asyncpg
from tests.helpers import PASSWORD, Clients, settle, start_server
from tests.operations import CHATD, running_daemon, write_config

import_asyncpg()

TIMEOUT = 60


def chatd(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHATD), *args], input=stdin, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


def cluster(url: str) -> dict[str, Any]:
    return {"enabled": True, "node_id": "n1", "postgres": url}


def on_postgres(url: str) -> dict[str, Any]:
    return {"cluster__enabled": True, "cluster__node_id": "n1", "cluster__postgres": url}


async def test_useradd_writes_the_account_into_the_cluster_database(
        tmp_path: Path, postgres_url: str) -> None:
    config = write_config(tmp_path / "node.yaml", cluster=cluster(postgres_url),
                          storage={"path": str(tmp_path / "node.db")})
    made = await asyncio.to_thread(chatd, "useradd", "root", "--admin", "--password-stdin",
                                   "--config", str(config), stdin=f"{PASSWORD}\n")
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
    files = str((tmp_path / "files").resolve())
    assert "users 3" in moved.stdout and f"files.dir: {files}" in moved.stdout

    server = await start_server(tmp_path / "node.db", **on_postgres(postgres_url))
    clients = Clients(server)
    try:
        bob = await clients.user("bob")
        history = (await bob.command("/history general 100"))["messages"]
        assert [m["text"] for m in history] == [f"line {i}" for i in range(70)]
        assert server.services.rooms.find("den") is not None
        recorded = await server.storage.get_meta("blob_store")  # type: ignore[attr-defined]
        assert json.loads(recorded) == {"backend": "local", "dir": files}
    finally:
        await clients.close()
        await server.stop()

    again = await asyncio.to_thread(chatd, "migrate", "--to", postgres_url,
                                    "--config", str(config))
    assert again.returncode == 1 and "not empty" in again.stderr and "--force" in again.stderr
    forced = await asyncio.to_thread(chatd, "migrate", "--to", postgres_url, "--force",
                                     "--config", str(config))
    assert forced.returncode == 0, forced.stderr


async def test_migrate_refuses_while_the_embedded_daemon_runs(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        config = write_config(tmp_path / "chatd.yaml",
                              storage={"path": daemon.config.storage.path},
                              control={"path": str(tmp_path / "ctl.sock")})
        moved = await asyncio.to_thread(chatd, "migrate", "--to", "postgresql://x@127.0.0.1/x",
                                        "--config", str(config))
    assert moved.returncode == 1 and "stop it first" in moved.stderr


@pytest.mark.parametrize(("args", "status", "said"), [
    (["--to", "mysql://db/chatd"], 2, "cluster.postgres"),
    (["--to", "postgresql://x@127.0.0.1/x", "--db", "/nonexistent/chatd.db"], 1,
     "no embedded database"),
])
def test_migrate_says_what_is_wrong(args: list[str], status: int, said: str) -> None:
    moved = chatd("migrate", *args)
    assert moved.returncode == status and said in moved.stderr
    assert "Traceback" not in moved.stderr
