"""The counts one user or room may hold, raced across nodes: creations sent at
the same moment through three nodes stop exactly at the limit, and every one
past it is refused with ``quota-exceeded`` (docs/CLUSTER.md, "Quotas exactly
once"). Each node's memory alone would let every node take the last place."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest

from chatd.app.app import App
from chatd.client import ChatClient
from chatd.domain.tokens import MAX_TOKENS
from commands.bots import MAX_BOTS
from storage.quotas import Measure, Quota
from storage.records import UserBlockRecord
from tests.cluster.conftest import StartNode, login, register
from tests.cluster.test_accounts import everywhere
from tests.cluster.test_races import outcome
from tests.crypto.test_e2e_server import handout

pytestmark = pytest.mark.asyncio

# Connections of one person per node, each sending one creation, all at once.
PER_NODE = 3
# The limits under test: small, so that most of the creations raced are past them.
LIMIT = 2
# Races run one after the other where one may be won by chance.
ROUNDS = 4


async def three_nodes(start_node: StartNode, *names: str, **limits: int) -> list[App]:
    """Three nodes with ``limits``; the accounts ``names`` made on the first and
    known on every node."""
    first = await start_node(1, **limits)
    await register(first, *names)
    nodes = [first, await start_node(2, **limits), await start_node(3, **limits)]
    await everywhere(nodes, lambda app: all(app.services.accounts.find(name) is not None
                                            for name in names))
    return nodes


async def connections(nodes: list[App], name: str, per_node: int = PER_NODE
                      ) -> list[ChatClient]:
    """``name`` logged in ``per_node`` times on each node."""
    return [await login(app, name) for app in nodes for _ in range(per_node)]


async def at_once(clients: list[ChatClient], lines: list[str]) -> Counter[str]:
    """Each client sends its line, all at the same moment; how many of each outcome."""
    outcomes = await asyncio.gather(*(outcome(client, line)
                                      for client, line in zip(clients, lines, strict=True)))
    for client in clients:
        await client.close()
    return Counter(outcomes)


async def test_rooms_created_through_three_nodes_at_once_stop_at_max_owned(
        start_node: StartNode) -> None:
    nodes = await three_nodes(start_node, "ann", rooms__max_owned=LIMIT)
    clients = await connections(nodes, "ann")
    outcomes = await at_once(clients, [f"/create hall{i}" for i in range(len(clients))])
    assert outcomes == {"ok": LIMIT, "quota-exceeded": len(clients) - LIMIT}, outcomes
    ann = nodes[0].services.accounts.require("ann").id
    owners = [m for m in await nodes[0].storage.load_members()
              if m.user_id == ann and m.role == "owner"]
    assert len(owners) == LIMIT, owners


async def test_webhooks_created_through_three_nodes_at_once_stop_at_max_webhooks(
        start_node: StartNode) -> None:
    nodes = await three_nodes(start_node, "ann", web__max_webhooks=LIMIT)
    owner = await login(nodes[0], "ann")
    # A round per room: each node's creations wait for each other, so a round's
    # race is at one moment; several make it all but certain to be run.
    rooms = [f"hall{number}" for number in range(ROUNDS)]
    for room in rooms:
        await owner.command(f"/create {room}")
    await owner.close()
    await everywhere(nodes, lambda app: all(app.services.rooms.find(room) is not None
                                            for room in rooms))
    for room in rooms:
        clients = await connections(nodes, "ann")
        outcomes = await at_once(clients, [f"/webhook create hook{i} {room}"
                                           for i in range(len(clients))])
        assert outcomes == {"ok": LIMIT, "quota-exceeded": len(clients) - LIMIT}, outcomes
        room_id = nodes[0].services.rooms.require(room).id
        assert len(await nodes[0].storage.list_webhooks(room_id)) == LIMIT


async def test_blocks_made_through_three_nodes_at_once_stop_at_max_blocks(
        start_node: StartNode) -> None:
    others = [f"pest{i}" for i in range(3 * PER_NODE)]
    nodes = await three_nodes(start_node, "ann", *others, accounts__max_blocks=LIMIT)
    clients = await connections(nodes, "ann")
    outcomes = await at_once(clients, [f"/block {name}" for name in others])
    assert outcomes == {"ok": LIMIT, "quota-exceeded": len(clients) - LIMIT}, outcomes
    ann = nodes[0].services.accounts.require("ann").id
    assert len(await nodes[0].storage.list_user_blocks(ann)) == LIMIT


async def test_a_block_made_elsewhere_and_not_yet_heard_of_is_already_at_the_limit(
        start_node: StartNode) -> None:
    # ann blocks pest1 through a node whose word has not reached the second one yet
    # (the row alone, written to the shared database): at max_blocks, blocking
    # pest1 again through the second node was refused as over the quota.
    first = await start_node(1, accounts__max_blocks=LIMIT)
    names = [f"pest{i}" for i in range(LIMIT + 1)]
    await register(first, "ann", *names)
    second = await start_node(2, accounts__max_blocks=LIMIT)
    nodes = [first, second]
    await everywhere(nodes, lambda app: all(app.services.accounts.find(name) is not None
                                            for name in ["ann", *names]))
    ann = await login(first, "ann")
    for name in names[:LIMIT - 1]:
        assert (await ann.command(f"/block {name}"))["already"] is False
    await ann.close()
    accounts = second.services.accounts
    held, late = accounts.require("ann"), accounts.require(names[LIMIT - 1])
    await everywhere(nodes, lambda app: len(app.services.accounts.require("ann").blocked)
                     == LIMIT - 1)
    await second.storage.put_user_block(UserBlockRecord(held.id, late.id, 1.0))
    assert late.id not in held.blocked  # not heard of on the second node
    ann = await login(second, "ann")
    again = await ann.command(f"/block {late.name}", check=False)
    assert again.ok and again["already"] is True, again.final
    # In force on the second node from now on; a new block is still past the limit.
    sender = await login(second, late.name)
    assert (await sender.command("/msg ann hi", check=False))["code"] == "blocked"
    over = await ann.command(f"/block {names[LIMIT]}", check=False)
    assert over.final["code"] == "quota-exceeded"
    await sender.close()
    await ann.close()


async def test_bots_made_through_three_nodes_at_once_stop_at_the_quota(
        start_node: StartNode) -> None:
    nodes = await three_nodes(start_node, "ann")
    ann = await login(nodes[0], "ann")
    for number in range(MAX_BOTS - LIMIT):  # LIMIT places left, as for the others
        await ann.command(f"/bot create early{number}")
    await ann.close()
    await everywhere(nodes, lambda app: len(app.services.accounts.bots_of(
        app.services.accounts.require("ann"))) == MAX_BOTS - LIMIT)
    clients = await connections(nodes, "ann")
    outcomes = await at_once(clients, [f"/bot create robot{i}" for i in range(len(clients))])
    assert outcomes == {"ok": LIMIT, "quota-exceeded": len(clients) - LIMIT}, outcomes
    owner = nodes[0].services.accounts.require("ann").id
    bots = [u for u in await nodes[0].storage.list_users() if u.owner_id == owner]
    assert len(bots) == MAX_BOTS


async def test_api_tokens_made_through_three_nodes_at_once_stop_at_the_quota(
        start_node: StartNode) -> None:
    nodes = await three_nodes(start_node, "ann")
    tokens = nodes[0].services.tokens
    ann = nodes[0].services.accounts.require("ann")
    for number in range(MAX_TOKENS - LIMIT):  # LIMIT places left, as for the others
        await tokens.create(ann, f"early{number}", None)
    await everywhere(nodes, lambda app: len(app.services.tokens.of(
        app.services.accounts.require("ann"))) == MAX_TOKENS - LIMIT)
    clients = await connections(nodes, "ann")
    outcomes = await at_once(clients, [f"/token create late{i}" for i in range(len(clients))])
    assert outcomes == {"ok": LIMIT, "quota-exceeded": len(clients) - LIMIT}, outcomes
    assert len(await nodes[0].storage.list_tokens(ann.id)) == MAX_TOKENS


async def test_tokens_of_a_bot_asked_for_through_three_nodes_each_get_a_name(
        start_node: StartNode) -> None:
    # /bot token names the token the first of token2, token3 ... the bot has none of,
    # as its node holds them; a node may not yet hold one made through another a
    # moment ago. Such a name must not refuse a token nobody named (name-taken).
    nodes = await three_nodes(start_node, "ann")
    first = await login(nodes[0], "ann")
    await first.command("/bot create helper")
    await first.close()
    await everywhere(nodes, lambda app: app.services.accounts.find("helper") is not None)
    clients = await connections(nodes, "ann", per_node=1)
    named = await asyncio.gather(*(client.command("/bot token helper read", check=False)
                                   for client in clients))
    for client in clients:
        await client.close()
    assert all(reply.ok for reply in named), [reply.final for reply in named]
    assert len({reply["name"] for reply in named}) == len(clients)


def offline_member_everywhere(name: str, room: str) -> Callable[[App], bool]:
    """Whether a node knows ``name`` as a member of ``room`` and offline."""
    def holds(app: App) -> bool:
        user, found = app.services.accounts.find(name), app.services.rooms.find(room)
        return (user is not None and found is not None and found.is_member(user.id)
                and not user.online)
    return holds


async def test_sender_keys_left_through_three_nodes_at_once_stop_at_max_pending_keys(
        start_node: StartNode) -> None:
    """A handout is a message carried by the log: each node counting its own, one
    at a time, let one more through per node."""
    nodes = await three_nodes(start_node, "alice", "bob", crypto__max_pending_keys=LIMIT + 1)
    alice = await login(nodes[0], "alice")
    await alice.command("/create dev")
    await everywhere(nodes, lambda app: app.services.rooms.find("dev") is not None)
    bob = await login(nodes[1], "bob")
    await bob.command("/join dev")
    await bob.close()
    await everywhere(nodes, offline_member_everywhere("bob", "dev"))
    # One waits already: LIMIT places are left.
    assert (await alice.command(f"/ekey dev bob {handout('alice', 'dev', 'bob')}")).ok
    await alice.close()
    clients = await connections(nodes, "alice")
    lines = [f"/ekey dev bob {handout('alice', 'dev', 'bob')}" for _ in clients]
    outcomes = await at_once(clients, lines)
    assert outcomes == {"ok": LIMIT, "quota-exceeded": len(clients) - LIMIT}, outcomes
    # Each one answered ok is stored before its answer, and one more than the limit
    # never is.
    accounts = nodes[0].services.accounts
    waiting = Quota(Measure.WAITING_KEYS, accounts.require("alice").id, LIMIT + 1,
                    of=accounts.require("bob").id)
    assert await nodes[0].storage.held(waiting) == LIMIT + 1
