"""The fan-out and scaling scenarios, and the cost model fitted to their runs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .context import Context
from .phase import run_fanout
from .plan import FanSpec

# A paced fan-out run offers this many deliveries a second, whatever its shape.
PACED_DELIVERIES_PER_S = 100_000


def run_paced(ctx: Context, spec: FanSpec) -> dict[str, Any]:
    """The paced twin of a closed-loop run: the same clients, rooms and senders,
    each sender spreading its messages evenly so that the run offers
    PACED_DELIVERIES_PER_S for the latency scenario's duration (its latency too)."""
    per_room = spec.clients // spec.rooms
    rate = PACED_DELIVERIES_PER_S / (spec.senders * per_room)
    seconds = ctx.plan.latency_seconds
    paced = replace(spec, name=f"{spec.name}-paced", messages=max(1, round(rate * seconds)),
                    window=0)
    result = run_fanout(ctx.daemon("main"), paced, ctx.args, seconds + ctx.plan.phase_timeout,
                        mode="latency", rate=rate)
    result["offered_deliveries_per_s"] = PACED_DELIVERIES_PER_S
    result["shape"] = f"{paced.shape.split(' x ')[0]} x {rate:g} msg/s for {seconds:g}s"
    return result


def scenario_fanout(ctx: Context) -> dict[str, Any]:
    """The fan-out presets on the main daemon, and the cost model of the one-room ones;
    with --load paced, each preset's paced twin too."""
    runs: dict[str, Any] = {}
    for spec in ctx.plan.fanout:
        if "closed" in ctx.args.line_modes:
            runs[spec.name] = run_fanout(ctx.daemon("main"), spec, ctx.args,
                                         ctx.plan.phase_timeout)
        if "paced" in ctx.args.line_modes:
            runs[f"{spec.name}-paced"] = run_paced(ctx, spec)
    # The one-room presets differ only in room size (same senders and window).
    model = cost_model([r for name, r in runs.items()
                        if r["rooms"] == 1 and not name.endswith("-paced")])
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
        if "closed" in ctx.args.line_modes:
            runs[spec.name] = run_fanout(ctx.daemon("main"), spec, ctx.args,
                                         ctx.plan.phase_timeout)
        if "paced" in ctx.args.line_modes:
            runs[f"{spec.name}-paced"] = run_paced(ctx, spec)
    model = cost_model([r for name, r in runs.items() if not name.endswith("-paced")])
    if model:
        runs["cost_model"] = model
    return runs
