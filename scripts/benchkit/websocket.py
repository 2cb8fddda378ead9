"""The ws scenario: the fan-out over the web listener's /ws beside TCP, in one daemon.

The clients are the TCP ones carried over a WebSocket (``wsclient.WsAdapter``).
Reported: deliveries per server CPU-second over /ws and over TCP in the same
daemon (the goal: /ws at least 60% of TCP), and the server's memory per idle
logged-in WebSocket.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .common import log
from .connections import _login_wave
from .context import Context
from .phase import run_fanout


def scenario_ws(ctx: Context) -> dict[str, Any]:
    """The same fan-out over TCP then over /ws in one daemon with the web listener,
    then idle WebSockets for their memory."""
    daemon = ctx.fresh_daemon("web", web=True)
    spec = ctx.plan.ws
    try:
        tcp = run_fanout(daemon, replace(spec, name=f"{spec.name}-tcp"), ctx.args,
                         ctx.plan.phase_timeout)
        ws = run_fanout(daemon, replace(spec, name=f"{spec.name}-ws"), ctx.args,
                        ctx.plan.phase_timeout, ws_port=daemon.web_port)
        log(f"ws: {ctx.plan.ws_idle} idle WebSocket connections logged in with /auth")
        idle = _login_wave(daemon, ctx.plan.ws_idle, False, ctx.args.procs,
                           ctx.plan.phase_timeout, True, ws_port=daemon.web_port)
    finally:
        daemon.stop()
    out: dict[str, Any] = {"tcp": tcp, "ws": ws, "idle": idle}
    if tcp.get("deliveries_per_cpu_s") and ws.get("deliveries_per_cpu_s"):
        out["ws_vs_tcp_pct"] = round(100 * ws["deliveries_per_cpu_s"] /
                                     tcp["deliveries_per_cpu_s"], 1)
    return out
