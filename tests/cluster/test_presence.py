"""Presence across nodes, the janitor, the fence and ``chatctl nodes``
(docs/CLUSTER.md, "Presence and nodes"). Three in-process nodes on the tests'
own PostgreSQL and Redis; heartbeats are made quicker than in production."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from chatd.app.app import App
from chatd.client import ChatClient
from chatd.cluster import keys
from chatd.cluster.node import ClusterNode
from chatd.cluster.registry import NodeRegistry
from chatd.config import Config, shared_config_hash
from chatd.domain.accounts import User
from chatd.ops.chatctl import main
from chatd.ops.metrics import start_metrics
from chatd.ops.nodes import describe
from tests.cluster.conftest import StartNode, login, register
from tests.irc.helpers import login as irc_login
from tests.services import RedisServer
from tests.web.helpers import WsChat

pytestmark = pytest.mark.asyncio


def registry(app: App) -> NodeRegistry:
    node = app.nodes
    assert isinstance(node, ClusterNode)
    return node.registry


def quicken(app: App) -> None:
    """A beat every 0.1 s, a record that lasts 0.8 s, a sweep every 0.1 s."""
    node = registry(app)
    node.heartbeat.interval = 0.1
    node.heartbeat.ttl_ms = 800
    node.janitor.interval = 0.1


async def three_nodes(start_node: StartNode, *names: str, **per_node: Any) -> list[App]:
    """Nodes n1..n3 (``per_node``: n3={...} overrides); accounts made on n1 first."""
    first = await start_node(1, **per_node.get("n1", {}))
    await register(first, *names)
    nodes = [first, await start_node(2, **per_node.get("n2", {})),
             await start_node(3, **per_node.get("n3", {}))]
    for app in nodes:
        quicken(app)
    return nodes


async def shown(viewer: ChatClient, name: str, online: bool) -> None:
    """Wait (bounded) until ``viewer``'s node says ``name`` is ``online``."""
    async with asyncio.timeout(10):
        while (await viewer.command(f"/whois {name}"))["online"] != online:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def freeze(app: App) -> str:
    """As if the process were stopped (SIGSTOP): it beats and sweeps no more.
    Its incarnation."""
    node = registry(app)
    await node.heartbeat.halt()
    await node.janitor.stop()
    return node.heartbeat.incarnation


def thaw(app: App) -> None:
    """SIGCONT: its loops run again, late."""
    node = registry(app)
    node.heartbeat.start()
    node.janitor.start()


async def shared(redis_server: RedisServer, ann: int) -> tuple[dict[Any, Any], set[Any]]:
    """ann's sessions hash and the registered nodes, as Redis holds them."""
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        return await client.hgetall(keys.sessions(ann)), set(await client.hkeys(keys.NODES))
    finally:
        await client.aclose()


async def closed_with_notice(client: ChatClient) -> dict[str, Any]:
    """The notice telling ``client`` to reconnect; its connection closes after it."""
    notice = await client.next_event(lambda e: e.get("reconnect"), timeout=10)
    assert notice["type"] == "notice" and "reconnect" in notice["text"]
    assert (await client.next_event(lambda e: e.get("type") == "closed",
                                    timeout=10))["type"] == "closed"
    return notice


async def test_a_login_on_one_node_is_online_on_every_node(start_node: StartNode) -> None:
    nodes = await three_nodes(start_node, "ann", "bob", "cat")
    bob, cat = await login(nodes[1], "bob"), await login(nodes[2], "cat")
    ann = await login(nodes[0], "ann")
    await shown(bob, "ann", True)
    await shown(cat, "ann", True)
    assert nodes[2].services.accounts.require("ann").online
    assert nodes[1].services.presence.users_online == 3
    await ann.command("/logout")
    await shown(bob, "ann", False)
    await shown(cat, "ann", False)
    assert nodes[1].services.presence.users_online == 2
    for client in (ann, bob, cat):
        await client.close()


async def test_a_user_stays_online_while_any_node_holds_a_session(
        start_node: StartNode) -> None:
    nodes = await three_nodes(start_node, "ann", "bob")
    bob = await login(nodes[1], "bob")
    first, second = await login(nodes[0], "ann"), await login(nodes[2], "ann")
    await shown(bob, "ann", True)
    await first.close()
    # Its last session on n1 ended; n1 learns of n3's from the log, n2 too.
    async with asyncio.timeout(10):
        while not nodes[0].services.accounts.require("ann").online:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    assert (await bob.command("/whois ann"))["online"]
    await second.close()
    await shown(bob, "ann", False)
    assert not nodes[0].services.accounts.require("ann").online
    await bob.close()


class Watcher:
    """Records what a node's presence watchers (MONITOR, away-notify) are told."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str]] = []

    def came_online(self, user: User) -> None:
        self.told.append(("online", user.name))

    def went_offline(self, user: User) -> None:
        self.told.append(("offline", user.name))

    def away_changed(self, user: User, text: str) -> None:
        self.told.append(("away", user.name))


async def test_watchers_on_other_nodes_are_told_once(start_node: StartNode) -> None:
    nodes = await three_nodes(start_node, "ann", "bob")
    watcher = Watcher()
    nodes[1].services.presence.watchers.append(watcher)
    bob = await login(nodes[1], "bob")
    ann = await login(nodes[0], "ann")
    again = await login(nodes[2], "ann")  # online already: nobody is told twice
    await shown(bob, "ann", True)
    await ann.close()
    await again.close()
    await shown(bob, "ann", False)
    assert [t for t in watcher.told if t[1] == "ann"] == [("online", "ann"), ("offline", "ann")]
    await bob.close()


async def test_a_node_that_stops_beating_is_buried_by_the_janitor(
        start_node: StartNode, redis_server: RedisServer) -> None:
    nodes = await three_nodes(start_node, "ann", "bob", "cat")
    ann_id = nodes[0].services.accounts.require("ann").id
    bob, cat = await login(nodes[0], "bob"), await login(nodes[2], "cat")
    ann = await login(nodes[1], "ann")
    await shown(bob, "ann", True)
    assert (await shared(redis_server, ann_id))[0] == {b"n2": b"1"}
    await freeze(nodes[1])
    await shown(bob, "ann", False)
    await shown(cat, "ann", False)
    sessions, registered = await shared(redis_server, ann_id)
    assert sessions == {} and registered == {b"n1", b"n3"}
    async with asyncio.timeout(10):
        while registry(nodes[0]).janitor.alive != 2:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    for client in (ann, bob, cat):
        await client.close()


async def test_a_node_back_from_a_pause_drops_its_sessions_and_starts_a_new_life(
        start_node: StartNode, redis_server: RedisServer) -> None:
    nodes = await three_nodes(start_node, "ann", "bob")
    ann_id = nodes[0].services.accounts.require("ann").id
    bob = await login(nodes[0], "bob")
    ann = await login(nodes[1], "ann")
    await shown(bob, "ann", True)
    paused = await freeze(nodes[1])
    await shown(bob, "ann", False)  # buried meanwhile
    thaw(nodes[1])
    await closed_with_notice(ann)
    heartbeat = registry(nodes[1]).heartbeat
    async with asyncio.timeout(10):
        while not heartbeat.registered:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    assert heartbeat.incarnation != paused and heartbeat.fences == 1
    assert registry(nodes[1]).heartbeat.fences == 1
    # Nothing of the old life came back: not in Redis, not on any node.
    sessions, registered = await shared(redis_server, ann_id)
    assert sessions == {} and b"n2" in registered
    assert not nodes[1].services.accounts.require("ann").online
    assert not (await bob.command("/whois ann"))["online"]
    # The client reconnects: online everywhere again.
    await ann.close()
    ann = await login(nodes[1], "ann")
    await shown(bob, "ann", True)
    for client in (ann, bob):
        await client.close()


async def test_users_leaving_after_redis_lost_its_memory_go_offline_everywhere(
        start_node: StartNode, redis_server: RedisServer) -> None:
    # Redis's records of the nodes' lives go with its memory: no down entry will
    # ever end the old lives, so no node may keep their users online.
    nodes = await three_nodes(start_node, "ann", "bob", "cat")
    ann, bob = await login(nodes[0], "ann"), await login(nodes[1], "bob")
    cat = await login(nodes[2], "cat")
    for viewer in (ann, bob, cat):
        for name in ("ann", "bob"):
            await shown(viewer, name, True)
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        await client.flushall()
    finally:
        await client.aclose()
    for told in (ann, bob, cat):
        await told.next_event(lambda e: e.get("epoch") is True, timeout=10)
    await ann.close()
    await bob.close()
    for name in ("ann", "bob"):
        await shown(cat, name, False)
    watcher = await login(nodes[0], "bob")
    await shown(watcher, "ann", False)
    # A user connected since before, on another node, is still shown online.
    await shown(watcher, "cat", True)
    async with asyncio.timeout(10):  # the third node too
        while nodes[1].services.accounts.require("ann").online:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    for left in (cat, watcher):
        await left.close()


async def test_a_node_cut_off_from_redis_past_its_heartbeat_keeps_its_sessions(
        start_node: StartNode, redis_server: RedisServer) -> None:
    """A node that keeps running while Redis does not answer it (a partition) past
    its record's life: the others bury it and show its users offline, but its
    connections stayed up and are real, so none is dropped; once Redis answers, it
    registers a new life with its sessions and its users show online again."""
    nodes = await three_nodes(start_node, "ann", "bob")
    bob = await login(nodes[0], "bob")
    ann = await login(nodes[1], "ann")
    await shown(bob, "ann", True)
    heartbeat = registry(nodes[1]).heartbeat
    life, reachable = heartbeat.incarnation, heartbeat._shared
    # Its heartbeat's client now reaches nothing: a closed loopback port.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        cut_off = redis.asyncio.Redis(port=probe.getsockname()[1])
    heartbeat._shared = cut_off
    try:
        await shown(bob, "ann", False)  # buried by the others meanwhile
    finally:
        heartbeat._shared = reachable
        await cut_off.aclose()
    async with asyncio.timeout(10):
        while heartbeat.incarnation in ("", life):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    await shown(bob, "ann", True)
    assert (await ann.command("/whoami"))["user"] == "ann"  # still logged in, never closed
    assert heartbeat.fences == 0
    await bob.close()
    await ann.close()


class SlowToAnswer:
    """A Redis client whose first script call is answered ``delay`` seconds late
    (a Redis that resumes from a freeze just before the call would time out)."""

    def __init__(self, client: redis.asyncio.Redis, delay: float) -> None:
        self._client = client
        self._delay: float | None = delay

    async def eval(self, *args: Any) -> Any:
        delay, self._delay = self._delay, None
        if delay is not None:
            await asyncio.sleep(delay)
        return await self._client.eval(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


async def test_a_registration_answered_late_does_not_fence_the_node(
        start_node: StartNode, redis_server: RedisServer) -> None:
    """Redis back from an outage answers the node's registration late: the node
    ran all along, so it keeps its sessions. (A registration waited its record's
    whole life for an answer, so one answered near the end left a deadline the
    next beat had already missed, and the node dropped its sessions as if it had
    been paused.)"""
    nodes = await three_nodes(start_node, "ann", "bob")
    bob = await login(nodes[0], "bob")
    ann = await login(nodes[1], "ann")
    await shown(bob, "ann", True)
    heartbeat = registry(nodes[1]).heartbeat
    reachable = heartbeat._shared
    life = heartbeat.incarnation
    heartbeat._end_life()  # as after an outage: the loop registers again
    heartbeat._shared = SlowToAnswer(reachable, 0.75)  # type: ignore[assignment]
    try:
        async with asyncio.timeout(10):
            while heartbeat.incarnation in ("", life):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # a few beats
    finally:
        heartbeat._shared = reachable
    assert heartbeat.fences == 0
    assert (await ann.command("/whoami"))["user"] == "ann"  # never closed
    await shown(bob, "ann", True)
    await bob.close()
    await ann.close()


async def test_a_node_whose_record_holds_another_life_is_fenced(
        start_node: StartNode, redis_server: RedisServer) -> None:
    nodes = await three_nodes(start_node, "ann", "bob")
    bob = await login(nodes[0], "bob")
    ann = await login(nodes[2], "ann")
    await shown(bob, "ann", True)
    shared_redis = redis.asyncio.Redis.from_url(redis_server.url)
    await shared_redis.hset(keys.node("n3"), "inc", "another-life")
    await shared_redis.aclose()
    notice = await closed_with_notice(ann)
    assert "another life" in notice["text"]
    await shown(bob, "ann", False)
    assert registry(nodes[2]).heartbeat.fences == 1
    for client in (ann, bob):
        await client.close()


async def test_a_fenced_node_closes_its_websockets_as_going_away(
        start_node: StartNode, redis_server: RedisServer) -> None:
    """A fenced node leaves its clients as a server shutting down does: after the
    notice to reconnect, its WebSocket's close says 1001, going away (RFC 6455
    §7.4.1), not 1000, so a client (the web client) reconnects."""
    nodes = await three_nodes(start_node, "ann", "bob",
                              n3={"web__enabled": True, "web__port": 0})
    bob = await login(nodes[0], "bob")
    ann = await WsChat.open(nodes[2])
    await ann.login("ann")
    await shown(bob, "ann", True)
    shared_redis = redis.asyncio.Redis.from_url(redis_server.url)
    await shared_redis.hset(keys.node("n3"), "inc", "another-life")
    await shared_redis.aclose()
    notice = (await ann.until(lambda r: r.get("reconnect"), timeout=10))[-1]
    assert "lost its place in the cluster" in notice["text"]
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await ann.record(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert registry(nodes[2]).heartbeat.fences == 1
    await bob.close()


async def test_a_node_that_stops_tells_the_others_at_once(start_node: StartNode) -> None:
    nodes = await three_nodes(start_node, "ann", "bob")
    for app in nodes:  # no janitor could be the one to bury it
        await registry(app).janitor.stop()
    bob, ann = await login(nodes[0], "bob"), await login(nodes[1], "ann")
    await shown(bob, "ann", True)
    await nodes[1].stop()
    await shown(bob, "ann", False)
    rows = await registry(nodes[0]).nodes()
    assert [row["node"] for row in rows] == ["n1", "n3"]
    for client in (ann, bob):
        await client.close()


async def test_chatctl_nodes_lists_every_node_and_flags_the_odd_ones(
        start_node: StartNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    socket = str(tmp_path / "n1.sock")
    nodes = await three_nodes(start_node, "ann", n1={"control__path": socket},
                              n3={"limits__message_rate": 1.0})
    second = nodes[1]
    registry(second).heartbeat.describe = lambda: {**describe(second), "version": "9.9.9"}
    ann = await login(nodes[0], "ann")
    await nodes[0].control.start()
    try:
        async with asyncio.timeout(10):  # n2's next beat carries its version
            while "9.9.9" not in {r["version"] for r in await registry(nodes[0]).nodes()}:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert await asyncio.to_thread(main, ["--socket", socket, "--json", "nodes"]) == 0
        answer = json.loads(capsys.readouterr().out)
        rows = {row["node"]: row for row in answer["nodes"]}
        assert answer["this"] == "n1" and sorted(rows) == ["n1", "n2", "n3"]
        assert [rows[n]["flag"] for n in ("n1", "n2", "n3")] == ["", "!", "!"]
        assert rows["n1"]["connections"] == 1 and rows["n1"]["addresses"]
        assert all(row["alive"] and row["lag_ms"] >= 0 for row in rows.values())
        assert len(answer["warnings"]) == 2
        assert await asyncio.to_thread(main, ["--socket", socket, "nodes"]) == 0
        shown_text = capsys.readouterr().out
        assert "! n2 runs version 9.9.9" in " ".join(shown_text.split())
        assert "! n3 has another shared configuration" in " ".join(shown_text.split())
        assert "n1 *" in shown_text
    finally:
        await nodes[0].control.stop()
        await ann.close()


class _Unlike:
    """A value unlike any other: put in a section, it changes that section's data."""

    def __repr__(self) -> str:
        return f"unlike-{id(self)}"


def _sections_hashed(config: Config) -> set[str]:
    """The sections whose change changes the shared configuration's hash, found by
    changing each section's first setting in turn."""
    hashed = set()
    for section in dataclasses.fields(config):
        value = getattr(config, section.name)
        first = dataclasses.fields(value)[0].name
        changed = dataclasses.replace(value, **{first: _Unlike()})
        if (shared_config_hash(dataclasses.replace(config, **{section.name: changed}))
                != shared_config_hash(config)):
            hashed.add(section.name)
    return hashed


async def test_the_warning_of_another_shared_configuration_names_the_sections_hashed(
        start_node: StartNode, caplog: pytest.LogCaptureFixture) -> None:
    await start_node(1)
    with caplog.at_level(logging.WARNING, logger="chatd.cluster.registry"):
        odd = await start_node(2, limits__message_rate=1.0)
    [warning] = [record.getMessage() for record in caplog.records
                 if "shared configuration" in record.getMessage()]
    said = re.search(r"\(the sections ([a-z, ]+): ([0-9a-f]+)\)", warning)
    assert said is not None, warning
    named = set(re.split(r", | and ", said[1]))
    assert named == _sections_hashed(odd.services.config), warning
    assert said[2] == shared_config_hash(odd.services.config)


async def test_chatctl_rooms_counts_the_members_online_on_other_nodes(
        start_node: StartNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # ann on n1, bob and cat on n2, all in #den: n1's own connections alone would
    # show the room nearly empty to the operator asking n1.
    socket = str(tmp_path / "n1.sock")
    first = await start_node(1, control__path=socket)
    await register(first, "ann", "bob", "cat")
    second = await start_node(2)
    ann = await login(first, "ann")
    assert (await ann.command("/create den")).ok
    others = [await login(second, name) for name in ("bob", "cat")]
    for other in others:
        assert (await other.command("/join den")).ok
    await first.control.start()
    try:
        await shown(ann, "cat", online=True)
        assert await asyncio.to_thread(main, ["--socket", socket, "--json", "rooms"]) == 0
        [den] = json.loads(capsys.readouterr().out)
        assert (den["name"], den["members"], den["online"], den["elsewhere"]) == \
            ("den", 3, 1, 2)
    finally:
        await first.control.stop()
        for client in (ann, *others):
            await client.close()


async def test_chatctl_nodes_while_redis_does_not_answer_is_busy(
        start_node: StartNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The nodes are Redis's to list: while it does not answer, chatctl says so with
    busy, not internal-error."""
    control = str(tmp_path / "n1.sock")
    first = await start_node(1, control__path=control)
    node = registry(first)
    reachable = node._shared
    with socket.socket() as probe:  # a closed loopback port: Redis refuses
        probe.bind(("127.0.0.1", 0))
        cut_off = redis.asyncio.Redis(port=probe.getsockname()[1])
    node._shared = cut_off
    await first.control.start()
    try:
        assert await asyncio.to_thread(main, ["--socket", control, "nodes"]) == 1
        said = capsys.readouterr().err
        assert said.startswith("chatctl: busy: ") and "Redis" in said, said
    finally:
        await first.control.stop()
        node._shared = reachable
        await cut_off.aclose()


async def test_the_metrics_carry_the_cluster_figures(start_node: StartNode) -> None:
    nodes = await three_nodes(start_node)
    server = start_metrics(nodes[0], "127.0.0.1", 0)

    def scrape() -> dict[str, float]:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
        return {sample.name: sample.value for family in text_string_to_metric_families(text)
                for sample in family.samples if sample.name.startswith("chatd_cluster_")}

    try:
        async with asyncio.timeout(10):  # every node counted at the next sweep
            while (figures := await asyncio.to_thread(scrape))[  # noqa: ASYNC110
                    "chatd_cluster_nodes_alive"] != 3:
                await asyncio.sleep(0.05)
        assert figures["chatd_cluster_fences_total"] == 0
        assert 0 <= figures["chatd_cluster_heartbeat_age_seconds"] < 5
        assert figures["chatd_cluster_stream_lag_seconds"] >= 0
    finally:
        server.shutdown()
        server.server_close()


async def test_irc_monitor_hears_of_a_login_on_another_node(start_node: StartNode) -> None:
    first = await start_node(1)
    await register(first, "ann", "bob")
    second = await start_node(2, irc__enabled=True, irc__port=0)
    assert second.irc is not None
    bob = await irc_login(second.irc.port, "bob")
    try:
        bob.send("MONITOR + ann")
        assert (await bob.expect("731")).params[1] == "ann"
        ann = await login(first, "ann")
        assert (await bob.expect("730", timeout=10)).params[1].startswith("ann!")
        bob.send("WHOIS ann")
        whois = await bob.until("318")
        assert [m.params[1] for m in whois if m.command == "311"] == ["ann"]
        assert not [m for m in whois if m.command == "301"]  # not "away: offline"
        await ann.close()
        assert (await bob.expect("731", timeout=10)).params[1] == "ann"
    finally:
        await bob.close()


async def test_a_node_on_a_redis_numbering_another_database_leaves_no_trace_there(
        start_node: StartNode, redis_server: RedisServer) -> None:
    """Redis lost its data and another database's nodes seeded it first: this node
    neither posts nor reads there, yet it registered again in their cluster, listed
    in their nodes, with its users' sessions counted under ids that are other users
    of theirs. It withdraws and tells its users to reconnect, and stays out."""
    app = await start_node(1)
    quicken(app)
    await register(app, "ann")
    ann = await login(app, "ann")
    ann_id = app.services.accounts.require("ann").id
    assert await shared(redis_server, ann_id) == ({b"n1": b"1"}, {b"n1"})
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        pipe = client.pipeline(transaction=True)
        pipe.flushall()
        pipe.set(keys.EPOCH, "theirs").set(keys.COUNTER, 1000).set(keys.EPOCH_FIRST, 0)
        pipe.set(keys.DATABASE, "another")
        await pipe.execute()
        await closed_with_notice(ann)
        await ann.close()
        ann = await login(app, "ann")  # here again: still nothing of it there
        for _ in range(5):  # several beats: never registered again meanwhile
            assert await shared(redis_server, ann_id) == ({}, set())
            assert not await client.exists(keys.node("n1"))
            await asyncio.sleep(registry(app).heartbeat.interval)
        await ann.close()
    finally:
        await client.aclose()
