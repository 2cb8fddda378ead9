"""Messages over the wire: plain lines, //, /say, /me, /msg, /history and labels."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from chatd.client import ChatClient
from chatd.domain.clock import ManualClock
from tests.helpers import (
    PASSWORD,
    Clients,
    error_of,
    messages,
    room_with,
    settle,
    start_server,
    text_client,
    text_run,
)

ISO_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")








def is_message(event: dict[str, Any]) -> bool:
    return event.get("type") == "message"








# -- plain lines --------------------------------------------------------------------


async def test_plain_line_reaches_every_member_connection_and_echoes_with_id(
        clients: Clients, clock: ManualClock) -> None:
    alice, bob = await room_with(clients, "alice", "bob")
    alice_too = await clients.user("alice")
    outsider = await clients.user("carol")
    echo = await bob.say("hello everyone")
    assert echo["type"] == "message" and "label" not in echo
    assert echo["room"] == "general" and echo["from"] == "bob"
    assert echo["text"] == "hello everyone"
    assert isinstance(echo["id"], int) and echo["id"] >= 1
    assert ISO_TS.match(echo["ts"]) and echo["ts"].startswith("2027-01-15T08:00:00")
    for member in (alice, alice_too):
        assert await member.next_event(is_message, timeout=5) == echo
    assert messages(await settle(outsider)) == []
    # Exactly one copy each.
    for member in (alice, alice_too, bob):
        assert messages(await settle(member)) == []


async def test_message_ids_increase(clients: Clients) -> None:
    [alice] = await room_with(clients, "alice")
    ids = [(await alice.say(f"line {n}"))["id"] for n in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5


async def test_plain_line_without_a_current_room_is_no_room(clients: Clients) -> None:
    alice = await clients.user("alice")
    error = await alice.say("is anyone here?")
    assert error["type"] == "error" and error["code"] == "no-room"


async def test_plain_line_before_login_is_not_logged_in(clients: Clients) -> None:
    client = await clients.anonymous()
    error = await client.say("hello?")
    assert error["type"] == "error" and error["code"] == "not-logged-in"


@pytest.mark.parametrize(("sent", "delivered"), [
    ("//etc/passwd is a file", "/etc/passwd is a file"),
    ("//help", "/help"),
    ("///", "//"),
])
async def test_double_slash_sends_a_line_starting_with_a_slash(
        clients: Clients, sent: str, delivered: str) -> None:
    alice, bob = await room_with(clients, "alice", "bob")
    alice.send_line(sent)
    echo = await alice.next_event(is_message, timeout=5)
    assert echo["text"] == delivered
    assert (await bob.next_event(is_message, timeout=5))["text"] == delivered


async def test_a_line_starting_with_at_is_a_message(clients: Clients) -> None:
    alice, bob = await room_with(clients, "alice", "bob")
    alice.send_line("@bob are you there?")
    assert (await bob.next_event(is_message, timeout=5))["text"] == "@bob are you there?"


# -- /say ---------------------------------------------------------------------------


async def test_say_to_a_room_that_is_not_the_current_one(clients: Clients) -> None:
    alice, bob = await room_with(clients, "alice", "bob")
    await alice.command("/create dev")
    assert (await alice.command("/whoami"))["current_room"] == "dev"
    reply = await alice.command("/say general over here")
    assert reply["command"] == "say" and reply["room"] == "general"
    [own] = messages(reply.lines)
    assert own["id"] == reply["id"] and own["room"] == "general"
    got = await bob.next_event(is_message, timeout=5)
    assert got["id"] == reply["id"] and got["text"] == "over here" and got["room"] == "general"
    assert (await alice.command("/whoami"))["current_room"] == "dev"


async def test_say_keeps_inner_spacing(clients: Clients) -> None:
    alice, bob = await room_with(clients, "alice", "bob")
    await alice.command("/say #general a  b   c")
    assert (await bob.next_event(is_message, timeout=5))["text"] == "a  b   c"


async def test_say_to_a_room_you_are_not_in(clients: Clients) -> None:
    [alice] = await room_with(clients, "alice")
    bob = await clients.user("bob")
    assert (await error_of(bob, "/say general let me in"))["code"] == "not-in-room"
    assert (await error_of(bob, "/say nosuchroom hello"))["code"] == "no-such-room"
    assert messages(await settle(alice)) == []


# -- /me ----------------------------------------------------------------------------


async def test_me_sends_an_action(clients: Clients) -> None:
    alice, bob = await room_with(clients, "alice", "bob")
    reply = await alice.command("/me waves at everyone")
    assert reply["command"] == "me" and reply["room"] == "general"
    got = await bob.next_event(is_message, timeout=5)
    assert got["action"] is True and got["text"] == "waves at everyone"
    assert got["from"] == "alice" and got["id"] == reply["id"]
    [own] = messages(reply.lines)
    assert own["action"] is True
    history = await bob.command("/history")
    assert history["messages"][-1]["action"] is True


async def test_me_without_a_current_room(clients: Clients) -> None:
    alice = await clients.user("alice")
    assert (await error_of(alice, "/me waves"))["code"] == "no-room"


# -- /msg ---------------------------------------------------------------------------


async def test_msg_to_an_online_user_reaches_both_sides(clients: Clients) -> None:
    alice = await clients.user("alice")
    bob = await clients.user("bob")
    reply = await alice.command("/msg BOB hello there")
    assert reply["command"] == "msg"
    assert reply["to"] == "bob" and reply["online"] is True
    [own] = messages(reply.lines)
    got = await bob.next_event(is_message, timeout=5)
    for message in (own, got):
        assert message["id"] == reply["id"] and message["from"] == "alice"
        assert message["to"] == "bob" and message["text"] == "hello there"
        assert "room" not in message and "offline" not in message
    assert messages(await settle(alice)) == []


async def test_msg_to_yourself_shows_once_on_each_connection(clients: Clients) -> None:
    first = await clients.user("alice")
    second = await clients.user("alice")
    reply = await first.command("/msg alice note to self")
    assert len(messages(reply.lines)) == 1
    got = await second.next_event(is_message, timeout=5)
    assert got["id"] == reply["id"] and got["to"] == "alice" and got["from"] == "alice"
    assert messages(await settle(first)) == [] and messages(await settle(second)) == []


async def test_msg_to_an_unknown_user(clients: Clients) -> None:
    alice = await clients.user("alice")
    assert (await error_of(alice, "/msg nobody hi"))["code"] == "no-such-user"
    assert (await error_of(alice, "/msg alice"))["code"] == "bad-arguments"


async def test_msg_to_an_offline_user_arrives_once_at_their_login(clients: Clients) -> None:
    bob = await clients.user("bob")
    await bob.command("/logout")
    alice = await clients.user("alice")
    reply = await alice.command("/msg bob see you later")
    assert reply["online"] is False and reply["to"] == "bob"
    login = await bob.command(f"/login bob {PASSWORD}")
    assert login["direct_messages"] == 1
    # Lines of the login's reply: before its ok, with its label (none left unasked).
    [replayed] = messages(login.lines)
    assert messages(bob.pending_events()) == []
    assert replayed["label"] == login.final["label"]
    assert replayed["id"] == reply["id"] and replayed["offline"] is True
    assert replayed["from"] == "alice" and replayed["to"] == "bob"
    assert replayed["text"] == "see you later"
    # Not again: not on this connection, not at the next login, not elsewhere.
    assert messages(await settle(bob)) == []
    await bob.command("/logout")
    assert (await bob.command(f"/login bob {PASSWORD}"))["direct_messages"] == 0
    other = await clients.user("bob")
    assert messages(await settle(other)) == []
    assert messages(await settle(bob)) == []


async def test_a_labelled_login_labels_the_direct_messages_it_replays(
        clients: Clients) -> None:
    """In text mode too, the direct messages kept for a user are lines of the login's
    reply: they carry its label, so a client tells them from live traffic."""
    bob = await clients.user("bob")
    await bob.command("/logout")
    alice = await clients.user("alice")
    await alice.command("/msg bob kept for you")
    text = await text_client(clients)
    lines = await text_run(text, f"@in /login bob {PASSWORD}")
    assert lines[0] == "@in <alice -> bob> kept for you"
    assert lines[1].startswith("@in * Welcome back, bob.") and len(lines) == 2


async def test_a_login_without_unseen_messages_does_not_wait_for_the_writer(
        db_path: Path) -> None:
    """Only users with direct messages they have not seen make a login flush
    the writer and query the database for them; a message sent once they are
    gone again is found at the next login, also after a restart."""
    server = await start_server(db_path, storage__flush_interval=3600)
    clients = Clients(server)
    try:
        alice, bob = await clients.user("alice"), await clients.user("bob")
        await bob.command("/logout")
        await alice.command("/create lounge")
        await alice.command("/say lounge waiting in memory")
        assert server.services.writer.pending > 0
        carol = await clients.user("carol")
        assert (await carol.command("/whoami"))["user"] == "carol"
        assert server.services.writer.pending > 0  # carol's login did not flush
        await alice.command("/msg bob first")
        assert (await bob.command(f"/login bob {PASSWORD}"))["direct_messages"] == 1
        assert server.services.writer.pending == 0  # bob's did
        await bob.command("/logout")
        await alice.command("/msg bob second")
    finally:
        await clients.close()
        await server.stop()
    server = await start_server(db_path, storage__flush_interval=3600)
    clients = Clients(server)
    try:
        bob = await clients.anonymous()
        login = await bob.command(f"/login bob {PASSWORD}")
        assert login["direct_messages"] == 1
        [replayed] = messages(login.lines)
        assert replayed["text"] == "second"
    finally:
        await clients.close()
        await server.stop()


# -- /history -----------------------------------------------------------------------


async def post_many(client: ChatClient, count: int, prefix: str = "m") -> list[int]:
    """Send ``count`` plain lines quickly; returns their ids once all are echoed."""
    for n in range(count):
        client.send_line(f"{prefix}{n}")
    ids: list[int] = []
    while len(ids) < count:
        ids.append((await client.next_event(is_message, timeout=5))["id"])
    return ids


async def test_history_default_and_n(clients: Clients) -> None:
    alice, bob = await room_with(clients, "alice", "bob")
    ids = await post_many(alice, 25)
    history = await bob.command("/history")
    assert history["command"] == "history" and history["room"] == "general"
    assert [m["id"] for m in history["messages"]] == ids[-20:]
    assert [m["text"] for m in history["messages"]] == [f"m{n}" for n in range(5, 25)]
    assert all(m["type"] == "message" and m["room"] == "general" and m["from"] == "alice"
               for m in history["messages"])
    assert [m["id"] for m in (await bob.command("/history 3"))["messages"]] == ids[-3:]
    assert [m["id"] for m in (await bob.command("/history general 7"))["messages"]] == ids[-7:]
    assert [m["id"] for m in (await bob.command("/history #general"))["messages"]] == ids[-20:]


async def test_history_repeats_the_messages_as_they_were_delivered(clients: Clients) -> None:
    alice, bob = await room_with(clients, "alice", "bob")
    live = [await bob.say("plain")]
    await alice.command("/me acts")
    live.append(await bob.next_event(is_message, timeout=5))
    live.append(await bob.say("ünïcødé ✓ 🙂"))
    history = (await bob.command("/history"))["messages"]
    assert all(m.pop("history") is True for m in history)
    assert history == live


async def test_history_is_capped_at_200(clients: Clients) -> None:
    [alice] = await room_with(clients, "alice")
    ids = await post_many(alice, 205)
    history = await alice.command("/history 1000")
    assert [m["id"] for m in history["messages"]] == ids[-200:]


@pytest.mark.parametrize("n", ["99999999999999999999999", "0" * 40 + "1000",
                               "9" * 200])
async def test_a_history_count_of_any_size_gets_the_cap(clients: Clients, n: str) -> None:
    [alice] = await room_with(clients, "alice")
    ids = await post_many(alice, 205)
    for asked in (f"/history general {n}", f"/history {n}"):
        assert [m["id"] for m in (await alice.command(asked))["messages"]] == ids[-200:]


async def test_history_names_a_room_by_its_id_before_the_count(clients: Clients) -> None:
    alice = await clients.user("alice")
    dev = (await alice.command("/create dev"))["id"]
    dev_ids = await post_many(alice, 3, prefix="d")
    await alice.command("/create lobby")  # the current room now
    lobby_ids = await post_many(alice, 3)
    by_id = await alice.command(f"/history {dev} 2")
    assert (by_id["room"], [m["id"] for m in by_id["messages"]]) == ("dev", dev_ids[-2:])
    capped = await alice.command(f"/history {dev} 99999999999999999999999")
    assert [m["id"] for m in capped["messages"]] == dev_ids
    # A lone number is the count, of the current room, whatever room has that id.
    alone = await alice.command(f"/history {dev}")
    assert alone["room"] == "lobby" and [m["id"] for m in alone["messages"]] == \
        lobby_ids[-dev:]
    bob = await clients.user("bob")
    assert (await error_of(bob, f"/history {dev} 2"))["code"] == "not-in-room"
    assert (await error_of(bob, "/history 999999 2"))["code"] == "no-such-room"


async def test_history_of_an_empty_room(clients: Clients) -> None:
    [alice] = await room_with(clients, "alice")
    assert (await alice.command("/history"))["messages"] == []


async def test_history_needs_membership(clients: Clients) -> None:
    [alice] = await room_with(clients, "alice")
    await alice.say("members only")
    bob = await clients.user("bob")
    assert (await error_of(bob, "/history general"))["code"] == "not-in-room"
    assert (await error_of(bob, "/history"))["code"] == "no-room"
    assert (await error_of(bob, "/history #nosuchroom"))["code"] == "no-such-room"


@pytest.mark.parametrize("current_room", [False, True])
async def test_history_of_an_unknown_room_is_no_such_room(
        clients: Clients, current_room: bool) -> None:
    bob = await clients.user("bob")
    if current_room:
        await bob.command("/create lobby")
    assert (await error_of(bob, "/history nosuchroom"))["code"] == "no-such-room"


@pytest.mark.parametrize("n", ["0", "-3", "ten"])
async def test_a_bad_history_count_names_the_real_cap(clients: Clients, n: str) -> None:
    [alice] = await room_with(clients, "alice")
    refused = await error_of(alice, f"/history general {n}")
    assert refused["code"] == "bad-arguments"
    assert refused["message"].startswith(
        f'n must be a whole number of 1 or more (at most 200 messages are shown), not "{n}".')
    assert "1,000,000" not in refused["message"]


async def test_history_in_text_mode_is_a_transcript(clients: Clients) -> None:
    [alice] = await room_with(clients, "alice")
    await alice.say("one")
    await alice.command("/me nods")
    reader = await text_client(clients, "alice")
    lines = await text_run(reader, "/history general")
    assert "<alice> one" in lines
    assert "<alice> * nods" in lines
    assert lines[-1].startswith("* ")


# -- labels -------------------------------------------------------------------------


async def test_labelled_say_labels_only_the_senders_lines(clients: Clients) -> None:
    alice, bob = await room_with(clients, "alice", "bob")
    alice.send_line("@lbl /say general labelled hello")
    own = await alice.next_event(is_message, timeout=5)
    final = await alice.next_event(lambda e: e.get("type") in ("ok", "error"), timeout=5)
    assert own["label"] == "lbl" and own["text"] == "labelled hello"
    assert final["type"] == "ok" and final["label"] == "lbl" and final["id"] == own["id"]
    got = await bob.next_event(is_message, timeout=5)
    assert got["id"] == own["id"] and "label" not in got
    assert messages(await settle(alice)) == []


async def test_labelled_error_carries_the_label(clients: Clients) -> None:
    alice = await clients.user("alice")
    alice.send_line("@q-1.x:y+z /join nosuchroom")
    error = await alice.next_event(lambda e: e.get("type") == "error", timeout=5)
    assert error["label"] == "q-1.x:y+z" and error["code"] == "no-such-room"


async def test_labelled_say_in_text_mode(clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    lines = await text_run(alice, "@lbl /say general hi")
    assert lines[0] == "@lbl <alice> hi"
    assert all(line.startswith("@lbl ") for line in lines) and len(lines) == 2


async def test_the_events_a_labelled_command_causes_carry_its_label_for_the_issuer(
        clients: Clients) -> None:
    """Wire contract: every reply line a labelled command causes carries the label,
    the issuer's copy of the room's event among them; nobody else's copy."""
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    bob = await text_client(clients, "bob")
    await text_run(bob, "/join general")
    await text_run(alice, None)
    other = await text_client(clients, "alice")  # alice's second connection
    lines = await text_run(alice, "@t /topic general fresh paint")
    assert lines == ["@t * alice set the topic of #general: fresh paint", "@t * ok"]
    assert await text_run(other, None) == ["* alice set the topic of #general: fresh paint"]
    assert await text_run(bob, None) == ["* alice set the topic of #general: fresh paint"]
    lines = await text_run(alice, "@k /kick bob general bye")
    assert [line[:3] for line in lines] == ["@k "] * len(lines) and len(lines) == 2
    assert "bob was kicked from #general by alice (bye)" in lines[0]
    # Unlabelled, the same event is an ordinary line, and the only one.
    assert await text_run(alice, "/topic general plain") == [
        "* alice set the topic of #general: plain"]


async def test_labelled_error_in_text_mode(clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    [line] = await text_run(alice, "@x1 /join nosuchroom")
    assert line.startswith("@x1 ! no-such-room:")


async def test_every_command_ends_with_exactly_one_final_line(clients: Clients) -> None:
    await clients.user("bob")
    raw = await clients.raw()
    await raw.line()
    raw.send("/format json")
    await raw.line()
    commands = [
        f"/register alice {PASSWORD}", "/whoami", "/create general", "/create general",
        "/rooms", "/who", "/topic Hello", "/topic", "/say general hi", "/me waves",
        "/msg bob hi", "/msg nobody hi", "/history", "/history 5", "/myrooms",
        "/join general", "/join nosuchroom", "/switch general", "/help", "/help join",
        "/help nosuch", "/nosuch", "/ping", "/set timestamps on", "/format json",
        "/notifications", "/leave", "/leave", "/logout", "/whoami",
    ]
    for n, line in enumerate(commands):
        raw.send(f"@k{n} {line}")
    raw.send("@end /ping")
    received = [json.loads(line) for line in
                await raw.until(lambda s: '"label":"end"' in s and '"type":"ok"' in s)]
    for n, line in enumerate(commands):
        mine = [r for r in received if r.get("label") == f"k{n}"]
        finals = [r for r in mine if r["type"] in ("ok", "error")]
        assert len(finals) == 1, (line, mine)
        assert mine[-1] is finals[0], (line, mine)


# -- text mode ----------------------------------------------------------------------


async def test_text_mode_message_shapes(clients: Clients) -> None:
    alice, _bob = await room_with(clients, "alice", "bob")
    await alice.command("/create dev")
    await alice.command("/switch general")
    reader = await text_client(clients, "bob")
    await text_run(reader, "/join dev")
    await text_run(reader, "/switch general")
    await alice.command("/say general morning all")
    await alice.command("/me stretches")
    await alice.command("/msg bob psst")
    await alice.command("/say dev over in dev")
    current, action, direct, other = await text_run(reader, None)
    assert current == "<alice> morning all"
    assert action == "<alice> * stretches"
    assert "alice" in direct and "bob" in direct and direct.endswith(" psst")
    assert other.startswith("#dev ") and other.endswith("<alice> over in dev")
    reader.send("hi alice")
    assert await reader.line() == "<bob> hi alice"
    reader.send("//slash")
    assert await reader.line() == "<bob> /slash"


async def test_conversations_lists_whom_you_wrote_to_the_most_recent_first(
        clients: Clients, clock: ManualClock) -> None:
    alice, bob = await clients.user("alice"), await clients.user("bob")
    carol = await clients.user("carol")
    await alice.command("/msg bob hello")
    clock.advance(60)
    await carol.command("/msg alice hi alice")
    await carol.close()
    listed = await alice.command("/conversations")
    assert [(c["user"], c["online"]) for c in listed["conversations"]] == [
        ("carol", False), ("bob", True)]
    assert listed["total"] == 2 and listed["message"] == "2 conversations."
    assert listed["conversations"][0]["last"] == listed["conversations"][1]["last"] + 60
    assert [c["user"] for c in (await bob.command("/conversations"))["conversations"]] == [
        "alice"]
    # In text mode, a table.
    person = await text_client(clients, "dave")
    assert await text_run(person, "/conversations") == ["* 0 conversations."]
