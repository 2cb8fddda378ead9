"""A cluster under test: N ``chatd serve`` nodes on one PostgreSQL and one Redis.

Each node is a :class:`~benchkit.daemon.Daemon` with the bench configuration
plus its ``cluster`` section (its node id, the shared Redis and PostgreSQL).
:class:`NodeGroup` stands for the whole cluster where a measured phase expects
one daemon: its CPU is the sum of the nodes' (each one's kept for the per-node
figures, with Redis's and PostgreSQL's beside them), its clients are spread
over the nodes' ports, and a message is durable once PostgreSQL holds it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import ROOT, log
from .daemon import Daemon, bench_config, is_problem
from .services import tree_cpu

# Warnings a node logs by design in the bench's set-up: the blob directory it
# names is not shared with other machines (they all run here).
EXPECTED_WARNINGS = ("files.dir",)


class Node(Daemon):
    """One cluster node; its log's problems are counted up to ``problems_until``
    (the fault measurements kill Redis and nodes: their warnings are expected)."""

    problems_until: int | None = None

    def log_problems(self) -> dict[str, Any]:
        try:
            text = self.log_path.read_bytes()[:self.problems_until].decode(errors="replace")
        except OSError:
            return {}
        bad = [line for line in text.splitlines()
               if is_problem(line) and not any(expected in line for expected in EXPECTED_WARNINGS)]
        return {"exit_code": getattr(self, "exit_code", None), "warnings_and_errors": len(bad),
                "samples": [line[:300] for line in bad[:5]]}

    def mark_faults(self) -> None:
        """From now on, warnings and errors are the faults' doing."""
        self.problems_until = self.log_path.stat().st_size


def node_config(workdir: Path, name: str, redis_url: str, postgres_url: str,
                storage: dict[str, Any] | None = None) -> dict[str, Any]:
    config = bench_config(workdir, name, storage)
    config["cluster"] = {"enabled": True, "node_id": name, "redis": redis_url,
                         "postgres": postgres_url}
    config["backup"] = {"interval": 0}
    # One blob directory for all the nodes (on one machine, it is shared).
    config["files"] = {"dir": str(workdir / "files")}
    return config


def copy_database(db: Path, postgres_url: str) -> None:
    """The prepared SQLite database into PostgreSQL, with ``chatd migrate``."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "chatd", "migrate", "--db", str(db), "--to",
                           postgres_url, "--force"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"chatd migrate failed:\n{done.stdout}{done.stderr}")
    log(f"database copied into PostgreSQL in {time.monotonic() - started:.1f} s")


async def _stored(url: str, ids: list[int] | None, target: int, timeout: float,
                  interval: float) -> float | None:
    import asyncpg  # noqa: PLC0415 - the cluster extra

    connection = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ids is not None:
                found = await connection.fetchval(
                    "SELECT count(*) FROM messages WHERE id = ANY($1::bigint[])", ids)
                if found >= len(ids):
                    return time.monotonic()
            elif (await connection.fetchval("SELECT coalesce(max(id), 0) FROM messages")
                  or 0) >= target:
                return time.monotonic()
            await asyncio.sleep(interval)
        return None
    finally:
        await connection.close()


def wait_stored(url: str, target: int, timeout: float = 30.0) -> float | None:
    """The monotonic time PostgreSQL's largest message id reached ``target``."""
    return asyncio.run(_stored(url, None, target, timeout, 0.005))


class NodeGroup:
    """The cluster, where a measured phase expects one daemon."""

    def __init__(self, nodes: list[Node], redis: Any, postgres: Any) -> None:
        self.nodes = nodes
        self.redis = redis
        self.postgres = postgres
        self.name = "cluster"
        # (each node's CPU, Redis's, PostgreSQL's) at every cpu() call of a phase.
        self.snapshots: list[tuple[list[float], float, float]] = []
        # Redis's calls per command at the phase's first and latest cpu() call.
        self.commands: list[dict[str, int]] = []

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def pid(self) -> int:
        return self.nodes[0].pid

    def cpu(self) -> float:
        values = [node.cpu() for node in self.nodes]
        self.snapshots.append((values, tree_cpu(self.redis.pid), tree_cpu(self.postgres.pid)))
        self.commands[1:] = [redis_calls(self.redis.url)]
        return sum(values)

    def cpu_split(self) -> tuple[float, float]:
        splits = [node.cpu_split() for node in self.nodes]
        return sum(s[0] for s in splits), sum(s[1] for s in splits)

    def main_thread_cpu(self) -> float:
        return sum(node.main_thread_cpu() for node in self.nodes)

    def wait_idle(self, timeout: float = 20.0) -> None:
        for node in self.nodes:
            node.wait_idle(timeout)

    def wait_durable(self, target: int) -> float | None:
        return wait_stored(self.postgres.url(), target)

    def spread(self, run: dict[str, Any]) -> None:
        """Per-node figures of the phase just run (its first and last CPU reading)."""
        (first, redis0, pg0), (last, redis1, pg1) = self.snapshots[0], self.snapshots[-1]
        by_port = run.pop("received_by_port", {})
        messages = max(1, run["messages"])
        nodes = []
        for node, cpu0, cpu1 in zip(self.nodes, first, last, strict=True):
            cpu = cpu1 - cpu0
            deliveries = int(by_port.get(node.port, by_port.get(str(node.port), 0)))
            nodes.append({"node": node.name, "cpu_s": round(cpu, 3),
                          "deliveries": deliveries,
                          "us_per_message": round(1e6 * cpu / messages, 2),
                          "us_per_delivery": round(1e6 * cpu / deliveries, 3)
                          if deliveries else None})
        run["nodes"] = nodes
        run["redis_cpu_s"] = round(redis1 - redis0, 3)
        run["postgres_cpu_s"] = round(pg1 - pg0, 3)
        total = run["server_cpu_s"] + run["redis_cpu_s"] + run["postgres_cpu_s"]
        run["deliveries_per_cpu_s_with_services"] = round(run["deliveries"] / total) \
            if total > 0 else None
        run["redis_calls_per_message"] = calls_per_message(self.commands, messages)
        self.snapshots.clear()
        self.commands.clear()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_nodes(count: int, workdir: Path, redis: Any, postgres: Any) -> NodeGroup:
    nodes = []
    for n in range(1, count + 1):
        name = f"n{n}"
        node = Node(workdir, workdir / f"{name}.db", name,
                    node_config(workdir, name, redis.url, postgres.url()))
        nodes.append(node)
        node.start()
        log(f"chatd node {name}: pid {node.pid}, port {node.port}")
    return NodeGroup(nodes, redis, postgres)


def redis_calls(url: str) -> dict[str, int]:
    """Redis's calls so far, per command (``INFO commandstats``)."""
    import redis  # noqa: PLC0415 - the cluster run's extra, loaded only for it

    stats = redis.Redis.from_url(url).info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def calls_per_message(readings: list[dict[str, int]], messages: int) -> dict[str, float]:
    """Redis calls per message between the first and last reading: in all, and per command
    (the ones above 0.01)."""
    if len(readings) < 2:
        return {}
    first, last = readings
    per = {name: (calls - first.get(name, 0)) / messages for name, calls in last.items()}
    shown = {name: round(value, 2) for name, value in sorted(per.items(), key=lambda kv: -kv[1])
             if value >= 0.01 and name != "info"}
    return {"all": round(sum(shown.values()), 2), **shown}
