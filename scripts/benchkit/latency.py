"""The latency scenario: paced senders, the send time carried in the text."""

from __future__ import annotations

import argparse
from typing import Any

from .context import Context
from .daemon import Daemon
from .phase import run_fanout
from .plan import FanSpec, Plan


def run_latency(daemon: Daemon, plan: Plan, args: argparse.Namespace) -> dict[str, Any]:
    """Paced senders for ``latency_seconds``: a fan-out in latency mode."""
    messages = round(plan.latency_rate * plan.latency_seconds)
    spec = FanSpec("latency", plan.latency_clients, 1, plan.latency_senders, messages, 0)
    result = run_fanout(daemon, spec, args, plan.latency_seconds + plan.phase_timeout,
                        mode="latency", rate=plan.latency_rate)
    result["offered_deliveries_per_s"] = round(plan.latency_rate * plan.latency_senders *
                                               plan.latency_clients)
    result["shape"] = (f"{spec.clients} clients / 1 room / {spec.senders} senders x "
                       f"{plan.latency_rate:g} msg/s for {plan.latency_seconds:g}s")
    return result


def scenario_latency(ctx: Context) -> dict[str, Any]:
    """The latency run on the main daemon."""
    return run_latency(ctx.daemon("main"), ctx.plan, ctx.args)
