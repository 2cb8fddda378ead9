"""Order over real sockets when a room's messages share one feed per loop turn.

Senders write many lines in ONE socket write, so the server handles them in
one turn of its loop (up to the first command that must wait) and the room
fan-out goes through chatd.delivery.feed. Every member, in JSON or text format, with
the room as current room or not, must still see exactly the order in which
things happened; a kicked member nothing of the room after the kick event; and
a sender its labelled acknowledgement in its place among the room's messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from chatd.client import ChatClient, LineClient
from chatd.protocol.render import Style, render
from tests.helpers import Clients, room_with, settle, text_client, text_run

TEXT = Style()
TIMEOUT = 10.0


def write_burst(client: ChatClient | LineClient, lines: list[str]) -> None:
    """Every line in one write: one read on the server, handled in one turn."""
    data = "".join(f"{line}\r\n" for line in lines).encode()
    if isinstance(client, LineClient):
        client.send(data)
    else:
        client._writer.write(data)


async def events_until(client: ChatClient, done: Callable[[list[dict[str, Any]]], bool]
                       ) -> list[dict[str, Any]]:
    """The client's unlabelled-or-unawaited lines, up to the one that makes ``done`` true."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(TIMEOUT):
        while not done(seen):
            event = await client.next_event(timeout=TIMEOUT)
            assert event.get("type") != "closed", seen
            seen.append(event)
    return seen


def has_message(*texts: str) -> Callable[[list[dict[str, Any]]], bool]:
    """``done`` for events_until: every one of ``texts`` arrived as a message."""
    def done(seen: list[dict[str, Any]]) -> bool:
        got = {e.get("text") for e in seen if e.get("type") == "message"}
        return all(text in got for text in texts)
    return done


def room_items(events: list[dict[str, Any]], room: str = "general") -> list[dict[str, Any]]:
    """The messages and events of ``room`` (no replies, notices or direct messages)."""
    return [e for e in events if e.get("type") in ("message", "event") and e.get("room") == room]


def shown(item: dict[str, Any], current: bool) -> list[str]:
    """The text-format lines of a room item, as a member sees it."""
    return render(item, TEXT, current).decode().splitlines()


def key(item: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies a delivered item, labels aside."""
    return (item.get("type"), item.get("event"), item.get("room"), item.get("to"),
            item.get("from"), item.get("text"), item.get("id"), item.get("user"),
            item.get("topic"))


def assert_increasing(ids: list[int]) -> None:
    assert ids == sorted(ids) and len(set(ids)) == len(ids), ids


def mixed_burst() -> list[str]:
    """alice's 51 lines: plain lines, /say, /msg bob, one /me and one /topic."""
    lines: list[str] = []
    for i in range(50):
        if i == 17:
            lines.append("/me waves at everyone")
        elif i == 31:
            lines.append("/topic a topic set mid-burst")
        elif i % 9 == 4:
            lines.append(f"/msg bob direct {i}")
        elif i % 11 == 6:
            lines.append(f"/say general said {i}")
        else:
            lines.append(f"plain {i}")
    return [*lines, "the end"]


def kind_of_line(line: str) -> tuple[str, str]:
    """What a line of mixed_burst delivers: its kind and its text."""
    for prefix, kind in (("/msg bob ", "to"), ("/topic ", "topic"), ("/me ", "action"),
                         ("/say general ", "room")):
        if line.startswith(prefix):
            return (kind, line.removeprefix(prefix))
    return ("room", line)


def kind_of_item(item: dict[str, Any]) -> tuple[str, str]:
    """The same for a delivered item."""
    if item.get("event") == "topic":
        return ("topic", item["topic"])
    if "to" in item:
        return ("to", item["text"])
    return ("action" if item.get("action") else "room", item["text"])


# -- a burst reaches everyone, in order ----------------------------------------------


async def test_a_burst_in_one_write_reaches_every_member_in_the_order_sent(
        clients: Clients) -> None:
    # alice sends; bob (JSON, general current) also gets direct messages; carol
    # (JSON) and erin (text) have another current room; dave (text) has general.
    alice, bob, carol = await room_with(clients, "alice", "bob", "carol")
    await carol.command("/create side")
    dave = await text_client(clients, "dave")
    await text_run(dave, "/join general")
    erin = await text_client(clients, "erin")
    await text_run(erin, "/join general")
    await text_run(erin, "/join side")
    for client in (alice, bob, carol):
        await settle(client)
    await text_run(dave, None)
    assert (await carol.command("/whoami"))["current_room"] == "side"

    lines = mixed_burst()
    write_burst(alice, lines)

    reference = await events_until(bob, has_message("the end"))
    # bob's view: every room item and direct message, in the order sent.
    delivered = [e for e in reference if e.get("type") in ("message", "event")]
    assert [kind_of_item(item) for item in delivered] == [kind_of_line(x) for x in lines]
    assert_increasing([item["id"] for item in delivered if item["type"] == "message"])
    general = room_items(reference)

    # carol (JSON, another current room) gets the same room items, no direct messages.
    carol_saw = await events_until(carol, has_message("the end"))
    assert [key(i) for i in room_items(carol_saw)] == [key(i) for i in general]
    assert [e for e in carol_saw if e.get("type") == "message" and "to" in e] == []

    # alice gets everything too, her own copies of /say, /me and /msg included.
    alice_saw = await events_until(alice, has_message("the end"))
    assert [key(i) for i in alice_saw if i.get("type") in ("message", "event")] == \
        [key(i) for i in delivered]

    # The text-format members: general current for dave, not for erin.
    for reader, current in ((dave, True), (erin, False)):
        expected = [line for item in general for line in shown(item, current)]
        got = await reader.until(lambda s, last=expected[-1]: s == last, timeout=TIMEOUT)
        assert got == expected
    assert "#general <alice> plain 0" in shown(general[0], False)

    # Nothing more for anyone.
    for client in (alice, bob, carol):
        assert room_items(await settle(client)) == []
    for reader in (dave, erin):
        assert await text_run(reader, None) == []


async def three_and_a_text_member(clients: Clients
                                  ) -> tuple[ChatClient, ChatClient, ChatClient, LineClient]:
    """alice, bob and carol (JSON) and dave (text) in #general, with nothing pending."""
    alice, bob, carol = await room_with(clients, "alice", "bob", "carol")
    dave = await text_client(clients, "dave")
    await text_run(dave, "/join general")
    for client in (alice, bob, carol):
        await settle(client)
    return alice, bob, carol, dave


async def test_bursts_of_two_senders_reach_every_member_in_one_common_order(
        clients: Clients) -> None:
    alice, bob, carol, dave = await three_and_a_text_member(clients)
    write_burst(alice, [f"a{i}" for i in range(40)] + ["/me is done"])
    write_burst(bob, [f"b{i}" for i in range(40)] + ["/me is done"])

    def both_done(seen: list[dict[str, Any]]) -> bool:
        return sum(1 for e in seen if e.get("text") == "is done") == 2

    views = [await events_until(client, both_done) for client in (alice, bob, carol)]
    orders = [[key(i) for i in room_items(view)] for view in views]
    assert orders[0] == orders[1] == orders[2]
    assert len(orders[0]) == 82
    assert_increasing([i["id"] for i in room_items(views[2])])
    # Each sender's own lines keep their order within the common one.
    texts = [i["text"] for i in room_items(views[2])]
    assert [t for t in texts if t.startswith("a")] == [f"a{i}" for i in range(40)]
    assert [t for t in texts if t.startswith("b")] == [f"b{i}" for i in range(40)]
    expected = [line for item in room_items(views[2]) for line in shown(item, True)]
    got = await dave.until(lambda s: len(s) > 0 and s == expected[-1], timeout=TIMEOUT)
    assert got == expected


# -- a kick in the middle of a burst ------------------------------------------------


async def test_a_member_kicked_mid_burst_gets_nothing_of_the_room_after_the_kick_event(
        clients: Clients) -> None:
    # alice (owner) kicks bob (JSON) then erin (text) in the middle of her burst,
    # while frank writes a burst of his own; carol watches.
    alice, bob, carol, frank = await room_with(clients, "alice", "bob", "carol", "frank")
    erin = await text_client(clients, "erin")
    await text_run(erin, "/join general")
    for client in (alice, bob, carol, frank):
        await settle(client)

    lines = ([f"before {i}" for i in range(10)] + ["/kick bob general spam"]
             + [f"between {i}" for i in range(10)] + ["/kick erin general noise"]
             + [f"after {i}" for i in range(10)] + ["alice is done"])
    write_burst(alice, lines)
    write_burst(frank, [f"frank {i}" for i in range(40)] + ["frank is done"])

    watched = room_items(await events_until(carol, has_message("alice is done",
                                                               "frank is done")))
    kicks = [n for n, item in enumerate(watched) if item.get("event") == "kick"]
    assert [watched[n]["user"] for n in kicks] == ["bob", "erin"]
    alice_texts = [i["text"] for i in watched if i.get("from") == "alice"]
    assert alice_texts == [line for line in lines if not line.startswith("/")]

    # bob: exactly the room's items up to his kick event, then nothing of the room.
    bob_saw = room_items(await settle(bob))
    assert [key(i) for i in bob_saw] == [key(i) for i in watched[:kicks[0] + 1]]
    assert (await bob.command("/whoami")).get("current_room") is None

    # erin (text): the same, as lines.
    got = await text_run(erin, None)
    upto = [line for item in watched[:kicks[1] + 1] for line in shown(item, True)]
    assert got[:len(upto)] == upto
    assert upto[-1] == "* erin was kicked from #general by alice (noise)"
    later = {line for item in watched[kicks[1] + 1:] for current in (True, False)
             for line in shown(item, current)}
    assert later and not later & set(got[len(upto):])
    assert all("general" not in line or "kicked you" in line for line in got[len(upto):])

    # And still nothing after everything settled.
    assert room_items(await settle(bob)) == []
    assert [line for line in await text_run(erin, None) if line in later] == []


# -- labelled acknowledgements ----------------------------------------------------------


async def test_a_labelled_ack_arrives_in_its_place_among_the_room_messages(
        clients: Clients) -> None:
    alice, bob, carol, dave = await three_and_a_text_member(clients)
    alice_lines = []
    for i in range(30):
        if i % 5 == 0:  # the first one too: skipped before anything else of the turn
            alice_lines.append(f"@s{i} /say general said {i}")
        elif i % 7 == 3:
            alice_lines.append(f"@m{i} /me acts {i}")
        else:
            alice_lines.append(f"alice {i}")
    alice_lines.append("@last /say general alice is done")
    dave_lines = [f"@d{i} /say general dave {i}" if i % 3 == 0 else f"dave {i}"
                  for i in range(20)] + ["@dlast /say general dave is done"]
    write_burst(alice, alice_lines)
    write_burst(bob, [f"bob {i}" for i in range(30)] + ["bob is done"])
    write_burst(dave, dave_lines)

    done = has_message("alice is done", "bob is done", "dave is done")
    watched = room_items(await events_until(carol, done))
    assert len(watched) == 31 + 31 + 21
    assert_increasing([i["id"] for i in watched])

    # alice (JSON): the same order; her labelled copies in place, each followed
    # at once by its ok with the same label and id.
    alice_saw = await events_until(alice, done)
    assert [key(i) for i in room_items(alice_saw)] == [key(i) for i in watched]
    labelled = 0
    for n, item in enumerate(alice_saw):
        if item.get("type") == "message" and "label" in item:
            labelled += 1
            reply = alice_saw[n + 1]
            assert reply["type"] == "ok" and reply["label"] == item["label"], reply
            assert reply["id"] == item["id"] and item["from"] == "alice"
    assert labelled == sum(1 for line in alice_lines if line.startswith("@"))
    own = [i.get("label") for i in room_items(alice_saw) if i["from"] == "alice"]
    assert own == [line.split()[0][1:] if line.startswith("@") else None
                   for line in alice_lines]

    # dave (text): every room line in the common order; his labelled copies carry
    # their label and are followed at once by their labelled "* ok".
    got = await dave.until(lambda s: s.startswith("@dlast ") and s.endswith("* ok"),
                           timeout=TIMEOUT)
    label_of = {}
    for line in dave_lines:
        if line.startswith("@"):
            label, command = line[1:].split(" ", 1)
            label_of[command.removeprefix("/say general ")] = label
    expected = []
    for item in watched:
        [line] = shown(item, True)
        mine = label_of.get(item["text"]) if item["from"] == "dave" else None
        expected += [line] if mine is None else [f"@{mine} {line}", f"@{mine} * ok"]
    assert got == expected
