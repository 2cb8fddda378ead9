"""Rate limits every node shares (chatd/cluster/limits.py): the script's bucket
arithmetic against a moved clock, then three in-process nodes on one Redis and
one PostgreSQL (the tests' own) charging one user's buckets."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatd.app.app import App
from chatd.client import ChatClient
from chatd.cluster import keys
from chatd.cluster.limits import ClusterLimitStore
from chatd.domain.clock import ManualClock
from chatd.domain.limits import Charge, Kind, TokenBucket
from chatd.errors import ChatError, Code
from tests.cluster.test_nodes import known_everywhere
from tests.helpers import PASSWORD, start_server
from tests.services import RedisServer
from tests.web.helpers import http

# -- the script's arithmetic, on a clock the test moves ------------------------------


def store_on(shared: redis.asyncio.Redis, clock: ManualClock) -> ClusterLimitStore:
    """A store whose script reads ``clock`` rather than Redis's own."""
    return ClusterLimitStore(shared, clock, now=clock.monotonic)


async def taken(store: ClusterLimitStore, kind: Kind, key: Any, rate: float, burst: float,
                cost: float = 1.0) -> float:
    answer = store.take_shared(kind, key, rate, burst, cost)
    return answer if isinstance(answer, float) else await answer


async def test_a_shared_bucket_gives_its_burst_then_its_rate(
        shared: redis.asyncio.Redis) -> None:
    clock = ManualClock()
    store = store_on(shared, clock)
    assert [await taken(store, Kind.MESSAGE, 7, 2.0, 3.0) for _ in range(3)] == [0.0] * 3
    assert await taken(store, Kind.MESSAGE, 7, 2.0, 3.0) == pytest.approx(0.5)
    # Known empty here now: refused again without asking Redis.
    batches = store.batches
    assert store.take_shared(Kind.MESSAGE, 7, 2.0, 3.0) == pytest.approx(0.5)
    assert store.batches == batches
    assert store.wait(Kind.MESSAGE, 7, 2.0, 3.0) == pytest.approx(0.5)
    clock.advance(0.5)
    assert await taken(store, Kind.MESSAGE, 7, 2.0, 3.0) == 0.0
    # A cost above the burst never fits; an unlimited rate always does.
    assert await taken(store, Kind.MESSAGE, 8, 2.0, 3.0, cost=4.0) == math.inf
    assert await taken(store, Kind.MESSAGE, 9, 0.0, 0.0, cost=4.0) == 0.0


async def test_the_charges_of_one_turn_take_one_call(shared: redis.asyncio.Redis) -> None:
    store = store_on(shared, ManualClock())
    answers = [store.take_shared(Kind.MESSAGE, 1, 1.0, 5.0) for _ in range(7)]
    waits = [await answer for answer in answers]  # type: ignore[misc]
    assert waits[:5] == [0.0] * 5 and waits[5] == waits[6] == pytest.approx(1.0)
    assert store.batches == 1


async def test_an_idle_bucket_expires_when_it_would_have_refilled(
        shared: redis.asyncio.Redis) -> None:
    store = store_on(shared, ManualClock())
    await taken(store, Kind.MESSAGE, 3, 2.0, 10.0, cost=4.0)
    ttl = await shared.pttl(keys.bucket("m", 3))
    assert 1900 <= ttl <= 2001  # 4 tokens at 2 a second
    # Given back to full, it is no different from a missing one: gone.
    given = store.give_back([Charge(Kind.MESSAGE, 3, 2.0, 10.0)], 4.0)
    assert given is not None
    await given
    assert await shared.exists(keys.bucket("m", 3)) == 0


async def test_a_group_is_taken_whole_or_not_at_all(shared: redis.asyncio.Redis) -> None:
    clock = ManualClock()
    store = store_on(shared, clock)
    address, name = Charge(Kind.LOGIN_ADDRESS, "192.0.2.1", 0.1, 2.0), \
        Charge(Kind.LOGIN_NAME, "bob", 0.1, 2.0)
    other_name = Charge(Kind.LOGIN_NAME, "carol", 0.1, 2.0)

    async def take_all(*charges: Charge) -> float:
        answer = store.take_all(charges)
        return answer if isinstance(answer, float) else await answer

    assert await take_all(name) == 0.0
    assert await take_all(name) == 0.0
    assert await take_all(address, name) == pytest.approx(10.0)
    # Refused on the name, the address kept both its tokens.
    assert [await take_all(address, other_name) for _ in range(3)] == \
        [0.0, 0.0, pytest.approx(10.0)]


async def test_a_room_rate_change_starts_a_fresh_bucket(shared: redis.asyncio.Redis) -> None:
    store = store_on(shared, ManualClock())
    assert await taken(store, Kind.ROOM_MESSAGE, (4, 7), 1.0, 1.0) == 0.0
    assert await taken(store, Kind.ROOM_MESSAGE, (4, 7), 1.0, 1.0) == pytest.approx(1.0)
    store.forget(Kind.ROOM_MESSAGE, 4)  # what the room's new rate makes every node do
    assert store.wait(Kind.ROOM_MESSAGE, (4, 7), 1.0, 1.0) == 0.0
    assert await taken(store, Kind.ROOM_MESSAGE, (4, 7), 2.0, 2.0) == 0.0


async def test_this_nodes_kinds_stay_in_its_memory(shared: redis.asyncio.Redis) -> None:
    clock = ManualClock()
    store = store_on(shared, clock)
    assert store.take_shared(Kind.COMMAND, 1, 1.0, 1.0) == 0.0
    assert store.take(Kind.COMMAND, 1, 1.0, 1.0) == pytest.approx(1.0)
    assert store.wait(Kind.COMMAND, 1, 1.0, 1.0) == pytest.approx(1.0)
    assert store.take_all([Charge(Kind.TYPING, 2, 1.0, 1.0)]) == 0.0
    assert store.give_back([Charge(Kind.TYPING, 2, 1.0, 1.0)]) is None
    store.forget(Kind.COMMAND, 1)
    store.sweep()
    assert await shared.dbsize() == 0


async def test_what_a_node_remembers_is_bounded_and_swept(
        shared: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock()
    store = store_on(shared, clock)
    monkeypatch.setattr("chatd.cluster.limits.MAX_KEYS", 2)
    for user in (1, 2, 3):
        await taken(store, Kind.MESSAGE, user, 1.0, 1.0)
        await taken(store, Kind.MESSAGE, user, 1.0, 1.0)  # refused: remembered
    assert len(store._empty_until) == 1  # the third found the memory full and started over
    # A group is refused at once when one of its buckets is known empty.
    assert store.take_all([Charge(Kind.MESSAGE, 3, 1.0, 1.0),
                           Charge(Kind.LOGIN_NAME, "x", 1.0, 1.0)]) == pytest.approx(1.0)
    clock.advance(1.0)
    store.sweep()
    assert store._empty_until == {}
    assert store.wait(Kind.MESSAGE, 3, 1.0, 1.0) == 0.0


async def test_an_unreachable_redis_refuses_with_busy(shared: redis.asyncio.Redis) -> None:
    dead = redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    store = ClusterLimitStore(dead, ManualClock())
    answer = store.take_shared(Kind.MESSAGE, 1, 1.0, 1.0)
    assert not isinstance(answer, float)
    with pytest.raises(ChatError) as refused:
        await answer
    assert refused.value.code is Code.BUSY and refused.value.details["retry_ms"] > 0
    await dead.aclose()


# Steps of a bucket's life: move the clock (whole milliseconds, as Redis counts
# microseconds) or take a cost.
_steps = st.lists(st.one_of(st.integers(0, 3000).map(lambda ms: ("wait", ms / 1000)),
                            st.sampled_from([0.5, 1.0, 2.0, 3.0]).map(lambda c: ("take", c))),
                  min_size=1, max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rate=st.sampled_from([0.5, 1.0, 3.0, 10.0]), burst=st.sampled_from([1.0, 2.5, 5.0]),
       steps=_steps)
def test_the_script_counts_as_the_token_bucket_does(redis_process: RedisServer, rate: float,
                                                    burst: float,
                                                    steps: list[tuple[str, float]]) -> None:
    # The session's Redis, not emptied per example (hypothesis runs 40 in one test):
    # each example deletes the one bucket it uses.
    asyncio.run(_replay(redis_process.url, rate, burst, steps))


async def _replay(url: str, rate: float, burst: float, steps: list[tuple[str, float]]) -> None:
    """The shared bucket answers every step as this process's bucket does, and
    never gives more than its burst plus what the elapsed time earned."""
    client = redis.asyncio.Redis.from_url(url)
    await client.delete(keys.bucket("m", "prop"))
    clock = ManualClock()
    store, local = store_on(client, clock), TokenBucket(rate, burst, clock)
    start, spent = clock.monotonic(), 0.0
    for step, amount in steps:
        if step == "wait":
            clock.advance(amount)
            continue
        store.forget(Kind.MESSAGE, "prop")  # ask Redis every time, not the shortcut
        wait = await taken(store, Kind.MESSAGE, "prop", rate, burst, amount)
        expected = local.try_take(amount)
        assert wait == pytest.approx(expected, abs=2e-6)
        spent += amount if wait == 0 else 0
        assert spent <= burst + rate * (clock.monotonic() - start) + 1e-6
    await client.aclose()


# -- three nodes, one user ------------------------------------------------------------

RATE, BURST = 1.0, 4.0
FAILURES = 3


@pytest.fixture
async def nodes(tmp_path: Path, postgres_url: str,
                redis_server: RedisServer) -> AsyncIterator[list[App]]:
    """Three nodes with a small message budget; the accounts are made on the first."""
    redis.Redis.from_url(redis_server.url).flushall()
    started: list[App] = []
    for n in (1, 2, 3):
        started.append(await start_server(
            tmp_path / f"n{n}.db", cluster__enabled=True, cluster__node_id=f"n{n}",
            cluster__postgres=postgres_url, cluster__redis=redis_server.url,
            limits__message_rate=RATE, limits__message_burst=BURST,
            limits__flood_threshold=1000, limits__auth_failures=FAILURES,
            limits__auth_window=600, limits__command_burst=100))
        if n == 1:
            for name in ("ann", "bob"):
                client = await ChatClient.connect("127.0.0.1", started[0].port)
                await client.command(f"/register {name} {PASSWORD}")
                await client.close()
    yield started
    for app in started:
        await app.stop()


async def login(app: App, name: str = "ann") -> ChatClient:
    client = await ChatClient.connect("127.0.0.1", app.port)
    await client.command(f"/login {name} {PASSWORD}")
    return client


async def create_everywhere(nodes: list[App], client: ChatClient, room: str) -> None:
    await client.command(f"/create {room}")
    async with asyncio.timeout(10):
        while any(app.services.rooms.find(room) is None for app in nodes):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_a_flood_spread_over_three_nodes_gets_one_nodes_budget(
        nodes: list[App]) -> None:
    clients = [await login(app) for app in nodes]
    await create_everywhere(nodes, clients[0], "lobby")
    replies: list[Any] = []
    began = time.monotonic()
    for wave in range(3):
        if wave:
            await asyncio.sleep(0.6)  # pacing, so the rate shows: not a wait for a result
            for app in nodes:  # the daemons' own clocks move with it
                app.services.clock.advance(0.6)  # type: ignore[attr-defined]
        replies += await asyncio.gather(*(client.command(f"/say lobby {wave}.{n}.{i}",
                                                         check=False)
                                          for i in range(4) for n, client in enumerate(clients)))
    elapsed = time.monotonic() - began
    accepted = [r for r in replies if r.get("type") == "ok"]
    refused = [r for r in replies if r.get("type") != "ok"]
    # Three buckets of one node's size would accept 3 x 4 in the first wave alone.
    # The last wave came at least 1.2 s after the first emptied the bucket: one
    # more token at least.
    assert BURST + 1 <= len(accepted) <= BURST + RATE * elapsed
    assert {r["code"] for r in refused} == {"rate-limited"}
    assert all(r["retry_ms"] > 0 for r in refused)
    for client in clients:
        await client.close()


async def test_a_message_its_bucket_refuses_takes_no_id(nodes: list[App]) -> None:
    # The poster's one call charges, then numbers only what it accepted: the
    # counter moves by the accepted posts alone, and nothing waits on a gap.
    ann = await login(nodes[0])
    await create_everywhere(nodes, ann, "lobby")
    shared = redis.asyncio.Redis.from_url(str(nodes[0].services.config.cluster.redis))
    before = int(await shared.get(keys.COUNTER))
    replies = await asyncio.gather(*(ann.command(f"/say lobby m{i}", check=False)
                                     for i in range(2 * int(BURST))))
    accepted = [r["id"] for r in replies if r.get("type") == "ok"]
    assert len(accepted) == BURST
    assert {r["code"] for r in replies if r.get("type") != "ok"} == {"rate-limited"}
    assert int(await shared.get(keys.COUNTER)) - before == BURST
    assert sorted(accepted) == list(range(before + 1, before + 1 + int(BURST)))
    await shared.aclose()
    await ann.close()


async def test_plain_lines_refused_by_the_bucket_are_answered_before_the_next_command(
        nodes: list[App]) -> None:
    # A cluster post's refusal comes from the poster's answer, after its line was
    # handled: a command after the lines waits for each to be sent or refused.
    ann = await login(nodes[0])
    await create_everywhere(nodes, ann, "lobby")
    reader, writer = await asyncio.open_connection("127.0.0.1", nodes[0].port)
    writer.write(f"/format json\n/login ann {PASSWORD}\n/switch lobby\n".encode())
    writer.write(b"".join(b"line %d\n" % n for n in range(2 * int(BURST))) + b"@L1 /ping\n")
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while not seen or seen[-1].get("label") != "L1":
            line = await reader.readline()
            assert line, "the connection ended before /ping's answer"
            if line.startswith(b"{"):
                seen.append(json.loads(line))
    refused = [r for r in seen if r.get("type") == "error"]
    assert [r["code"] for r in refused] == ["rate-limited"] * int(BURST)
    assert seen[-1]["type"] == "ok"
    writer.close()
    await ann.close()


async def test_refusals_from_the_shared_bucket_mute_a_flooder_everywhere(
        nodes: list[App]) -> None:
    ann, bob, bob_elsewhere = await login(nodes[0]), await login(nodes[0], "bob"), \
        await login(nodes[2], "bob")
    await create_everywhere(nodes, ann, "den")
    await bob.command("/join den")
    protection = nodes[0].services.protection
    protection.config = dataclasses.replace(protection.config, limits=dataclasses.replace(
        protection.config.limits, flood_threshold=3, flood_action="mute"))
    codes = [(await bob.command(f"/say den {i}", check=False)).get("code") for i in range(8)]
    assert codes[:4] == [None] * 4 and "rate-limited" in codes
    # The mute is decided through the cluster's governance: every node applies it
    # (here its reader refuses what comes after the mute, once bob has a token).
    async with asyncio.timeout(10):
        while (await bob_elsewhere.command("/say den still?", check=False)
               ).get("code") != "muted":
            await asyncio.sleep(0.1)
            for app in nodes:  # the daemons' own clocks move with it
                app.services.clock.advance(0.1)  # type: ignore[attr-defined]
    for client in (ann, bob, bob_elsewhere):
        await client.close()


async def wrong_passwords(apps: list[App], count: int) -> list[str]:
    """The codes of ``count`` wrong passwords for ann, one after another, over ``apps``."""
    codes = []
    for n in range(count):
        client = await ChatClient.connect("127.0.0.1", apps[n % len(apps)].port)
        reply = await client.command("/login ann not-the-password", check=False)
        codes.append(reply["code"])
        await client.close()
    return codes


async def test_wrong_passwords_spread_over_nodes_hit_the_throttle_as_on_one(
        nodes: list[App], redis_server: RedisServer) -> None:
    on_one = await wrong_passwords(nodes[:1], FAILURES + 2)
    for key in redis.Redis.from_url(redis_server.url).keys(keys.bucket("*")):
        redis.Redis.from_url(redis_server.url).delete(key)
    for app in nodes:  # and what each node learnt of the buckets it found empty
        store: Any = app.services.protection._store
        store._empty_until.clear()
    spread = await wrong_passwords(nodes, FAILURES + 2)
    assert on_one == spread == ["auth-failed"] * FAILURES + ["rate-limited"] * 2


async def test_guesses_at_once_over_nodes_get_no_more_than_the_budget(
        nodes: list[App]) -> None:
    clients = [await ChatClient.connect("127.0.0.1", nodes[n % 3].port) for n in range(9)]
    replies = await asyncio.gather(*(c.command("/login ann not-the-password", check=False)
                                     for c in clients))
    codes = sorted(r["code"] for r in replies)
    assert codes == ["auth-failed"] * FAILURES + ["rate-limited"] * (9 - FAILURES)
    for client in clients:
        await client.close()


async def test_a_good_password_does_not_spend_the_failure_budget(nodes: list[App]) -> None:
    for app in nodes * 2:
        client = await login(app)
        await client.close()
    assert await wrong_passwords(nodes, FAILURES) == ["auth-failed"] * FAILURES


async def test_posts_and_logins_are_refused_with_busy_while_redis_is_down(
        nodes: list[App]) -> None:
    ann = await login(nodes[0])
    await ann.command("/create lab")
    # The limit store (logins) and the poster (posts: charge, id and log in one call).
    store: Any = nodes[0].services.protection._store
    poster: Any = nodes[0].services.messaging.poster
    alive = store._shared
    away = redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    store._shared = poster._shared = away
    said = await ann.command("/say lab while redis is away", check=False)
    assert (said["code"], said["retry_ms"] > 0) == ("busy", True)
    guest = await ChatClient.connect("127.0.0.1", nodes[0].port)
    refused = await guest.command(f"/login ann {PASSWORD}", check=False)
    assert (refused["code"], refused["retry_ms"] > 0) == ("busy", True)
    await away.aclose()
    store._shared = poster._shared = alive
    assert (await ann.command("/say lab back again"))["id"] > 0
    for client in (ann, guest):
        await client.close()


async def test_a_webhook_spread_over_nodes_gets_one_budget(
        tmp_path: Path, postgres_url: str, redis_server: RedisServer) -> None:
    # A load balancer spreading a webhook's posts over the nodes: one bucket for all.
    redis.Redis.from_url(redis_server.url).flushall()
    apps = [await start_server(
        tmp_path / f"w{n}.db", cluster__enabled=True, cluster__node_id=f"w{n}",
        cluster__postgres=postgres_url, cluster__redis=redis_server.url,
        web__enabled=True, web__port=0, web__webhook_rate=0.01, web__webhook_burst=2)
        for n in (1, 2)]
    try:
        owner = await ChatClient.connect("127.0.0.1", apps[0].port)
        await owner.command(f"/register ann {PASSWORD}")
        await owner.command("/create den")
        made = await owner.command("/webhook create chatty")
        # The second node posts into the room once the log has brought it there.
        await known_everywhere(apps, "den")
        statuses = []
        for app in (apps[0], apps[1], apps[0], apps[1]):
            async with http(app) as hook:
                statuses.append((await hook.post(made["path"], json={"text": "m"})).status_code)
        assert statuses == [201, 201, 429, 429]
        await owner.close()
    finally:
        for app in apps:
            await app.stop()
