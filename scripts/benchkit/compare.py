"""--compare: the same IRC scenarios against chatd, ngIRCd and InspIRCd, interleaved.

Every round runs each scenario against each server in turn (chatd, ngIRCd,
InspIRCd, then the next scenario...), each in a fresh server process, so a
slow moment of the shared machine falls on all of them alike; the report
gives each figure's median over the rounds with its spread (min-max), and
chatd's figure divided by each other server's.

A room or direct-message scenario runs closed loop (every sender as fast as
its window allows) and paced (a fixed offered load, with latency), one after
the other in the same server process. The ``logins`` scenario holds many idle
connections: CPU per connect + log-in, memory per connection.

Without ``--compare``, these scenarios (named in ``--only``) run against chatd
alone, over IRC like the others.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from .common import log
from .context import Context
from .ircload import irc_clients, run_irc_fan, run_irc_idle
from .ircservers import make_server, missing_servers, server_versions


@dataclass(frozen=True)
class CompareSpec:
    """One scenario: ``clients`` in groups of ``group`` (a channel each, or pairs
    of direct messages with ``dm``), ``senders`` of each group sending;
    ``messages`` each in the closed-loop run, ``rate`` a second each for
    ``seconds`` in the paced run. ``idle``: connections held instead."""

    name: str
    title: str
    clients: int
    group: int = 0
    senders: int = 0
    messages: int = 0
    rate: float = 0.0
    seconds: float = 0.0
    dm: bool = False
    idle: bool = False

    @property
    def layout(self) -> tuple[int, int] | None:
        """The chatd rooms it needs (prepared in the database), if any."""
        if self.idle or self.dm:
            return None
        return (self.clients, self.clients // self.group)

    def offered(self) -> str:
        groups = self.clients // max(1, self.group)
        per_message = 1 if self.dm else self.group - 1
        per_s = self.rate * self.senders * groups
        return (f"{per_s:,.0f} msg/s = {per_s * per_message:,.0f} deliveries/s "
                f"for {self.seconds:g} s")


def compare_specs(quick: bool) -> list[CompareSpec]:
    if quick:
        return [
            CompareSpec("room100", "20 clients, 1 room, 2 senders", 20, 20, 2, 300, 50, 1),
            CompareSpec("rooms10", "40 clients in rooms of 10, 1 sender each", 40, 10, 1, 300,
                        50, 1),
            CompareSpec("pairs", "40 clients in rooms of 2, both send", 40, 2, 2, 200, 20, 1),
            CompareSpec("dm", "40 clients, direct messages between pairs", 40, 2, 2, 200, 20,
                        1, dm=True),
            CompareSpec("room1000", "100 clients, 1 room, 2 senders", 100, 100, 2, 100, 20, 1),
            CompareSpec("logins", "300 idle connections", 300, idle=True),
        ]
    return [
        # The paced run is the latency figure: 100,000 deliveries/s for 10 s.
        CompareSpec("room100", "100 clients, 1 room, 10 senders", 100, 100, 10, 3000, 100, 10),
        # Small rooms and direct messages paced at a light load (2,000 msg/s): the
        # figure of real traffic, where each message arrives in a turn of its own.
        CompareSpec("rooms10", "1000 clients in 100 rooms of 10, 1 sender each", 1000, 10, 1,
                    1000, 20, 5),
        CompareSpec("pairs", "1000 clients in 500 rooms of 2, both send", 1000, 2, 2, 200,
                    2, 5),
        CompareSpec("dm", "1000 clients, direct messages between 500 pairs", 1000, 2, 2, 200,
                    2, 5, dm=True),
        CompareSpec("room1000", "1000 clients, 1 room, 10 senders", 1000, 1000, 10, 300, 5, 5),
        CompareSpec("logins", "10,000 idle connections", 10_000, idle=True),
    ]


COMPARE_SCENARIOS = tuple(s.name for s in compare_specs(False))


def idle_first_user(quick: bool) -> int:
    """The idle connections' first user: past every room's members, so that a chatd
    log-in does not include showing the rooms of the other scenarios (the other
    servers' clients join nothing when they log in)."""
    return max(s.clients for s in compare_specs(quick) if not s.idle)

# The figures shown side by side: (mode, result key, label, which way is better).
FIGURES = [
    ("closed", "deliveries_per_cpu_s", "deliveries per server CPU-s", "higher"),
    ("closed", "server_us_per_message", "server CPU per message, us", "lower"),
    ("closed", "deliveries_per_s", "deliveries/s (wall)", "higher"),
    ("closed", "loadgen_cpu_pct", "load generator CPU %", ""),
    ("paced", "server_cpu_s", "server CPU-seconds", "lower"),
    ("paced", "server_us_per_message", "server CPU per message, us", "lower"),
    ("paced", "latency_ms.p50", "latency p50 ms", "lower"),
    ("paced", "latency_ms.p99", "latency p99 ms", "lower"),
    ("paced", "to_last_member_ms.p99", "p99 to the last member ms", "lower"),
    ("paced", "loadgen_cpu_pct", "load generator CPU %", ""),
    ("idle", "server_cpu_per_login_ms", "server CPU per connect+log-in ms", "lower"),
    ("idle", "bytes_per_connection", "server RSS per connection, bytes", "lower"),
]


def _login(server: str) -> str:
    return "token" if server == "chatd" else "plain"


def _run_scenario(ctx: Context, spec: CompareSpec, server_name: str, round_no: int,
                  modes: list[str]) -> dict[str, Any]:
    """One scenario against one fresh server process: its closed and paced runs."""
    server = make_server(server_name, ctx.workdir, ctx.db,
                         f"{server_name}-{spec.name}-{round_no}")
    ctx.track(server)
    server.start()
    timeout = ctx.plan.phase_timeout
    out: dict[str, Any] = {}
    try:
        if spec.idle:
            log(f"compare round {round_no} {spec.name} on {server_name}: {spec.title}")
            out["idle"] = run_irc_idle(server, spec.clients, ctx.args, timeout,
                                       _login(server_name), idle_first_user(ctx.args.quick))
            return out
        clients = irc_clients(spec.clients, spec.group, spec.senders, spec.dm)
        for mode in modes:
            log(f"compare round {round_no} {spec.name} {mode} on {server_name}: {spec.title}"
                + (f", {spec.offered()}" if mode == "paced" else ""))
            messages = spec.messages if mode == "closed" else round(spec.rate * spec.seconds)
            out[mode] = run_irc_fan(server, spec.name, clients, messages, ctx.args,
                                    timeout + spec.seconds, mode, spec.rate, ctx.args.window,
                                    _login(server_name))
    finally:
        server.stop()
    return out


def run_compare(ctx: Context, servers: list[str], names: list[str], rounds: int,
                modes: list[str]) -> dict[str, Any]:
    """Every round: each scenario against each server, in that order."""
    missing = missing_servers(servers)
    for name in missing:
        log(f"compare: {name} is not installed (Debian package {name}): left out")
    present = [s for s in servers if s not in missing]
    specs = [s for s in compare_specs(ctx.args.quick) if s.name in names]
    runs: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    for round_no in range(1, rounds + 1):
        for spec in specs:
            for server in present:
                result = _run_scenario(ctx, spec, server, round_no, modes)
                for mode, run in result.items():
                    runs.setdefault(spec.name, {}).setdefault(mode, {}) \
                        .setdefault(server, []).append(run)
    return {"servers": server_versions(present), "missing": missing, "rounds": rounds,
            "modes": modes, "specs": [asdict(s) for s in specs],
            "summary": summarise(runs), "runs": runs}


def _figure(run: dict[str, Any], key: str) -> float | None:
    value: Any = run
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, (int, float)) else None


def summarise(runs: dict[str, Any]) -> dict[str, Any]:
    """Median, min and max over the rounds of every figure, per scenario, mode and server."""
    out: dict[str, Any] = {}
    for scenario, by_mode in runs.items():
        for mode, by_server in by_mode.items():
            for server, mine in by_server.items():
                for fmode, key, _, _ in FIGURES:
                    if fmode != mode:
                        continue
                    values = [v for v in (_figure(r, key) for r in mine) if v is not None]
                    if values:
                        out.setdefault(scenario, {}).setdefault(mode, {}) \
                            .setdefault(server, {})[key] = {
                                "median": statistics.median(values), "min": min(values),
                                "max": max(values), "n": len(values)}
    return out


def compare_totals(compare: dict[str, Any]) -> dict[str, int]:
    """Loss, surplus, error replies and failed log-ins over every compare run."""
    loss = errors = 0
    for by_mode in compare.get("runs", {}).values():
        for mode, by_server in by_mode.items():
            for mine in by_server.values():
                for run in mine:
                    if mode == "idle":
                        errors += run["requested"] - run["connected"]
                        continue
                    loss += run["loss"] + run["extra"]
                    errors += sum(run["errors"].values()) + int(run["timed_out"])
    return {"loss": loss, "errors": errors}


def _fmt(value: float) -> str:
    if abs(value) >= 100_000:
        return f"{value / 1e6:.2f} M"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def _cells(by_server: dict[str, Any], key: str, servers: list[str],
           others: list[str]) -> list[str]:
    """One figure's median [min-max] per server, then chatd's median over each other's."""
    cells = []
    for server in servers:
        f = by_server.get(server, {}).get(key)
        cells.append("-" if f is None else
                     f"{_fmt(f['median'])} [{_fmt(f['min'])}-{_fmt(f['max'])}]")
    if "chatd" in servers:
        mine = by_server.get("chatd", {}).get(key)
        for other in others:
            theirs = by_server.get(other, {}).get(key)
            cells.append("-" if not mine or not theirs or not theirs["median"] else
                         f"{mine['median'] / theirs['median']:.2f}")
    return cells


def compare_lines(compare: dict[str, Any]) -> list[str]:
    """The side-by-side table: each figure's median [min-max] per server, and
    chatd's median divided by each other server's."""
    servers = list(compare["servers"])
    others = [s for s in servers if s != "chatd"]
    lines = [f"compare: {', '.join(f'{n} {v}' for n, v in compare['servers'].items())}; "
             f"{compare['rounds']} interleaved round(s); median [min-max] over the rounds"]
    if compare["missing"]:
        lines.append(f"compare: not installed, left out: {', '.join(compare['missing'])}")
    header = ["scenario", "mode", "figure", *servers]
    if "chatd" in servers:
        header += [f"chatd/{o}" for o in others]
    rows = [header]
    titles = {s["name"]: s for s in compare["specs"]}
    for scenario, by_mode in compare["summary"].items():
        for fmode, key, label, better in FIGURES:
            by_server = by_mode.get(fmode)
            if by_server:
                suffix = f" ({better} is better)" if better else ""
                rows.append([scenario, fmode, label + suffix,
                             *_cells(by_server, key, servers, others)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    for name, spec in titles.items():
        paced = "" if spec["idle"] else (
            f"; paced: {spec['rate']:g} msg/s per sender for {spec['seconds']:g} s")
        lines.append(f"  {name}: {spec['title']}{paced}")
    return lines
