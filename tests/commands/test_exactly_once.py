"""Decisions made once: two admins deleting the same account at the same time."""

from __future__ import annotations

import asyncio

from tests.backends import both
from tests.commands.conftest import Chat, Peer, settle

# Decided once and persisted alike on both storage backends.
backend = both


async def admin(chat: Chat, name: str) -> Peer:
    peer = await chat.user(name, json_format=True)
    user = chat.server.services.accounts.find(name)
    assert user is not None
    await chat.server.services.accounts.set_admin(user, True)
    return peer


async def test_an_account_deleted_twice_at_once_goes_once(chat: Chat) -> None:
    alice, carol = await admin(chat, "alice"), await admin(chat, "carol")
    bob = await chat.user("bob")
    await bob.say("/create den")
    await bob.say("/create hall")
    # Both lines arrive in the same turn: each deletion starts before the other ends.
    for peer in (alice, carol):
        peer.connection.data_received(b"/userdel bob\r\n")
    await asyncio.gather(settle(alice.connection), settle(carol.connection))
    finals = [r for peer in (alice, carol) for r in peer.records()
              if r["type"] in ("ok", "error")]
    assert sorted(r["type"] for r in finals) == ["error", "ok"]
    [refused] = [r for r in finals if r["type"] == "error"]
    assert refused["code"] == "no-such-user"
    services = chat.server.services
    assert services.accounts.find("bob") is None and services.rooms.count == 0
    entries = await services.audit.entries(50)
    assert [e.target for e in entries if e.action == "account-deleted"] == ["bob"]


async def test_an_account_without_rooms_deleted_twice_at_once_goes_once(chat: Chat) -> None:
    await chat.user("bob")
    services = chat.server.services
    bob = services.accounts.find("bob")
    assert bob is not None
    outcomes = await asyncio.gather(services.presence.delete_account(bob, actor="a"),
                                    services.presence.delete_account(bob, actor="b"),
                                    return_exceptions=True)
    assert outcomes[0] is None
    assert getattr(outcomes[1], "code", None) == "no-such-user"
    assert services.accounts.find("bob") is None
