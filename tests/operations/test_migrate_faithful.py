"""``chatd migrate`` copies faithfully: what clients of the embedded daemon hold
(ids of accounts, tokens, files, messages) keeps its meaning on the cluster.

Each test lives a little of an embedded daemon's life through its sockets,
migrates with the ``chatd`` command, and serves the copy as a cluster node.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from chatd.domain.clock import ManualClock
from tests.backends import import_asyncpg
from tests.helpers import Clients, start_server
from tests.operations import write_config
from tests.operations.test_cluster_cli import chatd, on_postgres

import_asyncpg()
import asyncpg  # noqa: E402 - after the check

pytestmark = pytest.mark.asyncio


async def _migrate(tmp_path: Path, db: Path, url: str) -> None:
    config = write_config(tmp_path / "chatd.yaml", storage={"path": str(db)},
                          control={"path": str(tmp_path / "ctl.sock")})
    moved = await asyncio.to_thread(chatd, "migrate", "--to", url, "--config", str(config))
    assert moved.returncode == 0, moved.stderr


async def test_ids_of_deleted_rows_are_never_handed_out_again(
        tmp_path: Path, postgres_url: str) -> None:
    """SQLite's AUTOINCREMENT never reuses the id of the newest row once deleted
    (sqlite_sequence remembers it): nor may the cluster, or a client's old id of a
    deleted account, token or webhook comes to mean a new one."""
    db = tmp_path / "embedded.db"
    server = await start_server(db, clock=ManualClock())
    clients = Clients(server)
    try:
        root = await clients.user("root")
        await server.services.accounts.set_admin(server.services.accounts.require("root"), True)
        await clients.user("zed")
        gone = server.services.accounts.require("zed").id
        await root.command("/userdel zed")
        await root.command("/create den")
        made = await root.command("/token create t1")
        await root.command("/token revoke t1")
        hook = await root.command("/webhook create hook den")
        await root.command(f"/webhook revoke {hook['id']} den")
        assert made.ok
    finally:
        await clients.close()
        await server.stop()
    with sqlite3.connect(db) as conn:
        last = dict(conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
    assert last["users"] == gone and last["api_tokens"] >= 1 and last["webhooks"] >= 1

    await _migrate(tmp_path, db, postgres_url)
    node = await start_server(tmp_path / "node.db", **on_postgres(postgres_url))
    clients = Clients(node)
    try:
        await clients.user("newbie")
        assert node.services.accounts.require("newbie").id > gone
        root = await clients.user("root")
        assert (await root.command("/token create t2")).ok
        assert (await root.command("/webhook create hook2 den")).ok
    finally:
        await clients.close()
        await node.stop()
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT max(id) FROM api_tokens") > last["api_tokens"]
        assert await conn.fetchval("SELECT max(id) FROM webhooks") > last["webhooks"]
        # Every AUTOINCREMENT table continues after what SQLite ever handed out.
        for table, seq in last.items():
            column = "seq" if table == "members" else "id"
            nextval = await conn.fetchval(
                f"SELECT nextval(pg_get_serial_sequence('{table}', '{column}'))")
            assert nextval > seq, table
    finally:
        await conn.close()
