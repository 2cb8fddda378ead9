"""Counters of what the daemon does, cheap enough for the hot paths.

Plain integers updated in place (once per message, not per delivery), read by
``chatctl status`` and exported by the optional Prometheus endpoint.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import NamedTuple


class Figure(NamedTuple):
    """One figure a part of the daemon exports as a metric (a cluster node's, say),
    without knowing the metrics' library: a counter, a gauge, or a summary
    (``value`` its sum, ``samples`` its count). ``by`` holds values by the label
    ``label`` instead of one value."""

    name: str
    help: str
    kind: str = "gauge"
    value: float = 0.0
    by: Mapping[str, float] | None = None
    label: str = ""
    samples: int = 0


class Stats:
    """Totals since start; rates are derived by whoever samples them."""

    __slots__ = ("_sampled", "connections_total", "deliveries", "errors", "flush_seconds",
                 "login_failures", "logins", "loop_lag", "messages", "messages_per_second",
                 "rate_limited", "storage_pending")

    def __init__(self) -> None:
        self.connections_total = 0
        self.logins = 0
        self.login_failures = 0
        self.messages = 0
        self.deliveries = 0
        self.rate_limited = 0
        self.errors: Counter[str] = Counter()
        self.flush_seconds = 0.0
        # Messages acknowledged and not yet written (sampled with the loop lag).
        self.storage_pending = 0
        self.loop_lag = 0.0
        self.messages_per_second = 0.0
        self._sampled = (0.0, 0)

    def sample(self, now: float) -> None:
        """Update the message rate from the totals since the previous sample."""
        then, count = self._sampled
        if then and now > then:
            self.messages_per_second = (self.messages - count) / (now - then)
        self._sampled = (now, self.messages)

    def error(self, code: str) -> None:
        self.errors[code] += 1
        if code == "rate-limited":
            self.rate_limited += 1

    def snapshot(self) -> dict[str, object]:
        return {name: (dict(value) if isinstance(value, Counter) else value)
                for name in self.__slots__ if not name.startswith("_")
                for value in [getattr(self, name)]}
