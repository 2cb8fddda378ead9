"""A first conversation: register, create, talk, read history."""

from __future__ import annotations

from tests.helpers import Clients


async def test_two_users_chat_in_a_room(clients: Clients) -> None:
    alice = await clients.user("alice")
    bob = await clients.user("bob")
    created = await alice.command("/create general")
    assert created["id"] >= 1 and created["room"] == "general"
    await bob.command("/join general")
    echo = await alice.say("hello bob")
    assert echo["type"] == "message" and echo["from"] == "alice" and echo["id"] >= 1
    got = await bob.next_event(lambda e: e.get("type") == "message")
    assert got["text"] == "hello bob" and got["room"] == "general"
    history = await bob.command("/history general")
    assert [m["text"] for m in history["messages"]] == ["hello bob"]
