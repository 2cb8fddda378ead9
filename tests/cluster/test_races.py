"""Governance raced across nodes, beyond the four of the fault tests
(tests/cluster/test_faults.py): an account deleted while it joins a room through
another node, ownership handed to a member who leaves through another node, one
join request accepted by two admins on two nodes, and a room's last member
leaving while a newcomer joins elsewhere. Each is decided once, whichever came
first: afterwards PostgreSQL holds one outcome and every node's memory of the
room is that outcome (docs/CLUSTER.md, "Governance exactly once")."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

import asyncpg
import pytest

from chatd.app.app import App
from chatd.client import ChatClient
from chatd.cluster.transactions import ROOM_LOCKS
from chatd.domain.clock import ManualClock
from tests.cluster.conftest import login, register
from tests.cluster.test_accounts import everywhere
from tests.cluster.test_nodes import (
    known_everywhere,
    members_on_every_node,
    nodes,  # noqa: F401 - the three nodes
    sanctions_everywhere,
)
from tests.helpers import PASSWORD

pytestmark = pytest.mark.asyncio

Roles = dict[int, str]


async def stored_roles(app: App, room_id: int) -> Roles:
    """The room's members and their roles as PostgreSQL holds them."""
    return {m.user_id: m.role for m in await app.storage.load_members() if m.room_id == room_id}


def remembered_roles(app: App, room_id: int) -> Roles | None:
    """The room's members and their roles in ``app``'s memory (None: no such live room)."""
    room = app.services.rooms.get(room_id)
    if room is None:
        return None
    return {user_id: member.role.value for user_id, member in room.members.items()}


async def agreed(nodes: list[App], room_id: int) -> Roles:  # noqa: F811
    """Wait until every node's memory of the room is what PostgreSQL holds (bounded);
    that outcome. A room with no member row is one that ended: no node holds it."""
    stored = await stored_roles(nodes[0], room_id)
    expected = stored or None
    await everywhere(nodes, lambda app: remembered_roles(app, room_id) == expected)
    if stored:
        assert list(stored.values()).count("owner") == 1, stored
    return stored


def room_id(app: App, name: str) -> int:
    return app.services.rooms.require(name).id


def user_id(app: App, name: str) -> int:
    return app.services.accounts.require(name).id


async def joining(client: ChatClient, room: str) -> str:
    """``/join room``'s outcome: ok, the refusal's code, or closed (the account's
    deletion closed the connection before the answer)."""
    return await outcome(client, f"/join {room}")


async def outcome(client: ChatClient, line: str) -> str:
    """``line``'s outcome: ok, the refusal's code, or closed (the connection was
    closed before the answer)."""
    try:
        reply = await client.command(line, check=False)
    except ConnectionError:
        return "closed"
    return "ok" if reply.ok else str(reply.final["code"])


async def with_admin_and(nodes: list[App], name: str) -> tuple[ChatClient, int]:  # noqa: F811
    """ann, a server admin, logged in on the first node; account ``name`` made and
    known on every node; its id."""
    admin = nodes[0].services.accounts.require("ann")
    await nodes[0].services.accounts.set_admin(admin, True)
    await everywhere(nodes, lambda app: app.services.accounts.require("ann").is_admin)
    await register(nodes[0], name)
    await everywhere(nodes, lambda app: app.services.accounts.find(name) is not None)
    return await login(nodes[0], "ann"), user_id(nodes[0], name)


async def ownerless_live_rooms(app: App) -> list[str]:
    """The live rooms PostgreSQL holds with no owner among their members."""
    owned = {m.room_id for m in await app.storage.load_members() if m.role == "owner"}
    return [r.name for r in await app.storage.load_active_rooms() if r.id not in owned]


async def test_an_account_deleted_while_it_joins_through_another_node(
        nodes: list[App]) -> None:  # noqa: F811
    admin = nodes[0].services.accounts.require("ann")
    await nodes[0].services.accounts.set_admin(admin, True)
    await everywhere(nodes, lambda app: app.services.accounts.require("ann").is_admin)
    ann, dan = await login(nodes[0], "ann"), await login(nodes[2], "dan")
    await dan.command("/create hall")
    await known_everywhere(nodes, "hall")
    hall = room_id(nodes[0], "hall")
    outcomes = set()
    for round_ in range(3):
        name = f"eve{round_}"
        await register(nodes[0], name)
        await everywhere(nodes, lambda app, name=name: app.services.accounts.find(name)
                         is not None)
        eve = await login(nodes[1], name)
        eve_id = user_id(nodes[1], name)
        deleted, joined = await asyncio.gather(ann.command(f"/userdel {name}", check=False),
                                               joining(eve, "hall"))
        assert deleted.ok, deleted.final
        outcomes.add(joined)
        # Joined first then deleted, or deleted first and the join refused: never
        # a member row of a deleted account, on any node or in the database.
        roles = await agreed(nodes, hall)
        assert eve_id not in roles and user_id(nodes[0], "dan") in roles
        await everywhere(nodes, lambda app, name=name: app.services.accounts.find(name)
                         is None)
        await eve.close()
    # Which came first varies; each outcome is one of these, never an internal error.
    assert outcomes <= {"ok", "no-such-user", "closed"}, outcomes
    for client in (ann, dan):
        await client.close()


async def test_an_account_deleted_while_it_creates_a_room_through_another_node(
        nodes: list[App], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The deletion has read the account's rooms on one node when the account's
    /create reaches another: the creation waits for the deletion, then is refused
    (or its connection closed by it), never a live room whose owner is gone."""
    ann, _ = await with_admin_and(nodes, "eve")
    eve = await login(nodes[1], "eve")
    storage, rooms_read = nodes[0].storage, asyncio.Event()
    read_rooms = storage.member_room_ids

    async def read_then_linger(user: int) -> list[int]:
        found = await read_rooms(user)
        rooms_read.set()
        await asyncio.sleep(0.5)  # the deletion's window, wide enough to create in
        return found

    monkeypatch.setattr(storage, "member_room_ids", read_then_linger)
    deletion = asyncio.create_task(ann.command("/userdel eve", check=False))
    await rooms_read.wait()
    created = await outcome(eve, "/create nook")
    deleted = await deletion
    assert deleted.ok, deleted.final
    assert created in ("no-such-user", "closed"), created
    await everywhere(nodes, lambda app: app.services.rooms.find("nook") is None
                     and app.services.accounts.find("eve") is None)
    assert await ownerless_live_rooms(nodes[0]) == []
    for client in (ann, eve):
        await client.close()


async def test_a_room_of_the_account_unknown_to_the_deleting_node_ends_with_it(
        nodes: list[App]) -> None:  # noqa: F811
    """A room another node created a moment ago, whose announcement has not
    reached the node deleting its owner (its rows written straight to the
    database): the deletion reads it there and ends it, as it ends every room
    the account was the last member of."""
    ann, eve_id = await with_admin_and(nodes, "eve")
    await nodes[1].storage.create_room("nook", "open", eve_id, nodes[1].clock.time())
    assert nodes[0].services.rooms.find("nook") is None
    await ann.command("/userdel eve")
    assert await ownerless_live_rooms(nodes[0]) == []
    audit = await nodes[0].storage.list_audit(100, room="nook")
    assert [a.action for a in audit].count("terminate") == 1, [a.action for a in audit]
    await everywhere(nodes, lambda app: app.services.rooms.find("nook") is None)
    await ann.close()


async def test_ownership_handed_to_a_member_leaving_through_another_node(
        nodes: list[App]) -> None:  # noqa: F811
    ann, bob, cat = await members_on_every_node(nodes, "hall")
    hall = room_id(nodes[0], "hall")
    await everywhere(nodes, lambda app: len(remembered_roles(app, hall) or ()) == 3)
    transfer, leave = await asyncio.gather(ann.command("/transfer bob hall", check=False),
                                           bob.command("/leave hall", check=False))
    assert leave.ok, leave.final
    # Transferred first: bob owned it and left, and succession gave it back to
    # ann, an admin since. Left first: nothing to transfer to.
    assert transfer.ok or transfer.final["code"] == "not-in-room", transfer.final
    roles = await agreed(nodes, hall)
    assert roles == {user_id(nodes[0], "ann"): "owner", user_id(nodes[0], "cat"): "member"}
    for client in (ann, bob, cat):
        await client.close()


async def test_one_join_request_accepted_by_two_admins_on_two_nodes(
        nodes: list[App]) -> None:  # noqa: F811
    ann, bob = await login(nodes[0], "ann"), await login(nodes[1], "bob")
    dan = await login(nodes[2], "dan")
    await ann.command("/create den")
    await known_everywhere(nodes, "den")
    await bob.command("/join den")
    await ann.command("/promote bob den")
    await ann.command("/mode request den")
    den = room_id(nodes[0], "den")
    await everywhere(nodes, lambda app: (remembered_roles(app, den) or {}).get(
        user_id(app, "bob")) == "admin" and app.services.rooms.require("den").mode == "request")
    assert (await dan.command("/join den"))["requested"] is True
    first, second = await asyncio.gather(ann.command("/accept dan den", check=False),
                                         bob.command("/accept dan den", check=False))
    assert [first.ok, second.ok].count(True) == 1, (first.final, second.final)
    refused = second if first.ok else first
    assert refused.final["code"] in ("bad-arguments", "already-in-room"), refused.final
    roles = await agreed(nodes, den)
    assert roles.get(user_id(nodes[0], "dan")) == "member"
    audit = await nodes[0].storage.list_audit(100, room="den")
    assert [a.action for a in audit].count("accept") == 1, [a.action for a in audit]
    for client in (ann, bob, dan):
        await client.close()


async def test_the_last_member_leaving_while_a_newcomer_joins_ends_the_room_once(
        nodes: list[App]) -> None:  # noqa: F811
    """Either order ends the room, once: the owner left alone, or left with one plain
    member, who is evicted (docs/PROTOCOL.md, succession and termination)."""
    clients: list[ChatClient] = []
    for round_ in range(3):
        name = f"nook{round_}"
        ann, cat = await login(nodes[0], "ann"), await login(nodes[2], "cat")
        clients += [ann, cat]
        await ann.command(f"/create {name}")
        await known_everywhere(nodes, name)
        nook = room_id(nodes[0], name)
        left, joined = await asyncio.gather(ann.command(f"/leave {name}", check=False),
                                            cat.command(f"/join {name}", check=False))
        assert left.ok, left.final
        assert await agreed(nodes, nook) == {}
        if joined.ok:  # joined first: evicted by the leave, and told
            ended = await cat.next_event(lambda e, name=name: e.get("event") == "terminated"
                                         and e.get("room") == name, timeout=10)
            assert ended["user"] == "cat"
        else:  # left first: nothing to join
            assert joined.final["code"] == "no-such-room", joined.final
        audit = await nodes[0].storage.list_audit(100, room=name)
        assert [a.action for a in audit].count("terminate") == 1
    for client in clients:
        await client.close()


async def test_rows_of_an_account_deleted_elsewhere_are_refused_in_words(
        nodes: list[App]) -> None:  # noqa: F811
    """The account is gone from the database (another node's /userdel, whose
    announcement has not reached this node yet): what would write a row naming
    it is refused with no-such-user, never an internal error."""
    ann = await login(nodes[1], "ann")
    await ann.command("/create den")
    await ann.command("/mode request den")
    await ann.command("/create hall")
    await register(nodes[0], "eve", "fay")
    await everywhere(nodes, lambda app: app.services.accounts.find("fay") is not None)
    eve = await login(nodes[1], "eve")
    for name in ("eve", "fay"):
        await nodes[0].storage.delete_user(user_id(nodes[0], name))
    refused = [await eve.command(line, check=False)
               for line in ("/join hall", "/join den", "/create nook")]
    refused.append(await ann.command("/invite fay hall", check=False))
    assert [r.final.get("code") for r in refused] == ["no-such-user"] * 4, \
        [r.final for r in refused]
    assert "the account eve was deleted." in refused[0].final["message"]
    assert "fay" in refused[3].final["message"]
    for client in (ann, eve):
        await client.close()


async def test_a_mute_imposed_again_through_another_node_as_the_old_one_expires(
        nodes: list[App]) -> None:  # noqa: F811
    """The leader's expiry lifts a run-out mute while an admin on another node mutes
    the member again: either order is one outcome, the new mute, held by
    PostgreSQL and by every node's memory alike. (The expiry decides under the
    room's lock, so a lift can no longer be numbered after a mute written while
    the expiry deleted its row: a window too narrow to hit on purpose here.)"""
    ann, bob, cat = await members_on_every_node(nodes, "hall")
    again = await login(nodes[2], "ann")
    hall, bob_id = room_id(nodes[0], "hall"), user_id(nodes[0], "bob")
    for _round in range(3):
        await ann.command("/mute bob hall 30s")
        await sanctions_everywhere(nodes, "hall", (set(), {bob_id}))
        for app in nodes:
            clock = app.clock
            assert isinstance(clock, ManualClock)
            clock.advance(30)
        expired, muted = await asyncio.gather(nodes[0].services.moderation.expire(),
                                              again.command("/mute bob hall 10m"))
        assert expired in (0, 1) and muted.ok
        [stored] = [s for s in await nodes[0].storage.load_sanctions("mute")
                    if (s.room_id, s.user_id) == (hall, bob_id)]
        assert stored.until == muted["until"]
        await everywhere(nodes, lambda app, until=stored.until: getattr(
            app.services.rooms.require("hall").mutes.get(bob_id), "until", None) == until)
        assert (await bob.command("/say hall still muted?", check=False))["code"] == "muted"
        await ann.command("/unmute bob hall")
        await sanctions_everywhere(nodes, "hall", (set(), set()))
    for client in (ann, bob, cat, again):
        await client.close()


async def test_a_busy_room_puts_off_its_own_expiry_alone(
        nodes: list[App], postgres_url: str) -> None:  # noqa: F811
    """The expiry takes each room's lock in turn. One it cannot take in time (held
    here by another session, as by a decision that hangs) keeps its run-out mute,
    row and all, for the next pass; the other rooms' are lifted all the same."""
    ann, bob, cat = await members_on_every_node(nodes, "hall")
    await ann.command("/create den")
    await known_everywhere(nodes, "den")
    await bob.command("/join den")
    bob_id = user_id(nodes[0], "bob")
    for room in ("hall", "den"):
        await ann.command(f"/mute bob {room} 30s")
        await sanctions_everywhere(nodes, room, (set(), {bob_id}))
    for app in nodes:
        clock = app.clock
        assert isinstance(clock, ManualClock)
        clock.advance(30)
    hall = room_id(nodes[0], "hall")
    holder = await asyncpg.connect(postgres_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1, $2)", ROOM_LOCKS, hall)
        assert await nodes[0].services.moderation.expire() == 1
    finally:
        await holder.close()
    assert [s.room_id for s in await nodes[0].storage.load_sanctions("mute")] == [hall]
    await sanctions_everywhere(nodes, "den", (set(), set()))
    assert await nodes[0].services.moderation.expire() == 1  # the next pass
    await sanctions_everywhere(nodes, "hall", (set(), set()))
    for client in (ann, bob, cat):
        await client.close()


async def test_direct_messages_in_flight_when_their_sender_hangs_up(
        nodes: list[App], caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    """A direct message's charge and id are awaited on a cluster; a sender gone
    meanwhile (its connection reset) must not fail the command with an internal
    error, and the message numbered goes out (every node waits for a taken id)."""
    dan = await login(nodes[0], "dan")
    for round_ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", nodes[1].port)
        writer.write(f"/login ann {PASSWORD}\r\n".encode())
        while b"Welcome back" not in await reader.readline():
            pass
        writer.write("".join(f"/msg dan in flight {round_}.{i}\r\n"
                             for i in range(40)).encode())
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # a reset, with the messages in flight
        got = await dan.next_event(lambda e: e.get("from") == "ann", timeout=10)
        assert got["text"].startswith(f"in flight {round_}.")
    await dan.command("/ping")
    failed = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert failed == [], [r.getMessage() for r in failed]
    await dan.close()
