"""--cluster N: N nodes on a private PostgreSQL and Redis, beside the embedded daemon.

In one run, on one prepared database (copied into PostgreSQL by ``chatd
migrate``):

1. the embedded daemon (SQLite) runs the closed-loop fan-out on a room of 100
   and the paced latency run (100,000 deliveries a second);
2. the N nodes run the same two, every room's members spread over the nodes
   (client i on node i mod N): deliveries per server CPU-second (the nodes'
   CPU; with Redis's and PostgreSQL's too, apart), CPU per message and per
   delivery of each node, latency;
3. a paced load of ``cluster_lag_rate`` messages a second (rooms of two) while
   a probe times each acknowledged post until its row is in PostgreSQL;
4. Redis restarted: until the flow is back;
5. a node killed with SIGKILL: until the others show its users offline, and
   until its unwritten messages are stored (n/a when the cluster does neither).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .common import log
from .context import Context
from .faults import node_kill, redis_restart
from .lag import LagProbe
from .latency import run_latency
from .nodes import NodeGroup, copy_database, start_nodes
from .phase import run_fanout
from .services import start_services

# The goals of the cluster mode, reported beside the figures, never enforced.
GOALS = {"vs_embedded_pct": (">=", 80), "latency_p99_ms": ("<", 10),
         "offline_after_s": ("<", 5), "stored_after_s": ("<", 10),
         "redis_resumed_after_s": ("<", 3), "persistence_lag_p99_ms": ("<", 500)}


def scenario_cluster(ctx: Context) -> dict[str, Any]:
    postgres, redis = start_services()
    try:
        copy_database(ctx.db, postgres.url())
        out: dict[str, Any] = {"nodes": ctx.args.cluster,
                               "embedded": _embedded(ctx)}
        ctx.stop_all()
        group = start_nodes(ctx.args.cluster, ctx.workdir, redis, postgres)
        for node in group.nodes:
            ctx.watch(node)
        try:
            out["cluster"] = _cluster(ctx, group)
        finally:
            group.stop()
    finally:
        redis.remove()
        postgres.remove()
    out["goals"] = goals(out)
    return out


def _embedded(ctx: Context) -> dict[str, Any]:
    daemon = ctx.daemon("main")
    return {"fanout": run_fanout(daemon, ctx.plan.cluster_fanout, ctx.args,
                                 ctx.plan.phase_timeout),
            "latency": run_latency(daemon, ctx.plan, ctx.args)}


def _cluster(ctx: Context, group: NodeGroup) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fanout = run_fanout(group, ctx.plan.cluster_fanout, ctx.args, ctx.plan.phase_timeout)
    group.spread(fanout)
    out["fanout"] = fanout
    latency = run_latency(group, ctx.plan, ctx.args)  # type: ignore[arg-type]
    group.spread(latency)
    out["latency"] = latency
    out["persistence_lag"] = _lag(ctx, group)
    for node in group.nodes:
        node.mark_faults()
    first_probe = ctx.plan.probe_users
    out["redis_restart"] = _guarded(redis_restart, group, first_probe)
    out["node_kill"] = _guarded(node_kill, group, first_probe)
    return out


def _guarded(measure: Callable[[NodeGroup, int], dict[str, Any]], group: NodeGroup,
             first_probe: int) -> dict[str, Any]:
    """A fault measurement; what went wrong is reported in its place."""
    try:
        return measure(group, first_probe)
    except Exception as exc:
        log(f"{measure.__name__} failed: {type(exc).__name__}: {exc}")
        return {"failure": f"{type(exc).__name__}: {exc}"}


def _lag(ctx: Context, group: NodeGroup) -> dict[str, Any]:
    """The paced load of cluster_lag_rate messages a second, and the probe's lag."""
    spec = ctx.plan.cluster_lag
    per_sender = ctx.plan.cluster_lag_rate / spec.senders
    probe = LagProbe(group.nodes[-1].port, ctx.plan.probe_users + 4, group.postgres.url(),
                     "benchlag")
    probe.start()
    probe.ready.wait(30)
    log(f"persistence lag: {ctx.plan.cluster_lag_rate:,.0f} msgs/s offered")
    try:
        # A cluster that cannot keep up takes longer than the run: a generous timeout.
        run = run_fanout(group, spec, ctx.args,
                         ctx.plan.cluster_lag_seconds + 2 * ctx.plan.phase_timeout,
                         mode="latency", rate=per_sender, durable=False)
    finally:
        probe.finish()
    group.spread(run)
    run["offered_messages_per_s"] = ctx.plan.cluster_lag_rate
    run["shape"] = (f"{spec.clients} clients / {spec.rooms} rooms / {spec.senders} senders x "
                    f"{per_sender:g} msg/s for {ctx.plan.cluster_lag_seconds:g}s")
    run["lag_ms"] = probe.figures()
    return run


def _figures(out: dict[str, Any]) -> dict[str, Any]:
    cluster, embedded = out.get("cluster", {}), out.get("embedded", {})
    mine = cluster.get("fanout", {}).get("deliveries_per_cpu_s")
    theirs = embedded.get("fanout", {}).get("deliveries_per_cpu_s")
    kill = cluster.get("node_kill", {})
    return {
        "vs_embedded_pct": round(100 * mine / theirs, 1) if mine and theirs else None,
        "latency_p99_ms": cluster.get("latency", {}).get("latency_ms", {}).get("p99"),
        "offline_after_s": kill.get("offline_after_s"),
        "stored_after_s": kill.get("stored_after_s"),
        "redis_resumed_after_s": cluster.get("redis_restart", {}).get("resumed_after_s"),
        "persistence_lag_p99_ms": cluster.get("persistence_lag", {}).get("lag_ms", {})
        .get("p99_ms"),
    }


# A figure taken under a paced load counts for its goal only when the cluster
# carried that load: at least this share of the offered rate.
CARRIED = 0.9


def _short_of_load(out: dict[str, Any], name: str) -> str | None:
    """Why a paced figure does not meet its goal whatever its value: the load
    it was meant for was not carried (None when it was)."""
    run = {"latency_p99_ms": out.get("cluster", {}).get("latency"),
           "persistence_lag_p99_ms": out.get("cluster", {}).get("persistence_lag")}.get(name)
    if not run:
        return None
    offered = run.get("offered_messages_per_s") or \
        run.get("offered_deliveries_per_s", 0) / max(1, run["clients"] // run["rooms"])
    achieved = run["messages_per_s"]
    if achieved >= CARRIED * offered:
        return None
    return f"taken at {achieved:,} messages/s: the cluster did not carry the {offered:,.0f} offered"


def goals(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal with its figure and whether it is met (None: not measured / not built)."""
    rows = []
    for name, value in _figures(out).items():
        op, target = GOALS[name]
        met = None if value is None else (value >= target if op == ">=" else value < target)
        row = {"measure": name, "value": value, "target": f"{op} {target}", "met": met}
        short = _short_of_load(out, name)
        if short and value is not None:
            row.update(met=False, note=short)
        rows.append(row)
    return rows
