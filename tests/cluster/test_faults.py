"""Faults of a three-node cluster, with real node processes (tests/cluster/harness.py):
a node killed or frozen during traffic, Redis restarted with and without its
data, PostgreSQL stopped and started, and governance raced across nodes. Each
run's journal is checked against the cluster's promises
(tests/cluster/invariants.py, docs/CLUSTER.md "Tests").

Every wait is bounded. Each test has a Redis of its own (some restart it); the
PostgreSQL test has its own server too (it stops it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.backends import import_asyncpg
from tests.cluster.harness import Cluster, RecordingClient, eventually, read_stored
from tests.cluster.invariants import Stored, assert_holds, is_direct_message, is_room_message
from tests.services import PostgresServer, RedisServer, start_postgres, start_redis

import_asyncpg()

pytestmark = [pytest.mark.asyncio, pytest.mark.cluster]

USERS = ("ann", "bob", "cat", "dan")
# How long a fault's consequence may take before the test fails (bounded waits).
SETTLE = 10.0
# Heartbeats expire in 3 s (docs/CLUSTER.md); a frozen node's users are shown
# offline within seconds: this is the bound.
OFFLINE_WITHIN = 10.0


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own: the test may shut it down and start it again."""
    server = start_redis()
    yield server
    server.remove()


@pytest.fixture
async def cluster(postgres_url: str, own_redis: RedisServer) -> AsyncIterator[Cluster]:
    async with Cluster(postgres_url, own_redis.url) as running:
        await running.register(*USERS)
        yield running


async def members_on_every_node(cluster: Cluster, room: str,
                                users: tuple[str, ...] = USERS[:3]) -> list[RecordingClient]:
    """``users[i]`` logged in on node ``i`` (round robin), the first creating
    ``room`` and the others joining it."""
    clients = [await cluster.login(cluster.nodes[i % len(cluster.nodes)], user)
               for i, user in enumerate(users)]
    await clients[0].command(f"/create {room}")
    for client in clients[1:]:
        await client.until_ok(f"/join {room}")
    return clients


async def send_direct_many(client: RecordingClient, to: str, count: int, tag: str) -> list[int]:
    """``count`` direct messages to ``to``, one after the other; the ids acknowledged."""
    return await _send_each(client, f"/msg {to}", count, tag)


async def send_many(client: RecordingClient, room: str, count: int, tag: str) -> list[int]:
    """``count`` messages, one after the other; the ids acknowledged (refusals and
    a connection that died end nothing but that message)."""
    return await _send_each(client, f"/say {room}", count, tag)


async def _send_each(client: RecordingClient, command: str, count: int,
                     tag: str) -> list[int]:
    """``command`` followed by ``tag.i`` for i below ``count``, one after the other;
    the ids acknowledged (a connection that died ends the run)."""
    acked = []
    for i in range(count):
        try:
            reply = await client.command(f"{command} {tag}.{i}", check=False, timeout=SETTLE)
        except (ConnectionError, TimeoutError):
            break
        if reply.ok:
            acked.append(reply["id"])
    return acked


async def quiet(clients: list[RecordingClient], room: str, period: float = 0.5) -> None:
    """Wait until none of ``clients`` received a line of ``room`` for ``period`` s."""
    async with asyncio.timeout(SETTLE):
        while True:
            before = len(clients[0].journal.received)
            await asyncio.sleep(period)
            if len(clients[0].journal.received) == before:
                return


async def placed_on_node_of(witness: RecordingClient, ids: list[int]) -> None:
    """Wait until ``witness`` received the room messages ``ids``: its node's reader
    placed them (a resume there replays what is placed; later ones come live)."""
    def received() -> set[int]:
        return {r.line["id"] for r in witness.journal.lines_of(witness.name)
                if is_room_message(r.line)}
    await eventually(lambda: set(ids) <= received(), SETTLE)


async def stored_once_caught_up(postgres_url: str, owed: list[int],
                                timeout: float = SETTLE) -> Stored:
    """The database's state once every id owed (``owed_ids``) is in history (or
    the state at the end of ``timeout``, for the checker to report what is missing)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while True:
                stored = await read_stored(postgres_url)
                if set(owed) <= set(itertools.chain(stored.direct, *stored.history.values())):
                    return stored
                await asyncio.sleep(0.1)
    return await read_stored(postgres_url)


def acked_ids(cluster: Cluster) -> list[int]:
    journal = cluster.journal
    return [s.fields["id"] for s in (*journal.acked(), *journal.acked_direct())]


def owed_ids(cluster: Cluster) -> list[int]:
    """What history must hold (the checker's rule): every acknowledged message,
    and every one delivered, such as a killed node's whose acknowledgement was
    lost with it, which another node's persister stores once it claims them."""
    delivered = [r.line["id"] for r in cluster.journal.received
                 if is_room_message(r.line) or is_direct_message(r.line)]
    return acked_ids(cluster) + delivered


# -- a node dies ------------------------------------------------------------

async def test_a_killed_node_loses_no_acknowledged_message_and_its_clients_move_on(
        cluster: Cluster, postgres_url: str) -> None:
    ann, bob, cat = await members_on_every_node(cluster, "hall")
    victim = cluster.nodes[2]
    senders = [asyncio.create_task(send_many(c, "hall", 60, c.name)) for c in (ann, bob, cat)]
    # Direct messages across the nodes too, the killed node's user among the senders.
    senders += [asyncio.create_task(send_direct_many(client, to, 30, f"{client.name}.dm"))
                for client, to in ((ann, "bob"), (cat, "ann"))]
    await eventually(lambda: len(acked_ids(cluster)) >= 30, SETTLE, 0.01)
    victim.kill()
    await asyncio.gather(*senders)
    last_seen = max(r.line["id"] for r in cluster.journal.lines_of(cat.name)
                    if r.line.get("type") == "message")
    # Its heartbeat stops: the live nodes show its user offline by themselves.
    await eventually(lambda: offline(ann, "cat"), OFFLINE_WITHIN, 0.2)

    # cat comes back on a live node, and resumes where its connection stopped.
    again = await cluster.login(cluster.nodes[0], "cat")
    resumed = await again.command(f"/resume {last_seen}")
    await send_many(ann, "hall", 5, "after")
    await quiet([ann, bob, again], "hall")

    stored = await stored_once_caught_up(postgres_url, owed_ids(cluster))
    assert len(cluster.journal.acked_direct()) >= 30  # ann's to bob, at least
    assert_holds(cluster.journal, stored)
    # No gap: what it missed is replayed (or came live after the log-in), and the
    # server says it could tell (the killed node's entries are still in the log).
    assert resumed["recovered"] is True, resumed.final
    replayed = [line["id"] for line in resumed.lines if line.get("type") == "message"]
    assert replayed == sorted(replayed) and min(replayed, default=last_seen + 1) > last_seen
    live = {r.line["id"] for r in cluster.journal.lines_of(again.name)
            if r.line.get("type") == "message"}
    owed = {i for i in stored.history["hall"] if i > last_seen}
    assert owed <= set(replayed) | live, sorted(owed - set(replayed) - live)


# -- a node freezes ---------------------------------------------------------

async def online(client: RecordingClient, user: str) -> bool:
    reply = await client.command(f"/whois {user}")
    return bool(reply["online"])


async def offline(client: RecordingClient, user: str) -> bool:
    return not await online(client, user)


async def test_a_frozen_node_users_go_offline_and_it_does_not_come_back_as_a_ghost(
        cluster: Cluster) -> None:
    ann = await cluster.login(cluster.nodes[0], "ann")
    bob = await cluster.login(cluster.nodes[1], "bob")
    frozen = cluster.nodes[1]
    await eventually(lambda: online(ann, "bob"), SETTLE, 0.1)

    frozen.pause()
    try:
        await eventually(lambda: offline(ann, "bob"), OFFLINE_WITHIN, 0.2)
    finally:
        frozen.resume()

    # Awake again, the node finds its heartbeat expired: it drops bob's stale
    # session rather than bring him back online.
    closed = await bob.next_event(lambda e: e.get("type") == "closed", timeout=SETTLE)
    assert closed["type"] == "closed"
    assert frozen.alive
    assert not await online(ann, "bob")
    back = await cluster.login(frozen, "bob")  # a new session on the same node is fine
    await eventually(lambda: online(ann, "bob"), SETTLE, 0.1)
    await back.close()


# -- Redis restarts -----------------------------------------------------------

async def flowing(client: RecordingClient, room: str) -> int:
    """Post until the cluster takes a message again (bounded); its id."""
    async with asyncio.timeout(SETTLE):
        while True:
            reply = await client.command(f"/say {room} are we back?", check=False)
            if reply.ok:
                return int(reply["id"])
            assert reply["code"] == "busy", reply.final
            await asyncio.sleep(0.1)


async def test_redis_restarted_with_its_data_lets_the_flow_resume_by_itself(
        cluster: Cluster, own_redis: RedisServer, postgres_url: str) -> None:
    clients = await members_on_every_node(cluster, "hall")
    before = [await send_many(c, "hall", 5, f"{c.name}.before") for c in clients]

    own_redis.shutdown(keep_data=True)
    refused = await clients[0].command("/say hall nobody numbers this", check=False)
    assert (refused.get("code"), refused.get("retry_ms", 0) > 0) == ("busy", True)
    own_redis.start()

    first_after = [await flowing(c, "hall") for c in clients]
    assert min(first_after) > max(itertools.chain(*before))
    for client in clients:
        await send_many(client, "hall", 5, f"{client.name}.after")
    await quiet(clients, "hall")
    assert_holds(cluster.journal, await stored_once_caught_up(postgres_url,
                                                              owed_ids(cluster)))


async def test_redis_restarted_empty_changes_the_epoch_and_ids_keep_increasing(
        cluster: Cluster, own_redis: RedisServer, postgres_url: str) -> None:
    clients = await members_on_every_node(cluster, "hall")
    before = [await send_many(c, "hall", 5, f"{c.name}.before") for c in clients]
    # What the old log held and no persister stored yet is lost with Redis's memory
    # (docs/CLUSTER.md, "Redis data loss"): the loss is tested once that is stored.
    await stored_once_caught_up(postgres_url, owed_ids(cluster))
    restarted_at = cluster.journal.tick()

    own_redis.restart(keep_data=False)

    first_after = [await flowing(c, "hall") for c in clients]
    assert min(first_after) > max(itertools.chain(*before))
    for client in clients:
        await send_many(client, "hall", 5, f"{client.name}.after")
    await quiet(clients, "hall")
    # Every client is told that what it missed may not be complete.
    for client in clients:
        told = [r for r in cluster.journal.lines_of(client.name)
                if r.at > restarted_at and r.line.get("type") == "notice"]
        assert told, f"{client.name} was not told of the new epoch"
    assert_holds(cluster.journal, await stored_once_caught_up(postgres_url,
                                                              owed_ids(cluster)))


# -- PostgreSQL stops ---------------------------------------------------------

@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own: the test stops and starts it."""
    server = start_postgres()
    yield server
    server.remove()


async def test_postgres_stopped_messages_flow_governance_refused_history_catches_up(
        own_postgres: PostgresServer, own_redis: RedisServer) -> None:
    url = own_postgres.url()
    async with Cluster(url, own_redis.url) as cluster:
        await cluster.register(*USERS)
        ann, bob, cat = await members_on_every_node(cluster, "hall")
        before = await send_many(ann, "hall", 5, "before")
        # cat's second connection, outside the journal (what its resume replays
        # would count as delivered twice); made now: a log-in needs PostgreSQL.
        resuming = await cluster.login(cluster.nodes[1], "cat", record=False)

        own_postgres.stop()
        try:
            during = [await send_many(c, "hall", 5, f"{c.name}.during") for c in (ann, bob, cat)]
            assert all(len(acked) == 5 for acked in during), during
            # The resuming connection's node is bob's: once bob saw them all, they are
            # placed there. (A message acknowledged but not placed yet comes live.)
            await placed_on_node_of(bob, [i for i in itertools.chain(*during)
                                          if i not in during[1]])
            # A resume still finds what the log holds, and says the gap may not be
            # complete: the stored part could not be read.
            resumed = await resuming.command(f"/resume {before[-1]}")
            assert resumed["recovered"] is False, resumed.final
            assert "the database does not answer" in resumed["reasons"]
            replayed = [line["id"] for line in resumed.lines if line.get("type") == "message"]
            assert replayed == sorted(set(itertools.chain(*during))), replayed
            # History shows what the log holds: the newest messages, not stored yet.
            shown = await resuming.command("/history hall 4")
            assert [m["id"] for m in shown["messages"]] == replayed[-4:], shown.final
            kick = await ann.command("/kick cat hall", check=False)
            assert kick.get("code") == "busy", kick.final
            newcomer = await RecordingClient.open(cluster.journal, "late", "dan",
                                                  cluster.nodes[1].port)
            login = await newcomer.command("/login dan secret-pw", check=False)
            assert login.get("code") == "busy", login.final
            await newcomer.close()
        finally:
            own_postgres.start()

        await quiet([ann, bob, cat], "hall")
        stored = await stored_once_caught_up(url, owed_ids(cluster))
        assert_holds(cluster.journal, stored)
        kicked = await ann.command("/kick cat hall")  # governance is back
        assert kicked.ok


# -- governance raced across nodes ----------------------------------------------

async def known_to(cluster: Cluster, clients: tuple[RecordingClient, ...], event: str,
                   user: str, since: int) -> None:
    """Wait until each of ``clients`` received the ``event`` about ``user`` stamped
    after ``since``: their nodes applied it. The races below are between
    decisions, not with what came before them."""
    def seen(client: RecordingClient) -> bool:
        return any(r.at > since and r.line.get("event") == event and r.line.get("user") == user
                   for r in cluster.journal.lines_of(client.name))

    try:
        await eventually(lambda: all(map(seen, clients)), SETTLE)
    except TimeoutError:
        missing = [c.name for c in clients if not seen(c)]
        raise AssertionError(f"{missing} never received the {event} of {user}") from None


async def forgotten(member: RecordingClient, room: str) -> None:
    """Wait until ``member``'s node applied its removal from ``room``."""
    async def gone() -> bool:
        rooms = (await member.command("/myrooms")).get("rooms", [])
        return room not in [r["name"] for r in rooms]
    await eventually(gone, SETTLE)


async def test_a_member_kicked_on_another_node_is_told(cluster: Cluster) -> None:
    since = cluster.journal.tick()
    ann, _, cat = await members_on_every_node(cluster, "hall")
    await known_to(cluster, (ann,), "join", "cat", since)
    since = cluster.journal.tick()
    await ann.command("/kick cat hall")
    await known_to(cluster, (cat,), "kick", "cat", since)


async def test_two_admins_on_two_nodes_kick_one_member_once(
        cluster: Cluster, postgres_url: str) -> None:
    ann, bob, cat = await members_on_every_node(cluster, "hall")
    since = cluster.journal.tick()
    await ann.command("/promote bob hall")
    await known_to(cluster, (bob,), "promote", "bob", since)
    for _ in range(5):
        replies = await asyncio.gather(ann.command("/kick cat hall", check=False),
                                       bob.command("/kick cat hall", check=False))
        assert sorted(r.get("type") for r in replies) == ["error", "ok"], replies
        assert [r.get("code") for r in replies if not r.ok] == ["not-in-room"]
        await forgotten(cat, "hall")
        since = cluster.journal.tick()
        await cat.command("/join hall")
        await known_to(cluster, (ann, bob), "join", "cat", since)
    await quiet([ann, bob, cat], "hall")
    stored = await read_stored(postgres_url)
    assert [row[0] for row in stored.audit if row[1] == "hall"].count("kick") == 5
    assert_holds(cluster.journal, stored)


async def test_a_promote_and_a_kick_of_one_member_at_once_decide_one_of_them(
        cluster: Cluster, postgres_url: str) -> None:
    since = cluster.journal.tick()
    ann, bob, cat, _ = await members_on_every_node(cluster, "hall", USERS)
    await known_to(cluster, (ann, bob), "join", "dan", since)
    since = cluster.journal.tick()
    await ann.command("/promote bob hall")
    await known_to(cluster, (bob,), "promote", "bob", since)
    promote, kick = await asyncio.gather(ann.command("/promote dan hall", check=False),
                                         bob.command("/kick dan hall", check=False))
    # Either dan was promoted first (an admin cannot kick an admin) or kicked
    # first (a non-member cannot be promoted): never both, never neither.
    assert [promote.ok, kick.ok].count(True) == 1, (promote.final, kick.final)
    await quiet([ann, bob, cat], "hall")
    who = await cat.command("/who hall")
    roles = {m["user"]: m["role"] for m in who["members"]}
    assert roles.get("dan") == ("admin" if promote.ok else None)
    assert_holds(cluster.journal, await read_stored(postgres_url))


async def test_the_last_two_members_leaving_at_once_on_two_nodes_end_the_room_once(
        cluster: Cluster, postgres_url: str) -> None:
    since = cluster.journal.tick()
    ann, bob = await members_on_every_node(cluster, "den", USERS[:2])
    await known_to(cluster, (ann,), "join", "bob", since)
    replies = await asyncio.gather(ann.command("/leave den", check=False),
                                   bob.command("/leave den", check=False))
    stored = await read_stored(postgres_url)
    assert "den" in stored.ended
    assert stored.terminations.get("den") == 1
    for node in cluster.nodes:  # every node forgot it
        visitor = await cluster.login(node, "cat")
        async with asyncio.timeout(SETTLE):
            while (await visitor.command("/join den", check=False)).ok:
                await visitor.command("/leave den", check=False)
                await asyncio.sleep(0.05)
    assert_holds(cluster.journal, await read_stored(postgres_url))
    # Both were members when they left: neither is told otherwise.
    assert all(r.ok for r in replies), [r.final for r in replies]


async def flood_until_refused(client: RecordingClient, room: str) -> list[str]:
    """Waves of messages until some are refused; the refusals' codes."""
    refused: list[str] = []
    for wave in range(200):
        replies = await asyncio.gather(*(client.command(f"/say {room} f{wave}.{i}",
                                                        check=False) for i in range(10)))
        refused += [r["code"] for r in replies if not r.ok]
        if refused:
            return refused
    raise AssertionError("the flood was never refused")


async def test_a_ban_while_the_banned_user_floods_from_another_node(
        cluster: Cluster, postgres_url: str) -> None:
    ann, bob, cat, dan = await members_on_every_node(cluster, "hall", USERS)
    flooding = asyncio.create_task(flood_until_refused(bob, "hall"))
    await ann.next_event(lambda e: e.get("from") == "bob", timeout=SETTLE)
    await ann.command("/ban bob hall")
    refused = await flooding
    assert set(refused) <= {"banned", "not-in-room"}, refused
    await quiet([ann, cat, dan], "hall")
    stored = await stored_once_caught_up(postgres_url, owed_ids(cluster))
    assert_holds(cluster.journal, stored)
    seen = [[r.line["event"] for r in cluster.journal.lines_of(c.name)
             if r.line.get("type") == "event"] for c in (ann, cat, dan)]
    assert all("ban" in events for events in seen)


async def test_moderation_while_an_unvoiced_member_and_an_admin_flood_from_other_nodes(
        cluster: Cluster, postgres_url: str) -> None:
    """``/mode +m`` decided on node 1 while bob, without voice, floods from node 2;
    then cat, an admin who speaks in the moderated room, demoted while she floods
    from node 3: nobody sees a message of theirs placed after what silenced them."""
    ann, bob, cat, dan = await members_on_every_node(cluster, "hall", USERS)
    await ann.command("/promote cat hall")
    await cat.next_event(lambda e: e.get("event") == "promote", timeout=SETTLE)
    flooding = asyncio.create_task(flood_until_refused(bob, "hall"))
    await ann.next_event(lambda e: e.get("from") == "bob", timeout=SETTLE)
    await ann.command("/mode +m hall")
    assert set(await flooding) == {"moderated"}
    flooding = asyncio.create_task(flood_until_refused(cat, "hall"))
    await dan.next_event(lambda e: e.get("from") == "cat", timeout=SETTLE)
    await ann.command("/demote cat hall")
    assert set(await flooding) == {"moderated"}
    await quiet([ann, dan], "hall")
    stored = await stored_once_caught_up(postgres_url, owed_ids(cluster))
    assert_holds(cluster.journal, stored)
    seen = {r.line.get("event") for r in cluster.journal.lines_of(dan.name)}
    assert {"modes", "demote"} <= seen
