"""IRC phases: the load-generator side (worker coroutines) and the parent's measurement.

``run_irc_fan`` is one measured run of a room or direct-message shape against
any of the servers (chatd's IRC listener, ngIRCd, InspIRCd), closed loop or
paced; ``run_irc_idle`` opens many connections that log in and stay, for the
server's CPU per connect + log-in and its memory per connection. The server's
CPU is read from /proc around the measured window, like the line-protocol
phases (``phase.py``); for chatd the window also waits until the last message
is durable, so its figures include persistence.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import os
import time
from collections import Counter
from typing import Any

from .common import log, pct, room_name, user_name
from .daemon import machine_busy
from .database import durable_max_id, wait_durable
from .ircclients import IrcFanClient, IrcIdleClient, IrcState
from .load import Workers, _connect_all, pipe_recv
from .profiler import Profiler

# -- worker side ------------------------------------------------------------------------


async def irc_fan_worker(spec: dict[str, Any], pipe: Any) -> None:
    state = IrcState(spec)
    clients = []
    for c in spec["clients"]:
        client = IrcFanClient(state, c["index"], c["target"], c["channel"], c["senders"],
                              c["sender"], spec["window"], spec["login"])
        client.phase = c.get("phase", 0.0)
        clients.append(client)
    # As many handshakes in flight as the server takes (``handshakes``).
    connected, failures = await _connect_all(clients, spec["port"], spec["timeout"],
                                             concurrency=spec["concurrency"])
    pipe.send(("ready", {"connected": len(connected), "failures": dict(failures)}))
    if await pipe_recv(pipe, spec["timeout"] * 4) != "go":
        return
    cpu0 = sum(os.times()[:2])
    timed_out = await _measured(state, connected, spec)
    pipe.send(("done", _report(state, connected, timed_out, sum(os.times()[:2]) - cpu0)))
    await pipe_recv(pipe, 600)  # "close"
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    await asyncio.sleep(0.05)


async def _measured(state: IrcState, clients: list[IrcFanClient], spec: dict[str, Any]) -> bool:
    """Send (closed loop or paced) until every receiver has everything; whether
    the run timed out."""
    t_go = time.monotonic()
    waiting = [c for c in clients if c.expected > 0]
    for client in clients:
        client.done = client.expected == 0
    state.unfinished = len(waiting)
    senders = [c for c in clients if c.is_sender]
    pacer = asyncio.ensure_future(_pace(senders, spec, t_go)) if state.paced else None
    if not state.paced:
        for client in senders:
            client.fill()
    if not waiting and not state.finished.done():
        state.finished.set_result(None)
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.shield(state.finished), spec["timeout"])
    except TimeoutError:
        timed_out = True
        state.t_last = time.monotonic()
    if pacer is not None:
        # This process's receivers may be done before its own senders are (their
        # messages go to the other process's clients): the pacer runs to the end.
        try:
            await asyncio.wait_for(pacer, max(1.0, spec["timeout"] - (time.monotonic() - t_go)))
        except TimeoutError:
            timed_out = True
    return timed_out


async def _pace(senders: list[IrcFanClient], spec: dict[str, Any], t_go: float) -> None:
    """Paced: each sender sends ``rate`` messages a second, evenly spread, the
    senders phase-shifted against each other."""
    rate, total = spec["rate"], spec["messages"]
    period = 1.0 / rate
    due = [t_go + period * client.phase for client in senders]
    while True:
        now = time.monotonic()
        for i, client in enumerate(senders):
            while due[i] <= now and client.sent < total:
                client.send_stamped()
                due[i] += period
        pending = [d for d, c in zip(due, senders, strict=True) if c.sent < total]
        if not pending:
            return
        await asyncio.sleep(max(0.0, min(pending) - time.monotonic()))


def _report(state: IrcState, clients: list[IrcFanClient], timed_out: bool,
            cpu: float) -> dict[str, Any]:
    errors: Counter[str] = Counter()
    missing = extra = received = expected = 0
    for client in clients:
        verdict = client.verdict()
        missing += verdict["missing"]
        extra += verdict["extra"]
        received += client.count
        expected += client.expected
        errors.update(client.errors)
    return {"received": received, "expected": expected, "missing": missing, "extra": extra,
            "errors": dict(errors), "error_samples": state.samples, "timed_out": timed_out,
            "t_last": state.t_last, "cpu": cpu, "latencies": state.latencies.tobytes(),
            "to_last": {k.decode(): v for k, v in state.to_last.items()}}


async def irc_idle_worker(spec: dict[str, Any], pipe: Any) -> None:
    clients = [IrcIdleClient(i, spec["login"]) for i in spec["indexes"]]
    pipe.send(("armed", None))
    if await pipe_recv(pipe, 120) != "go":
        return
    t0 = time.monotonic()
    done, failures = await _connect_all(clients, spec["port"], spec["timeout"],
                                        concurrency=spec["concurrency"])
    t_end = max((c.t_done for c in done), default=t0)
    pipe.send(("ready", {"connected": len(done), "failures": dict(failures), "t0": t0,
                         "t_end": t_end}))
    await pipe_recv(pipe, 600)  # "close"
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    await asyncio.sleep(0.1)


# -- parent side --------------------------------------------------------------------------


def irc_clients(clients: int, group: int, senders: int, dm: bool) -> list[dict[str, Any]]:
    """Who is where: ``clients`` in groups of ``group`` (a channel each, or pairs
    writing to each other with ``dm``); the first ``senders`` of each group send."""
    out = []
    for i in range(clients):
        k, first = i // group, (i // group) * group
        members = [user_name(first + j) for j in range(senders)]
        if dm:
            peer = user_name(first + (1 - (i - first)))
            out.append({"index": i, "channel": None, "target": peer,
                        "sender": i - first < senders,
                        "senders": [peer] if peer in members else []})
        else:
            channel = "#" + room_name((clients, clients // group), k)
            out.append({"index": i, "channel": channel, "target": channel,
                        "sender": i - first < senders,
                        "senders": [m for m in members if m != user_name(i)]})
    senders_all = [c for c in out if c["sender"]]
    for n, client in enumerate(senders_all):
        client["phase"] = n / len(senders_all)
    return out


def run_irc_fan(server: Any, name: str, clients: list[dict[str, Any]], messages: int,
                args: argparse.Namespace, timeout: float, mode: str, rate: float,
                window: int, login: str) -> dict[str, Any]:
    """One measured run (closed loop or paced) of ``clients`` against ``server``."""
    procs = max(1, min(args.procs, len(clients)))
    specs = [{"port": server.port, "timeout": timeout, "mode": mode, "messages": messages,
              "concurrency": max(1, server.handshakes // procs),
              "window": window, "rate": rate, "login": login, "clients": clients[w::procs]}
             for w in range(procs)]
    start_id = durable_max_id(server.db) if server.db is not None else 0
    workers = Workers("ircfan", specs)
    profiler = None
    try:
        ready = workers.gather("ready", timeout * 3)
        connected = sum(r["connected"] for r in ready)
        failures = sum((Counter(r["failures"]) for r in ready), Counter())
        if connected < len(clients):
            log(f"{name}: only {connected}/{len(clients)} logged in: {dict(failures)}")
        time.sleep(0.2)  # log-in tails out of the measured window
        profiler = Profiler(args.profile, server.pid, f"{name}-{mode}-{server.name}")
        cpu0, busy0, t0 = server.cpu(), machine_busy(), time.monotonic()
        workers.send("go")
        done = workers.gather("done", timeout + 30)
        t_end = max(d["t_last"] for d in done)
        if server.db is not None:  # chatd: until the last message is stored
            sent = messages * sum(1 for c in clients if c["sender"])
            wait_durable(server.db, start_id + sent, timeout=30)
        cpu1, busy1, t1 = server.cpu(), machine_busy(), time.monotonic()
        profile = profiler.stop()  # after the figures: its stopping is not measured
    finally:
        if profiler is not None:
            profiler.stop()
        workers.close()
    server.wait_idle()
    result = _fan_result(done, connected, len(clients), failures, messages, clients,
                         cpu1 - cpu0, t1 - t0, t_end - t0, busy1[0] - busy0[0], mode, rate)
    return result | ({"profile": profile} if profile else {})


def _fan_result(done: list[dict[str, Any]], connected: int, wanted: int,
                failures: Counter[str], messages: int, clients: list[dict[str, Any]],
                cpu: float, span: float, wall: float, busy: float, mode: str,
                rate: float) -> dict[str, Any]:
    received = sum(d["received"] for d in done)
    wall = max(1e-9, wall)
    gen_cpu = sum(d["cpu"] for d in done)
    senders = sum(1 for c in clients if c["sender"])
    sent = messages * senders
    result: dict[str, Any] = {
        "mode": mode, "clients": wanted, "connected": connected,
        "login_failures": dict(failures), "senders": senders, "messages": sent,
        "deliveries": received, "expected": sum(d["expected"] for d in done),
        "wall_s": round(wall, 3), "server_cpu_s": round(cpu, 3),
        "server_cpu_pct": round(100 * cpu / wall, 1),
        "loadgen_cpu_s": round(gen_cpu, 3), "loadgen_cpu_pct": round(100 * gen_cpu / wall, 1),
        "other_cpu_pct": round(max(0.0, 100 * (busy - cpu - gen_cpu) / max(1e-9, span)), 1),
        "deliveries_per_s": round(received / wall),
        "deliveries_per_cpu_s": round(received / cpu) if cpu > 0 else None,
        "server_us_per_message": round(1e6 * cpu / sent, 2) if sent else None,
        "loss": sum(d["missing"] for d in done) + (wanted - connected) * messages,
        "extra": sum(d["extra"] for d in done), "reordered": 0,
        "errors": dict(sum((Counter(d["errors"]) for d in done), Counter())),
        "error_samples": [s for d in done for s in d["error_samples"]][:5],
        "timed_out": any(d["timed_out"] for d in done)}
    if mode == "paced":
        result["offered_messages_per_s"] = round(rate * senders)
        lat = array.array("d")
        to_last: dict[str, float] = {}
        for d in done:
            lat.frombytes(d["latencies"])
            for key, value in d["to_last"].items():
                to_last[key] = max(value, to_last.get(key, 0.0))
        result["latency_ms"] = _percentiles(sorted(lat))
        result["to_last_member_ms"] = _percentiles(sorted(to_last.values()))
    return result


def _percentiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"samples": 0}
    return {"p50": round(1000 * pct(values, 50), 2), "p99": round(1000 * pct(values, 99), 2),
            "max": round(1000 * values[-1], 2), "samples": len(values)}


def run_irc_idle(server: Any, count: int, args: argparse.Namespace, timeout: float,
                 login: str, first: int = 0) -> dict[str, Any]:
    """``count`` connections (users ``first``...) that log in and stay: the server's
    CPU per connect + log-in over the wave, and its resident memory per connection
    while held."""
    procs = max(1, min(args.procs, count))
    time.sleep(0.3)
    rss0, cpu0 = server.rss_kib(), server.cpu()
    specs = [{"port": server.port, "timeout": timeout, "login": login,
              "concurrency": max(1, server.handshakes // procs),
              "indexes": list(range(first + w, first + count, procs))} for w in range(procs)]
    workers = Workers("ircidle", specs)
    profiler = None
    try:
        workers.gather("armed", 60)
        profiler = Profiler(args.profile, server.pid, f"logins-irc-{login}")
        workers.send("go")
        ready = workers.gather("ready", timeout * 4)
        cpu1 = server.cpu()
        profile = profiler.stop()
        time.sleep(1.0)  # the last log-ins' tails (audit rows, log lines) settle
        rss1 = server.rss_kib()
        held = server.connections()
    finally:
        if profiler is not None:
            profiler.stop()
        workers.close()
    server.wait_idle(60)
    connected = sum(r["connected"] for r in ready)
    wall = max(1e-9, max(r["t_end"] for r in ready) - min(r["t0"] for r in ready))
    return {"requested": count, "connected": connected, "held_by_server": held,
            "failures": dict(sum((Counter(r["failures"]) for r in ready), Counter())),
            "wall_s": round(wall, 3), "logins_per_s": round(connected / wall),
            "server_cpu_per_login_ms": round(1000 * (cpu1 - cpu0) / max(1, connected), 3),
            "rss_before_kib": rss0, "rss_after_kib": rss1,
            "bytes_per_connection": round(1024 * (rss1 - rss0) / max(1, connected))} | (
                {"profile": profile} if profile else {})
