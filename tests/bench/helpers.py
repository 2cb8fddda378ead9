"""Running ``scripts/bench.py`` from a test, and what every run of it must show."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench.py"


def run_bench(tmp_path: Path, timeout: float, max_time: float,
              *args: str) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """``scripts/bench.py --quick --json-only`` with ``args``, in ``tmp_path``: its
    report (the last line it prints, which must say no failure) and the process."""
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json-only", *args,
         "--max-time", str(max_time)],
        capture_output=True, text=True, timeout=timeout, cwd=tmp_path, check=False)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{proc.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(lines[-1])
    assert report["failure"] is None, report["failure"]
    return report, proc


def assert_delivered(run: dict[str, Any], name: object) -> None:
    """Every message of ``run`` arrived, once, in order, with no error reply."""
    assert run["deliveries"] == run["expected"] > 0, name
    assert run["loss"] == run["extra"] == run["reordered"] == 0, name
    assert not run["errors"], (name, run["error_samples"])
