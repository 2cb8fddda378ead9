"""Bursts over the wire: many lines in one write are handled in one turn of the loop,
so the room fan-out shares one feed among the members (chatd.feed); every member
still sees exactly the order in which things happened."""

from __future__ import annotations

from typing import Any

from chatd.client import ChatClient
from tests.helpers import Clients, messages, room_with, settle, text_client, text_run


def burst(lines: list[str]) -> str:
    return "".join(f"{line}\r\n" for line in lines)


async def everything(client: ChatClient) -> list[dict[str, Any]]:
    return await settle(client)


async def test_a_burst_reaches_every_member_in_order_with_direct_messages_in_place(
        clients: Clients) -> None:
    alice, bob, carol = await room_with(clients, "alice", "bob", "carol")
    await carol.command("/create side")  # carol's current room is now another one
    await settle(carol)
    dave = await text_client(clients, "dave")
    await text_run(dave, "/join general")
    lines = []
    for i in range(60):
        lines.append(f"m{i}")
        if i % 7 == 3:
            lines.append(f"/msg bob dm{i}")
        if i % 11 == 5:
            lines.append(f"/say general said{i}")
    alice._writer.write(burst(lines).encode())  # one write: one read, one turn
    await alice.command("/ping")
    sequence = [("dm", line.split(" ", 2)[2]) if line.startswith("/msg bob ") else
                ("room", line.split(" ", 2)[2] if line.startswith("/say") else line)
                for line in lines]
    texts = [text for kind, text in sequence if kind == "room"]
    # The sender and the recipient of the direct messages see them exactly where
    # they were sent among the room's messages; carol sees only the room's.
    for member, expected in ((alice, sequence), (bob, sequence),
                             (carol, [("room", t) for t in texts])):
        got = messages(await everything(member))
        assert [("dm" if "to" in m else "room", m["text"]) for m in got] == expected
        got_ids = [m["id"] for m in got]
        assert got_ids == sorted(got_ids) and len(set(got_ids)) == len(got_ids)
    # The text-mode member (general is its current room) sees the same order.
    shown = [line for line in await text_run(dave, None) if "alice" in line]
    assert len(shown) == len(texts)
    assert all(text in line for text, line in zip(texts, shown, strict=True))


async def test_a_labelled_message_is_acknowledged_in_its_place(clients: Clients) -> None:
    alice, bob = await room_with(clients, "alice", "bob")
    alice._writer.write(burst(["a1", "a2", "@x /say general a3", "a4"]).encode())
    await alice.command("/ping")
    seen = await everything(alice)
    assert [(e.get("label"), e.get("text")) for e in messages(seen)] == [
        (None, "a1"), (None, "a2"), ("x", "a3"), (None, "a4")]
    assert [m["text"] for m in messages(await everything(bob))] == ["a1", "a2", "a3", "a4"]


async def test_a_member_kicked_in_a_burst_gets_nothing_after_the_kick(
        clients: Clients) -> None:
    alice, bob, carol = await room_with(clients, "alice", "bob", "carol")
    lines = [f"before{i}" for i in range(10)] + ["/kick bob general spam"] + \
            [f"after{i}" for i in range(10)]
    alice._writer.write(burst(lines).encode())
    await alice.command("/ping")
    texts = [m["text"] for m in messages(await everything(carol))]
    assert texts == [line for line in lines if not line.startswith("/")]
    bob_saw = await everything(bob)
    assert [m["text"] for m in messages(bob_saw)] == [f"before{i}" for i in range(10)]
    kicked = [e for e in bob_saw if e.get("event") == "kick"]
    assert kicked and bob_saw.index(kicked[0]) > max(
        bob_saw.index(m) for m in messages(bob_saw))
