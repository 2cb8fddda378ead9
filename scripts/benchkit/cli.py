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

from .cluster import scenario_cluster
from .clusterreport import cluster_lines
from .common import ALL_SCENARIOS, DEFAULT_SCENARIOS, MAX_IN_FLIGHT, log, raise_nofile, set_quiet
from .compare import (
    COMPARE_SCENARIOS,
    compare_lines,
    compare_specs,
    compare_totals,
    idle_first_user,
    run_compare,
)
from .connections import scenario_connections
from .context import Context
from .database import prepare_database
from .fanout import scenario_fanout, scenario_scaling
from .ircservers import ALL_SERVERS
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
    "persistence": scenario_persistence, "ws": scenario_ws, "resume": scenario_resume,
    "cluster": scenario_cluster}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options; --only checked and expanded into ``args.scenarios``."""
    parser = argparse.ArgumentParser(prog="scripts/bench", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (smoke test, under 30 s)")
    parser.add_argument("--only",
                        help=f"comma-separated scenarios of {','.join(ALL_SCENARIOS)} "
                             f"(default: {','.join(DEFAULT_SCENARIOS)}), or of the IRC "
                             f"scenarios {','.join(COMPARE_SCENARIOS)} (run against chatd "
                             "alone, or against every server with --compare)")
    parser.add_argument("--compare", action="store_true",
                        help="run the IRC scenarios against chatd, ngIRCd and InspIRCd, "
                             "interleaved, and print them side by side")
    parser.add_argument("--cluster", type=int, metavar="N",
                        help="run N cluster nodes on a private PostgreSQL and Redis beside "
                             "the embedded daemon: CPU per message and delivery per node, "
                             "latency, persistence lag, a Redis restart, a node killed")
    parser.add_argument("--servers", default=",".join(ALL_SERVERS),
                        help=f"--compare: the servers, of {','.join(ALL_SERVERS)} "
                             "(default: all)")
    parser.add_argument("--rounds", type=int,
                        help="--compare: interleaved rounds (default 3; 1 with --quick)")
    parser.add_argument("--load",
                        help="closed (as fast as possible), paced (a fixed offered load) or "
                             "closed,paced: the runs of every fan-out-like scenario (default: "
                             "closed,paced for the IRC scenarios, closed for fanout and "
                             "scaling, whose paced twin is the latency scenario)")
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
    parser.add_argument("--max-time", type=float,
                        help="abort the whole run after this many seconds (default 900; "
                             "3600 with --compare)")
    args = parser.parse_args(argv)
    default = COMPARE_SCENARIOS if args.compare else DEFAULT_SCENARIOS
    chosen = [s.strip() for s in (args.only or ",".join(default)).split(",") if s.strip()]
    known = ALL_SCENARIOS + COMPARE_SCENARIOS
    unknown = [s for s in chosen if s not in known]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; "
                     f"choose from {', '.join(known)}")
    if args.compare and any(s in ALL_SCENARIOS for s in chosen):
        parser.error(f"--compare runs the IRC scenarios: {', '.join(COMPARE_SCENARIOS)}")
    args.scenarios = [s for s in known if s in chosen]
    if args.cluster is not None:
        if args.cluster < 2 or args.compare or args.only:
            parser.error("--cluster N: at least 2 nodes, without --compare or --only")
        args.scenarios = ["cluster"]
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()] \
        if args.compare else ["chatd"]
    if any(s not in ALL_SERVERS for s in args.server_list):
        parser.error(f"--servers: choose from {', '.join(ALL_SERVERS)}")
    args.modes = [m.strip() for m in (args.load or "closed,paced").split(",") if m.strip()]
    if not args.modes or any(m not in ("closed", "paced") for m in args.modes):
        parser.error("--load: closed, paced or closed,paced")
    args.line_modes = args.modes if args.load else ["closed"]
    if args.rounds is None:
        args.rounds = 1 if args.quick or not args.compare else 3
    if args.max_time is None:
        args.max_time = 3600 if args.compare else 900
    if args.persist_repeat is None:
        args.persist_repeat = 1 if args.quick else 3
    return args


def size_compare(plan: Plan, args: argparse.Namespace) -> None:
    """The users and rooms the chosen IRC scenarios need in chatd's database."""
    for spec in compare_specs(args.quick):
        if spec.name in args.scenarios:
            first = idle_first_user(args.quick) if spec.idle else 0
            plan.users = max(plan.users, first + spec.clients)
            if spec.layout and spec.layout not in plan.layouts:
                plan.layouts.append(spec.layout)


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
            if name in SCENARIOS:
                results[name] = SCENARIOS[name](ctx)
        irc = [s for s in args.scenarios if s in COMPARE_SCENARIOS]
        if irc:
            results["compare"] = run_compare(ctx, args.server_list, irc, args.rounds,
                                             args.modes)
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
    if "compare" in results:
        extra = compare_totals(results["compare"])
        sums["loss"] += extra["loss"]
        sums["errors"] += extra["errors"]
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
    size_compare(plan, args)
    results, failure = run_all(args, plan)
    report = build_report(args, plan, results, failure, started)
    if not args.json_only:
        print_table(results, report["targets"])
        if "compare" in results:
            print("\n".join(compare_lines(results["compare"])) + "\n")
        if "cluster" in results:
            print("\n".join(cluster_lines(results["cluster"])) + "\n")
        print_profiles(results)
    print(json.dumps(report, separators=(",", ":"), default=str), flush=True)
    return 0 if report["ok"] else 1
