"""The nodes of the cluster as ``chatctl nodes`` and the metrics show them.

Each node's record (``{chatd}:node:<id>``, kept by
:mod:`chatd.cluster.heartbeat`) says who it is: version, addresses,
connections, stream lag, start time and the hash of the shared configuration.
A node registered whose record expired is listed without them: the janitor
is about to bury it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import redis

from chatd.cluster import codec, keys
from chatd.config import SHARED_SECTIONS
from chatd.domain.stats import Figure
from chatd.errors import ChatError, Code

if TYPE_CHECKING:
    import redis.asyncio

    from chatd.cluster.heartbeat import Heartbeat
    from chatd.cluster.janitor import Janitor


log = logging.getLogger(__name__)

# How long listing the nodes waits for Redis, and how long the operator is asked to wait.
LIST_TIMEOUT = 2.0
RETRY_MS = 2000

# The sections the configuration's hash covers, as the warning names them: read
# from the list the hash reads, so that the two cannot disagree.
SECTIONS_NAMED = ", ".join(SHARED_SECTIONS[:-1]) + f" and {SHARED_SECTIONS[-1]}"


class NodeRegistry:
    """Lists the cluster's nodes; this node's own figures for the metrics."""

    def __init__(self, shared: redis.asyncio.Redis, heartbeat: Heartbeat,
                 janitor: Janitor) -> None:
        self._shared = shared
        self.heartbeat = heartbeat
        self.janitor = janitor

    @property
    def node_id(self) -> str:
        return self.heartbeat.node_id

    async def nodes(self) -> list[dict[str, Any]]:
        """Every node registered, in the order of their ids; busy while Redis, which
        alone knows them, does not answer."""
        try:
            async with asyncio.timeout(LIST_TIMEOUT):
                names = sorted(codec.text(name) for name in await self._shared.hkeys(keys.NODES))
                pipe = self._shared.pipeline(transaction=False)
                for name in names:
                    pipe.hgetall(keys.node(name))
                records = await pipe.execute()
        except (redis.RedisError, TimeoutError) as exc:
            raise ChatError(Code.BUSY, "the cluster's Redis does not answer, so the nodes "
                            "cannot be listed: try again in a moment.",
                            retry_ms=RETRY_MS) from exc
        now = time.time()
        return [_row(name, {codec.text(k): codec.text(v) for k, v in record.items()}, now)
                for name, record in zip(names, records, strict=True)]

    async def warn_if_configured_otherwise(self) -> None:
        """Once registered (at start, and after each reload): say when the live nodes'
        shared configuration differs from this node's. Each node enforces its own
        (limits, quotas, registration ...), so a node started or reloaded with another
        file applies other rules to the same users; ``chatctl nodes`` flags it, but
        only when someone asks."""
        with contextlib.suppress(ChatError):  # Redis silent: only a warning is lost
            rows = await self.nodes()
            if not any(row["node"] == self.node_id for row in rows):
                return
            # The configuration in force now, not the record's: after a reload the
            # record says the new one only from the next beat on.
            mine = self.heartbeat.describe().get("config")
            others = [f"{row['node']} ({row['config']})" for row in rows
                      if row["alive"] and row["node"] != self.node_id
                      and row["config"] != mine]
            if others:
                log.warning("cluster: this node's shared configuration (the sections "
                            "%s: %s) differs from that of %s, so the nodes apply different "
                            "rules: give every node the same sections (chatctl nodes flags "
                            "the odd one)", SECTIONS_NAMED, mine, ", ".join(others))

    def figures(self) -> list[Figure]:
        heartbeat = self.heartbeat
        return [
            Figure("chatd_cluster_nodes_alive", "Nodes whose heartbeat is alive",
                   value=self.janitor.alive),
            Figure("chatd_cluster_heartbeat_age_seconds", "Seconds since this node's "
                   "heartbeat was last refreshed", value=heartbeat.heartbeat_age()),
            Figure("chatd_cluster_stream_lag_seconds", "How far this node's log reader is "
                   "behind the log's newest entry", value=heartbeat.lag_ms / 1000),
            Figure("chatd_cluster_fences", "Times this node found its heartbeat lapsed and "
                   "dropped its sessions", "counter", heartbeat.fences)]


def _row(name: str, record: dict[str, str], now: float) -> dict[str, Any]:
    if not record:
        return {"node": name, "alive": False, "version": None, "addresses": None,
                "connections": None, "lag_ms": None, "age": None, "heartbeat_ms": None,
                "config": None}
    return {"node": name, "alive": True, "version": record.get("version"),
            "addresses": record.get("addresses"),
            "connections": int(record.get("connections", 0)),
            "lag_ms": int(record.get("lag_ms", 0)),
            "age": max(0.0, now - float(record.get("started", now))),
            "heartbeat_ms": max(0, int(now * 1000) - int(record.get("beat", now * 1000))),
            "config": record.get("config")}
