"""Command line and main: parse the options, run the scenarios, print the report."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .common import ALL_SCENARIOS, DEFAULT_SCENARIOS, MAX_IN_FLIGHT, log, raise_nofile, set_quiet
from .connections import scenario_connections
from .context import Context
from .database import prepare_database
from .fanout import scenario_fanout, scenario_scaling
from .latency import scenario_latency
from .persistence import scenario_persistence
from .plan import Plan, make_plan
from .report import check_targets, machine, print_profiles, print_table, totals
from .resume import scenario_resume
from .websocket import scenario_ws

# The first paragraph of scripts/bench.py's docstring: --help shows it.
DESCRIPTION = "chatd benchmark: the daemon as a subprocess on loopback, driven by a load generator."

# Each scenario, given the shared context, returns its part of the results.
SCENARIOS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "connections": scenario_connections, "fanout": scenario_fanout,
    "latency": scenario_latency, "scaling": scenario_scaling,
    "persistence": scenario_persistence, "ws": scenario_ws, "resume": scenario_resume}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options; --only checked and expanded into ``args.scenarios``."""
    parser = argparse.ArgumentParser(prog="scripts/bench", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (smoke test, under 30 s)")
    parser.add_argument("--only", default=",".join(DEFAULT_SCENARIOS),
                        help=f"comma-separated scenarios of {','.join(ALL_SCENARIOS)} "
                             f"(default: {','.join(DEFAULT_SCENARIOS)})")
    parser.add_argument("--json-only", action="store_true",
                        help="print only the JSON line (no table, no progress)")
    parser.add_argument("--procs", type=int, default=2,
                        help="load-generator processes (default 2)")
    parser.add_argument("--window", type=int, default=32,
                        help="most unacknowledged messages per sender (default 32; a "
                             f"run keeps at most {MAX_IN_FLIGHT:,} deliveries in flight)")
    parser.add_argument("--persist-repeat", type=int,
                        help="pairs of persistence runs; the median of each kind is "
                             "reported (default 3; 1 with --quick)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="run py-spy on the daemon during every fan-out-like run, "
                             "raw profiles into DIR")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (database, configs, daemon logs)")
    parser.add_argument("--max-time", type=float, default=900,
                        help="abort the whole run after this many seconds (default 900)")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    known = ALL_SCENARIOS
    unknown = [s for s in chosen if s not in known]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; "
                     f"choose from {', '.join(known)}")
    args.scenarios = [s for s in known if s in chosen]
    if args.persist_repeat is None:
        args.persist_repeat = 1 if args.quick else 3
    return args


def _on_alarm(signum: int, frame: Any) -> None:
    raise TimeoutError("the benchmark ran past --max-time")


def _on_term(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_all(args: argparse.Namespace, plan: Plan) -> tuple[dict[str, Any], str | None]:
    """Prepare the database in a fresh work directory, run the chosen scenarios and
    stop every daemon; the results, and what stopped the run early (None if nothing)."""
    workdir = Path(tempfile.mkdtemp(prefix="chatd-bench-"))
    db = workdir / "bench.db"
    ctx = Context(args, plan, workdir, db)
    results: dict[str, Any] = {}
    failure = None
    try:
        log(f"preparing {db}: {plan.users} users, {len(plan.layouts)} room layouts, "
            f"{plan.history_messages:,} history messages")
        results["setup"] = {k: round(v, 2) for k, v in
                            asyncio.run(prepare_database(db, plan)).items()}
        for name in args.scenarios:
            results[name] = SCENARIOS[name](ctx)
    except (KeyboardInterrupt, Exception) as exc:  # report whatever stopped the run
        failure = f"{type(exc).__name__}: {exc}"
        log(f"aborted: {failure}")
    finally:
        signal.alarm(0)
        ctx.stop_all()
        results["daemon_logs"] = ctx.daemon_logs()
        if args.keep:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return results, failure


def build_report(args: argparse.Namespace, plan: Plan, results: dict[str, Any],
                 failure: str | None, started: float) -> dict[str, Any]:
    """The JSON report: plan, results, targets, totals and the overall verdict."""
    targets = check_targets(results)
    sums = totals(results)
    sums["daemon_log_problems"] = sum(
        d.get("warnings_and_errors", 0) for d in results["daemon_logs"].values())
    ok = failure is None and not any(sums.values())
    return {"bench": "chatd", "quick": args.quick, "scenarios": args.scenarios,
            "elapsed_s": round(time.monotonic() - started, 1), "machine": machine(),
            "plan": {"fanout": [asdict(s) for s in plan.fanout],
                     "scaling": [asdict(s) for s in plan.scaling],
                     "connections": plan.connections,
                     "history_messages": plan.history_messages},
            "results": results, "targets": targets, **sums, "failure": failure, "ok": ok}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_quiet(args.json_only)
    started = time.monotonic()
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    signal.alarm(int(args.max_time))
    raise_nofile()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    plan = make_plan(args.quick, args.window, set(args.scenarios))
    results, failure = run_all(args, plan)
    report = build_report(args, plan, results, failure, started)
    if not args.json_only:
        print_table(results, report["targets"])
        print_profiles(results)
    print(json.dumps(report, separators=(",", ":"), default=str), flush=True)
    return 0 if report["ok"] else 1
