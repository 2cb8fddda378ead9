"""One fan-out (or latency) phase against a running daemon, measured around it.

The parent splits the run's clients over the load-generator processes, waits
until they are logged in, reads the daemon's CPU and the machine's, says "go",
collects the workers' counts, waits until the last message is durable, reads
the CPU again and turns it all into one result.
"""

from __future__ import annotations

import argparse
import array
import time
from collections import Counter
from typing import Any

from .common import log, pct, room_name, user_name
from .daemon import Daemon, machine_busy
from .load import Workers
from .plan import FanSpec
from .profiler import Profiler


def fan_specs(spec: FanSpec, port: int, procs: int, timeout: float, mode: str = "fanout",
              rate: float = 0.0, ws: bool = False,
              ports: list[int] | None = None) -> list[dict[str, Any]]:
    """Split the run's clients over ``procs`` worker specs (round robin); with
    ``ports`` (a cluster's nodes), client i connects to ``ports[i % len(ports)]``,
    so every room has members on every node."""
    per_room = spec.clients // spec.rooms
    senders_per_room = max(1, spec.senders // spec.rooms)
    clients = []
    for i in range(spec.clients):
        k = i // per_room
        first = k * per_room
        clients.append({"index": i, "room": room_name(spec.layout, k),
                        "sender": i - first < senders_per_room,
                        "senders": [user_name(first + j) for j in range(senders_per_room)],
                        "port": ports[i % len(ports)] if ports else port})
    # Latency mode: the senders' sends are spread evenly over each period.
    senders = [c for c in clients if c["sender"]]
    for n, client in enumerate(senders):
        client["phase"] = n / len(senders)
    return [{"mode": mode, "port": port, "timeout": timeout, "messages": spec.messages,
             "window": spec.window, "rate": rate, "clients": clients[w::procs], "ws": ws}
            for w in range(procs)]


def run_fanout(daemon: Daemon, spec: FanSpec, args: argparse.Namespace, timeout: float,
               mode: str = "fanout", rate: float = 0.0, durable: bool = True,
               ws_port: int | None = None) -> dict[str, Any]:
    """One fan-out (or latency) phase; the figures are the server's, read around it.
    With ``ws_port`` the clients speak over the web listener's /ws instead of TCP."""
    log(f"{spec.name}: {spec.shape}")
    procs = max(1, min(args.procs, spec.clients))
    workers = Workers("fanout", fan_specs(spec, ws_port or daemon.port, procs, timeout, mode,
                                          rate, ws=ws_port is not None,
                                          ports=getattr(daemon, "ports", None)))
    try:
        ready = workers.gather("ready", timeout * 3)
        connected = sum(r["connected"] for r in ready)
        failures = sum((Counter(r["failures"]) for r in ready), Counter())
        if connected < spec.clients:
            log(f"{spec.name}: only {connected}/{spec.clients} logged in: {dict(failures)}")
        time.sleep(0.2)  # login tails (audit rows) out of the measured window
        profiler = Profiler(args.profile, daemon.pid, spec.name)
        try:
            loop0, sys0 = daemon.main_thread_cpu(), daemon.cpu_split()[1]
            cpu0, busy0, t0 = daemon.cpu(), machine_busy(), time.monotonic()
            workers.send("go")
            done = workers.gather("done", timeout + 30)
            t_end = max(d["t_last"] for d in done)
            max_id = max(d["max_id"] for d in done)
            t_durable = daemon.wait_durable(max_id) if durable else None
            cpu1, busy1, t1 = daemon.cpu(), machine_busy(), time.monotonic()
            loop1, sys1 = daemon.main_thread_cpu(), daemon.cpu_split()[1]
        finally:
            profile = profiler.stop()
    finally:
        workers.close()
    daemon.wait_idle()
    result = _fan_result(spec, done, connected, failures, cpu1 - cpu0, t0, t_end, t_durable,
                         profile)
    # Everything else the machine ran meanwhile (other users' jobs distort
    # wall-clock rates), and the kernel's softirq work (loopback TCP) apart.
    softirq = busy1[1] - busy0[1]
    other = (busy1[0] - busy0[0]) - softirq - (cpu1 - cpu0) - sum(d["cpu"] for d in done)
    result["other_cpu_pct"] = round(max(0.0, 100 * other / max(1e-9, t1 - t0)), 1)
    result["softirq_cpu_pct"] = round(100 * softirq / max(1e-9, t1 - t0), 1)
    # The daemon's CPU outside its event-loop thread: SQLite writes (aiosqlite's thread).
    result["server_other_threads_cpu_s"] = round(max(0.0, (cpu1 - cpu0) - (loop1 - loop0)), 3)
    # Kernel time (sends; on loopback also part of the receivers' TCP path).
    result["server_system_cpu_pct_of_cpu"] = round(
        100 * (sys1 - sys0) / max(1e-9, cpu1 - cpu0), 1)
    return result


def _fan_result(spec: FanSpec, done: list[dict[str, Any]], connected: int,
                failures: Counter[str], cpu: float, t0: float, t_end: float,
                t_durable: float | None, profile: dict[str, Any] | None) -> dict[str, Any]:
    received = sum(d["received"] for d in done)
    wall = max(1e-9, t_end - t0)
    errors = sum((Counter(d["errors"]) for d in done), Counter())
    messages = sum(d["received"] for d in done) / max(1, spec.clients // spec.rooms)
    result = {
        "shape": spec.shape, "clients": spec.clients, "rooms": spec.rooms,
        "senders": spec.senders, "messages_per_sender": spec.messages, "window": spec.window,
        "connected": connected, "login_failures": dict(failures),
        "deliveries": received, "expected": sum(d["expected"] for d in done),
        "messages": round(messages), "wall_s": round(wall, 3),
        "server_cpu_s": round(cpu, 3),
        "server_cpu_pct": round(100 * cpu / wall, 1),
        "loadgen_cpu_pct": round(100 * sum(d["cpu"] for d in done) / wall, 1),
        "deliveries_per_s": round(received / wall),
        "messages_per_s": round(messages / wall),
        "deliveries_per_cpu_s": round(received / cpu) if cpu > 0 else None,
        "loss": sum(d["missing"] for d in done),
        "extra": sum(d["extra"] for d in done),
        "reordered": sum(d["reordered"] for d in done) + sum(d["duplicates"] for d in done),
        "errors": dict(errors), "error_samples": [s for d in done for s in d["error_samples"]],
        "timed_out": any(d["timed_out"] for d in done),
        "durable_after_s": None if t_durable is None else round(t_durable - t_end, 3),
        "received_by_port": dict(sum((Counter(d["received_by_port"]) for d in done),
                                     Counter())),
    }
    if connected < spec.clients:
        result["loss"] += (spec.clients - connected) * spec.messages * \
            max(1, spec.senders // spec.rooms)
    if profile:
        result["profile"] = profile
    lat = array.array("d")
    for d in done:
        lat.frombytes(d["latencies"])
    if len(lat):
        values = sorted(lat)
        result["latency_ms"] = {"p50": round(1000 * pct(values, 50), 2),
                                "p99": round(1000 * pct(values, 99), 2),
                                "p999": round(1000 * pct(values, 99.9), 2),
                                "max": round(1000 * values[-1], 2), "samples": len(values)}
    return result
