"""``scripts/bench.py --quick --json-only`` runs every scenario and loses nothing.

The last test runs ``--compare`` against chatd and ngIRCd with tiny sizes.

The benchmark starts its own daemon subprocess and load-generator processes on
loopback. This test asserts only correctness (it completes, prints its JSON
line, every message arrived, in order, with no error reply), never a timing:
the figures depend on the machine and on what else it runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.bench.helpers import assert_delivered, run_bench

TIMEOUT = 120


def fan_runs(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every fan-out-like run of the report, by name."""
    runs: dict[str, dict[str, Any]] = {}
    for group in ("fanout", "scaling"):
        runs.update((k, v) for k, v in results[group].items() if k != "cost_model")
    runs["latency"] = results["latency"]
    for kind in ("with_writer", "writer_held_off"):
        runs[f"persistence/{kind}"] = results["persistence"][kind]
    return runs


def test_quick_benchmark_completes_without_loss_or_reordering(tmp_path: Path) -> None:
    report, proc = run_bench(tmp_path, TIMEOUT, TIMEOUT - 10)
    assert report["loss"] == 0
    assert report["reordered"] == 0
    assert report["errors"] == 0
    runs = fan_runs(report["results"])
    plan = report["plan"]
    assert len(runs) == len(plan["fanout"]) + len(plan["scaling"]) + 3
    for name, run in runs.items():
        assert_delivered(run, name)
        assert not run["timed_out"], name
    assert report["results"]["latency"]["latency_ms"]["samples"] > 0
    conns = report["results"]["connections"]
    assert conns["connected"] == conns["requested"], conns["failures"]
    history = report["results"]["persistence"]["history"]
    assert history["bad_replies"] == 0
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_quick_websocket_scenario_loses_nothing(tmp_path: Path) -> None:
    """``--only ws``: the same fan-out over TCP and /ws, then idle WebSockets."""
    report, proc = run_bench(tmp_path, TIMEOUT, TIMEOUT - 10, "--only", "ws")
    web = report["results"]["ws"]
    for name in ("tcp", "ws"):
        assert_delivered(web[name], name)
    assert web["idle"]["connected"] == web["idle"]["requested"], web["idle"]["failures"]
    assert web["idle"]["bytes_per_connection"] > 0
    assert proc.returncode == 0, proc.stderr[-3000:]


def _ngircd_present() -> bool:
    return any(shutil.which("ngircd", path=p) for p in (None, "/usr/sbin:/sbin"))


def test_quick_compare_with_ngircd_loses_nothing(tmp_path: Path) -> None:
    """``--compare`` with tiny sizes, chatd beside ngIRCd (installed by scripts/test):
    a room and direct messages, closed loop and paced, then idle log-ins."""
    if not _ngircd_present():
        if os.environ.get("CI"):
            pytest.fail("ngircd is not installed (scripts/test installs it)")
        pytest.skip("ngircd is not installed")
    report, proc = run_bench(tmp_path, TIMEOUT, TIMEOUT - 10, "--compare",
                             "--servers", "chatd,ngircd", "--only", "room100,dm,logins")
    compare = report["results"]["compare"]
    assert set(compare["servers"]) == {"chatd", "ngircd"}
    assert compare["missing"] == []
    runs = compare["runs"]
    for scenario in ("room100", "dm"):
        for mode in ("closed", "paced"):
            for server in ("chatd", "ngircd"):
                (run,) = runs[scenario][mode][server]
                assert run["deliveries"] == run["expected"] > 0, (scenario, mode, server)
                assert run["loss"] == run["extra"] == 0, (scenario, mode, server)
                assert not run["errors"], (scenario, mode, server, run["error_samples"])
                assert not run["timed_out"], (scenario, mode, server)
                assert run["loadgen_cpu_s"] >= 0
        for server in ("chatd", "ngircd"):
            paced = runs[scenario]["paced"][server][0]
            assert paced["latency_ms"]["samples"] == paced["deliveries"]
    for server in ("chatd", "ngircd"):
        (idle,) = runs["logins"]["idle"][server]
        assert idle["connected"] == idle["requested"], idle["failures"]
        assert idle["bytes_per_connection"] > 0
    summary = compare["summary"]["room100"]["closed"]
    assert set(summary) == {"chatd", "ngircd"}
    assert report["loss"] == report["errors"] == 0
    assert proc.returncode == 0, proc.stderr[-3000:]
