"""What to run: the fan-out shapes and the sizes of every scenario (--quick or default)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .common import MAX_IN_FLIGHT


@dataclass(frozen=True)
class FanSpec:
    """One fan-out run: clients over rooms (contiguous blocks of users), senders, messages."""

    name: str
    clients: int
    rooms: int
    senders: int
    messages: int  # per sender
    window: int = 32

    @property
    def layout(self) -> tuple[int, int]:
        return (self.clients, self.rooms)

    @property
    def shape(self) -> str:
        return f"{self.clients} clients / {self.rooms} room{'s' * (self.rooms != 1)} / " \
               f"{self.senders} senders x {self.messages} msgs, W={self.window}"


@dataclass
class Plan:
    fanout: list[FanSpec]
    latency_clients: int
    latency_senders: int
    latency_rate: float  # messages per second per sender
    latency_seconds: float
    connections: int
    persistence: FanSpec
    history_messages: int
    history_requests: int
    scaling: list[FanSpec]
    phase_timeout: float
    # The ws scenario: one fan-out run over TCP and /ws, and idle WebSockets.
    ws: FanSpec | None = None
    ws_idle: int = 0
    # The resume scenario: clients that reconnect with resume tokens after a
    # restart, and the password logins (bcrypt cost 12) measured for comparison.
    resume_clients: int = 1000
    resume_password_sample: int = 100
    # --cluster: the fan-out on rooms of 100 (embedded and cluster alike), the
    # paced load of the persistence lag (rooms of two) and its rate in messages
    # a second, and the first of the probes' users (after the load's).
    cluster_fanout: FanSpec | None = None
    cluster_lag: FanSpec | None = None
    cluster_lag_rate: float = 25_000
    cluster_lag_seconds: float = 2.0
    probe_users: int = 0
    users: int = 0
    layouts: list[tuple[int, int]] = field(default_factory=list)


def window_for(senders: int, room_size: int, window: int) -> int:
    """Each sender's window, within MAX_IN_FLIGHT deliveries for the whole run."""
    return max(1, min(window, MAX_IN_FLIGHT // max(1, senders * room_size)))


def make_plan(quick: bool, window: int, scenarios: set[str]) -> Plan:
    def fan(name: str, clients: int, rooms: int, senders: int, deliveries: int,
            sender_window: int = window) -> FanSpec:
        per_room = clients // rooms
        messages = max(1, round(deliveries / (senders * per_room)))
        return FanSpec(name, clients, rooms, senders, messages,
                       window_for(senders, per_room, sender_window))

    def scaling(clients: int, size: int, deliveries: int) -> FanSpec:
        # Every room keeps about `window` messages in flight whatever its size
        # (1 sender with W in rooms of 10, 10 senders with W/10 in bigger ones),
        # so each receiver gets batches of the same size and only the room size
        # changes: in-flight deliveries are the same for every size.
        per_room = min(10, max(1, size // 10))
        rooms = clients // size
        return fan(f"scaling-{size}", clients, rooms, per_room * rooms, deliveries,
                   max(1, window // per_room))

    if quick:
        plan = Plan(
            fanout=[fan("fanout-100c-1r", 100, 1, 10, 200_000),
                    fan("fanout-400c-4r", 400, 4, 40, 200_000),
                    fan("fanout-400c-1r", 400, 1, 10, 300_000)],
            latency_clients=100, latency_senders=10, latency_rate=100, latency_seconds=1.5,
            connections=1000,
            persistence=fan("persist-100c-1r", 100, 1, 10, 200_000),
            history_messages=50_000, history_requests=100,
            scaling=[scaling(400, k, n) for k, n in ((10, 100_000), (100, 200_000))],
            phase_timeout=20, ws=fan("fanout-100c-1r", 100, 1, 10, 200_000), ws_idle=500,
            resume_clients=200, resume_password_sample=10,
            cluster_fanout=fan("cluster-100c-1r", 100, 1, 10, 200_000),
            cluster_lag=FanSpec("cluster-lag", 100, 50, 50, 1, 0), cluster_lag_seconds=0.5)
    else:
        plan = Plan(
            # Runs of several seconds: CPU is read in 10 ms ticks.
            fanout=[fan("fanout-100c-1r", 100, 1, 10, 12_000_000),
                    fan("fanout-1000c-10r", 1000, 10, 100, 12_000_000),
                    fan("fanout-1000c-1r", 1000, 1, 10, 16_000_000)],
            latency_clients=100, latency_senders=10, latency_rate=100, latency_seconds=5,
            connections=10_000,
            persistence=fan("persist-100c-1r", 100, 1, 10, 8_000_000),
            history_messages=1_000_000, history_requests=200,
            scaling=[scaling(1000, k, n) for k, n in
                     ((10, 1_500_000), (100, 3_000_000), (1000, 4_000_000))],
            phase_timeout=60, ws=fan("fanout-100c-1r", 100, 1, 10, 4_000_000), ws_idle=5000,
            cluster_fanout=fan("cluster-100c-1r", 100, 1, 10, 3_000_000),
            cluster_lag=FanSpec("cluster-lag", 100, 50, 50, 1, 0))
    if plan.cluster_lag is not None:
        # Each sender's share of the rate, for the run's duration.
        lag = plan.cluster_lag
        plan.cluster_lag_seconds = min(plan.cluster_lag_seconds, plan.latency_seconds)
        plan.cluster_lag = FanSpec(lag.name, lag.clients, lag.rooms, lag.senders, max(1, round(
            plan.cluster_lag_rate / lag.senders * plan.cluster_lag_seconds)), 0)
    _size(plan, scenarios)
    return plan


def _size(plan: Plan, scenarios: set[str]) -> None:
    """The users and room layouts the chosen scenarios need, into ``plan``."""
    need: list[FanSpec] = []
    users = 1
    if "fanout" in scenarios:
        need += plan.fanout
    if "latency" in scenarios:
        users = max(users, plan.latency_clients)
        plan.layouts.append((plan.latency_clients, 1))
    if "persistence" in scenarios:
        need.append(plan.persistence)
    else:
        plan.history_messages = 0
    if "scaling" in scenarios:
        need += plan.scaling
    if "connections" in scenarios:
        users = max(users, plan.connections)
    if "ws" in scenarios and plan.ws is not None:
        need.append(plan.ws)
        users = max(users, plan.ws_idle)
    if "cluster" in scenarios:
        assert plan.cluster_fanout is not None and plan.cluster_lag is not None
        need += [plan.cluster_fanout, plan.cluster_lag]
        users = max(users, plan.latency_clients)
        plan.layouts.append((plan.latency_clients, 1))
    for spec in need:
        users = max(users, spec.clients)
        plan.layouts.append(spec.layout)
    plan.layouts = sorted(set(plan.layouts))
    if "cluster" in scenarios:
        # Five users of their own for the probes (lag, Redis restart, node kill).
        plan.probe_users = users
        users += 5
    plan.users = users
