"""The nodes serving chatd, as ``chatctl nodes`` and the metrics show them.

A cluster lists its nodes from their records in Redis
(``chatd.cluster.registry``); the embedded daemon is its one node
(:class:`SoleNode`); both are a :class:`~chatd.ops.admin.NodeList`. Either
way each row says the node's id, version, addresses, connections, stream lag
and age, and the hash of its *shared* configuration: the settings every node
must agree on (:data:`chatd.config.SHARED_SECTIONS`).
:func:`flagged` marks the nodes that differ from the rest.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from chatd import __version__
from chatd.config import shared_config_hash

if TYPE_CHECKING:
    from chatd.domain.stats import Figure
    from chatd.ops.admin import Running

# What ``chatctl status`` counts on a cluster node: the figures of the whole
# cluster (presence is shared through Redis, accounts and rooms are every
# node's), and those of this node alone (its connections, its traffic, its
# writer). An operator adding up the nodes' answers must know which is which.
CLUSTER_FIGURES = ("users_online", "users", "rooms")
NODE_FIGURES = ("uptime", "connections", "messages", "messages_per_second", "deliveries",
                "loop_lag", "storage_pending", "storage_flush_seconds")


def status_scope(server: Running) -> dict[str, Any]:
    """On a cluster node, what ``chatctl status`` adds: the node's id and which of
    its figures are this node's and which the cluster's. Nothing for the
    embedded daemon, whose figures are all its own."""
    if isinstance(server.nodes, SoleNode):
        return {}
    return {"node": server.nodes.node_id, "node_figures": list(NODE_FIGURES),
            "cluster_figures": list(CLUSTER_FIGURES)}


def named_addresses(server: Running) -> str:
    """``line=127.0.0.1:7777 irc=127.0.0.1:6667``: which port speaks what, as the
    start-up log says it (with port 0, nothing else tells)."""
    return " ".join(f"{kind}={addresses}"
                    for kind, addresses in server.addresses_by_kind.items())


def describe(server: Running) -> dict[str, str | int | float]:
    """What a node says of itself in its record."""
    services = server.services
    return {"version": __version__, "addresses": named_addresses(server),
            "connections": server.connection_count, "started": services.started_at,
            "config": shared_config_hash(services.config)}


class SoleNode:
    """The embedded daemon: one node, this process."""

    def __init__(self, server: Running) -> None:
        self._server = server

    @property
    def node_id(self) -> str:
        return self._server.config.cluster.node_id or "embedded"

    async def nodes(self) -> list[dict[str, Any]]:
        record = describe(self._server)
        age = self._server.services.clock.time() - float(record["started"])
        return [{"node": self.node_id, "alive": True, "version": record["version"],
                 "addresses": record["addresses"], "connections": record["connections"],
                 "lag_ms": 0, "age": max(0.0, age), "heartbeat_ms": 0,
                 "config": record["config"]}]

    def figures(self) -> list[Figure]:
        return []


def flagged(rows: list[dict[str, Any]], this: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows with a ``flag`` column ("!" for a node that differs), and a
    sentence per difference: no heartbeat, or a version or shared configuration
    other than most live nodes' (ties go to this node's)."""
    live = [row for row in rows if row["alive"]]
    mine = next((row for row in live if row["node"] == this), None)
    warnings: list[str] = []
    marked: set[str] = set()
    for row in rows:
        if not row["alive"]:
            marked.add(row["node"])
            warnings.append(f"{row['node']} has no heartbeat: its sessions are being dropped.")
    for key, what in (("version", "runs version {value}"),
                      ("config", "has another shared configuration ({value})")):
        usual = _majority([row[key] for row in live], mine[key] if mine else None)
        for row in live:
            if row[key] != usual:
                marked.add(row["node"])
                warnings.append(f"{row['node']} {what.format(value=row[key])}; most nodes: "
                                f"{usual}.")
    return [{**row, "flag": "!" if row["node"] in marked else ""} for row in rows], warnings


def _majority(values: list[Any], preferred: Any) -> Any:
    counts = Counter(values)
    if not counts:
        return preferred
    top = max(counts.values())
    leaders = [value for value, count in counts.items() if count == top]
    return preferred if preferred in leaders else leaders[0]
