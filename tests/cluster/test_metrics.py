"""The cluster's metrics, read through the real /metrics endpoint of a node."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

from chatd.domain.events import Banned
from tests.backends import import_asyncpg
from tests.helpers import Clients
from tests.operations import running_daemon
from tests.operations.test_metrics import Samples, scrape, value
from tests.services import RedisServer

import_asyncpg()
pytestmark = pytest.mark.asyncio

# Every reason CLUSTER.md's monitoring table names.
REASONS = ("busy", "banned", "muted", "not-in-room", "no-such-room", "moderated",
           "not-permitted")


def dead_redis() -> redis.asyncio.Redis:
    """A client of a port nothing listens on: Redis not answering."""
    return redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)


def refusals(samples: Samples) -> dict[str, float]:
    return {reason: value(samples, "chatd_cluster_refusals_total", reason=reason)
            for reason in REASONS}


async def persisted(node: Any, count: int) -> Samples:
    """The node's metrics once its persister stored at least ``count`` messages."""
    async with asyncio.timeout(10):
        while True:
            samples = await scrape(node)
            if value(samples, "chatd_persisted_total") >= count:
                return samples
            await asyncio.sleep(0.05)


async def test_cluster_metrics_move_with_activity(tmp_path: Path, postgres_url: str,
                                                  redis_server: RedisServer) -> None:
    redis.Redis.from_url(redis_server.url).flushall()
    async with running_daemon(tmp_path, metrics__enabled=True, metrics__port=0,
                              cluster__enabled=True, cluster__node_id="n1",
                              cluster__postgres=postgres_url, cluster__redis=redis_server.url,
                              backup__interval=0) as node:
        before = await scrape(node)
        assert refusals(before) == dict.fromkeys(REASONS, 0.0)
        # Exported from the start, not only once one happened: a rate graphs at once.
        assert [reason for reason in REASONS if ("chatd_cluster_refusals_total",
                                                 (("reason", reason),)) not in before] == []
        for name in ("chatd_cluster_entries_delivered_total",
                     "chatd_cluster_sequencer_batches_total",
                     "chatd_cluster_poster_batches_total",
                     "chatd_cluster_sequencer_refused_total",
                     "chatd_cluster_transaction_seconds_count",
                     "chatd_cluster_transaction_seconds_sum"):
            assert (name, ()) in before, name
        clients = Clients(node)
        try:
            ann, bob = await clients.user("ann"), await clients.user("bob")
            await ann.command("/create hall")
            await bob.command("/join hall")
            for n in range(3):
                await ann.command(f"/say hall hello {n}")
            during = await persisted(node, 3)
            services: Any = node.services
            # A ban the log ordered before bob's post, which his node's memory
            # has not applied yet: the post meets it at the gate.
            room = services.rooms.require("hall")
            services.bus.gate.apply(room.id, Banned("hall", "bob", "ann"))
            gated = await bob.command("/say hall still here?", check=False)
            # Redis not answering the poster (charge, id and log in one call): refused.
            poster, shared = services.messaging.poster, services.messaging.poster._shared
            poster._shared = dead_redis()
            unnumbered = await ann.command("/say hall one", check=False)
            await poster._shared.aclose()
            poster._shared = shared
            # Redis not taking the entry of a direct message (numbered, then
            # appended): the numbered message is refused.
            bus, shared = services.bus, services.bus._shared
            bus._shared = dead_redis()
            unpublished = await ann.command("/msg bob two", check=False)
            await bus._shared.aclose()
            bus._shared = shared
            after = await scrape(node)
        finally:
            await clients.close()
    assert [gated["code"], unnumbered["code"], unpublished["code"]] == \
        ["banned", "busy", "busy"]
    delivered = "chatd_cluster_entries_delivered_total"
    assert value(during, delivered) - value(before, delivered) >= 3
    for batches in ("chatd_cluster_sequencer_batches_total",
                    "chatd_cluster_poster_batches_total"):
        assert value(during, batches) > value(before, batches), batches
    decisions = "chatd_cluster_transaction_seconds_count"
    assert value(during, decisions) - value(before, decisions) >= 1
    assert value(during, "chatd_cluster_transaction_seconds_sum") > 0
    # Each stored message's lag, from its append to its acknowledgement (a summary,
    # on Redis's clock): the messages only, not the room's events.
    lagged = value(during, "chatd_persist_lag_seconds_count")
    assert lagged == value(during, "chatd_persisted_total") >= 3
    assert value(during, "chatd_persist_lag_seconds_sum") > 0
    assert refusals(after) == dict.fromkeys(REASONS, 0.0) | {"busy": 1.0, "banned": 1.0}
    assert value(after, "chatd_cluster_sequencer_refused_total") == 1
    node._metrics.server_close()


async def test_an_embedded_daemon_exports_no_cluster_metrics(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, metrics__enabled=True, metrics__port=0) as daemon:
        samples = await scrape(daemon)
    assert not [name for name, _ in samples if name.startswith("chatd_cluster_")]
    daemon._metrics.server_close()
