"""What a cluster node says at start-up about its settings (a real ``chatd serve``)."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.backends import PostgresDatabases, import_asyncpg
from tests.helpers import PASSWORD
from tests.operations import CHATD, ChatdProcess, write_config
from tests.services import RedisServer

import_asyncpg()
pytestmark = pytest.mark.asyncio


def node_config(path: Path, postgres_url: str, redis_url: str, node_id: str = "n1",
                **sections: dict[str, Any]) -> Path:
    return write_config(path, cluster={"enabled": True, "node_id": node_id,
                                       "postgres": postgres_url, "redis": redis_url},
                        backup={"interval": 0}, **sections)


def warnings_about_files(log: str) -> list[str]:
    return [line for line in log.splitlines() if "files.dir" in line]


async def test_a_node_with_a_local_files_dir_says_it_must_be_shared(
        tmp_path: Path, postgres_url: str, redis_server: RedisServer) -> None:
    blobs = tmp_path / "blobs"
    config = node_config(tmp_path / "n1.yaml", postgres_url, redis_server.url,
                         files={"dir": str(blobs)})
    with ChatdProcess.serve(tmp_path, config, tmp_path / "n1.db") as node:
        await node.started()
        log = node.log()
    [line] = warnings_about_files(log)
    assert " level=warning " in line
    assert "shared by all nodes" in line and "files.backend: s3" in line
    assert f"dir={blobs}" in line


async def test_the_default_directory_beside_the_database_is_named_too(
        tmp_path: Path, postgres_url: str, redis_server: RedisServer) -> None:
    config = node_config(tmp_path / "n1.yaml", postgres_url, redis_server.url)
    with ChatdProcess.serve(tmp_path, config, tmp_path / "n1.db") as node:
        await node.started()
        log = node.log()
    [line] = warnings_about_files(log)
    assert f"dir={tmp_path / 'files'}" in line


async def test_an_embedded_daemon_does_not_warn(tmp_path: Path) -> None:
    with ChatdProcess.serve(tmp_path) as daemon:
        await daemon.started()
        log = daemon.log()
    assert warnings_about_files(log) == []
    assert "cluster.enabled" not in log


async def test_a_cluster_section_without_enabled_says_the_daemon_runs_alone(
        tmp_path: Path, postgres_url: str, redis_server: RedisServer) -> None:
    # A node's file with cluster.enabled forgotten: an embedded daemon on an SQLite
    # file of its own, which would otherwise look like a node that started well.
    config = write_config(tmp_path / "n1.yaml", cluster={
        "node_id": "n1", "postgres": postgres_url, "redis": redis_server.url})
    with ChatdProcess.serve(tmp_path, config, tmp_path / "n1.db") as daemon:
        await daemon.started()
        log = daemon.log()
    [line] = [line for line in log.splitlines() if "cluster.enabled is false" in line]
    assert " level=warning " in line and "set cluster.enabled: true" in line
    assert "keys=cluster.node_id,cluster.redis,cluster.postgres" in line
    assert f"database={tmp_path / 'n1.db'}" in line


async def test_a_second_node_with_a_running_nodes_id_refuses_to_start(
        tmp_path: Path, postgres_url: str, redis_server: RedisServer) -> None:
    # Two processes under one node id would take each other's record and fence each
    # other for ever: the second is refused, and the first keeps serving.
    first = node_config(tmp_path / "n1.yaml", postgres_url, redis_server.url)
    with ChatdProcess.serve(tmp_path, first, tmp_path / "n1.db") as running:
        host, port = await running.started()
        (tmp_path / "again").mkdir()
        second = node_config(tmp_path / "again" / "n1.yaml", postgres_url, redis_server.url)
        with ChatdProcess.serve(tmp_path / "again", second, tmp_path / "again" / "n1.db") as twin:
            assert await twin.wait() == 1
            refused = twin.log()
        assert "another running node is n1" in refused
        assert f"{host}:{port}" in refused or str(port) in refused
        assert "fenced" not in running.log()


async def test_a_node_whose_redis_does_not_answer_at_start_says_so(
        tmp_path: Path, postgres_url: str) -> None:
    # Refused at start with one line naming Redis, as an unreachable PostgreSQL is:
    # not a Python traceback.
    with socket.socket() as probe:  # a closed loopback port: nothing answers there
        probe.bind(("127.0.0.1", 0))
        closed = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    config = node_config(tmp_path / "n1.yaml", postgres_url, closed)
    with ChatdProcess.serve(tmp_path, config, tmp_path / "n1.db") as node:
        assert await node.wait() == 1
        log = node.log()
    assert "Traceback" not in log, log
    [line] = [line for line in log.splitlines() if 'msg="cannot start"' in line]
    assert "Redis" in line and "cluster.redis" in line


async def test_a_node_of_another_database_on_a_redis_running_nodes_use_is_not_told_to_empty_it(
        tmp_path: Path, postgres_url: str, postgres_databases: PostgresDatabases,
        redis_server: RedisServer) -> None:
    # A second cluster pointed at the first one's Redis by mistake: emptying that
    # Redis would lose the running nodes' messages not stored yet, so the refusal
    # names them and asks for a Redis of its own instead.
    first = node_config(tmp_path / "n1.yaml", postgres_url, redis_server.url)
    with ChatdProcess.serve(tmp_path, first, tmp_path / "n1.db") as running:
        await running.started()
        (tmp_path / "other").mkdir()
        other = node_config(tmp_path / "other" / "m1.yaml", postgres_databases.empty(),
                            redis_server.url, node_id="m1")
        with ChatdProcess.serve(tmp_path / "other", other, tmp_path / "other" / "m1.db") as node:
            assert await node.wait() == 1
            refused = node.log()
    [line] = [line for line in refused.splitlines() if 'msg="cannot start"' in line]
    assert "running nodes serve (n1)" in line and "a Redis of their own" in line
    assert "FLUSHDB" not in line


async def test_a_node_on_another_redis_than_its_databases_running_nodes_refuses_to_start(
        tmp_path: Path, postgres_url: str, redis_server: RedisServer) -> None:
    # One Redis server, another database number in the URL: the second node would
    # serve the same rooms and accounts without seeing the first one's messages.
    first = node_config(tmp_path / "n1.yaml", postgres_url, redis_server.url)
    with ChatdProcess.serve(tmp_path, first, tmp_path / "n1.db") as running:
        await running.started()
        (tmp_path / "n2").mkdir()
        elsewhere = redis_server.url.rsplit("/", 1)[0] + "/1"
        second = node_config(tmp_path / "n2" / "n2.yaml", postgres_url, elsewhere,
                             node_id="n2")
        with ChatdProcess.serve(tmp_path / "n2", second, tmp_path / "n2" / "n2.db") as node:
            assert await node.wait() == 1
            refused = node.log()
        assert running.proc.poll() is None  # the running node keeps serving
    [line] = [line for line in refused.splitlines() if 'msg="cannot start"' in line]
    assert "cluster.redis: nodes n1 serve this database" in line
    assert "the same cluster.redis" in line
    assert 'msg="started"' not in refused


async def test_two_nodes_whose_files_share_a_directory_are_told_to_give_each_a_storage_path(
        tmp_path: Path, postgres_url: str, redis_server: RedisServer) -> None:
    # Two configuration files side by side, neither naming storage.path: both nodes
    # put their control socket at chatd.db.sock in the working directory. The second is told what to
    # change, not only that the socket is taken.
    def node(node_id: str) -> ChatdProcess:
        config = node_config(tmp_path / f"{node_id}.yaml", postgres_url, redis_server.url,
                             node_id=node_id)
        return ChatdProcess([str(CHATD), "serve", "--config", str(config), "--port", "0"],
                            tmp_path / f"{node_id}.log", cwd=tmp_path)

    with node("n1") as running:
        await running.started()
        with node("n2") as second:
            assert await second.wait() == 1
            refused = second.log()
    [line] = [line for line in refused.splitlines() if 'msg="cannot start"' in line]
    assert f"control socket {tmp_path / 'chatd.db.sock'}" in line
    assert "each node of a cluster needs its own storage.path" in line


async def test_a_node_whose_storage_path_directory_is_missing_names_it_before_starting(
        tmp_path: Path, postgres_url: str, redis_server: RedisServer) -> None:
    # A cluster node opens no SQLite file at storage.path: only its control socket
    # goes there, so nothing else would name the missing directory.
    missing = tmp_path / "n1"
    config = node_config(tmp_path / "n1.yaml", postgres_url, redis_server.url,
                         storage={"path": str(missing / "chatd.db")})
    process = ChatdProcess([str(CHATD), "serve", "--config", str(config), "--port", "0"],
                           tmp_path / "n1.log", cwd=tmp_path)
    with process as node:
        assert await node.wait() == 1
        log = node.log()
    assert 'msg="started"' not in log
    [line] = [line for line in log.splitlines() if 'msg="cannot start"' in line]
    assert f"the directory {missing} does not exist" in line and "storage.path" in line


async def test_the_started_line_names_the_node_and_its_database_without_credentials(
        tmp_path: Path, postgres_url: str, redis_server: RedisServer) -> None:
    # Which database a node serves is what an operator asks first: the password a
    # URL may carry stays out of the log.
    with_password = postgres_url.replace("chatd@", "chatd:hidden-secret@", 1)
    config = node_config(tmp_path / "n1.yaml", with_password, redis_server.url)
    with ChatdProcess.serve(tmp_path, config, tmp_path / "n1.db") as node:
        await node.started()
        log = node.log()
    [line] = [line for line in log.splitlines() if 'msg="started"' in line]
    served = postgres_url.split("@", 1)[1]
    assert line.endswith(f"node=n1 database=postgresql://{served}")
    assert "hidden-secret" not in log


async def test_a_node_started_with_other_limits_than_the_running_nodes_says_so(
        tmp_path: Path, postgres_url: str, redis_server: RedisServer) -> None:
    # The shared sections are each node's to enforce: a node with another message
    # rate than the running one's applies other rules to the same users.
    first = node_config(tmp_path / "n1.yaml", postgres_url, redis_server.url)
    with ChatdProcess.serve(tmp_path, first, tmp_path / "n1.db") as running:
        await running.started()
        (tmp_path / "n2").mkdir()
        alike = node_config(tmp_path / "n2" / "n2.yaml", postgres_url, redis_server.url,
                            node_id="n2")
        with ChatdProcess.serve(tmp_path / "n2", alike, tmp_path / "n2" / "n2.db") as node:
            await node.started()
            same = node.log()
        (tmp_path / "n3").mkdir()
        other = node_config(tmp_path / "n3" / "n3.yaml", postgres_url, redis_server.url,
                            node_id="n3", limits={"message_rate": 3.0})
        with ChatdProcess.serve(tmp_path / "n3", other, tmp_path / "n3" / "n3.db") as node:
            await node.started()
            odd = node.log()
    assert "shared configuration" not in same
    [line] = [line for line in odd.splitlines() if "shared configuration" in line]
    assert " level=warning " in line and "differs from that of n1 (" in line
    assert "chatctl nodes" in line


async def test_a_reload_that_makes_the_shared_configuration_differ_says_so(
        tmp_path: Path, postgres_url: str, redis_server: RedisServer) -> None:
    # The start-up comparison, run again by a reload: an operator who edits one
    # node's limits and reloads it hears at once that the nodes now disagree.
    first = node_config(tmp_path / "n1.yaml", postgres_url, redis_server.url)
    with ChatdProcess.serve(tmp_path, first, tmp_path / "n1.db") as running:
        await running.started()
        (tmp_path / "n2").mkdir()
        config = node_config(tmp_path / "n2" / "n2.yaml", postgres_url, redis_server.url,
                             node_id="n2")
        with ChatdProcess.serve(tmp_path / "n2", config, tmp_path / "n2" / "n2.db") as node:
            await node.ready()
            node_config(config, postgres_url, redis_server.url, node_id="n2",
                        limits={"message_rate": 3.0})
            node.signal(signal.SIGHUP)
            line = await node.wait_log("shared configuration")
            before = node.log().split("shared configuration")[0]
    assert 'msg="reloaded"' in before  # said by the reload, not at start
    assert " level=warning " in line and "differs from that of n1 (" in line
    assert "chatctl nodes" in line


def useradd(config: Path, name: str) -> subprocess.CompletedProcess[str]:
    """``chatd useradd NAME --config F`` as the operator types it (no node running)."""
    return subprocess.run([str(CHATD), "useradd", name, "--password-stdin", "--config",
                           str(config)], input=f"{PASSWORD}\n", capture_output=True,
                          text=True, timeout=60, check=False)


async def test_useradd_on_a_cluster_database_prints_what_it_did_and_nothing_else(
        tmp_path: Path, postgres_databases: PostgresDatabases,
        redis_server: RedisServer) -> None:
    # A one-shot command is not a node starting: the files directory's warning and
    # the schema's migration lines (a new database) are a node's log, not its answer.
    config = node_config(tmp_path / "admin.yaml", postgres_databases.empty(),
                         redis_server.url, node_id="console",
                         control={"path": str(tmp_path / "nobody.sock")},
                         storage={"path": str(tmp_path / "console.db")})
    made = await asyncio.to_thread(useradd, config, "zed")
    assert (made.returncode, made.stdout, made.stderr) == (0, "created account zed\n", "")
    # A real error still says what went wrong, and only that.
    again = await asyncio.to_thread(useradd, config, "zed")
    assert (again.returncode, again.stdout) == (1, "")
    assert again.stderr.startswith("chatd: name-taken: ") and again.stderr.count("\n") == 1
