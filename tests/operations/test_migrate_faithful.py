"""``chatd migrate`` copies faithfully: what clients of the embedded daemon hold
(ids of accounts, tokens, files, messages) keeps its meaning on the cluster.

Each test lives a little of an embedded daemon's life through its sockets,
migrates with the ``chatd`` command, and serves the copy as a cluster node.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import pytest
import redis

from chatd.client import ChatClient
from chatd.cluster.sequencer import AnotherDatabase
from chatd.domain.clock import ManualClock
from tests.backends import import_asyncpg
from tests.helpers import PASSWORD, Clients, build_app, start_server
from tests.helpers import test_config as config_of
from tests.operations import ChatdProcess, write_config
from tests.operations.test_cluster_cli import chatd, on_postgres
from tests.services import RedisServer
from tests.web.helpers import http

import_asyncpg()
import asyncpg  # noqa: E402 - after the check

pytestmark = pytest.mark.asyncio


async def _migrate(tmp_path: Path, db: Path, url: str, *more: str) -> None:
    config = write_config(tmp_path / "migrate.yaml", storage={"path": str(db)},
                          control={"path": str(tmp_path / "ctl.sock")})
    moved = await asyncio.to_thread(chatd, "migrate", "--to", url, "--config", str(config),
                                    *more)
    assert moved.returncode == 0, moved.stderr


async def _embedded_with_root(tmp_path: Path) -> tuple[Path, Path]:
    """An embedded database with the server admin root (made by chatd useradd), and
    the configuration of a daemon on it."""
    db = tmp_path / "embedded.db"
    config = write_config(tmp_path / "chatd.yaml", storage={"path": str(db)},
                          accounts={"bcrypt_cost": 4}, control={"enabled": False})
    made = await asyncio.to_thread(chatd, "useradd", "root", "--admin", "--password-stdin",
                                   "--config", str(config), stdin=f"{PASSWORD}\n")
    assert made.returncode == 0, made.stderr
    return db, config


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


async def test_webhooks_keep_the_token_that_made_them_across_the_copy(
        tmp_path: Path, postgres_url: str) -> None:
    """A webhook made with an API token on the embedded daemon still ends with that
    token once served by the cluster: one whose token was revoked before the copy is
    dead there, one whose token lives dies when it is revoked on the node, and one
    made from a password session goes on posting."""
    db = tmp_path / "embedded.db"
    server = await start_server(db, clock=ManualClock())
    clients = Clients(server)
    hooks: dict[str, str] = {}
    try:
        root = await clients.user("root")
        await root.command("/create den")
        for name in ("live", "gone"):
            token = (await root.command(f"/token create {name} read,post,moderate"))["token"]
            script = await clients.anonymous()
            await script.command(f"/login root --token {token}")
            hooks[name] = (await script.command(f"/webhook create {name} den"))["path"]
        hooks["manual"] = (await root.command("/webhook create manual den"))["path"]
        await root.command("/token revoke gone")
    finally:
        await clients.close()
        await server.stop()

    await _migrate(tmp_path, db, postgres_url)
    node = await start_server(tmp_path / "node.db", **on_postgres(postgres_url),
                              web__enabled=True, web__port=0)
    clients = Clients(node)
    try:
        root = await clients.user("root")
        async with http(node) as hook:
            statuses = {name: (await hook.post(path, json={"text": name})).status_code
                        for name, path in hooks.items()}
            assert statuses == {"live": 201, "gone": 403, "manual": 201}
            await root.command("/token revoke live")
            ended = await hook.post(hooks["live"], json={"text": "after"})
            assert (ended.status_code, ended.json()["error"]["code"]) == (403, "token-revoked")
            assert (await hook.post(hooks["manual"], json={"text": "m"})).status_code == 201
        listed = {h["name"]: h["dead"] for h in (await root.command("/webhook list den"))
                  ["webhooks"]}
        assert listed == {"live": "token-revoked", "gone": "token-revoked", "manual": None}
    finally:
        await clients.close()
        await node.stop()


async def test_message_ids_continue_above_every_id_the_embedded_daemon_issued(
        tmp_path: Path, postgres_url: str, redis_server: RedisServer) -> None:
    """After an unclean stop the embedded daemon numbers from above its reservation
    (millions ahead). Ids it issued there and never kept (a direct message to an
    account deleted since) were seen by their sender: the cluster's counter must
    start above them, or ids go backwards and a /resume from one is refused as
    another cluster's."""
    db, config = await _embedded_with_root(tmp_path)
    with ChatdProcess.serve(tmp_path, config, db) as daemon:
        host, port = await daemon.started()
        root = await ChatClient.connect(host, port)
        await root.command(f"/login root {PASSWORD}")
        await root.command("/create den")
        await root.say("kept")
        await root.command("/history den 5")  # stored before the crash
        await asyncio.sleep(0.3)
        await root.close()
        daemon.signal(signal.SIGKILL)
        await daemon.wait()
    with ChatdProcess.serve(tmp_path, config, db) as daemon:
        host, port = await daemon.started()
        root = await ChatClient.connect(host, port)
        await root.command(f"/login root {PASSWORD}")
        zed = await ChatClient.connect(host, port)
        await zed.command(f"/register zed {PASSWORD}")
        seen = (await root.command("/msg zed soon gone"))["id"]
        await zed.close()
        await root.command("/userdel zed")  # takes the message along
        await root.close()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT max(id) FROM messages").fetchone()[0] or 0
        stored = max(stored, conn.execute("SELECT max(last_id) FROM message_blocks")
                     .fetchone()[0] or 0)
    assert seen > stored + (1 << 20)  # the scene: an id issued far above those kept

    first = seen
    for redis_url in (None, redis_server.url):  # a sole node, nodes sharing Redis
        seen = first
        await _migrate(tmp_path, db, postgres_url, "--force")
        if redis_url is not None:
            redis.Redis.from_url(redis_url).flushall()
        overrides = {} if redis_url is None else {"cluster__redis": redis_url}
        node = await start_server(tmp_path / "node.db", **on_postgres(postgres_url),
                                  **overrides)
        clients = Clients(node)
        try:
            root = await clients.user("root")
            resumed = await root.command(f"/resume {seen}")
            assert "another server" not in resumed["message"], resumed.final
            if redis_url is None:  # numbered after the crash's gap: nothing missing
                assert resumed.get("recovered") is True, resumed.final
            sent = (await root.command("/say den after")).get("id") or 0
            history = (await root.command("/history den 5"))["messages"]
            assert history[-1]["text"] == "after" and history[-1]["id"] > seen
            assert sent in (0, history[-1]["id"])
            seen = history[-1]["id"]
            if redis_url is None:  # ids before the crash may have missed messages
                assert (await root.command("/resume 1")).get("recovered") is False
        finally:
            await clients.close()
            await node.stop()


async def test_nodes_refuse_a_redis_that_served_another_copy_until_it_is_emptied(
        tmp_path: Path, postgres_url: str, redis_server: RedisServer) -> None:
    """A trial copy served by nodes, then the final copy with --force: Redis still
    holds the trial's epoch, counter and log. The nodes took them on, numbering
    below ids the final copy brought and writing the trial's log into its history;
    they now refuse to start until Redis is emptied, then start afresh."""
    db, _ = await _embedded_with_root(tmp_path)

    async def node(say: str) -> list[str]:
        server = await start_server(tmp_path / "node.db", **on_postgres(postgres_url),
                                    cluster__redis=redis_server.url)
        clients = Clients(server)
        try:
            root = await clients.user("root")
            await root.command("/create den")  # the copies hold no room
            await root.command(f"/say den {say}")
            history = (await root.command("/history den 10"))["messages"]
            return [m["text"] for m in history]
        finally:
            await clients.close()
            await server.stop()

    redis.Redis.from_url(redis_server.url).flushall()
    await _migrate(tmp_path, db, postgres_url)
    assert await node("trial") == ["trial"]
    await _migrate(tmp_path, db, postgres_url, "--force")  # the copy again, over the trial
    refused = build_app(config_of(tmp_path / "node.db", **on_postgres(postgres_url),
                                  cluster__redis=redis_server.url), clock=ManualClock())
    with pytest.raises(AnotherDatabase, match="served another database"):
        await refused.start()
    await refused.stop()  # as the daemon does when it cannot start
    redis.Redis.from_url(redis_server.url).flushall()  # as CLUSTER.md says
    assert await node("final") == ["final"]
