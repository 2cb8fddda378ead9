"""Bans of IRC guests (users without an account) across nodes: decided through
one node, they hold on every node, outlive a node's restart, and are lifted on
every node by one unban (docs/CLUSTER.md, docs/IRC.md §3)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio

from chatd.app.app import App
from chatd.cluster import keys
from chatd.domain.clock import ManualClock
from storage.postgres.host import ROOM_LOCKS
from tests.cluster.conftest import StartNode, login, register
from tests.cluster.test_accounts import everywhere
from tests.irc.helpers import IrcClient
from tests.irc.helpers import login as irc_login

pytestmark = pytest.mark.asyncio

# IRC with guests on every node.
GUESTS: dict[str, Any] = {"irc__enabled": True, "irc__port": 0, "accounts__guests": True}


def _port(app: App) -> int:
    assert app.irc is not None
    return app.irc.port


async def _guest(app: App, nick: str) -> IrcClient:
    client = await IrcClient.connect(_port(app))
    await client.register(nick)
    return client


async def _gone(client: IrcClient) -> None:
    client.send("QUIT")
    await client.closed()
    await client.close()


async def _joins(app: App, nick: str, room: str) -> str:
    """What a guest ``nick`` new on ``app`` is answered to its JOIN of ``room``:
    ``366`` (joined) or ``474`` (banned); it leaves again."""
    guest = await _guest(app, nick)
    guest.send(f"JOIN #{room}")
    answer = (await guest.expect("366", "474")).command
    await _gone(guest)
    return answer


async def _ban_list(app: App, room: str) -> list[str]:
    """The masks of ``room``'s ban list as its owner sees it through ``app``."""
    owner = await irc_login(_port(app), "owner")
    owner.send(f"MODE #{room} b")
    masks = [m.params[2] for m in await owner.until("368") if m.command == "367"]
    await _gone(owner)
    return masks


async def _deleted(shared: redis.asyncio.Redis, room_id: int) -> None:
    async with asyncio.timeout(10):  # dropped in the background, by each node
        while await shared.exists(keys.guest_bans(room_id)):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def _hall_with_a_guest_banned(start_node: StartNode) -> tuple[App, App, IrcClient]:
    """Two nodes; #hall, owned by ``owner`` (through node 1), whose guest
    ``visitor`` it banned through node 1 (``MODE +b``); the owner's connection."""
    first = await start_node(1, **GUESTS)
    second = await start_node(2, **GUESTS)
    await register(first, "owner")
    owner = await irc_login(_port(first), "owner")
    owner.send("JOIN #hall")
    await owner.expect("366")
    await everywhere([first, second], lambda app: app.services.rooms.find("hall") is not None)
    visitor = await _guest(first, "visitor")
    visitor.send("JOIN #hall")
    await visitor.expect("366")
    owner.send("MODE #hall +b visitor")
    assert (await owner.expect("MODE")).params == ("#hall", "+b", "visitor!*@*")
    assert (await visitor.expect("KICK")).params[:2] == ("#hall", "visitor")
    await _gone(visitor)
    return first, second, owner


async def test_a_guest_banned_through_one_node_is_held_out_on_another_until_unbanned(
        start_node: StartNode) -> None:
    first, second, owner = await _hall_with_a_guest_banned(start_node)
    # By nick and by address (every guest here comes from 127.0.0.1), on both nodes.
    assert await _joins(second, "visitor", "hall") == "474"
    assert await _joins(second, "newname", "hall") == "474"
    assert await _joins(first, "newname", "hall") == "474"
    assert await _ban_list(second, "hall") == ["visitor!*@*"]

    owner.send("MODE #hall -b visitor")
    assert (await owner.expect("MODE")).params == ("#hall", "-b", "visitor!*@*")
    assert await _joins(second, "visitor", "hall") == "366"
    assert await _joins(first, "visitor", "hall") == "366"
    assert await _ban_list(second, "hall") == []
    await _gone(owner)


async def test_a_guest_ban_outlives_a_nodes_restart_and_is_lifted_through_it(
        start_node: StartNode) -> None:
    first, second, owner = await _hall_with_a_guest_banned(start_node)
    await second.stop()
    second = await start_node(2, **GUESTS)
    assert await _joins(second, "visitor", "hall") == "474"
    assert await _ban_list(second, "hall") == ["visitor!*@*"]
    # Lifted through the restarted node, by the nick of the guest gone since.
    admin = await login(second, "owner")
    assert (await admin.command("/unban visitor hall")).ok
    await admin.close()
    await everywhere([first], lambda app: app.irc is not None
                     and app.irc.front.guests.bans(app.services.rooms.require("hall")) == [])
    assert await _joins(first, "visitor", "hall") == "366"
    assert await _joins(second, "visitor", "hall") == "366"
    await _gone(owner)


async def test_the_guest_bans_of_a_room_go_when_it_ends(
        start_node: StartNode, shared: redis.asyncio.Redis) -> None:
    first, second, owner = await _hall_with_a_guest_banned(start_node)
    room_id = first.services.rooms.require("hall").id
    assert await shared.exists(keys.guest_bans(room_id))
    owner.send("PART #hall")
    await owner.expect("PART")
    await everywhere([first, second], lambda app: app.services.rooms.find("hall") is None)
    await _gone(owner)
    await _deleted(shared, room_id)


async def test_the_bans_an_ended_rooms_deletion_left_go_at_a_nodes_start(
        start_node: StartNode, shared: redis.asyncio.Redis) -> None:
    first, second, owner = await _hall_with_a_guest_banned(start_node)
    room_id = first.services.rooms.require("hall").id
    kept = await shared.get(keys.guest_bans(room_id))
    assert kept is not None
    owner.send("PART #hall")
    await owner.expect("PART")
    await everywhere([first, second], lambda app: app.services.rooms.find("hall") is None)
    await _gone(owner)
    await _deleted(shared, room_id)
    # The deletions lost (Redis did not answer at the end, or both nodes were
    # killed before theirs ran): the ended room's bans are still in Redis.
    await shared.set(keys.guest_bans(room_id), kept)
    await second.stop()
    second = await start_node(2, **GUESTS)
    await _deleted(shared, room_id)


async def test_a_guest_ban_with_a_duration_runs_out_on_another_node(
        start_node: StartNode) -> None:
    first = await start_node(1, **GUESTS)
    second = await start_node(2, **GUESTS)
    await register(first, "owner")
    owner = await login(first, "owner")
    await owner.command("/create hall")
    await everywhere([first, second], lambda app: app.services.rooms.find("hall") is not None)
    visitor = await _guest(first, "visitor")
    visitor.send("JOIN #hall")
    await visitor.expect("366")
    assert (await owner.command("/ban visitor hall 10m"))["until"] == first.clock.time() + 600
    await visitor.expect("KICK")
    await _gone(visitor)
    assert await _joins(second, "visitor", "hall") == "474"
    clock = second.clock
    assert isinstance(clock, ManualClock)
    clock.advance(600)  # on the second node's clock, which judges its JOIN
    assert await _joins(second, "visitor", "hall") == "366"
    assert await _joins(first, "visitor", "hall") == "474"  # its clock has not moved
    await owner.close()


async def _blocked_on(blocker: Any) -> bool:
    """Whether a session of the database waits for a lock ``blocker`` holds."""
    waiting = await blocker.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
        blocker.get_server_pid())
    return bool(waiting)


async def test_a_guest_renamed_while_its_departure_is_stored_is_banned_under_its_new_nick(
        start_node: StartNode, shared: redis.asyncio.Redis, postgres_url: str) -> None:
    # The ban is written before the guest's departure is stored; a NICK then (the
    # guest still in the room) moves the ban to the new nick, on every node.
    import asyncpg

    first = await start_node(1, **GUESTS)
    second = await start_node(2, **GUESTS)
    await register(first, "owner")
    owner = await irc_login(_port(first), "owner")
    owner.send("JOIN #hall")
    await owner.expect("366")
    await everywhere([first, second], lambda app: app.services.rooms.find("hall") is not None)
    visitor = await _guest(first, "visitor")
    visitor.send("JOIN #hall")
    await visitor.expect("366")
    room_id = first.services.rooms.require("hall").id
    blocker = await asyncpg.connect(postgres_url)
    # Takes the room's lock next, after the ban's decision and before the move's:
    # the second node reads the ban, under the old nick, before the move.
    room_lock = await asyncpg.connect(postgres_url)
    held = blocker.transaction()
    await held.start()
    try:
        # Reads go on (the room is read again in its transaction); the departure's
        # write waits for this lock.
        await blocker.execute("LOCK TABLE members IN EXCLUSIVE MODE")
        owner.send("MODE #hall +b visitor")
        async with asyncio.timeout(10):
            while not await _blocked_on(blocker):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        queued = asyncio.create_task(room_lock.execute(
            "SELECT pg_advisory_lock($1, $2)", ROOM_LOCKS, room_id))
        async with asyncio.timeout(10):
            while not await blocker.fetchval(  # noqa: ASYNC110
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND NOT granted"):
                await asyncio.sleep(0.01)
        visitor.send("NICK wanderer")
        await visitor.expect("NICK")
    finally:
        await held.rollback()
        await blocker.close()
    assert (await owner.expect("MODE")).params == ("#hall", "+b", "wanderer!*@*")
    await queued
    await everywhere([second], lambda app: app.services.moderation.guest_banned("visitor"))
    await room_lock.execute("SELECT pg_advisory_unlock($1, $2)", ROOM_LOCKS, room_id)
    await room_lock.close()
    await _gone(visitor)
    async with asyncio.timeout(10):  # moved in a transaction of its own, after the ban's
        while b"wanderer" not in (await shared.get(keys.guest_bans(room_id)) or b""):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    # The other node, which read the ban under the old nick, reads the move without
    # a decision about the room: its ban list and its /unban of the new nick know it.
    await everywhere([second], lambda app: app.services.moderation.guest_banned("wanderer"))
    assert await _ban_list(second, "hall") == ["wanderer!*@*"]
    admin = await login(second, "owner")
    assert (await admin.command("/unban wanderer hall")).ok
    await admin.close()
    other = await irc_login(_port(second), "owner")
    other.send("MODE #hall -b visitor")
    assert (await other.expect("401")).params[1] == "visitor"
    assert await _joins(first, "wanderer", "hall") == "366"
    await _gone(other)
    await _gone(owner)


async def test_a_guest_of_another_node_whose_nick_is_banned_leaves_the_room_once(
        start_node: StartNode) -> None:
    # The nick is checked per node: "visitor" is a guest of each. The owner bans
    # node 1's (not in #hall) through node 1; node 2's, in #hall, is held by the
    # ban's nick, and its own node, reading the ban, takes it out of the room.
    first = await start_node(1, **GUESTS)
    second = await start_node(2, **GUESTS)
    await register(first, "owner")
    await register(first, "watcher")
    owner = await irc_login(_port(first), "owner")
    owner.send("JOIN #hall")
    await owner.expect("366")
    await everywhere([first, second], lambda app: app.services.rooms.find("hall") is not None)
    watcher = await irc_login(_port(second), "watcher")
    watcher.send("JOIN #hall")
    await watcher.expect("366")
    visitor = await _guest(second, "visitor")
    visitor.send("JOIN #hall")
    await visitor.expect("366")
    await watcher.expect("JOIN")
    namesake = await _guest(first, "visitor")

    owner.send("MODE #hall +b visitor")
    assert (await owner.expect("MODE")).params == ("#hall", "+b", "visitor!*@*")
    kicked = await visitor.expect("KICK")
    assert kicked.params[:2] == ("#hall", "visitor")
    seen = await watcher.until("KICK")
    assert [m.command for m in seen] == ["MODE", "KICK"]
    assert seen[1].params[:2] == ("#hall", "visitor")
    hall = second.services.rooms.require("hall")
    assert [m.name for m in hall.members.values()] == ["owner", "watcher"]

    # Nothing more of it reaches the room: no second departure, and no message
    # of the guest, whose post is refused.
    visitor.send("PRIVMSG #hall :still here?")
    assert (await visitor.expect("404", "442")).params[1] == "#hall"
    watcher.send("PING :sync")
    assert [m.command for m in await watcher.until("PONG")] == ["PONG"]
    # The owner, on node 1, is told of the departure as node 2's members are.
    assert (await owner.expect("KICK")).params[:2] == ("#hall", "visitor")
    owner.send("PING :sync")
    assert [m.command for m in await owner.until("PONG")] == ["PONG"]
    for client in (visitor, namesake, watcher, owner):
        await _gone(client)


async def test_a_banned_guest_of_another_node_leaves_though_its_first_try_found_the_room_busy(
        start_node: StartNode, postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    # Node 2's guest "visitor" is in #hall when a ban of the nick is decided through
    # node 1 (whose own "visitor" it takes out). The room's lock is then held (by the
    # test) past the wait of node 2's departure: refused busy, it is tried again
    # rather than left until the room's next decision, while the guest hears the room.
    import asyncpg

    first = await start_node(1, **GUESTS)
    second = await start_node(2, **GUESTS)
    await register(first, "owner")
    owner = await irc_login(_port(first), "owner")
    owner.send("JOIN #hall")
    await owner.expect("366")
    await everywhere([first, second], lambda app: app.services.rooms.find("hall") is not None)
    banned = await _guest(first, "visitor")
    banned.send("JOIN #hall")
    await banned.expect("366")
    visitor = await _guest(second, "visitor")
    visitor.send("JOIN #hall")
    await visitor.expect("366")
    room_id = first.services.rooms.require("hall").id
    blocker = await asyncpg.connect(postgres_url)
    room_lock = await asyncpg.connect(postgres_url)
    held = blocker.transaction()
    await held.start()
    try:
        # The ban's departure waits for this lock; the room's lock is asked for
        # meanwhile, so that the test has it next, before node 2's departure.
        await blocker.execute("LOCK TABLE members IN EXCLUSIVE MODE")
        owner.send("MODE #hall +b visitor")
        async with asyncio.timeout(10):
            while not await _blocked_on(blocker):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        queued = asyncio.create_task(room_lock.execute(
            "SELECT pg_advisory_lock($1, $2)", ROOM_LOCKS, room_id))
        async with asyncio.timeout(10):
            while not await blocker.fetchval(  # noqa: ASYNC110
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND NOT granted"):
                await asyncio.sleep(0.01)
    finally:
        await held.rollback()
        await blocker.close()
    await queued
    # Node 2's departure waits for the room's lock, and gives up (busy).
    async with asyncio.timeout(20):
        while not any("lock was not taken" in r.getMessage()  # noqa: ASYNC110
                      for r in caplog.records):
            await asyncio.sleep(0.05)
    await room_lock.execute("SELECT pg_advisory_unlock($1, $2)", ROOM_LOCKS, room_id)
    await room_lock.close()
    # (Node 1's "visitor" was told KICK too, by node 1's ban: the KICK of one nick
    # that each node's guest reads, as when the banning node has one of its own.)
    hall = second.services.rooms.require("hall")
    await everywhere([second], lambda app: [m.name for m in hall.members.values()] == ["owner"])
    visitor.send("PRIVMSG #hall :still here?")
    assert (await visitor.expect("404", "442")).params[1] == "#hall"
    for client in (visitor, banned, owner):
        await _gone(client)
