"""The cluster's PresenceStore on its own, against the tests' Redis: its writes
(one script call per turn, fenced by the incarnation) and its mirror of the
other nodes (chatd/cluster/presence.py)."""

from __future__ import annotations

import pytest
import redis.asyncio

from chatd.cluster import keys
from chatd.cluster.presence import ClusterPresence
from chatd.domain.accounts import User
from storage.records import UserRecord

pytestmark = pytest.mark.asyncio


async def registered(shared: redis.asyncio.Redis, incarnation: str = "life1"
                     ) -> ClusterPresence:
    """A store of node n9 whose record names ``incarnation``."""
    await shared.hset(keys.node("n9"), "inc", incarnation)
    store = ClusterPresence("n9", shared)
    store.incarnation = incarnation
    return store


async def test_the_changes_of_a_turn_are_one_write_of_counts(
        shared: redis.asyncio.Redis) -> None:
    store = await registered(shared)
    store.arrived(1)
    store.arrived(1)
    store.arrived(2)
    assert store.left(2) is True
    assert store.left(1) is False
    store.arrived(3)
    await store.close()
    assert store.writes == 1
    assert await shared.hgetall(keys.sessions(1)) == {b"n9": b"1"}
    assert await shared.hgetall(keys.sessions(2)) == {}
    assert await shared.smembers(keys.node_users("n9")) == {b"1", b"3"}
    assert (store.count(), store.is_online(1), store.is_online(2)) == (2, True, False)


async def test_a_write_under_a_lapsed_incarnation_is_refused_and_reported(
        shared: redis.asyncio.Redis) -> None:
    store = await registered(shared)
    lost: list[str] = []
    store.lost = lost.append
    await shared.hset(keys.node("n9"), "inc", "life2")  # another life registered
    store.arrived(1)
    await store.close()
    assert lost == ["its heartbeat is gone"]
    assert await shared.hgetall(keys.sessions(1)) == {}


async def test_nothing_is_written_while_unregistered(shared: redis.asyncio.Redis) -> None:
    store = await registered(shared)
    store.unregistered()
    store.arrived(1)
    await store.close()
    assert store.writes == 0 and store.counts() == {1: 1}


class Told:
    def __init__(self) -> None:
        self.told: list[str] = []

    def came_online(self, user: User) -> None:
        self.told.append(f"+{user.name}")

    def went_offline(self, user: User) -> None:
        self.told.append(f"-{user.name}")

    def away_changed(self, user: User, text: str) -> None:
        self.told.append(f"~{user.name}")


def user(user_id: int, name: str) -> User:
    return User(UserRecord(id=user_id, name=name, password_hash=b"", is_admin=False,
                           created_at=0.0))


async def test_the_mirror_follows_the_other_nodes_and_ignores_a_buried_life(
        shared: redis.asyncio.Redis) -> None:
    store = await registered(shared)
    ann = user(1, "ann")
    store.user_of = {1: ann}.get
    watcher = Told()
    store.watchers = [watcher]
    store.on_entry({"k": "p", "n": "n1", "i": "a", "u": 1, "on": True})
    store.on_entry({"k": "p", "n": "n2", "i": "b", "u": 1, "on": True})
    assert ann.online and ann.elsewhere == 2 and store.count() == 1
    store.on_down({"k": "down", "n": "n3", "d": "n1", "i": "a"})
    assert ann.online and ann.elsewhere == 1
    store.on_entry({"k": "p", "n": "n1", "i": "a", "u": 1, "on": True})  # read late: stale
    assert ann.elsewhere == 1
    store.on_entry({"k": "p", "n": "n2", "i": "b", "u": 1, "on": False})
    assert (ann.online, store.count()) == (False, 0)
    store.on_entry({"k": "p", "n": "n9", "i": "life1", "u": 1, "on": True})  # its own: ignored
    assert watcher.told == ["+ann", "-ann"]


async def test_the_end_of_its_own_life_read_on_the_log_fences_the_node(
        shared: redis.asyncio.Redis) -> None:
    store = await registered(shared)
    lost: list[str] = []
    store.lost = lost.append
    store.on_down({"k": "down", "n": "n1", "d": "n9", "i": "an-earlier-life"})
    assert lost == []
    store.on_down({"k": "down", "n": "n1", "d": "n9", "i": "life1"})
    assert lost == ["the cluster found its heartbeat expired"]


async def test_the_mirror_is_loaded_from_the_live_nodes(shared: redis.asyncio.Redis) -> None:
    await shared.hset(keys.NODES, mapping={"n1": "a", "n2": "b", "n9": "life1"})
    await shared.hset(keys.node("n1"), "inc", "a")  # n2's record expired: not counted
    await shared.sadd(keys.node_users("n1"), "1", "2")
    await shared.sadd(keys.node_users("n2"), "3")
    store = await registered(shared)
    await store.load()
    assert [store.is_online(u) for u in (1, 2, 3)] == [True, True, False]
    assert store.count() == 2


async def test_an_irc_guest_is_counted_here_only(shared: redis.asyncio.Redis) -> None:
    store = await registered(shared)
    store.arrived(-3)  # guests' ids are this process's own: another node has a -3 too
    await store.close()
    assert store.is_online(-3) and store.count() == 1
    assert store.writes == 0 and store.counts() == {}
    assert store.left(-3) is True


async def test_what_changed_during_a_registration_is_written_after_it(
        shared: redis.asyncio.Redis) -> None:
    store = ClusterPresence("n9", shared)
    store.arrived(1)
    written = store.counts()  # what the registration wrote: ann's one session
    store.arrived(1)  # then, before its answer: a second one, and bob
    store.arrived(2)
    await shared.hset(keys.node("n9"), "inc", "life1")
    store.registered("life1", [], written)
    await store.close()
    assert await shared.hgetall(keys.sessions(1)) == {b"n9": b"2"}
    assert await shared.hgetall(keys.sessions(2)) == {b"n9": b"1"}
