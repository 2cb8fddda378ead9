"""The persistence scenario: /history on many messages, durable rate, cost of the writer."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

from .common import HISTORY_ROOM, HOST, log, pct, token
from .context import Context
from .daemon import Daemon
from .database import durable_max_id
from .phase import run_fanout
from .plan import Plan


async def _history_client(port: int, room: str, requests: int, warmup: int = 10
                          ) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 24)
    try:
        await reader.readline()  # banner
        writer.write(f"/format json\n@l /auth {token(0)}\n".encode())
        while True:
            obj = json.loads(await asyncio.wait_for(reader.readline(), 30))
            if obj.get("label") == "l":
                if obj["type"] != "ok":
                    raise RuntimeError(f"history login failed: {obj}")
                break
        times, bad = [], 0
        for i in range(warmup + requests):
            started = time.perf_counter()
            writer.write(f"@h{i} /history {room} 50\n".encode())
            while True:
                obj = json.loads(await asyncio.wait_for(reader.readline(), 30))
                if obj.get("label") == f"h{i}":
                    break
            elapsed = time.perf_counter() - started
            ids = [m["id"] for m in obj.get("messages", [])]
            if obj["type"] != "ok" or len(ids) != 50 or ids != sorted(ids):
                bad += 1
            if i >= warmup:
                times.append(elapsed)
    finally:
        writer.close()
    times.sort()
    return {"requests": requests, "bad_replies": bad,
            "p50_ms": round(1000 * pct(times, 50), 3), "p99_ms": round(1000 * pct(times, 99), 3),
            "max_ms": round(1000 * times[-1], 3)}


def run_history(daemon: Daemon, plan: Plan) -> dict[str, Any]:
    log(f"history: /history 50 x {plan.history_requests} on {plan.history_messages} messages")
    cpu0 = daemon.cpu()
    result = asyncio.run(_history_client(daemon.port, HISTORY_ROOM, plan.history_requests))
    result["server_cpu_per_request_ms"] = round(
        1000 * (daemon.cpu() - cpu0) / (plan.history_requests + 10), 3)
    result["stored_messages"] = plan.history_messages
    daemon.wait_idle()
    return result


def _loop_rate(runs: list[dict[str, Any]]) -> float:
    """Deliveries per CPU-second of the event-loop thread over ``runs``."""
    loop_cpu = sum(r["server_cpu_s"] - r["server_other_threads_cpu_s"] for r in runs)
    return sum(r["deliveries"] for r in runs) / loop_cpu if loop_cpu > 0 else 0.0


def scenario_persistence(ctx: Context) -> dict[str, Any]:
    """Durable rate under fan-out, the cost of the writer, and /history on many messages.

    The cost is measured by running the same fan-out in fresh daemons, in
    alternating pairs: as configured (the batched writer writes every 0.1 s),
    and with the writer held off for the whole run (flush_interval 1 day, max_pending and
    max_batch above the run's message count), so that the messages wait in
    memory and are written at shutdown, outside the measurement. The cost is
    1 - median(with writer) / median(held off) in deliveries per server
    CPU-second. A direct figure goes with it: the CPU of the daemon's threads
    other than the event loop (SQLite runs in aiosqlite's thread) per message
    and as a share of the daemon's CPU -- a lower bound, since building the
    rows happens on the event loop. A third figure is what persistence takes of
    the event-loop thread's capacity (its deliveries per CPU-second with and
    without the writer): the loop is the daemon's serial resource, the SQLite
    thread runs on another core.
    """
    spec = ctx.plan.persistence
    total = spec.messages * spec.senders
    out: dict[str, Any] = {}
    if ctx.plan.history_messages:
        out["history"] = run_history(ctx.daemon("main"), ctx.plan)
    runs: dict[str, list[dict[str, Any]]] = {"with_writer": [], "writer_held_off": []}
    for attempt in range(ctx.args.persist_repeat):
        for label, storage, durable in (
                ("with_writer", {}, True),
                ("writer_held_off", {"flush_interval": 86400, "max_batch": total * 10 + 10_000,
                                     "max_pending": total * 10 + 10_000}, False)):
            daemon = ctx.fresh_daemon(f"persist-{label}-{attempt}", storage)
            try:
                start_id = durable_max_id(daemon.db)
                run = run_fanout(daemon, spec, ctx.args, ctx.plan.phase_timeout, durable=durable)
                run["durable_messages"] = durable_max_id(daemon.db) - start_id
            finally:
                daemon.stop()
            runs[label].append(run)
    for label, mine in runs.items():
        ordered = sorted(mine, key=lambda r: r["deliveries_per_cpu_s"] or 0)
        out[label] = ordered[len(ordered) // 2]  # the median run
        out[label]["all_deliveries_per_cpu_s"] = [r["deliveries_per_cpu_s"] for r in mine]
        out[label]["all_other_cpu_pct"] = [r["other_cpu_pct"] for r in mine]
        # Loss and errors of every run count, not only of the median one.
        for key in ("loss", "extra", "reordered"):
            out[label][key] = sum(r[key] for r in mine)
        out[label]["errors"] = dict(sum((Counter(r["errors"]) for r in mine), Counter()))
    on, off = out["with_writer"], out["writer_held_off"]
    if on["deliveries_per_cpu_s"] and off["deliveries_per_cpu_s"]:
        out["cost_pct"] = round(100 * (1 - on["deliveries_per_cpu_s"] /
                                       off["deliveries_per_cpu_s"]), 1)
    # The event loop is the daemon's one serial resource: what persistence takes
    # of its capacity, apart from the SQLite thread on another core.
    loop_on, loop_off = _loop_rate(runs["with_writer"]), _loop_rate(runs["writer_held_off"])
    if loop_on and loop_off:
        out["event_loop_cost_pct"] = round(100 * (1 - loop_on / loop_off), 1)
    span = on["wall_s"] + (on["durable_after_s"] or 0)
    out["durable_messages_per_s"] = round(on["durable_messages"] / span)
    out["posted_messages_per_s"] = on["messages_per_s"]
    out["drain_after_last_delivery_s"] = on["durable_after_s"]
    threads = [r["server_other_threads_cpu_s"] for r in runs["with_writer"]]
    idle_threads = [r["server_other_threads_cpu_s"] for r in runs["writer_held_off"]]
    written = sum(r["durable_messages"] for r in runs["with_writer"])
    out["sqlite_thread_us_per_message"] = round(
        1e6 * max(0.0, sum(threads) - sum(idle_threads)) / max(1, written), 2)
    out["sqlite_thread_share_pct"] = round(
        100 * sum(threads) / max(1e-9, sum(r["server_cpu_s"] for r in runs["with_writer"])), 1)
    out["keeps_up"] = all(r["durable_after_s"] is not None and r["durable_after_s"] < 1.0
                          for r in runs["with_writer"])
    return out
