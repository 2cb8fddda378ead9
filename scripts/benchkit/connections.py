"""The connections scenario: many idle logged-in connections, then password logins."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .common import log
from .context import Context
from .daemon import Daemon
from .load import Workers
from .profiler import Profiler


def _login_wave(daemon: Daemon, count: int, password: bool, procs: int, timeout: float,
                measure_memory: bool, ws_port: int | None = None,
                profile: Path | None = None) -> dict[str, Any]:
    """Open ``count`` connections that log in and stay (over /ws with ``ws_port``);
    figures while they are held; py-spy on the daemon during the wave with ``profile``."""
    procs = max(1, min(procs, count))
    time.sleep(0.5)
    rss0, split0, main0 = daemon.rss_kib(), daemon.cpu_split(), daemon.main_thread_cpu()
    specs = [{"port": ws_port or daemon.port, "timeout": timeout, "concurrency": 128,
              "password": password, "indexes": list(range(w, count, procs)),
              "ws": ws_port is not None} for w in range(procs)]
    workers = Workers("idle", specs)
    profiler = None
    try:
        workers.gather("armed", 60)
        profiler = Profiler(profile, daemon.pid, "logins-token" if not password
                            else "logins-password")
        workers.send("go")
        ready = workers.gather("ready", timeout * 4)
        split1, main1 = daemon.cpu_split(), daemon.main_thread_cpu()
        summary = profiler.stop()
        if measure_memory:
            time.sleep(1.0)  # let the audit rows and log lines of the last logins settle
        rss1 = daemon.rss_kib()
        held = daemon.status()["connections"]
    finally:
        if profiler is not None:
            profiler.stop()
        workers.close()
    daemon.wait_idle(60)
    connected = sum(r["connected"] for r in ready)
    wall = max(1e-9, max(r["t_end"] for r in ready) - min(r["t0"] for r in ready))
    out = {"requested": count, "connected": connected, "held_by_server": held,
           "failures": dict(sum((Counter(r["failures"]) for r in ready), Counter())),
           "wall_s": round(wall, 3), "logins_per_s": round(connected / wall),
           "server_cpu_per_login_ms": _per_login(sum(split1) - sum(split0), connected),
           # Where it went: user and kernel time, and the event loop's thread alone.
           "server_user_per_login_ms": _per_login(split1[0] - split0[0], connected),
           "server_sys_per_login_ms": _per_login(split1[1] - split0[1], connected),
           "main_thread_per_login_ms": _per_login(main1 - main0, connected)}
    if measure_memory:
        out |= {"rss_before_kib": rss0, "rss_after_kib": rss1,
                "bytes_per_connection": round(1024 * (rss1 - rss0) / max(1, connected))}
    if summary:
        out["profile"] = summary
    return out


def _per_login(seconds: float, logins: int) -> float:
    return round(1000 * seconds / max(1, logins), 3)


def run_connections(daemon: Daemon, count: int, args: argparse.Namespace,
                    timeout: float) -> dict[str, Any]:
    """``count`` idle connections logged in with API tokens (/auth), then, for
    comparison, a smaller wave of password logins (bcrypt at cost 4)."""
    log(f"connections: {count} idle connections logged in with /auth")
    out = _login_wave(daemon, count, False, args.procs, timeout, True, profile=args.profile)
    out["login"] = "token (/auth)"
    out["daemon_nofile"] = daemon.nofile()
    few = max(100, count // 20)
    log(f"connections: {few} password logins (bcrypt cost 4)")
    out["password_logins"] = _login_wave(daemon, few, True, args.procs, timeout, False)
    return out


def scenario_connections(ctx: Context) -> dict[str, Any]:
    """The connection waves in a daemon of their own, stopped afterwards."""
    daemon = ctx.fresh_daemon("conns")
    try:
        return run_connections(daemon, ctx.plan.connections, ctx.args, ctx.plan.phase_timeout)
    finally:
        daemon.stop()
