"""Optional Prometheus metrics (``metrics.enabled``), off by default.

Exports the daemon's counters (:mod:`chatd.domain.stats`) and live gauges on an HTTP
port. Needs the ``prometheus-client`` package (the ``metrics`` extra).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatd.domain.stats import Figure
    from chatd.ops.admin import Running


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
            yield from _families(server.nodes.figures())

    registry = CollectorRegistry()
    registry.register(Collector())
    http_server, _thread = start_http_server(port, addr=host, registry=registry)
    return http_server


def _families(figures: Iterable[Figure]) -> Iterator[Any]:
    """Metrics of the figures a part exports (a cluster node's; none embedded)."""
    from prometheus_client.core import (  # noqa: PLC0415 - present: start_metrics checked
        CounterMetricFamily,
        GaugeMetricFamily,
        SummaryMetricFamily,
    )

    for figure in figures:
        if figure.kind == "summary":
            yield SummaryMetricFamily(figure.name, figure.help, count_value=figure.samples,
                                      sum_value=figure.value)
            continue
        family = CounterMetricFamily if figure.kind == "counter" else GaugeMetricFamily
        if figure.by is None:
            yield family(figure.name, figure.help, value=figure.value)
            continue
        labelled = family(figure.name, figure.help, labels=[figure.label])
        for key, value in figure.by.items():
            labelled.add_metric([key], value)
        yield labelled
