"""``scripts/bench.py --cluster 3 --quick``: three nodes on the benchmark's own
PostgreSQL and Redis, beside the embedded daemon, lose nothing, and every
figure of the report is there (a number, or None where the cluster does not
do the thing yet). Never a timing: the figures depend on the machine."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.bench.helpers import assert_delivered, run_bench
from tests.services import postgres_programs, unavailable

TIMEOUT = 240
GOALS = {"vs_embedded_pct", "latency_p99_ms", "offline_after_s", "stored_after_s",
         "redis_resumed_after_s", "persistence_lag_p99_ms"}


def test_quick_cluster_benchmark_reports_every_figure(tmp_path: Path) -> None:
    if postgres_programs() is None or shutil.which("redis-server") is None:
        unavailable("PostgreSQL's initdb and redis-server (Debian packages)")
    report, _proc = run_bench(tmp_path, TIMEOUT, TIMEOUT - 20, "--cluster", "3")
    out = report["results"]["cluster"]
    assert out["nodes"] == 3
    for side in ("embedded", "cluster"):
        for name in ("fanout", "latency"):
            assert_delivered(out[side][name], (side, name))
    for name in ("fanout", "latency"):
        nodes = out["cluster"][name]["nodes"]
        assert [n["node"] for n in nodes] == ["n1", "n2", "n3"]
        # Every node delivered to its own third of the room.
        assert all(n["deliveries"] > 0 and n["cpu_s"] >= 0 for n in nodes), nodes
        assert sum(n["deliveries"] for n in nodes) == out["cluster"][name]["deliveries"]
    lag = out["cluster"]["persistence_lag"]["lag_ms"]
    assert lag["error"] is None and lag["stored"] == lag["probes"] > 0, lag
    assert out["cluster"]["redis_restart"]["resumed_after_s"] is not None
    kill = out["cluster"]["node_kill"]
    assert kill["acknowledged"] > 0 and "stored_after_s" in kill and "offline_after_s" in kill
    assert {goal["measure"] for goal in out["goals"]} == GOALS
    assert report["loss"] == report["reordered"] == report["errors"] == 0
    assert report["daemon_log_problems"] == 0, report["results"]["daemon_logs"]
