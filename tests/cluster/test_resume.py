"""/resume across nodes: a client that was on one node resumes on another with
no gap, messages the other nodes delivered but did not write yet included
(docs/CLUSTER.md, "Resuming")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

from chatd.app.app import App
from chatd.client import ChatClient
from storage.postgres.copy import copy_database
from tests.cluster.conftest import login
from tests.cluster.test_nodes import members_on_every_node
from tests.cluster.test_persister import persister_of
from tests.helpers import PASSWORD, start_server
from tests.services import RedisServer

pytestmark = pytest.mark.asyncio

USERS = ("ann", "bob", "cat")


@pytest.fixture
async def nodes(tmp_path: Path, postgres_url: str,
                redis_server: RedisServer) -> AsyncIterator[list[App]]:
    """Three nodes whose persisters are stopped: what they deliver is not in
    PostgreSQL until a test starts them again."""
    redis.Redis.from_url(redis_server.url).flushall()
    started: list[App] = []
    for n in (1, 2, 3):
        app = await start_server(tmp_path / f"n{n}.db", cluster__enabled=True,
                                 cluster__node_id=f"n{n}", cluster__postgres=postgres_url,
                                 cluster__redis=redis_server.url)
        started.append(app)
        await persister_of(app).stop()
        if n == 1:
            for name in USERS:
                client = await ChatClient.connect("127.0.0.1", app.port)
                await client.command(f"/register {name} {PASSWORD}")
                await client.close()
    yield started
    for app in started:
        await app.stop()


async def stored(nodes: list[App], message_id: int) -> None:
    """Start the persisters again, and wait (bounded) until ``message_id`` is stored."""
    for app in nodes:
        await persister_of(app).start()
    async with asyncio.timeout(10):
        while await nodes[0].storage.max_message_id() < message_id:  # noqa: ASYNC110 - polls the database
            await asyncio.sleep(0.02)


async def test_a_client_resumes_on_another_node_with_no_gap(nodes: list[App]) -> None:
    ann, bob, cat = await members_on_every_node(nodes, "lobby")
    last = (await ann.command("/say lobby before"))["id"]
    await ann.close()
    missed = [(await bob.command("/say lobby from node 2"))["id"],
              (await cat.command("/say lobby from node 3"))["id"],
              (await bob.command("/msg ann a direct one from node 2"))["id"],
              (await bob.command("/say lobby again from node 2"))["id"]]
    # Nothing stored them yet: they can only come from the log's tail.
    assert await nodes[0].storage.max_message_id() < min(missed)
    # Once cat saw the last, its node placed them all: a resume there replays what
    # is placed (a message acknowledged and not placed yet would come live).
    await cat.next_event(lambda e: e.get("id") == missed[-1], timeout=10)
    back = await login(nodes[2], "ann")
    reply = await back.command(f"/resume {last}")
    replayed = [m for m in reply.lines if m.get("type") == "message"]
    assert [m["id"] for m in replayed] == sorted(missed)
    assert [m.get("room") or m.get("to") for m in replayed] == ["lobby", "lobby", "ann", "lobby"]
    assert reply.final["recovered"] is True
    # Stored or not, each comes once: once the persisters stored them, the same answer.
    await stored(nodes, max(missed))
    again = await back.command(f"/resume {last}")
    assert [m["id"] for m in again.lines if m.get("type") == "message"] == sorted(missed)
    for client in (back, bob, cat):
        await client.close()


async def test_resuming_from_an_id_the_cluster_never_issued(nodes: list[App]) -> None:
    ann = await login(nodes[0], "ann")
    reply = await ann.command("/resume 999999999999")
    assert reply.final["recovered"] is False
    assert "another server or epoch" in reply.final["reasons"][0]
    assert reply.final["last_id"] < 999999999999  # the cluster's latest, to go on from
    await ann.close()


async def test_resuming_from_before_the_counters_epoch_is_not_recovered(
        nodes: list[App], tmp_path: Path, postgres_url: str,
        redis_server: RedisServer) -> None:
    ann = await login(nodes[0], "ann")
    await ann.command("/create hall")
    last = (await ann.command("/say hall one"))["id"]
    await ann.close()
    await stored(nodes, last)
    # Redis loses its memory; the next node to start seeds a new epoch.
    shared = redis.asyncio.Redis.from_url(redis_server.url)
    await shared.flushall()
    await shared.aclose()
    fresh = await start_server(tmp_path / "n4.db", cluster__enabled=True, cluster__node_id="n4",
                               cluster__postgres=postgres_url, cluster__redis=redis_server.url)
    try:
        back = await login(fresh, "ann")
        reply = await back.command(f"/resume {last}")
        assert reply.final["recovered"] is False
        assert "started again" in reply.final["reasons"][0]
        await back.close()
    finally:
        await fresh.stop()


async def test_resuming_from_before_a_migration_is_recovered(
        tmp_path: Path, postgres_url: str, redis_server: RedisServer) -> None:
    # A database migrated from embedded mode holds every message of its past: the
    # first epoch casts no doubt on them (nothing was ever in a log unstored).
    embedded = await start_server(tmp_path / "embedded.db")
    try:
        ann = await ChatClient.connect("127.0.0.1", embedded.port)
        await ann.command(f"/register ann {PASSWORD}")
        await ann.command("/create hall")
        ids = [(await ann.command(f"/say hall old {n}"))["id"] for n in range(3)]
        await ann.close()
    finally:
        await embedded.stop()
    await copy_database(str(tmp_path / "embedded.db"), postgres_url)
    redis.Redis.from_url(redis_server.url).flushall()
    node = await start_server(tmp_path / "n1.db", cluster__enabled=True, cluster__node_id="n1",
                              cluster__postgres=postgres_url, cluster__redis=redis_server.url)
    try:
        back = await login(node, "ann")
        reply = await back.command(f"/resume {ids[0]}")
        assert reply.final["recovered"] is True, reply.final
        assert [m["id"] for m in reply.lines if m.get("type") == "message"] == ids[1:]
        await back.close()
    finally:
        await node.stop()


async def test_a_blocked_senders_stored_message_does_not_hide_the_cap(
        tmp_path: Path, postgres_url: str, redis_server: RedisServer) -> None:
    """Two nodes that store at once, a cap of 2: ann blocks bob, whose direct
    message to her is the first stored one of her gap. Left out, it must not
    make the cap look unreached while a message past it was never read."""
    redis.Redis.from_url(redis_server.url).flushall()
    pair = [await start_server(tmp_path / f"n{n}.db", cluster__enabled=True,
                               cluster__node_id=f"n{n}", cluster__postgres=postgres_url,
                               cluster__redis=redis_server.url, rooms__resume_max=2)
            for n in (1, 2)]
    clients: list[ChatClient] = []
    try:
        for name in USERS:
            clients.append(await ChatClient.connect("127.0.0.1", pair[0].port))
            await clients[-1].command(f"/register {name} {PASSWORD}")
        ann, bob, cat = await members_on_every_node([*pair, pair[1]], "lobby")
        clients += [ann, bob, cat]
        last = (await ann.command("/say lobby before"))["id"]
        await ann.close()
        await bob.command("/msg ann psst")
        said = [(await cat.command(f"/say lobby {n}"))["id"] for n in range(3)]
        async with asyncio.timeout(10):  # read from PostgreSQL, not the log's tail
            while await pair[0].storage.max_message_id() < said[-1]:  # noqa: ASYNC110 - polls the database
                await asyncio.sleep(0.02)
        clients.append(back := await login(pair[1], "ann"))
        await back.command("/block bob")
        first = await back.command(f"/resume {last}")
        assert [m["id"] for m in first.lines if m.get("type") == "message"] == said[:2]
        assert first.final["recovered"] is False and first.final["more"] is True
        rest = await back.command(f"/resume {first.final['last_id']}")
        assert [m["id"] for m in rest.lines if m.get("type") == "message"] == said[2:]
        assert rest.final["recovered"] is True
    finally:
        for client in clients:
            await client.close()
        for app in pair:
            await app.stop()
