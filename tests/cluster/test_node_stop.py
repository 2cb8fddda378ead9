"""A cluster node's stop closes every connection it owns, even when a step of it
fails or is cut short (docs/CLUSTER.md, "Stopping a node")."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

import pytest
import redis.asyncio

from chatd.cluster import keys
from chatd.cluster.limits import bucket_key
from chatd.cluster.node import ClusterNode
from chatd.domain.limits import Kind
from chatd.domain.names import name_key
from tests.cluster.conftest import StartNode
from tests.services import RedisServer

pytestmark = pytest.mark.asyncio

# How long Redis holds writes back: under the shared store's own wait (0.5 s).
WRITES_HELD_MS = 300


async def clients_but(shared: redis.asyncio.Redis, own: int) -> list[dict[str, Any]]:
    """The Redis server's clients, but the one with id ``own``."""
    listed: Any = await shared.client_list()
    return [c for c in listed if int(c["id"]) != own]


async def test_a_stop_cut_short_while_redis_does_not_answer_leaves_no_connection_open(
        start_node: StartNode, redis_server: RedisServer,
        caplog: pytest.LogCaptureFixture) -> None:
    node = await start_node(1)
    cluster = node.nodes
    assert isinstance(cluster, ClusterNode) and cluster.bus is not None
    os.kill(redis_server.pid, signal.SIGSTOP)
    try:
        # Every part's loop waits on Redis now: the node's stop is cut short by its
        # time at the first of them, before the log's reader is stopped.
        with caplog.at_level(logging.ERROR, logger="chatd.app.app"):
            await node.stop(timeout=0.2)
    finally:
        os.kill(redis_server.pid, signal.SIGCONT)
    assert "the cluster node did not stop within" in caplog.text
    assert not cluster.bus.reading
    shared = redis.asyncio.Redis.from_url(redis_server.url, single_connection_client=True)
    try:
        own = int(await shared.client_id())
        # A connection closed while Redis was stopped goes once Redis reads again:
        # waited for (bounded); one the node left open stays for good.
        left = await clients_but(shared, own)
        for _ in range(50):
            if not left:
                break
            await asyncio.sleep(0.05)
            left = await clients_but(shared, own)
        assert left == []
    finally:
        await shared.aclose()


async def test_the_stop_waits_for_a_housekeeping_pass_it_cut_short_to_give_its_lead_back(
        start_node: StartNode, shared: redis.asyncio.Redis, postgres_url: str) -> None:
    # The pass gives its lead back through the node's Redis client on its way out:
    # done after the stop returned, it opened a connection the node had closed
    # already, which nobody closed again (the garbage collector's warning then
    # failed whichever test was running).
    import asyncpg

    node = await start_node(1, housekeeping__interval=0.05)
    blocker = await asyncpg.connect(postgres_url)
    held = blocker.transaction()
    await held.start()
    try:
        # The next pass waits for this lock, at its second job, holding the lead.
        await blocker.execute("LOCK TABLE invitations IN ACCESS EXCLUSIVE MODE")
        async with asyncio.timeout(10):
            while not await blocked_on_the_lock(blocker):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert await shared.exists(keys.lead("housekeeping"))
        await node.housekeeping.stop()
        assert not await shared.exists(keys.lead("housekeeping"))
    finally:
        await held.rollback()
        await blocker.close()


async def blocked_on_the_lock(blocker: Any) -> bool:
    """Whether a session of the database waits for a lock ``blocker`` holds."""
    waiting = await blocker.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
        blocker.get_server_pid())
    return bool(waiting)


async def test_a_login_charge_given_back_just_before_the_stop_reaches_redis(
        start_node: StartNode, shared: redis.asyncio.Redis) -> None:
    # A give-back is sent aside, with nothing waiting for it. Redis holds writes
    # back for a moment (longer than this stop's own time): the stop must wait
    # for it rather than close the client it is on its way through. Housekeeping
    # is stopped first: its stop gives its lead back through Redis, and would
    # wait out the pause for every step after it.
    node = await start_node(1)
    await node.housekeeping.stop()
    protection = node.services.protection
    peer, name = "192.0.2.7", "alice"
    bucket = bucket_key(Kind.LOGIN_NAME, name_key(name), *protection.rate(Kind.LOGIN_NAME))
    await protection.admit_login(peer, name)  # the name's token, taken in Redis
    assert await shared.exists(bucket)
    await shared.execute_command("CLIENT", "PAUSE", str(WRITES_HELD_MS), "WRITE")
    protection.login_ended(peer, name, failed=False)
    await node.stop(timeout=0.1)
    # Given back, the bucket is full again: a full bucket is no key at all.
    assert not await shared.exists(bucket)
