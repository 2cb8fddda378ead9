"""Optional Prometheus metrics (``metrics.enabled``), off by default.

Exports the daemon's counters (:mod:`chatd.domain.stats`) and live gauges on an HTTP
port. Needs the ``prometheus-client`` package (the ``metrics`` extra).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from chatd.ops.admin import Running
    from chatd.protocol.services import Services


class MetricsUnavailable(RuntimeError):
    """Metrics are enabled but prometheus-client is not installed."""


def start_metrics(server: Running, host: str, port: int) -> Any:
    """Serve /metrics for ``server``; returns the HTTP server (``shutdown()`` stops it)."""
    try:
        from prometheus_client import CollectorRegistry, start_http_server  # noqa: PLC0415
        from prometheus_client.core import (  # noqa: PLC0415
            CounterMetricFamily,
            GaugeMetricFamily,
        )
    except ImportError as exc:
        raise MetricsUnavailable("metrics.enabled needs the prometheus-client package "
                                 "(pip install 'chatd[metrics]')") from exc

    class Collector:
        def collect(self) -> Iterator[Any]:
            stats = server.services.stats
            yield GaugeMetricFamily("chatd_connections", "Open client connections",
                                    value=server.connection_count)
            yield GaugeMetricFamily("chatd_users_online", "Users logged in",
                                    value=server.services.presence.users_online)
            yield GaugeMetricFamily("chatd_rooms", "Live rooms", value=server.services.rooms.count)
            for name, help_text, value in (
                    ("connections", "Connections accepted", stats.connections_total),
                    ("logins", "Successful logins", stats.logins),
                    ("login_failures", "Failed logins", stats.login_failures),
                    ("messages_in", "Room messages received", stats.messages),
                    ("messages_out", "Room message deliveries", stats.deliveries),
                    ("rate_limited", "Refusals by rate limits", stats.rate_limited)):
                yield CounterMetricFamily(f"chatd_{name}", help_text, value=value)
            errors = CounterMetricFamily("chatd_errors", "Error replies by code", labels=["code"])
            for code, count in stats.errors.items():
                errors.add_metric([code], count)
            yield errors
            yield GaugeMetricFamily("chatd_storage_flush_seconds", "Duration of the last "
                                    "message flush", value=stats.flush_seconds)
            writer = server.services.writer
            # A pending count that only grows means the database keeps failing.
            yield GaugeMetricFamily("chatd_storage_pending", "Messages waiting to be "
                                    "written", value=writer.pending)
            yield CounterMetricFamily("chatd_storage_dropped", "Messages the database "
                                      "refused, logged and dropped", value=writer.dropped)
            yield GaugeMetricFamily("chatd_event_loop_lag_seconds", "Event-loop lag",
                                    value=stats.loop_lag)
            yield from cluster_families(server.services)
            # Cluster mode: the persister's backlog, the epoch changes (docs/CLUSTER.md).
            figures = getattr(writer, "cluster_figures", None)
            for name, help_text, kind, value in figures() if figures is not None else ():
                family = GaugeMetricFamily if kind == "gauge" else CounterMetricFamily
                yield family(name, help_text, value=value)
            yield from _cluster(server.nodes.figures(), GaugeMetricFamily, CounterMetricFamily)

    registry = CollectorRegistry()
    registry.register(Collector())
    http_server, _thread = start_http_server(port, addr=host, registry=registry)
    return http_server


# -- cluster mode (cluster.redis): the node's seams count what they do -----------
# Read through these shapes, so that this module imports nothing of the cluster
# (the embedded daemon loads neither Redis nor PostgreSQL's client).


@runtime_checkable
class _ClusterBus(Protocol):
    delivered: int
    refusals: Mapping[str, int]


@runtime_checkable
class _ClusterSequencer(Protocol):
    batches: int
    refused: int


@runtime_checkable
class _ClusterTransactions(Protocol):
    decisions: int
    decision_seconds: float


def cluster_families(services: Services) -> Iterator[Any]:
    """The cluster's metrics; nothing for an embedded daemon."""
    from prometheus_client.core import (  # noqa: PLC0415 - present: start_metrics checked
        CounterMetricFamily,
        SummaryMetricFamily,
    )

    bus, sequencer, transactions = services.bus, services.sequencer, services.transactions
    if isinstance(bus, _ClusterBus):
        yield CounterMetricFamily("chatd_cluster_entries_delivered", "Entries of the shared "
                                  "log this node delivered to its connections",
                                  value=bus.delivered)
        refusals = CounterMetricFamily("chatd_cluster_refusals", "This node's posts refused "
                                       "where the cluster's order is decided, by reason",
                                       labels=["reason"])
        for reason in _REASONS:
            refusals.add_metric([reason], bus.refusals.get(reason, 0))
        for reason, count in bus.refusals.items():
            if reason not in _REASONS:
                refusals.add_metric([reason], count)
        yield refusals
    if isinstance(sequencer, _ClusterSequencer):
        yield CounterMetricFamily("chatd_cluster_sequencer_batches", "INCRBY round trips "
                                  "that numbered a turn's ids", value=sequencer.batches)
        yield CounterMetricFamily("chatd_cluster_sequencer_refused", "Ids refused with busy: "
                                  "Redis did not answer in time", value=sequencer.refused)
    if isinstance(transactions, _ClusterTransactions):
        yield SummaryMetricFamily("chatd_cluster_transaction_seconds", "Governance decisions "
                                  "under a cluster-wide lock: from asking for the lock to "
                                  "releasing it", count_value=transactions.decisions,
                                  sum_value=transactions.decision_seconds)


# Always exported (at 0 until the first), so that a rate can be graphed at once.
_REASONS = ("busy", "banned", "muted", "not-in-room")
# The cluster's figures (chatd.cluster.registry), by name: help text, and
# whether a counter (else a gauge). The embedded daemon has none.
CLUSTER_FIGURES = {
    "nodes_alive": ("Nodes whose heartbeat is alive", False),
    "heartbeat_age_seconds": ("Seconds since this node's heartbeat was last refreshed", False),
    "stream_lag_seconds": ("How far this node's log reader is behind the log's newest entry",
                           False),
    "fences": ("Times this node found its heartbeat lapsed and dropped its sessions", True),
}


def _cluster(figures: dict[str, float], gauge: Any, counter: Any) -> Iterator[Any]:
    for name, value in figures.items():
        help_text, is_counter = CLUSTER_FIGURES[name]
        yield (counter if is_counter else gauge)(f"chatd_cluster_{name}", help_text, value=value)
