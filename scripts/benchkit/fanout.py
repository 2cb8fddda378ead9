"""The fan-out and scaling scenarios, and the cost model fitted to their runs."""

from __future__ import annotations

from typing import Any

from .context import Context
from .phase import run_fanout


def scenario_fanout(ctx: Context) -> dict[str, Any]:
    """The fan-out presets on the main daemon, and the cost model of the one-room ones."""
    runs: dict[str, Any] = {
        spec.name: run_fanout(ctx.daemon("main"), spec, ctx.args, ctx.plan.phase_timeout)
        for spec in ctx.plan.fanout}
    # The one-room presets differ only in room size (same senders and window).
    model = cost_model([r for r in runs.values() if r["rooms"] == 1])
    if model:
        runs["cost_model"] = model
    return runs


def cost_model(runs: list[dict[str, Any]]) -> dict[str, float] | None:
    """Server CPU per message = fixed + per_delivery x room size, fitted (least
    squares) to runs that differ in room size: the fixed part is what a message
    costs whatever its audience (parsing, dispatch, id, storage, rendering)."""
    points = [(r["clients"] / r["rooms"], r["clients"] / r["rooms"] / r["deliveries_per_cpu_s"])
              for r in runs if r.get("deliveries_per_cpu_s")]
    if len({k for k, _ in points}) < 2:
        return None
    n = len(points)
    mean_k = sum(k for k, _ in points) / n
    mean_c = sum(c for _, c in points) / n
    slope = sum((k - mean_k) * (c - mean_c) for k, c in points) / \
        sum((k - mean_k) ** 2 for k, _ in points)
    return {"us_per_message": round(1e6 * (mean_c - slope * mean_k), 2),
            "us_per_delivery": round(1e6 * slope, 3)}


def scenario_scaling(ctx: Context) -> dict[str, Any]:
    """Rooms of growing size on the main daemon, and the cost model fitted to them."""
    runs: dict[str, Any] = {}
    for spec in ctx.plan.scaling:
        runs[spec.name] = run_fanout(ctx.daemon("main"), spec, ctx.args, ctx.plan.phase_timeout)
    model = cost_model(list(runs.values()))
    if model:
        runs["cost_model"] = model
    return runs
