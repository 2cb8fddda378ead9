"""A bot's messages carry "bot": true across nodes: sent through one node, seen
through another live, in history and replayed at a log-in, whichever way the
node sent them (docs/PROTOCOL.md, the message's fields)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chatd.client import ChatClient
from chatd.crypto import envelope
from chatd.crypto.envelope import Identity, seal
from chatd.crypto.group import Handout
from chatd.crypto.ratchet import OutboundChain
from tests.cluster.conftest import StartNode, login, register
from tests.cluster.test_accounts import everywhere
from tests.cluster.test_quotas import offline_member_everywhere
from tests.helpers import PASSWORD

pytestmark = pytest.mark.asyncio


def _message(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("type") == "message" and e.get("text") == text


def _sender_key(sender: str, room: str, to: str) -> str:
    """A version 1 envelope handing ``sender``'s key for ``room`` to ``to`` alone."""
    mine, theirs = Identity.generate(), Identity.generate()
    handout = Handout.of(OutboundChain.create(0.0)).pack()
    return envelope.b64(seal(handout, sender, f"#{room}", mine, [theirs.public(to)]))


async def test_a_bots_messages_through_one_node_are_marked_on_another(
        start_node: StartNode) -> None:
    first = await start_node(1)
    await register(first, "alice", "bob")
    second = await start_node(2)
    nodes = [first, second]
    await everywhere(nodes, lambda app: app.services.accounts.find("bob") is not None)
    alice = await login(first, "alice")
    await alice.command("/create den")
    token = (await alice.command("/bot create beeper"))["token"]
    beeper = await ChatClient.connect("127.0.0.1", first.port)
    await beeper.command(f"/auth {token}")
    await beeper.command("/join den")
    bob = await login(second, "bob")
    await bob.command("/join den")
    await everywhere(nodes, lambda app: app.services.rooms.require("den").is_member(
        app.services.accounts.require("bob").id))

    await beeper.command("/say den beep")
    assert (await bob.next_event(_message("beep")))["bot"] is True
    await beeper.command("/msg bob psst")
    direct = await bob.next_event(_message("psst"))
    assert direct["to"] == "bob" and direct["bot"] is True
    await bob.command("/say den hello")
    history = (await bob.command("/history den"))["messages"]
    assert {m["text"]: m.get("bot") for m in history} == {"beep": True, "hello": None}

    # A sender key for a member who is offline is kept counted, by another way.
    await bob.close()
    await everywhere(nodes, offline_member_everywhere("bob", "den"))
    assert (await beeper.command(f"/ekey den bob {_sender_key('beeper', 'den', 'bob')}")).ok
    back = await ChatClient.connect("127.0.0.1", second.port)
    replayed = (await back.command(f"/login bob {PASSWORD}")).lines
    keys = [line for line in replayed if line.get("room_key") == "den"]
    assert [(key["from"], key.get("bot")) for key in keys] == [("beeper", True)], replayed
    for client in (alice, beeper, back):
        await client.close()
