"""--cluster's part of the report: the nodes beside the embedded daemon, and the goals."""

from __future__ import annotations

from typing import Any

NOT_BUILT = "n/a (not built)"


def cluster_lines(out: dict[str, Any]) -> list[str]:
    cluster, embedded = out.get("cluster", {}), out.get("embedded", {})
    lines = [f"cluster: {out['nodes']} nodes on one PostgreSQL and one Redis (this machine), "
             "beside the embedded daemon of the same run"]
    for label, title in (("fanout", "closed-loop fan-out"), ("latency", "paced latency run"),
                         ("persistence_lag", "persistence-lag load")):
        run = cluster.get(label)
        if run:
            lines += _run_lines(title, run, embedded.get(label))
    lines += _lag_lines(cluster.get("persistence_lag"))
    lines += _fault_lines(cluster)
    goals = out.get("goals", [])
    if goals:
        lines.append("cluster goals (reported, not enforced):")
        for goal in goals:
            verdict = {True: "met   ", False: "MISSED", None: "n/a   "}[goal["met"]]
            value = NOT_BUILT if goal["value"] is None else goal["value"]
            note = f"; {goal['note']}" if goal.get("note") else ""
            lines.append(f"  {verdict}  {goal['measure']} = {value}  (goal {goal['target']}"
                         f"{note})")
    return lines


def _run_lines(title: str, run: dict[str, Any], embedded: dict[str, Any] | None) -> list[str]:
    mine = run.get("deliveries_per_cpu_s")
    lines = [f"  {title}: {run['shape']}",
             f"    cluster: {run['deliveries_per_s']:,} deliveries/s, {mine or 0:,} per node "
             f"CPU-second ({run.get('deliveries_per_cpu_s_with_services') or 0:,} counting "
             f"Redis {run.get('redis_cpu_s')} s and PostgreSQL {run.get('postgres_cpu_s')} s "
             f"of CPU), load generator {run['loadgen_cpu_pct']}% CPU"
             + _latency(run)]
    if embedded:
        theirs = embedded.get("deliveries_per_cpu_s")
        share = f" (cluster: {100 * mine / theirs:.0f}% of it)" if mine and theirs else ""
        lines.append(f"    embedded: {embedded['deliveries_per_s']:,} deliveries/s, "
                     f"{theirs or 0:,} per server CPU-second{share}, load generator "
                     f"{embedded['loadgen_cpu_pct']}% CPU" + _latency(embedded))
    for node in run.get("nodes", []):
        per_delivery = node["us_per_delivery"]
        lines.append(f"    node {node['node']}: {node['cpu_s']} s CPU, "
                     f"{node['deliveries']:,} deliveries, {node['us_per_message']} us per "
                     f"message of the cluster, "
                     f"{'-' if per_delivery is None else per_delivery} us per own delivery")
    return lines


def _latency(run: dict[str, Any]) -> str:
    lat = run.get("latency_ms")
    return f", latency p50/p99/max {lat['p50']}/{lat['p99']}/{lat['max']} ms" if lat else ""


def _lag_lines(run: dict[str, Any] | None) -> list[str]:
    if not run:
        return []
    lag = run["lag_ms"]
    head = (f"  persistence lag (ack to row in PostgreSQL) at {run['offered_messages_per_s']:,} "
            f"msgs/s offered, {run['messages_per_s']:,} achieved: ")
    if "p99_ms" not in lag:
        return [head + f"no probe stored ({lag})"]
    return [head + f"p50 {lag['p50_ms']} ms, p99 {lag['p99_ms']} ms, max {lag['max_ms']} ms "
            f"({lag['stored']}/{lag['probes']} probes stored, {lag['refused']} refused)"]


def _fault_lines(cluster: dict[str, Any]) -> list[str]:
    lines = [f"  {name}: the measurement failed: {cluster[name]['failure']}"
             for name in ("redis_restart", "node_kill") if "failure" in cluster.get(name, {})]
    restart = cluster.get("redis_restart")
    if restart and "failure" not in restart:
        resumed = restart["resumed_after_s"]
        lines.append(f"  Redis restart (down {restart['down_s']} s): flow resumed "
                     + (f"{resumed} s after Redis was back" if resumed is not None
                        else "NOT within the wait"))
    kill = cluster.get("node_kill")
    if kill and "failure" not in kill:
        offline = kill["offline_after_s"]
        stored = kill["stored_after_s"]
        lines.append("  node killed (SIGKILL): its user shown offline on the others: "
                     + (f"after {offline} s" if offline is not None else
                        NOT_BUILT + " (never shown online on another node)"
                        if not kill["shown_online_elsewhere_before"] else
                        f"not within {kill['give_up_s']} s"))
        lines.append("  node killed (SIGKILL): its unwritten messages stored: "
                     + (f"after {stored} s" if stored is not None else
                        f"{NOT_BUILT} ({kill['missing_after_give_up']} of "
                        f"{kill['acknowledged']} acknowledged messages still missing after "
                        f"{kill['give_up_s']} s)"))
    return lines
