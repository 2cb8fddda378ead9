"""Cluster nodes as real processes, and clients that keep a journal of the run.

:class:`Cluster` writes one configuration file per node (cluster mode on the
tests' PostgreSQL and Redis, bcrypt at its minimum cost, generous limits, a
directory and a free port of its own), starts ``python -m chatd serve`` for
each, and waits until each logs ``started`` and accepts connections. A node
can be killed (SIGKILL), paused (SIGSTOP) and resumed (SIGCONT), or stopped
gracefully (SIGTERM), always by its process id. However a test ends, every node
is stopped and reaped (:meth:`Cluster.close`), and a node dies with the test
process (a parent-death signal). With ``CHATD_TEST_KEEP_NODES`` set, the nodes'
directories (their configuration and log) are kept for a look afterwards.

:class:`RecordingClient` is chatd's :class:`~chatd.client.ChatClient` that
writes every line it receives, every command it sends and its final reply into
the run's :class:`~tests.cluster.invariants.Journal`, which
:mod:`tests.cluster.invariants` checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from chatd.client import ChatClient
from chatd.client.api import ClientError, Reply
from tests.cluster.invariants import Journal, Stored
from tests.helpers import PASSWORD, TEST_OVERRIDES
from tests.services import _die_with_parent, free_port

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def node_config(node_id: str, directory: Path, postgres: str, redis: str,
                **sections: dict[str, Any]) -> dict[str, Any]:
    """A node's configuration: the tests' fast settings, cluster mode on the given
    services, its files in ``directory``; ``sections`` add to or replace keys."""
    data: dict[str, Any] = {}
    for key, value in TEST_OVERRIDES.items():
        section, _, name = key.partition(".")
        data.setdefault(section, {})[name] = value
    data["cluster"] = {"enabled": True, "node_id": node_id, "postgres": postgres,
                       "redis": redis}
    data["storage"]["path"] = str(directory / "node.db")
    data["control"] = {"path": str(directory / "ctl.sock")}
    data["backup"] = {"interval": 0}
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return data


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float,
                     step: float = 0.05) -> None:
    """Poll ``check`` until it holds; TimeoutError after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(step)


class NodeProcess:
    """One ``chatd serve`` process of a cluster, driven by its pid."""

    def __init__(self, node_id: str, directory: Path, config: dict[str, Any]) -> None:
        self.node_id = node_id
        self.directory = directory
        self.port = free_port()
        self.config_path = directory / "node.yaml"
        self.log_path = directory / "node.log"
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chatd", "serve", "--config", str(self.config_path),
                 "--port", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent)  # noqa: PLW1509 - the child execs at once

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.node_id} was not started"
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    async def ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the node logged ``started`` and accepts a connection."""
        async with asyncio.timeout(timeout):
            while 'msg="started"' not in self.log() or not await self._accepts():
                if not self.alive:
                    raise AssertionError(f"{self.node_id} exited at start:\n{self.log()[-3000:]}")
                await asyncio.sleep(0.05)

    async def _accepts(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    def kill(self) -> None:
        """``kill -9``: no goodbye, no flush."""
        self._signal(signal.SIGKILL)
        self._reap()

    def pause(self) -> None:
        """``kill -STOP``: the process stays, frozen, its sockets open."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self) -> int | None:
        """A graceful stop (SIGTERM), killed if it lingers; the exit status."""
        if not self.alive:
            return self.process.returncode if self.process else None
        self._signal(signal.SIGCONT)  # a paused process cannot stop
        self._signal(signal.SIGTERM)
        return self._reap()

    def _signal(self, signum: signal.Signals) -> None:
        if self.alive:
            os.kill(self.pid, signum)

    def _reap(self) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            return self.process.wait()


class RecordingClient(ChatClient):
    """A JSON client whose every received line and command goes into a journal."""

    journal: Journal
    name: str

    @classmethod
    async def open(cls, journal: Journal, name: str, user: str, port: int) -> RecordingClient:
        client = await cls.connect("127.0.0.1", port)
        assert isinstance(client, RecordingClient)
        client.journal, client.name = journal, name
        journal.opened(name, user)
        return client

    def _dispatch(self, obj: dict[str, Any]) -> None:
        journal = getattr(self, "journal", None)
        if journal is not None:
            journal.receive(self.name, obj)
        super()._dispatch(obj)

    async def _read(self) -> None:
        try:
            await super()._read()
        finally:
            if hasattr(self, "journal"):
                self.journal.closed(self.name)

    async def command(self, line: str, check: bool = True,
                      timeout: float = 10.0) -> Reply:
        sent = self.journal.send(self.name, line)
        try:
            reply = await super().command(line, check=False, timeout=timeout)
        except (ConnectionError, TimeoutError):
            raise
        self.journal.reply(sent, reply.final)
        if check and not reply.ok:
            raise ClientError(reply.final)
        return reply

    async def close(self) -> None:
        self.journal.closed(self.name)
        await super().close()

    async def until_ok(self, line: str, retry_on: tuple[str, ...] = ("no-such-room",),
                       timeout: float = 10.0) -> Reply:
        """``line`` until it succeeds, while it fails with a code of ``retry_on``
        (a room made on one node reaches the others through the log)."""
        async with asyncio.timeout(timeout):
            while True:
                reply = await self.command(line, check=False)
                if reply.ok or reply.get("code") not in retry_on:
                    break
                await asyncio.sleep(0.02)
        if not reply.ok:
            raise ClientError(reply.final)
        return reply


class Cluster:
    """N node processes on one PostgreSQL database and one Redis, and the run's
    journal. Use it as an async context manager."""

    def __init__(self, postgres: str, redis: str, size: int = 3,
                 **sections: dict[str, Any]) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="chatd-cluster-"))
        self.journal = Journal()
        self.nodes: list[NodeProcess] = []
        for n in range(1, size + 1):
            directory = self.directory / f"n{n}"
            directory.mkdir()
            config = node_config(f"n{n}", directory, postgres, redis, **sections)
            self.nodes.append(NodeProcess(f"n{n}", directory, config))
        self._clients: list[RecordingClient] = []
        self._names = (f"c{n}" for n in range(1, 1_000_000))

    async def __aenter__(self) -> Cluster:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """The first node alone (it makes the database's tables), then the others."""
        first, *others = self.nodes
        first.start()
        await first.ready()
        for node in others:
            node.start()
        for node in others:
            await node.ready()

    async def register(self, *names: str) -> None:
        """Make accounts on the first node; wait until every node lets them log in
        (an account made on one node is announced to the others on the log)."""
        for name in names:
            client = await ChatClient.connect("127.0.0.1", self.nodes[0].port)
            try:
                await client.command(f"/register {name} {PASSWORD}")
            finally:
                await client.close()
        for node in self.nodes[1:]:
            for name in names:
                client = await self.login(node, name, record=False)
                await client.close()

    async def login(self, node: NodeProcess, user: str, record: bool = True,
                    timeout: float = 10.0) -> RecordingClient:
        """A logged-in connection to ``node`` (retried while the node does not
        know the account yet, within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            journal = self.journal if record else Journal()
            client = await RecordingClient.open(journal, next(self._names), user, node.port)
            self._clients.append(client)
            reply = await client.command(f"/login {user} {PASSWORD}", check=False)
            if reply.ok:
                return client
            await client.close()
            if time.monotonic() > deadline:
                raise ClientError(reply.final)
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for client in self._clients:
            await client.close()
        for node in self.nodes:
            await asyncio.to_thread(node.stop)
        if not os.environ.get("CHATD_TEST_KEEP_NODES"):
            shutil.rmtree(self.directory, ignore_errors=True)

    def logs(self) -> str:
        """The tail of every node's log, for a failure's message."""
        return "\n".join(f"--- {node.node_id}\n{node.log()[-2000:]}" for node in self.nodes)


async def read_stored(postgres_url: str) -> Stored:
    """What the cluster's database holds: history per room, direct messages, owners
    of live rooms, ended rooms, terminations and audit rows (read directly with
    asyncpg)."""
    import asyncpg

    connection = await asyncpg.connect(postgres_url)
    try:
        stored = Stored()
        for row in await connection.fetch(
                "SELECT r.name, m.id FROM messages m JOIN rooms r ON r.id = m.room_id "
                "ORDER BY m.id"):
            stored.history.setdefault(row["name"], []).append(row["id"])
        for row in await connection.fetch(
                "SELECT r.name, r.terminated_at, count(m.user_id) FILTER "
                "(WHERE m.role = 'owner') AS owners FROM rooms r "
                "LEFT JOIN members m ON m.room_id = r.id GROUP BY r.id"):
            stored.owners[row["name"]] = row["owners"]
            if row["terminated_at"] is not None:
                stored.ended.add(row["name"])
        stored.direct = [row["id"] for row in await connection.fetch(
            "SELECT id FROM messages WHERE recipient_id IS NOT NULL ORDER BY id")]
        for row in await connection.fetch("SELECT action, room, target FROM audit"):
            if row["action"] == "terminate":
                stored.terminations[row["room"]] = stored.terminations.get(row["room"], 0) + 1
            stored.audit.append((row["action"], row["room"] or "", row["target"] or ""))
        return stored
    finally:
        await connection.close()
