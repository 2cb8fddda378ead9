"""Three nodes share one PostgreSQL database and one Redis: rooms, order and
governance across them (docs/CLUSTER.md). The nodes are in-process servers on
free loopback ports; the services are the tests' own (tests/services.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio

from chatd.app.app import App
from chatd.client import ChatClient, LineClient
from chatd.client.api import ClientError
from chatd.cluster import codec, keys
from chatd.cluster.bus import ClusterBus
from chatd.cluster.janitor import Janitor
from chatd.cluster.node import ClusterNode
from chatd.domain.clock import ManualClock
from chatd.domain.events import Devoiced, Message, ModesChanged, Voiced
from storage.api import Unavailable
from tests.cluster.conftest import StartNode, login, register
from tests.helpers import PASSWORD
from tests.irc.helpers import IrcClient
from tests.irc.helpers import login as irc_login
from tests.services import RedisServer
from tests.web.helpers import http

pytestmark = pytest.mark.asyncio

USERS = ("ann", "bob", "cat", "dan")


@pytest.fixture
async def nodes(start_node: StartNode) -> list[App]:
    """Three nodes; the accounts are made on the first before the others start."""
    first = await start_node(1)
    await register(first, *USERS)
    return [first, await start_node(2), await start_node(3)]


async def known_everywhere(nodes: list[App], room: str) -> None:
    """A room created on one node reaches the others through the log (bounded wait)."""
    async with asyncio.timeout(10):
        while any(app.services.rooms.find(room) is None for app in nodes):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def members_on_every_node(nodes: list[App], room: str) -> list[ChatClient]:
    """ann, bob, cat ... logged in one per node, ann creating ``room`` and the
    others joining it once every node knows it."""
    members = [await login(app, name) for app, name in zip(nodes, USERS, strict=False)]
    await members[0].command(f"/create {room}")
    await known_everywhere(nodes, room)
    for member in members[1:]:
        await member.command(f"/join {room}")
    return members


async def messages(client: ChatClient, count: int) -> list[dict[str, Any]]:
    """The next ``count`` room messages ``client`` receives (bounded wait)."""
    got = []
    while len(got) < count:
        event = await client.next_event(lambda e: e.get("type") == "message", timeout=10)
        got.append(event)
    return got


async def test_messages_reach_every_node_in_one_order(nodes: list[App]) -> None:
    ann, bob, cat = await members_on_every_node(nodes, "lobby")
    for i in range(10):
        for n, sender in enumerate((ann, bob, cat)):
            sender.send_line(f"/say lobby m{n}.{i}")
    seen = [await messages(c, 30) for c in (ann, bob, cat)]
    orders = [[m["id"] for m in got] for got in seen]
    assert orders[0] == orders[1] == orders[2]
    assert orders[0] == sorted(set(orders[0]))  # unique, strictly increasing
    assert len({m["text"] for m in seen[0]}) == 30
    for client in (ann, bob, cat):
        await client.close()


async def test_two_admins_kicking_one_member_on_two_nodes(nodes: list[App]) -> None:
    ann, bob, cat = await members_on_every_node(nodes, "hall")
    await ann.command("/promote bob hall")
    replies = await asyncio.gather(ann.command("/kick cat hall", check=False),
                                   bob.command("/kick cat hall", check=False))
    assert sorted(r.get("type") for r in replies) == ["error", "ok"]
    audit = await nodes[0].storage.list_audit(50, room="hall")
    assert [a.action for a in audit].count("kick") == 1
    with pytest.raises(ClientError):
        await cat.command("/say hall still here?")
    for client in (ann, bob, cat):
        await client.close()


async def test_last_two_members_leaving_at_once_end_the_room_once(nodes: list[App]) -> None:
    ann, bob = await login(nodes[0], "ann"), await login(nodes[1], "bob")
    await ann.command("/create den")
    await known_everywhere(nodes, "den")
    await bob.command("/join den")
    await asyncio.gather(ann.command("/leave den", check=False),
                         bob.command("/leave den", check=False))
    audit = await nodes[2].storage.list_audit(50, room="den")
    assert [a.action for a in audit].count("terminate") == 1
    await asyncio.sleep(0)
    for app in nodes:
        for _ in range(50):
            if app.services.rooms.find("den") is None:
                break
            await asyncio.sleep(0.05)
        assert app.services.rooms.find("den") is None
    for client in (ann, bob):
        await client.close()



async def sanctions_everywhere(nodes: list[App], room: str,
                               wanted: tuple[set[int], set[int]]) -> None:
    """Every node's copy of ``room`` holds the bans and mutes ``wanted`` (user ids),
    as the log's decisions reach it (bounded wait)."""
    def held(app: App) -> tuple[set[int], set[int]]:
        copy = app.services.rooms.require(room)
        return set(copy.bans), set(copy.mutes)

    async with asyncio.timeout(10):
        while any(held(app) != wanted for app in nodes):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_a_ban_or_mute_decided_on_one_node_holds_on_every_node(
        nodes: list[App]) -> None:
    ann, bob, cat = await members_on_every_node(nodes, "hall")
    bob_id, cat_id = (nodes[0].services.accounts.require(n).id for n in ("bob", "cat"))
    await ann.command("/ban bob hall")
    await ann.command("/mute cat hall 10m")
    await sanctions_everywhere(nodes, "hall", ({bob_id}, {cat_id}))
    # bob, on the second node, may not come back; cat, on the third, is told how long.
    assert (await bob.command("/join hall", check=False))["code"] == "banned"
    muted = await cat.command("/say hall hi", check=False)
    assert muted["code"] == "muted" and "for 10m more" in muted["message"]
    # A lift decided on another node than the sanction reaches every node too.
    await ann.command("/unban bob hall")
    await sanctions_everywhere(nodes, "hall", (set(), {cat_id}))
    assert (await bob.command("/join hall"))["type"] == "ok"
    # The leader's expiry lifts the mute, and no node keeps it in memory after.
    for app in nodes:
        clock = app.clock
        assert isinstance(clock, ManualClock)
        clock.advance(11 * 60)
    assert await nodes[0].services.moderation.expire() == 1
    await sanctions_everywhere(nodes, "hall", (set(), set()))
    assert (await cat.command("/say hall back"))["id"] > 0
    for client in (ann, bob, cat):
        await client.close()

async def room_stream(client: ChatClient, room: str, quiet: float = 0.5) -> list[dict[str, Any]]:
    """The events of ``room`` that ``client`` receives until none came for ``quiet`` s."""
    got: list[dict[str, Any]] = []
    while True:
        try:
            event = await client.next_event(lambda e: e.get("room") == room, timeout=quiet)
        except TimeoutError:
            return got
        got.append(event)


async def flood_until_refused(client: ChatClient, room: str) -> tuple[list[int], list[str]]:
    """Send waves of messages to ``room`` until one is refused: the ids acknowledged,
    and the codes of the refusals."""
    acked: list[int] = []
    refused: list[str] = []
    wave = 0
    while not refused:
        wave += 1
        assert wave < 200, "never refused"
        replies = await asyncio.gather(*(client.command(f"/say {room} f{wave}.{i}",
                                                        check=False) for i in range(10)))
        for reply in replies:
            if reply.get("type") == "ok":
                acked.append(reply["id"])
            else:
                refused.append(reply["code"])
    return acked, refused


async def test_nothing_a_banned_user_sends_is_ordered_after_the_ban(nodes: list[App]) -> None:
    ann, bob, cat = await members_on_every_node(nodes, "hall")
    dan = await login(nodes[0], "dan")  # an observer on the node that bans
    await dan.command("/join hall")
    flooding = asyncio.create_task(flood_until_refused(bob, "hall"))
    await ann.next_event(lambda e: e.get("from") == "bob", timeout=10)
    await ann.command("/ban bob hall")
    acked, refused = await flooding
    assert set(refused) <= {"banned", "not-in-room"}
    seen = [await room_stream(c, "hall") for c in (dan, cat)]
    for stream in seen:
        kinds = [e.get("event", e["type"]) for e in stream]
        assert "ban" in kinds
        after_ban = stream[kinds.index("ban"):]
        assert not [e for e in after_ban if e.get("from") == "bob"]
    from_bob = [[e["id"] for e in stream if e.get("from") == "bob"] for stream in seen]
    # Both observers, on two nodes, saw the messages bob was told were sent, and
    # only those, in one order.
    assert from_bob[0] == from_bob[1] == sorted(acked), (from_bob, sorted(acked), seen[0][:3])
    await nodes[1].services.writer.flush()
    stored = await nodes[0].storage.room_history(nodes[0].services.rooms.require("hall").id,
                                                 1000, None)
    assert sorted(m.id for m in stored if m.sender_name == "bob") == sorted(acked)
    for client in (ann, bob, cat, dan):
        await client.close()


class HeldReads:
    """The Redis client of a node's reader of the log, whose reads wait until
    released: a node slow to read, which does not know yet what another node
    decided meanwhile (everything else of the node goes on)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.waiting = asyncio.Event()
        self.released = asyncio.Event()

    async def xread(self, *args: Any, **kwargs: Any) -> Any:
        self.waiting.set()
        await self.released.wait()
        return await self.real.xread(*args, **kwargs)


async def logged_entry(shared: redis.asyncio.Redis, text: str) -> dict[str, Any]:
    """The entry of the message ``text`` in the log (bounded wait)."""
    async with asyncio.timeout(10):
        while True:
            for _, fields in await shared.xrange(keys.LOG):
                for entry in codec.entries_of(fields):
                    event = entry.get("e")
                    if isinstance(event, Message) and event.text == text:
                        return dict(entry)
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def reader_held(app: App) -> AsyncIterator[HeldReads]:
    """``app``'s reader of the log reads no more until the block's end or its
    release: what other nodes decide meanwhile is news to that node only then."""
    bus: Any = app.services.bus
    held = HeldReads(bus._reading)
    bus._reading = held
    try:
        await asyncio.wait_for(held.waiting.wait(), 5)
        yield held
    finally:
        held.released.set()
        bus._reading = held.real


async def hall_on_two_nodes(start_node: StartNode) -> tuple[App, App, list[ChatClient]]:
    """Two nodes, both reading the log's newest format, the second serving the web;
    ann (who creates #hall) and dan log in on the first, bob and cat on the second,
    and all are in #hall."""
    first = await start_node(1)
    await register(first, "ann", "bob", "cat", "dan")
    second = await start_node(2, web__enabled=True, web__port=0)
    janitor = registry(second).janitor
    janitor.interval = 0.05
    await until_format(janitor, keys.LOG_FORMAT)  # every live node reads the newest
    ann, dan = await login(first, "ann"), await login(first, "dan")
    bob, cat = await login(second, "bob"), await login(second, "cat")
    await ann.command("/create hall")
    await known_everywhere([first, second], "hall")
    for member in (bob, cat, dan):
        await member.command("/join hall")
    return first, second, [ann, bob, cat, dan]


async def bobs_hook(second: App, bob: ChatClient, observers: list[ChatClient]) -> str:
    """bob, promoted by ann, makes a webhook of #hall, whose first post reaches the
    observers; its path."""
    await bob.next_event(lambda e: e.get("event") == "promote", timeout=10)
    made = await bob.command("/webhook create deploy hall")
    async with http(second) as hook:
        assert (await hook.post(made["path"], json={"text": "first"})).status_code == 201
    for observer in observers:
        await observer.next_event(lambda e: e.get("text") == "first", timeout=10)
    return str(made["path"])


async def dropped_everywhere(observers: list[ChatClient], decision: str, sender: str,
                             number: int) -> None:
    """Each observer saw ``decision`` in #hall, and nothing from ``sender`` after it:
    not message ``number``, which the log ordered after it."""
    for observer in observers:
        stream = await room_stream(observer, "hall")
        kinds = [e.get("event", e["type"]) for e in stream]
        assert decision in kinds, stream
        assert not [e for e in stream[kinds.index(decision):] if e.get("from") == sender]
        assert number not in [e.get("id") for e in stream]


async def stored_texts(first: App, second: App, sender: str) -> list[str]:
    """What #hall's history holds from ``sender``, once the second node stored its share."""
    await second.services.writer.flush()
    stored = await first.storage.room_history(first.services.rooms.require("hall").id, 100,
                                              None)
    return [m.text for m in stored if m.sender_name == sender]


async def test_a_webhook_post_ordered_after_its_creator_s_ban_is_dropped_everywhere(
        start_node: StartNode, redis_server: RedisServer) -> None:
    """A webhook speaks for its creator: a post through it that the log orders after
    the creator's ban, decided on another node whose news the posting node has not
    read yet, is dropped on every node (the gate checks the creator, not the bot's
    name) and refused to its caller, as the creator's own post would be.

    Deterministic: the posting node's reader is held while the ban is decided
    elsewhere, so the post passes that node's checks and is numbered after the ban."""
    first, second, clients = await hall_on_two_nodes(start_node)
    ann, bob, cat, dan = clients
    await ann.command("/promote bob hall")
    # Read on bob's node (its copy of the room changed first): he may make the hook.
    path = await bobs_hook(second, bob, [cat, dan])
    shared = redis.asyncio.Redis.from_url(redis_server.url)
    async with reader_held(second) as held:
        banned = await ann.command("/ban bob hall")
        assert banned.ok
        async with http(second) as hook:
            posting = asyncio.create_task(hook.post(path, json={"text": "raced"}))
            raced = await logged_entry(shared, "raced")  # numbered after the ban
            held.released.set()
            refused = await posting
    assert raced["w"] == "bob"  # whom the post speaks for: the gate checks him
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "banned" and "bob" in error["message"]
    await dropped_everywhere([cat, dan], "ban", "deploy[bot]", raced["s"])
    assert await stored_texts(first, second, "deploy[bot]") == ["first"]
    await shared.aclose()
    for client in clients:
        await client.close()


async def test_a_webhook_post_ordered_after_its_creator_s_demotion_is_dropped_everywhere(
        start_node: StartNode, redis_server: RedisServer) -> None:
    """A webhook posts only while its creator is an admin of the room: a post through
    it that the log orders after the creator's demotion, decided on another node
    whose news the posting node has not read yet, is dropped on every node and
    refused to its caller with the words the hook's own check says it in.

    Deterministic: the posting node's reader is held while the demotion is decided
    elsewhere, so the post passes that node's checks and is numbered after it."""
    first, second, clients = await hall_on_two_nodes(start_node)
    ann, bob, cat, dan = clients
    await ann.command("/promote bob hall")
    path = await bobs_hook(second, bob, [cat, dan])
    shared = redis.asyncio.Redis.from_url(redis_server.url)
    async with reader_held(second) as held:
        assert (await ann.command("/demote bob hall")).ok
        async with http(second) as hook:
            posting = asyncio.create_task(hook.post(path, json={"text": "raced"}))
            raced = await logged_entry(shared, "raced")  # numbered after the demotion
            held.released.set()
            refused = await posting
    assert raced["w"] == "bob"
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == {
        "code": "not-permitted",
        "message": "deploy[bot] posts only while its creator, bob, is an admin of #hall."}
    await dropped_everywhere([cat, dan], "demote", "deploy[bot]", raced["s"])
    assert await stored_texts(first, second, "deploy[bot]") == ["first"]
    await shared.aclose()
    for client in clients:
        await client.close()


async def test_a_post_without_voice_ordered_after_the_room_was_made_moderated_is_dropped(
        start_node: StartNode, redis_server: RedisServer) -> None:
    """A member without voice who posts while another node makes the room moderated
    (+m): when the log orders the post after it, it is dropped on every node and
    refused to its sender with ``moderated``, as the sender's node would have
    refused it had it known; a voiced member's post racing alike is taken.

    Deterministic: the posting node's reader is held while the room is made
    moderated elsewhere, so the posts pass that node's checks and are numbered
    after it."""
    first, second, clients = await hall_on_two_nodes(start_node)
    ann, bob, cat, dan = clients
    assert (await ann.command("/voice cat hall")).ok
    await cat.next_event(lambda e: e.get("event") == "voice", timeout=10)
    shared = redis.asyncio.Redis.from_url(redis_server.url)
    async with reader_held(second) as held:
        assert (await ann.command("/mode +m hall")).ok
        posting = asyncio.create_task(bob.command("/say hall raced", check=False))
        voiced = asyncio.create_task(cat.command("/say hall heard", check=False))
        raced = await logged_entry(shared, "raced")  # numbered after the +m
        await logged_entry(shared, "heard")
        held.released.set()
        refused, taken = await posting, await voiced
    assert refused.get("code") == "moderated", refused
    assert "#hall is moderated" in refused["message"]
    assert taken.ok
    await dropped_everywhere([cat, dan], "modes", "bob", raced["s"])
    assert await stored_texts(first, second, "bob") == []
    assert await stored_texts(first, second, "cat") == ["heard"]
    await shared.aclose()
    for client in clients:
        await client.close()


async def test_a_webhook_post_names_its_creator_once_every_live_node_reads_it(
        start_node: StartNode, redis_server: RedisServer) -> None:
    """A node of the version before checks a webhook's post by the bot's name: while
    one is live, posts name no creator (every node decides the old way alike);
    once none is, they do, and every node's gate checks the creator."""
    app = await start_node(1, web__enabled=True, web__port=0)
    await register(app, "ann")
    janitor = registry(app).janitor
    janitor.interval = 0.05
    janitor.format_hold = 0.2
    ann = await login(app, "ann")
    await ann.command("/create hall")
    made = await ann.command("/webhook create deploy hall")
    shared = redis.asyncio.Redis.from_url(redis_server.url)
    await shared.hset(keys.node("old"), mapping={"inc": "x", "beat": "1",
                                                 "log": keys.LOG_COMPACT})
    await shared.hset(keys.NODES, "old", "x")
    await until_format(janitor, keys.LOG_COMPACT)
    async with http(app) as hook:
        assert (await hook.post(made["path"], json={"text": "older"})).status_code == 201
        await shared.delete(keys.node("old"))
        await shared.hdel(keys.NODES, "old")
        await until_format(janitor, keys.LOG_FORMAT)
        assert (await hook.post(made["path"], json={"text": "newer"})).status_code == 201
    older, newer = [await logged_entry(shared, text) for text in ("older", "newer")]
    assert "w" not in older and newer["w"] == "ann"
    assert older["e"].sender == newer["e"].sender == "deploy[bot]"
    await shared.aclose()
    await ann.close()


async def logged_decisions(shared: redis.asyncio.Redis, kind: type) -> list[dict[str, Any]]:
    """The entries of the log whose event is a ``kind``, in the log's order."""
    return [dict(entry) for _, fields in await shared.xrange(keys.LOG)
            for entry in codec.entries_of(fields) if isinstance(entry.get("e"), kind)]


async def test_a_change_of_standing_is_marked_for_the_gate_once_every_live_node_reads_it(
        start_node: StartNode, redis_server: RedisServer) -> None:
    """A node of the version before does not drop a post for a change of role or of
    modes ordered before it: while one is live, those entries are not marked (``g``)
    and no node's gate takes them; once none is, they are, and every node's does."""
    app = await start_node(1)
    await register(app, "ann", "bob")
    janitor = registry(app).janitor
    janitor.interval = 0.05
    janitor.format_hold = 0.2
    ann, bob = await login(app, "ann"), await login(app, "bob")
    await ann.command("/create hall")
    await bob.command("/join hall")
    shared = redis.asyncio.Redis.from_url(redis_server.url)
    await shared.hset(keys.node("old"), mapping={"inc": "x", "beat": "1",
                                                 "log": keys.LOG_SPEAKERS})
    await shared.hset(keys.NODES, "old", "x")
    await until_format(janitor, keys.LOG_SPEAKERS)
    assert (await ann.command("/mode +m hall")).ok
    assert (await ann.command("/voice bob hall")).ok
    await shared.delete(keys.node("old"))
    await shared.hdel(keys.NODES, "old")
    await until_format(janitor, keys.LOG_FORMAT)
    assert (await ann.command("/mode -m hall")).ok
    assert (await ann.command("/devoice bob hall")).ok
    marks = [[entry.get("g") for entry in await logged_decisions(shared, kind)]
             for kind in (ModesChanged, Voiced | Devoiced)]
    assert marks == [[None, 1], [None, 1]]
    await shared.aclose()
    for client in (ann, bob):
        await client.close()


async def test_posts_are_refused_with_busy_while_redis_does_not_answer(
        nodes: list[App]) -> None:
    ann = await login(nodes[0], "ann")
    await ann.command("/create lab")
    # Posts: charged, numbered and appended in one call by the poster.
    poster: Any = nodes[0].services.messaging.poster
    shared = poster._shared
    poster._shared = redis.asyncio.Redis(host="127.0.0.1", port=1,
                                         socket_connect_timeout=0.2)
    ann.send_line("a plain line")
    plain = await ann.next_event(lambda e: e.get("type") == "error", timeout=10)
    said = await ann.command("/say lab a command", check=False)
    assert [plain["code"], said["code"]] == ["busy", "busy"]
    assert said["retry_ms"] > 0
    await poster._shared.aclose()
    poster._shared = shared
    back = await ann.command("/say lab back again")
    assert back["id"] > 0
    await ann.close()


async def test_a_post_that_waits_too_long_for_its_place_is_refused_with_busy(
        nodes: list[App], redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # A number taken and never appended (a node that died between the two) holds the
    # entries after it back for GAP_WAIT; a post waits at most PLACE_WAIT for its place.
    monkeypatch.setattr("chatd.cluster.bus.PLACE_WAIT", 0.1)
    ann = await login(nodes[0], "ann")
    await ann.command("/create lab")
    shared = redis.asyncio.Redis.from_url(redis_server.url)
    await shared.incr(keys.COUNTER)
    await shared.aclose()
    said = await ann.command("/say lab after a gap", check=False)
    assert said["code"] == "busy" and said["retry_ms"] > 0
    async with asyncio.timeout(10):  # once the reader moved past the gap, placed again
        while (await ann.command("/say lab later", check=False)).get("type") != "ok":  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    await ann.close()


async def test_an_account_made_on_one_node_is_known_to_the_others(nodes: list[App]) -> None:
    newcomer = await ChatClient.connect("127.0.0.1", nodes[1].port)
    await newcomer.command(f"/register eve {PASSWORD}")
    async with asyncio.timeout(10):
        while any(app.services.accounts.find("eve") is None for app in nodes):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    eve = await login(nodes[2], "eve")  # no restart: the third node knows her
    ann = await login(nodes[0], "ann")
    sent = await ann.command("/msg eve hello, newcomer")
    assert sent["id"] > 0
    got = await eve.next_event(lambda e: e.get("type") == "message", timeout=10)
    assert (got["from"], got["text"]) == ("ann", "hello, newcomer")
    assert nodes[0].services.accounts.adopt(
        await nodes[0].storage.get_user_by_name("eve")) is None  # type: ignore[arg-type]
    for client in (newcomer, eve, ann):
        await client.close()


async def test_a_direct_message_sent_while_away_is_shown_at_a_login_on_another_node(
        nodes: list[App]) -> None:
    ann = await login(nodes[0], "ann")
    sent = await ann.command("/msg dan while you were out")
    assert "offline" in sent["message"]
    async with asyncio.timeout(10):  # stored by a persister (a replay reads storage)
        dan_id = nodes[1].services.accounts.require("dan").id
        while True:
            backlog = await nodes[1].storage.direct_backlog(dan_id)
            if backlog is not None and backlog.messages:
                break
            await asyncio.sleep(0.01)
    dan = await ChatClient.connect("127.0.0.1", nodes[1].port)
    welcome = await dan.command(f"/login dan {PASSWORD}")  # its reply shows it
    [got] = [e for e in welcome.lines if e.get("type") == "message"]
    assert (got["id"], got["from"], got["text"], got["offline"]) == (
        sent["id"], "ann", "while you were out", True)
    await dan.close()
    # Shown once: a later login elsewhere replays nothing more.
    again = await login(nodes[0], "dan")
    await again.command("/ping")
    assert not [e for e in again.pending_events() if e.get("type") == "message"]
    for client in (ann, again):
        await client.close()


async def test_log_ins_on_two_nodes_at_once_are_each_told_of_the_messages_left_out(
        start_node: StartNode, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both nodes' log-ins read the same newest direct messages; the older ones were
    counted by the marking that followed, which only the first to mark found
    undelivered: the other node's connection was told nothing of them."""
    nodes = [await start_node(1, rooms__offline_replay_max=2)]
    await register(nodes[0], "ann", "dan")
    nodes.append(await start_node(2, rooms__offline_replay_max=2))
    ann = await login(nodes[0], "ann")
    ids = [(await ann.command(f"/msg dan hello {n}"))["id"] for n in range(5)]
    async with asyncio.timeout(10):  # stored by a persister (a replay reads storage)
        while await nodes[1].storage.max_message_id() < ids[-1]:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    read, both_read = 0, asyncio.Event()
    for app in nodes:
        reading = app.storage.direct_backlog

        async def read_together(user_id: int, limit: int | None = None,
                                reading: Any = reading) -> Any:
            # Each node's read returns once both have read: neither has marked yet.
            nonlocal read
            backlog = await reading(user_id, limit)
            read += 1
            if read == 2:
                both_read.set()
            await both_read.wait()
            return backlog

        monkeypatch.setattr(app.storage, "direct_backlog", read_together)
    clients = [await ChatClient.connect("127.0.0.1", app.port) for app in nodes]
    logins = await asyncio.gather(*(c.command(f"/login dan {PASSWORD}") for c in clients))
    for welcome in logins:
        shown = [e["text"] for e in welcome.lines if e.get("type") == "message"]
        assert shown == ["hello 3", "hello 4"]
        assert (welcome["direct_messages_skipped"],
                welcome["direct_messages_skipped_after"]) == (3, ids[0] - 1), welcome.final
    for client in (ann, *clients):
        await client.close()


def figure(app: App, name: str) -> float:
    return next(f.value for f in app.nodes.figures() if f.name == name)


async def test_one_connections_lines_are_posted_together_and_keep_their_order(
        start_node: StartNode) -> None:
    # 150 lines in one write, then a command: the lines' posts wait for the cluster
    # side by side (a few round trips for all), yet arrive in the order written, with
    # increasing ids, and the /leave written after them comes after them.
    limits = {"limits__message_rate": 1000.0, "limits__message_burst": 1000.0,
              "limits__input_queue": 1000}
    first = await start_node(1, **limits)
    await register(first, "ann", "bob")
    second = await start_node(2, **limits)
    ann, bob = await login(first, "ann"), await login(second, "bob")
    await ann.command("/create lobby")
    await known_everywhere([first, second], "lobby")
    await bob.command("/join lobby")
    await ann.next_event(lambda e: e.get("event") == "join", timeout=10)
    batches = figure(first, "chatd_cluster_poster_batches")
    count = 150
    _reader, writer = await asyncio.open_connection("127.0.0.1", first.port)
    writer.write(f"/format json\n/login ann {PASSWORD}\n/switch lobby\n".encode())
    writer.write("".join(f"p{i}\n" for i in range(count)).encode() + b"/leave lobby\n")
    got = await messages(bob, count)
    assert [m["text"] for m in got] == [f"p{i}" for i in range(count)]
    ids = [m["id"] for m in got]
    assert ids == sorted(set(ids))
    left = await bob.next_event(lambda e: e.get("type") == "event", timeout=10)
    assert left["event"] == "leave" and left["user"] == "ann"
    assert 0 < figure(first, "chatd_cluster_poster_batches") - batches < count / 4
    writer.close()
    for client in (ann, bob):
        await client.close()


async def items_carrying(shared: redis.asyncio.Redis,
                         texts: set[str]) -> list[tuple[set[str], bool, bool]]:
    """For each item of the log holding some of ``texts``: which, whether the
    script that appended the item numbered them (field f), and whether it wrote
    them compactly (field c)."""
    found = []
    for _, fields in await shared.xrange(keys.LOG):
        held = {e["e"].text for e in codec.entries_of(fields)
                if isinstance(e.get("e"), Message)} & texts
        if held:
            found.append((held, b"f" in fields, b"c" in fields))
    return found


async def burst(node: App, room: str, texts: list[str]) -> None:
    """``texts`` in one write from a connection of its own (their posts share turns)."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(f"/format json\n/login ann {PASSWORD}\n/switch {room}\n".encode())
    writer.write("".join(f"{t}\n" for t in texts).encode() + b"/quit\n")
    await writer.drain()
    await _reader.read()  # until the server closes after /quit
    writer.close()


async def stage(node: App, shared: redis.asyncio.Redis, janitor: Janitor, log_format: int,
                prefix: str) -> list[tuple[set[str], bool, bool]]:
    """With a live node of an earlier version that reads ``log_format`` (none:
    this version alone), a burst of 30 lines; the items that carried them."""
    if log_format < keys.LOG_FORMAT:
        record = {"inc": "x", "beat": "1"} | ({"log": log_format} if log_format > 1 else {})
        await shared.hset(keys.node("old"), mapping=record)
        await shared.hset(keys.NODES, "old", "x")
    else:
        await shared.delete(keys.node("old"))
        await shared.hdel(keys.NODES, "old")
    async with asyncio.timeout(10):
        while janitor.log_format != log_format:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    texts = [f"{prefix}{i}" for i in range(30)]
    await burst(node, "lobby", texts)
    async with asyncio.timeout(10):
        while sum(len(item[0]) for item in await items_carrying(shared, set(texts))) < 30:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return await items_carrying(shared, set(texts))


async def test_the_log_is_written_in_the_newest_format_every_live_node_reads(
        start_node: StartNode, redis_server: RedisServer) -> None:
    # A rolling upgrade mixes versions: an item of several entries (format 2), one
    # numbered by the poster's script (format 3), or one of compact posts (format 4),
    # only once every live node reads it.
    limits = {"limits__message_rate": 1000.0, "limits__message_burst": 1000.0}
    node = await start_node(1, **limits)
    await register(node, "ann")
    cluster = node.nodes
    assert isinstance(cluster, ClusterNode)
    janitor = cluster.janitor
    janitor.interval = 0.05
    janitor.format_hold = 0.2  # an older format is written a while after it was last seen
    ann = await login(node, "ann")
    await ann.command("/create lobby")
    shared = redis.asyncio.Redis.from_url(redis_server.url)
    single = await stage(node, shared, janitor, 1, "a")
    assert all(len(held) == 1 and not numbered for held, numbered, _ in single)
    batched = await stage(node, shared, janitor, keys.LOG_BATCHES, "b")
    assert any(len(held) > 1 for held, _, _ in batched)
    assert not any(numbered for _, numbered, _ in batched)
    posted = await stage(node, shared, janitor, keys.LOG_NUMBERED, "c")
    assert all(numbered and not compact for _, numbered, compact in posted)
    assert any(len(held) > 1 for held, _, _ in posted)
    compacted = await stage(node, shared, janitor, keys.LOG_COMPACT, "d")
    assert all(numbered and compact for _, numbered, compact in compacted)
    assert any(len(held) > 1 for held, _, _ in compacted)
    got = await messages(ann, 120)
    assert [m["text"] for m in got] == [f"{p}{i}" for p in "abcd" for i in range(30)]
    ids = [m["id"] for m in got]
    assert ids == sorted(set(ids))  # one order, increasing ids, whatever the format
    await shared.aclose()
    await ann.close()



async def test_an_older_format_is_written_a_while_after_its_last_reader_went(
        start_node: StartNode, redis_server: RedisServer) -> None:
    # A node of the version before withdraws its record before its persister stops
    # reading: the others keep writing what it reads for a while, nodes started
    # meanwhile too, then move on.
    first = await start_node(1)
    janitor = registry(first).janitor
    janitor.interval = 0.05
    janitor.format_hold = 3.0
    shared = redis.asyncio.Redis.from_url(redis_server.url)
    await shared.hset(keys.node("old"), mapping={"inc": "x", "beat": "1",
                                                 "log": keys.LOG_NUMBERED})
    await shared.hset(keys.NODES, "old", "x")
    await until_format(janitor, keys.LOG_NUMBERED)
    await shared.delete(keys.node("old"))  # its record gone, its persister maybe not
    await shared.hdel(keys.NODES, "old")
    gone = time.monotonic()
    second = await start_node(2)
    other = registry(second).janitor
    other.interval = 0.05
    await until_format(other, keys.LOG_NUMBERED)  # its first sweep: the format held
    await asyncio.sleep(0.3)
    assert (janitor.log_format, other.log_format) == (keys.LOG_NUMBERED, keys.LOG_NUMBERED)
    await until_format(janitor, keys.LOG_FORMAT)
    await until_format(other, keys.LOG_FORMAT)
    assert time.monotonic() - gone >= 2.5  # not before the hold ran out
    await shared.aclose()


def registry(app: App) -> ClusterNode:
    cluster = app.nodes
    assert isinstance(cluster, ClusterNode)
    return cluster


async def until_format(janitor: Janitor, log_format: int) -> None:
    async with asyncio.timeout(10):
        while janitor.log_format != log_format:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


class LateAnswers:
    """A Redis client whose scripts run at once but whose answers come late (a
    reply stuck behind a slow network or a busy Redis)."""

    def __init__(self, real: Any, delay: float) -> None:
        self._real = real
        self._delay = delay

    async def evalsha(self, *args: Any) -> Any:
        answer = await self._real.evalsha(*args)
        await asyncio.sleep(self._delay)
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class SlowReads(LateAnswers):
    """A Redis client whose reads of the log that find entries answer late."""

    async def xread(self, *args: Any, **kwargs: Any) -> Any:
        answer = await self._real.xread(*args, **kwargs)
        if answer:
            await asyncio.sleep(self._delay)
        return answer


async def test_a_post_whose_script_answers_late_is_acknowledged_once_placed(
        nodes: list[App]) -> None:
    # The poster stops waiting for its script's answer, but the script ran: the
    # post is acknowledged when its node reads it, not refused with busy (which
    # would have the sender send again what every member already has).
    ann = await login(nodes[0], "ann")
    await ann.command("/create lab")
    poster: Any = nodes[0].services.messaging.poster
    async with asyncio.timeout(10):  # the first sweep saw every node read the poster's items
        while not poster.ready():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    # The node's reader reads late too, so the script's answer is given up for lost
    # before the reader finds the post placed.
    bus: Any = nodes[0].services.bus
    reading = bus._reading
    bus._reading = SlowReads(reading, 0.9)
    await ann.command("/say lab the reader reads late from here on")
    real = poster._shared
    poster._shared = LateAnswers(real, 0.8)
    said = await ann.command("/say lab late but sent", check=False)
    poster._shared, bus._reading = real, reading
    assert said.get("type") == "ok", said
    history = await ann.command("/history lab 10")
    assert said["id"] in [m["id"] for m in history["messages"]]
    await ann.close()


async def test_a_client_that_ends_its_input_gets_its_posts_answered_first(
        nodes: list[App]) -> None:
    # nc sends its lines, then EOF: the posts still waiting for the cluster are
    # answered (the sender's copies shown) before the server closes.
    ann = await login(nodes[0], "ann")
    await ann.command("/create lab")
    reader, writer = await asyncio.open_connection("127.0.0.1", nodes[0].port)
    writer.write(f"/format json\n/login ann {PASSWORD}\n/switch lab\n".encode())
    writer.write(b"".join(f"line {i}\n".encode() for i in range(20)))
    writer.write_eof()
    async with asyncio.timeout(10):
        received = (await reader.read()).decode()
    texts = [json.loads(line).get("text") for line in received.splitlines()
             if line.startswith("{")]
    assert [t for t in texts if t and t.startswith("line ")] == [f"line {i}" for i in range(20)]
    writer.close()
    await ann.close()


async def test_an_irc_client_and_a_line_client_on_two_nodes_talk_in_one_room(
        start_node: StartNode) -> None:
    # IRC's PRIVMSG posts through the same path as a plain line: to the poster of
    # its node, and to the members on the other node in the room's one order.
    first = await start_node(1, irc__enabled=True, irc__port=0)
    await register(first, "ann", "bob")
    second = await start_node(2)
    assert first.irc is not None
    ann = await irc_login(first.irc.port, "ann")
    bob = await login(second, "bob")
    try:
        ann.send("JOIN #den")
        await ann.expect("366")
        await known_everywhere([first, second], "den")
        await bob.command("/join den")
        for i in range(5):
            ann.send(f"PRIVMSG #den :from irc {i}")
        got = await messages(bob, 5)
        assert [m["text"] for m in got] == [f"from irc {i}" for i in range(5)]
        assert all(m["from"] == "ann" for m in got)
        ids = [m["id"] for m in got]
        assert ids == sorted(set(ids))
        said = await bob.command("/say den from the line protocol")
        heard = await ann.expect("PRIVMSG", timeout=10)
        assert heard.params == ("#den", "from the line protocol")
        assert said["id"] > ids[-1]
    finally:
        await ann.close()
        await bob.close()


async def test_an_irc_clients_own_echoes_keep_id_order_with_what_it_receives(
        start_node: StartNode) -> None:
    """An IRC client with echo-message sees its own messages (to a nick and to a
    channel) in their id order among the room messages another node's user floods
    in: the log's reader sends the echo in its place, not with the command's end."""
    first = await start_node(1, irc__enabled=True, irc__port=0)
    await register(first, "ann", "bob", "cat")
    second = await start_node(2)
    assert first.irc is not None
    ann = await irc_login(first.irc.port, "ann", caps=("echo-message", "message-tags"))
    bob, cat = await login(second, "bob"), await login(second, "cat")
    try:
        ann.send("JOIN #den")
        await ann.expect("366")
        await known_everywhere([first, second], "den")
        await bob.command("/join den")
        await bob.command("/switch den")
        for i in range(200):
            bob.send_line(f"m{i}")
        for i in range(40):
            ann.send(f"PRIVMSG cat :dm{i}")
            ann.send(f"PRIVMSG #den :own{i}")
        seen: list[tuple[int, str]] = []
        async with asyncio.timeout(30):
            while len(seen) < 280:
                line = await ann.read(timeout=20)
                if line.command == "PRIVMSG":
                    seen.append((int(line.tags["msgid"]), line.params[1]))
        assert sum(text.startswith("dm") for _, text in seen) == 40
        ids = [number for number, _ in seen]
        assert ids == sorted(ids), [p for p in itertools.pairwise(seen) if p[1][0] < p[0][0]]
    finally:
        await ann.close()
        for client in (bob, cat):
            await client.close()


async def test_direct_messages_between_an_account_and_a_guest_echo_once(
        start_node: StartNode) -> None:
    """A guest lives on its node alone; its direct messages still take a place in
    the log, and each sender with echo-message is sent its copy once, by the bus."""
    first = await start_node(1, irc__enabled=True, irc__port=0, accounts__guests=True)
    await register(first, "ann")
    assert first.irc is not None
    ann = await irc_login(first.irc.port, "ann", caps=("echo-message", "message-tags"))
    visitor = await IrcClient.connect(first.irc.port)
    await visitor.register("visitor", caps=("echo-message", "message-tags"))
    try:
        ann.send("PRIVMSG visitor :hi guest")
        echo, dm = await ann.expect("PRIVMSG"), await visitor.expect("PRIVMSG")
        assert echo.params == dm.params == ("visitor", "hi guest")
        assert echo.tags["msgid"] == dm.tags["msgid"]
        visitor.send("PRIVMSG ann :hi ann")
        echo, dm = await visitor.expect("PRIVMSG"), await ann.expect("PRIVMSG")
        assert echo.params == dm.params == ("ann", "hi ann")
        await ann.nothing()
        await visitor.nothing()
    finally:
        await ann.close()
        await visitor.close()


async def test_guests_stay_in_a_room_another_node_decides_about(
        start_node: StartNode) -> None:
    """A node reloads a room when another node changes it (and before deciding
    itself): its own guests, whom storage never holds, stay members."""
    first = await start_node(1, irc__enabled=True, irc__port=0, accounts__guests=True,
                             rooms__creation="everyone")
    second = await start_node(2)
    await register(first, "ann")
    assert first.irc is not None
    ann = await login(second, "ann")
    await ann.command("/create hall")
    await known_everywhere([first, second], "hall")
    guests = [await IrcClient.connect(first.irc.port) for _ in range(2)]
    try:
        for nick, guest in zip(("visa", "visb"), guests, strict=True):
            await guest.register(nick)
            guest.send("JOIN #hall")
            await guest.expect("366")
        await ann.command("/topic hall decided on the other node")
        await guests[0].expect("TOPIC")
        guests[0].send("PRIVMSG #hall :still here")
        said = await ann.next_event(lambda e: e.get("type") == "message", timeout=10)
        assert (said["from"], said["text"]) == ("visa", "still here")
    finally:
        for guest in guests:
            await guest.close()
        await ann.close()


async def labelled_lines(client: LineClient, label: str) -> list[dict[str, Any]]:
    """The JSON lines labelled ``label`` up to its final line (bounded wait)."""
    lines = [json.loads(line) for line in await client.until(
        lambda line: f'"label":"{label}"' in line and ('"type":"ok"' in line
                                                      or '"type":"error"' in line))]
    return [line for line in lines if line.get("label") == label]


async def test_a_commands_own_event_comes_before_its_final_line(nodes: list[App]) -> None:
    """As on one node (PROTOCOL.md §6), the issuer's labelled copy of the event its
    command caused comes before the command's ok, never after it; in text mode the
    ok then says nothing more. The node reads the event back from the shared log."""
    ann, bob = await members_on_every_node(nodes[:2], "den")
    raw = await LineClient.connect("127.0.0.1", nodes[0].port)
    raw.send(f"/format json\r\n/login ann {PASSWORD}")
    await raw.until(lambda line: '"command":"login"' in line)
    commands = ["/topic den news", "/promote bob den", "/voice cat den", "/e2e on den",
                "/e2e off den", "/demote bob den"]
    cat = await login(nodes[2], "cat")
    await cat.command("/join den")
    for n, line in enumerate(commands):
        raw.send(f"@L{n} {line}")
        reply = await labelled_lines(raw, f"L{n}")
        assert [r["type"] for r in reply] == ["event", "ok"], (line, reply)
    raw.send("/format text\r\n@T /topic den again")
    said = await raw.until(lambda line: line.startswith("@T * ok"))
    assert [line for line in said if line.startswith("@T")] == [
        "@T * ann set the topic of #den: again", "@T * ok"]
    for client in (raw, ann, bob, cat):
        await client.close()


async def test_an_irc_kick_topic_or_mode_shows_its_event_before_its_labelled_reply(
        start_node: StartNode) -> None:
    """With labeled-response, the issuer's KICK (TOPIC, MODE) came after the ACK on a
    cluster, where the node reads it back from the log, while one node sends it
    first: the reply now waits for it, as the line protocol's does."""
    first = await start_node(1, irc__enabled=True, irc__port=0)
    await register(first, "ann", "bob")
    await start_node(2)
    assert first.irc is not None
    ann = await irc_login(first.irc.port, "ann", caps=("labeled-response", "batch"))
    bob = await login(first, "bob")
    try:
        ann.send("JOIN #den")
        await ann.expect("366")
        await bob.command("/join den")
        await ann.expect("JOIN")  # bob's
        for n, (line, shown) in enumerate((("KICK #den bob :out", "KICK"),
                                           ("TOPIC #den :a new topic", "TOPIC"),
                                           ("MODE #den +m", "MODE"))):
            ann.send(f"@label=k{n} {line}")
            seen = await ann.until("ACK")
            assert [m.command for m in seen] == [shown, "ACK"], (line, seen)
            assert seen[-1].tags == {"label": f"k{n}"}
    finally:
        await ann.close()
        await bob.close()


async def test_a_member_banned_on_another_node_is_kicked_on_irc(start_node: StartNode) -> None:
    """IRC shows a member's ban as MODE +b then KICK (docs/IRC.md), wherever it was
    decided: the node that reads the ban has already taken the member out of its
    copy of the room, so the event itself says a member was taken out."""
    first = await start_node(1, irc__enabled=True, irc__port=0)
    await register(first, "ann", "bob")
    second = await start_node(2)
    assert first.irc is not None
    bob = await irc_login(first.irc.port, "bob")
    ann = await login(second, "ann")
    try:
        await ann.command("/create den")
        await known_everywhere([first, second], "den")
        bob.send("JOIN #den")
        await bob.expect("366")
        await ann.command("/ban bob den")
        assert (await bob.expect("MODE")).params == ("#den", "+b", "bob!*@*")
        assert (await bob.expect("KICK")).params[:2] == ("#den", "bob")
    finally:
        await bob.close()
        await ann.close()


async def test_a_room_created_while_redis_refuses_the_log_reaches_the_other_nodes(
        nodes: list[App]) -> None:
    """The room's announcement is tried again once Redis answers, as an account's
    change is: a room created on one node while its log could not be written
    is not unknown to the other nodes for ever (its name taken, its /join
    no-such-room)."""
    bus = nodes[0].services.bus
    assert isinstance(bus, ClusterBus)
    ann, bob = await login(nodes[0], "ann"), await login(nodes[1], "bob")
    reachable = bus._shared
    with socket.socket() as probe:  # a closed loopback port: Redis refuses
        probe.bind(("127.0.0.1", 0))
        cut_off = redis.asyncio.Redis(port=probe.getsockname()[1])
    bus._shared = cut_off
    try:
        await ann.command("/create den")
    finally:
        bus._shared = reachable
        await cut_off.aclose()
    await known_everywhere(nodes, "den")
    assert (await bob.command("/join den"))["room"] == "den"
    await ann.close()
    await bob.close()


async def test_a_room_is_not_created_while_redis_does_not_answer(nodes: list[App]) -> None:
    """Governance fails fast with busy while Redis is away, and /create is governance:
    it was made, known to its node alone until Redis came back, while a /kick beside
    it was refused."""
    transactions: Any = nodes[0].services.transactions
    ann = await login(nodes[0], "ann")
    reachable = transactions._shared
    away = redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    transactions._shared = away
    try:
        refused = await ann.command("/create den", check=False)
    finally:
        transactions._shared = reachable
        await away.aclose()
    assert (refused["code"], refused["retry_ms"] > 0) == ("busy", True)
    assert nodes[0].services.rooms.find("den") is None
    # Nothing was written: the name is free once Redis answers.
    assert (await ann.command("/create den"))["room"] == "den"
    await known_everywhere(nodes, "den")
    await ann.close()


async def test_an_api_request_the_database_does_not_answer_is_busy(
        start_node: StartNode, monkeypatch: pytest.MonkeyPatch) -> None:
    """The HTTP API answers 503 busy (with Retry-After and retry_ms) while a
    cluster's PostgreSQL does not answer, as the line protocol does: not 500."""
    app = await start_node(1, web__enabled=True, web__port=0)
    await register(app, "ann")
    ann = await login(app, "ann")
    token = (await ann.command("/token create api all"))["token"]

    async def away(*_args: Any, **_kwargs: Any) -> None:
        raise Unavailable("PostgreSQL unreachable: no answer in time")

    monkeypatch.setattr(app.storage, "list_notifications", away)
    async with http(app, token) as api:
        answer = await api.get("/api/v1/notifications")
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "busy" and error["retry_ms"] > 0
    assert int(answer.headers["retry-after"]) >= 1
    await ann.close()


async def test_an_irc_command_the_database_does_not_answer_is_refused_as_busy(
        start_node: StartNode, monkeypatch: pytest.MonkeyPatch) -> None:
    """IRC says what the line protocol says while a cluster's PostgreSQL does not
    answer (the database does not answer: try again), not an internal error."""
    app = await start_node(1, irc__enabled=True, irc__port=0)
    await register(app, "ann")
    assert app.irc is not None

    async def away(*_args: Any, **_kwargs: Any) -> None:
        raise Unavailable("PostgreSQL unreachable: no answer in time")

    monkeypatch.setattr(app.storage, "create_room", away)
    ann = await irc_login(app.irc.port, "ann")
    try:
        ann.send("JOIN #fresh")
        refused = await ann.expect("400")
        assert "the database does not answer" in refused.params[-1], refused
    finally:
        await ann.close()


async def test_a_server_admin_s_webhook_posts_from_outside_after_they_left(
        start_node: StartNode) -> None:
    """A server admin's webhook posts to a room that takes messages from outside (-n)
    whether or not they are a member, as they could themselves: on a cluster too,
    where the gate checks the account the post speaks for and must not take the
    admin's leave (or kick) for a sanction of a post from outside."""
    app = await start_node(1, web__enabled=True, web__port=0)
    await register(app, "root", "ann")
    accounts = app.services.accounts
    await accounts.set_admin(accounts.require("root"), True)
    root, ann = await login(app, "root"), await login(app, "ann")
    await ann.command("/create hall")
    await root.command("/join hall")
    assert (await ann.command("/mode -n hall")).ok
    made = await root.command("/webhook create deploy hall")
    async with http(app) as hook:
        assert (await hook.post(made["path"], json={"text": "member"})).status_code == 201
    assert (await root.command("/leave hall")).ok
    assert (await root.command("/say hall from outside")).ok
    async with http(app) as hook:
        outside = await hook.post(made["path"], json={"text": "outside"})
    assert outside.status_code == 201, outside.text
    await ann.next_event(lambda e: e.get("text") == "outside", timeout=10)
    for client in (root, ann):
        await client.close()


async def test_a_reload_warns_one_beat_later_when_the_shared_sections_differ_not_else(
        start_node: StartNode, caplog: pytest.LogCaptureFixture) -> None:
    """A reload compares this node's shared configuration with the live nodes' one
    heartbeat after it (chatd.cluster.node, reconfigured): a reload that changes a
    shared section (limits) says the nodes now differ; one that changes none of them,
    and one that makes them agree again, says nothing. Awaited through the node's
    own account of its comparisons, never a clock of the test's."""
    await start_node(1)
    second = await start_node(2)
    node = second.nodes
    assert isinstance(node, ClusterNode)
    node.heartbeat.interval = 0.05  # the comparison's wait, one beat
    agreed = second.config

    async def reloaded(config: Any) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="chatd.cluster.registry"):
            second.apply(config)
            await node.reload_compared()
        return [r.getMessage() for r in caplog.records if "shared configuration" in
                r.getMessage()]

    unshared = dataclasses.replace(agreed, server=dataclasses.replace(
        agreed.server, motd="another message of the day"))
    assert await reloaded(unshared) == []
    other_limits = dataclasses.replace(agreed, limits=dataclasses.replace(
        agreed.limits, message_rate=agreed.limits.message_rate + 1))
    [warning] = await reloaded(other_limits)
    assert "differs from that of n1 (" in warning and "chatctl nodes" in warning
    assert await reloaded(agreed) == []
