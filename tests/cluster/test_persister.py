"""History in cluster mode: the consumer group ``persist`` stores the messages of
the log, nothing acknowledged is lost when a node, PostgreSQL or Redis goes
away (docs/CLUSTER.md). In-process nodes on the tests' own PostgreSQL and Redis;
PostgreSQL is frozen (SIGSTOP) and Redis restarted by their process ids."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

from chatd.app.app import App
from chatd.client import ChatClient
from chatd.cluster import codec, keys, persister, transactions
from chatd.cluster.persister import Persister, appended_at, backlog_of, record_of
from chatd.cluster.tail import LogTail
from chatd.domain.events import Message
from chatd.errors import Code
from storage.api import DATABASE_META
from storage.postgres import PostgresStorage
from storage.records import MessageRecord
from tests.backends import PostgresDatabases
from tests.cluster.conftest import StartNode, login, register
from tests.cluster.test_nodes import known_everywhere
from tests.helpers import PASSWORD, start_server
from tests.services import PostgresServer, RedisServer

pytestmark = pytest.mark.asyncio

USERS = ("ann", "bob", "cat")


@pytest.fixture
def fast_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorter waits for a database away, so the refusals come within a second."""
    monkeypatch.setattr("storage.postgres.storage.FAST_COMMAND_TIMEOUT", 1.0)
    monkeypatch.setattr("storage.postgres.storage.FAST_CONNECT_TIMEOUT", 1.0)
    monkeypatch.setattr("chatd.cluster.node.PG_TIMEOUT", 1.0)
    monkeypatch.setattr(transactions, "LOCK_WAIT", 1.0)


@pytest.fixture
async def nodes(start_node: StartNode, fast_failures: None) -> list[App]:
    """Two nodes; the accounts are made on the first before the second starts."""
    first = await start_node(1)
    await register(first, *USERS)
    return [first, await start_node(2)]


def persister_of(app: App) -> Persister:
    found: Any = app.services.writer
    return found._persister  # type: ignore[no-any-return]


async def until(condition: Callable[[], Any], seconds: float = 15) -> None:
    """Wait (bounded) until ``condition()`` (which may be a coroutine) is true."""
    async with asyncio.timeout(seconds):
        while True:
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)


async def stored_texts(app: App, room_id: int) -> list[str]:
    return [m.text for m in await app.storage.room_history(room_id, 1000)]


async def room_with(nodes: list[App], name: str) -> tuple[ChatClient, ChatClient, int]:
    """ann on the first node and bob on the second, both in room ``name``."""
    ann, bob = await login(nodes[0], "ann"), await login(nodes[1], "bob")
    await ann.command(f"/create {name}")
    await known_everywhere(nodes, name)
    await bob.command(f"/join {name}")
    room = nodes[0].services.rooms.find(name)
    assert room is not None
    return ann, bob, room.id


async def test_a_dead_nodes_acknowledged_messages_are_stored_by_another(
        nodes: list[App]) -> None:
    ann, bob, room_id = await room_with(nodes, "lobby")
    for app in nodes:
        await persister_of(app).stop()
    sent = [await bob.command(f"/say lobby from n2 {n}") for n in range(5)]
    assert all(reply["id"] > 0 for reply in sent)  # acknowledged
    # The second node's consumer takes them, then dies before storing them.
    shared = redis.asyncio.Redis.from_url(_url_of(nodes[0]))
    taken = await shared.xreadgroup(keys.PERSIST, "n2", {keys.LOG: ">"}, count=1000)
    assert taken
    died = time.monotonic()
    await nodes[1].stop()
    nodes.remove(nodes[1])
    await persister_of(nodes[0]).start()
    texts = [f"from n2 {n}" for n in range(5)]
    await until(lambda: _has(stored_texts(nodes[0], room_id), texts))
    took = time.monotonic() - died
    logging.getLogger(__name__).info("a dead node's messages stored in %.1f s", took)
    assert (await shared.xpending(keys.LOG, keys.PERSIST))["pending"] == 0
    assert persister_of(nodes[0]).stored >= 5  # the first node's consumer took them over
    await shared.aclose()
    await ann.close()
    await bob.close()


async def _has(texts: Any, wanted: list[str]) -> bool:
    got = await texts
    return all(text in got for text in wanted)


def _url_of(app: App) -> str:
    return str(app.services.config.cluster.redis)


async def test_an_item_no_node_can_read_is_skipped_and_the_log_flows_on(
        nodes: list[App]) -> None:
    # A damaged item (or one of a newer format): every reader and persister says so
    # and goes on; the persister acknowledges it rather than claim it for ever.
    ann, bob, room_id = await room_with(nodes, "odd")
    shared = redis.asyncio.Redis.from_url(_url_of(nodes[0]))
    await shared.xadd(keys.LOG, {"b": b"[{not json"})
    sent = await ann.command("/say odd after the odd item")
    got = await bob.next_event(lambda e: e.get("type") == "message", timeout=10)
    assert got["id"] == sent["id"]
    await until(lambda: _has(stored_texts(nodes[0], room_id), ["after the odd item"]))
    await until(lambda: _backlog_empty(shared))
    await shared.aclose()
    await ann.close()
    await bob.close()


async def test_a_node_decodes_an_item_once_for_its_bus_and_its_persister(
        nodes: list[App]) -> None:
    ann, bob, room_id = await room_with(nodes, "once")
    shared = redis.asyncio.Redis.from_url(_url_of(nodes[0]))
    await until(lambda: _backlog_empty(shared))  # what the set-up appended is done
    await shared.aclose()
    buses = [app.nodes.bus for app in nodes]  # type: ignore[attr-defined]
    before = sum(bus.items.shared for bus in buses)
    texts = [f"decoded once {n}" for n in range(10)]
    for text in texts:
        await ann.command(f"/say once {text}")  # one item each
    await until(lambda: _has(stored_texts(nodes[0], room_id), texts))
    # Every item a persister stored, its node's bus read too: one of them decoded it.
    assert sum(bus.items.shared for bus in buses) - before >= len(texts)
    await ann.close()
    await bob.close()


async def test_the_same_entry_twice_is_stored_once(nodes: list[App]) -> None:
    ann, bob, room_id = await room_with(nodes, "echo")
    said = await ann.command("/say echo once only")
    await until(lambda: _has(stored_texts(nodes[0], room_id), ["once only"]))
    shared = redis.asyncio.Redis.from_url(_url_of(nodes[0]))
    entries = await shared.xrevrange(keys.LOG, count=50)
    copy = next(fields for _, fields in entries if said["id"] in _stored_ids(fields))
    await shared.xadd(keys.LOG, copy)  # the same entry again (a retry, a second claim)
    await until(lambda: _backlog_empty(shared))
    await ann.command("/say echo afterwards")  # stored after the copy: the copy is done
    await until(lambda: _has(stored_texts(nodes[0], room_id), ["afterwards"]))
    stored = await nodes[0].storage.room_history(room_id, 100)
    assert [m.text for m in stored].count("once only") == 1
    assert sum(p.stored for p in map(persister_of, nodes)) == 2
    await shared.aclose()
    await ann.close()
    await bob.close()


def _stored_ids(fields: dict[bytes, bytes]) -> list[int]:
    """The ids of the messages to be stored that an item of the log carries."""
    return [record.id for record in map(record_of, codec.entries_of(fields))
            if record is not None]


async def _backlog_empty(shared: redis.asyncio.Redis) -> bool:
    return backlog_of(await shared.xinfo_groups(keys.LOG)) == 0


async def test_history_shows_acknowledged_messages_not_stored_yet(nodes: list[App]) -> None:
    ann, bob, room_id = await room_with(nodes, "fresh")
    for app in nodes:
        await persister_of(app).stop()
    sent = await ann.command("/say fresh not stored yet")
    direct = await ann.command("/msg bob a direct word")
    assert "not stored yet" not in await stored_texts(nodes[0], room_id)
    for client in (ann, bob):
        history = await client.command("/history fresh")
        assert [m["text"] for m in history["messages"]][-1:] == ["not stored yet"]
        assert history["messages"][-1]["id"] == sent["id"]
    services = nodes[1].services
    bob_user, ann_user = (services.accounts.find(n) for n in ("bob", "ann"))
    assert bob_user is not None and ann_user is not None
    talk = await services.messaging.conversation(bob_user, ann_user, 10)
    assert [(m.id, m.text) for m in talk] == [(direct["id"], "a direct word")]
    for app in nodes:
        await persister_of(app).start()
    await until(lambda: _has(stored_texts(nodes[0], room_id), ["not stored yet"]))
    history = await bob.command("/history fresh")
    assert [m["text"] for m in history["messages"]].count("not stored yet") == 1
    await ann.close()
    await bob.close()


def _processes_of(server: PostgresServer) -> list[int]:
    """The postmaster and its children (each connection has one)."""
    pids = [server.pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == server.pid:
                    pids.append(int(entry))
    return pids


@contextlib.contextmanager
def frozen(server: PostgresServer) -> Iterator[None]:
    """PostgreSQL stops answering (every process of it stopped), then resumes."""
    pids = _processes_of(server)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


async def test_postgres_away_messages_flow_decisions_refused_then_history_complete(
        nodes: list[App], postgres_server: PostgresServer) -> None:
    ann, bob, room_id = await room_with(nodes, "steady")
    await ann.command("/join steady")
    cat = await login(nodes[1], "cat")
    await cat.command("/join steady")
    cat_user = nodes[0].services.accounts.find("cat")
    room = nodes[0].services.rooms.find("steady")
    assert cat_user is not None and room is not None
    await until(lambda: room.is_member(cat_user.id))  # the first node read the join
    with frozen(postgres_server):
        sent = [await ann.command(f"/say steady while away {n}") for n in range(5)]
        got = [await bob.next_event(lambda e: e.get("type") == "message", timeout=10)
               for _ in range(5)]
        assert [e["text"] for e in got] == [f"while away {n}" for n in range(5)]
        started = time.monotonic()
        created = await ann.command("/create elsewhere", check=False)
        kicked = await ann.command("/kick cat steady", check=False)
        stranger = await ChatClient.connect("127.0.0.1", nodes[1].port)
        logged = await stranger.command(f"/login cat {PASSWORD}", check=False)
        refused_in = time.monotonic() - started
        for reply in (created, kicked, logged):
            assert (reply["code"], reply["retry_ms"] > 0) == (Code.BUSY.value, True), reply
        history = await bob.command("/history steady", check=False)
    logging.getLogger(__name__).info("three decisions refused in %.1f s", refused_in)
    assert history["type"] == "error" or [m["text"] for m in history["messages"]][-1] \
        == "while away 4"
    texts = [f"while away {n}" for n in range(5)]
    await until(lambda: _has(stored_texts(nodes[0], room_id), texts), seconds=30)
    history = await bob.command("/history steady")
    assert [m["id"] for m in history["messages"]][-5:] == [r["id"] for r in sent]
    assert (await ann.command("/kick cat steady"))["type"] == "ok"
    for client in (ann, bob, cat, stranger):
        await client.close()


async def test_redis_back_with_its_data_resumes(nodes: list[App],
                                                redis_server: RedisServer) -> None:
    ann, bob, _ = await room_with(nodes, "pause")
    os.kill(redis_server.pid, signal.SIGSTOP)
    try:
        refused = await ann.command("/say pause while frozen", check=False)
        assert (refused["code"], refused["retry_ms"] > 0) == (Code.BUSY.value, True)
        kicked = await ann.command("/kick bob pause", check=False)
        assert kicked["code"] == Code.BUSY.value
    finally:
        os.kill(redis_server.pid, signal.SIGCONT)
    back = time.monotonic()
    reply = await ann.command("/say pause after", check=False)
    while reply["type"] == "error":
        await asyncio.sleep(0.05)
        reply = await ann.command("/say pause after", check=False)
    got = await bob.next_event(lambda e: e.get("text") == "after", timeout=10)
    logging.getLogger(__name__).info("flow resumed %.2f s after Redis", time.monotonic() - back)
    assert got["id"] == reply["id"]
    await ann.close()
    await bob.close()


async def test_redis_restarted_without_its_data_starts_a_new_epoch(
        nodes: list[App], redis_server: RedisServer) -> None:
    ann, bob, _ = await room_with(nodes, "epochs")
    before = await ann.command("/say epochs before the loss")
    epoch = nodes[0].services.sequencer.epoch  # type: ignore[attr-defined]
    redis_server.stop()
    redis_server.start()  # same port, no data
    notices = [await client.next_event(lambda e: e.get("epoch") is True, timeout=15)
               for client in (ann, bob)]
    assert all("missing" in notice["text"] for notice in notices)
    reply = await ann.command("/say epochs after the loss", check=False)
    while reply["type"] == "error":
        assert reply["code"] == Code.BUSY.value
        await asyncio.sleep(0.05)
        reply = await ann.command("/say epochs after the loss", check=False)
    assert reply["id"] > before["id"] + keys.SEED_MARGIN - 1000
    got = await bob.next_event(lambda e: e.get("text") == "after the loss", timeout=10)
    assert got["id"] == reply["id"]
    for app in nodes:
        sequencer: Any = app.services.sequencer
        assert sequencer.epoch != epoch and sequencer.epoch_changes == 1
        figures = {figure.name: figure.value for figure in app.nodes.figures()}
        assert figures["chatd_epoch_changes"] == 1
    room = nodes[0].services.rooms.find("epochs")
    assert room is not None
    await until(lambda: _has(stored_texts(nodes[0], room.id), ["after the loss"]))
    await ann.close()
    await bob.close()


async def test_redis_emptied_under_running_nodes_their_persisters_store_on(
        nodes: list[App], redis_server: RedisServer) -> None:
    """``redis-cli FLUSHDB`` (what a node that meets another database's Redis says
    to do) while the nodes run: each persister, blocked reading the group, is told
    ``UNBLOCKED the stream key no longer exists``. That error ended its task, for
    the node's life: nothing was stored any more, the backlog grew until posts were
    refused. It is Redis losing its data, as NOGROUP is: the group is made anew."""
    ann, bob, room_id = await room_with(nodes, "emptied")
    await until(lambda: all(persister_of(app).batches for app in nodes))
    await asyncio.sleep(0.2)  # each persister blocked in its next read of the group
    redis.Redis.from_url(redis_server.url).flushdb()
    for client in (ann, bob):
        await client.next_event(lambda e: e.get("epoch") is True, timeout=15)
    reply = await ann.command("/say emptied after the flush", check=False)
    while reply["type"] == "error":
        assert reply["code"] == Code.BUSY.value
        await asyncio.sleep(0.05)
        reply = await ann.command("/say emptied after the flush", check=False)
    await until(lambda: _has(stored_texts(nodes[0], room_id), ["after the flush"]))
    assert all(not task.done() for app in nodes for task in persister_of(app)._tasks)
    await ann.close()
    await bob.close()


async def test_a_backlog_near_the_logs_length_refuses_posts(
        nodes: list[App], monkeypatch: pytest.MonkeyPatch) -> None:
    ann, bob, _ = await room_with(nodes, "flood")
    monkeypatch.setattr(keys, "LOG_LENGTH", 30)
    monkeypatch.setattr(persister, "MEASURE_EVERY", 0.02)
    for app in nodes:
        persister_of(app)._tasks[0].cancel()  # the consumer stops; the measures go on
    refused = None
    async with asyncio.timeout(30):
        for n in range(100):
            reply = await ann.command(f"/say flood number {n}", check=False)
            if reply["type"] == "error":
                refused = reply
                break
            await asyncio.sleep(0.03)  # a measure between posts
    assert refused is not None
    assert (refused["code"], refused["retry_ms"] > 0) == (Code.BUSY.value, True)
    assert "behind" in refused["message"]
    assert persister_of(nodes[0]).backlog > 27
    for app in nodes:
        await persister_of(app).stop()
        await persister_of(app).start()
    await until(lambda: not persister_of(nodes[0]).full)
    assert (await ann.command("/say flood taken again"))["id"] > 0
    await ann.close()
    await bob.close()


async def test_a_message_the_database_refuses_is_dropped_the_rest_stored(
        postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    storage = PostgresStorage(postgres_url)
    await storage.open()
    try:
        owner = await storage.create_user("owner", b"x", False, 1.0)
        room, _ = await storage.create_room("kept", "open", owner.id, 1.0)
        records = [MessageRecord(10 + n, 0, "guest", f"m{n}", 1.0, room_id=room.id)
                   for n in range(4)]
        records[2] = MessageRecord(12, 0, "guest", "nowhere", 1.0, room_id=999_999)
        consumer = Persister(None, "n1", storage.store_messages,  # type: ignore[arg-type]
                             lambda n: True)
        with caplog.at_level(logging.ERROR):
            await consumer._write(records)
            await consumer._write(records)  # again: nothing new
        assert consumer.dropped == 2 and consumer.stored == 3
        assert [m.text for m in await storage.room_history(room.id, 10)] == ["m0", "m1", "m3"]
        assert "message 12 (room 999999" in caplog.text
        # From the log's entries: the ids in the database, which the lag is counted for.
        entries = [{"r": r.room_id, "e": Message.of(r, room="kept"),
                    "p": [r.sender_id, r.recipient_id, r.delivered]} for r in records]
        assert await consumer._persist(entries) == {10, 11, 13}
    finally:
        await storage.close()


async def test_the_backlog_warns_at_half_and_refuses_at_ninety_percent(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(keys, "LOG_LENGTH", 100)
    consumer = Persister(None, "n1", None, lambda n: True)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        consumer.measured(40)
        assert (consumer.full, caplog.text) == (False, "")
        consumer.measured(60)
        assert not consumer.full and "over half" in caplog.text
        consumer.measured(91)
        assert consumer.full and "refused" in caplog.text
        consumer.measured(10)
        assert not consumer.full and "taken again" in caplog.text
    assert backlog_of([{"name": b"persist", "lag": 3, "pel-count": 4}]) == 7
    assert backlog_of([{"name": b"other", "lag": 3, "pel-count": 4}]) is None


async def test_an_entrys_lag_runs_from_its_items_id_to_its_acknowledgement() -> None:
    consumer = Persister(None, "n1", None, lambda n: True)  # type: ignore[arg-type]
    # Two entries of one item appended at 1000.250 s, one of another at 1001.000 s.
    pairs = [(b"1000250-0", {}), (b"1000250-0", {}), (b"1001000-3", {})]
    consumer._lagged(pairs, now=1001.5)
    assert consumer.lagged == 3
    assert consumer.lag_seconds == pytest.approx(1.25 + 1.25 + 0.5)
    consumer._lagged([(b"1002000-0", {})], now=1001.5)  # clocks apart: never negative
    assert (consumer.lagged, consumer.lag_seconds) == (4, pytest.approx(3.0))
    assert appended_at("17-1") == 0.017
    assert appended_at(b"odd") is None


async def test_history_is_the_databases_alone_when_the_log_does_not_answer() -> None:
    gone = redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    tail = LogTail(gone, lambda n: True)
    assert await tail.room(1, None) == []
    assert await tail.direct(1, 2, None) == []
    await gone.aclose()


async def test_a_node_finding_redis_taken_by_another_database_neither_shows_nor_stores_its_log(
        start_node: StartNode, postgres_databases: PostgresDatabases, redis_server: RedisServer,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis lost its data and the nodes of another database took it first (a final
    copy's, the trial copy's nodes left running; or two clusters given one Redis):
    this node's renewal refuses their epoch (AnotherDatabase, as a changed epoch).
    Yet its reader went on reading their log between its checks of the epoch, and
    showed their messages to its users (room ids are alike in two databases); its
    persister stored them in this database and acknowledged them in the group both
    share: missing from the other database's history."""
    monkeypatch.setattr(persister, "VERDICT_WAIT", 0.5)
    monkeypatch.setattr(persister, "CLAIM_IDLE_MS", 500)
    first = await start_node(1)
    await register(first, "ann")
    ann = await login(first, "ann")
    await ann.command("/create den")  # room 1 of this database
    other_url = postgres_databases.empty()
    other = PostgresStorage(other_url)
    await other.open()
    await other.set_meta(DATABASE_META, "another")
    await other.close()
    # Redis emptied, and the other database's nodes seeded it first.
    pipe = redis.Redis.from_url(redis_server.url).pipeline(transaction=True)
    pipe.flushall()
    pipe.set(keys.EPOCH, "theirs").set(keys.COUNTER, 1000).set(keys.EPOCH_FIRST, 0)
    pipe.set(keys.DATABASE, "another")
    pipe.execute()
    theirs = await start_server(tmp_path / "m1.db", cluster__enabled=True,
                                cluster__node_id="m1", cluster__postgres=other_url,
                                cluster__redis=redis_server.url)
    try:
        # The first node meets their epoch, withdraws from their cluster and tells
        # its users to reconnect (chatd.cluster.heartbeat); ann logs in again there.
        assert (await ann.next_event(lambda e: e.get("reconnect"), timeout=10))["reconnect"]
        await ann.close()
        ann = await login(first, "ann")
        await register(theirs, "bob")
        bob = await login(theirs, "bob")
        await bob.command("/create other")  # room 1 of the other database
        # Their node's consumer pauses: the first node's is the only one reading.
        consumer = persister_of(theirs)
        consumer._tasks[0].cancel()
        said = [f"theirs {n}" for n in range(20)]
        for text in said:
            await bob.command(f"/say other {text}")
        with pytest.raises(TimeoutError):
            await ann.next_event(lambda e: str(e.get("text", "")).startswith("theirs"),
                                 timeout=1.5)
        assert await stored_texts(first, 1) == []
        consumer._tasks[0] = asyncio.get_running_loop().create_task(consumer._consume())
        await until(lambda: _has(stored_texts(theirs, 1), said))
        await bob.close()
    finally:
        await ann.close()
        await theirs.stop()


async def _commands(url: str, seen: list[str]) -> None:
    """Every command Redis runs from now on (MONITOR), into ``seen``, until cancelled."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        async with client.monitor() as monitor:
            async for command in monitor.listen():
                seen.append(str(command["command"]))
    finally:
        await client.aclose()


async def test_once_redis_names_this_database_the_persister_asks_no_more(
        start_node: StartNode, redis_server: RedisServer) -> None:
    """Which database Redis's log belongs to changes only with a loss of its data,
    which makes the group anew: asked after every batch, under light load a batch
    is a message, and the question cost each one a round trip to Redis."""
    app = await start_node(1)
    await register(app, "ann")
    ann = await login(app, "ann")
    await ann.command("/create den")
    await ann.command("/say den the first")
    await until(lambda: persister_of(app).stored > 0)
    seen: list[str] = []
    watching = asyncio.get_running_loop().create_task(_commands(redis_server.url, seen))
    probe = redis.Redis.from_url(redis_server.url)

    def monitoring() -> bool:
        probe.ping()  # seen once MONITOR runs
        return bool(seen)

    await until(monitoring)
    try:
        for n in range(1, 21):
            await ann.command(f"/say den one at a time {n}")
            await until(lambda n=n: persister_of(app).stored > n)  # a batch of one each
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    asked = [c for c in seen if c.startswith("GET") and keys.DATABASE in c]
    assert asked == [], asked
    await ann.close()
