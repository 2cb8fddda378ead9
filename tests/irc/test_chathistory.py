"""CHATHISTORY: a channel's stored messages in a batch, by msgid or timestamp."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.domain.clock import ManualClock, iso_ts
from chatd.domain.names import MAX_NUMBER, is_number
from chatd.irc.codec import IrcMessage
from chatd.irc.history import HistoryError, parse_limit, parse_ref
from tests.backends import on_both
from tests.helpers import ChatServer, Clients
from tests.irc.conftest import IrcFactory
from tests.irc.helpers import IrcClient

CAPS = ("batch", "draft/chathistory", "message-tags", "server-time")


async def _history(client: IrcClient, query: str) -> list[IrcMessage]:
    """The messages of one CHATHISTORY reply (checking its batch)."""
    client.send(f"CHATHISTORY {query}")
    start = await client.expect("BATCH", "FAIL")
    assert start.command == "BATCH", client.lines[-1]
    ref = start.params[0][1:]
    lines = await client.until("BATCH")
    assert lines[-1].params == (f"-{ref}",)
    assert all(m.tags["batch"] == ref for m in lines[:-1])
    return lines[:-1]


def _texts(messages: list[IrcMessage]) -> list[str]:
    return [m.params[1] for m in messages]


async def test_chathistory_by_msgid_and_timestamp(server: ChatServer, irc: IrcFactory,
                                                  clients: Clients, clock: ManualClock) -> None:
    alice = await clients.user("alice")
    await alice.command("/create den")
    ids, stamps = [], []
    for number in range(1, 11):
        clock.advance(1.0)
        stamps.append(iso_ts(clock.time()))
        ids.append((await alice.say(f"m{number}"))["id"])
    bob = await irc("bob", caps=CAPS)
    bob.send("JOIN #den")
    await bob.expect("366")

    latest = await _history(bob, "LATEST #den * 3")
    assert _texts(latest) == ["m8", "m9", "m10"]
    assert latest[0].tags["msgid"] == str(ids[7]) and latest[0].tags["time"] == stamps[7]
    assert latest[0].source == "alice!alice@chatd.local"
    assert _texts(await _history(bob, f"LATEST #den msgid={ids[6]} 10")) == ["m8", "m9", "m10"]
    assert _texts(await _history(bob, f"BEFORE #den msgid={ids[3]} 2")) == ["m2", "m3"]
    assert _texts(await _history(bob, f"BEFORE #den timestamp={stamps[3]} 2")) == ["m2", "m3"]
    assert _texts(await _history(bob, f"AFTER #den msgid={ids[3]} 2")) == ["m5", "m6"]
    assert _texts(await _history(bob, f"AFTER #den timestamp={stamps[7]} 5")) == ["m9", "m10"]
    assert _texts(await _history(bob, f"AROUND #den msgid={ids[4]} 4")) == [
        "m3", "m4", "m5", "m6"]
    assert _texts(await _history(bob, f"BETWEEN #den msgid={ids[1]} msgid={ids[5]} 10")) == [
        "m3", "m4", "m5"]
    assert _texts(await _history(bob, f"BETWEEN #den msgid={ids[8]} msgid={ids[1]} 2")) == [
        "m7", "m8"]
    assert await _history(bob, "LATEST bob * 5") == []

    bob.send("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z "
             f"timestamp={iso_ts(clock.time() + 60)} 10")
    start = await bob.expect("BATCH")
    assert start.params[1] == "draft/chathistory-targets"
    target = await bob.expect("CHATHISTORY")
    assert target.params == ("TARGETS", "#den", f"timestamp={stamps[9]}")
    await bob.expect("BATCH")


async def test_a_time_tag_given_back_is_the_point_after_its_message(
        irc: IrcFactory, clients: Clients, clock: ManualClock) -> None:
    """Stored times have more digits than the time tag shows: a client that asks for
    what came after (or before) a message's tag must not get that message again."""
    alice = await clients.user("alice")
    await alice.command("/create den")
    for number in range(1, 5):
        clock.advance(1.0003)  # (between two milliseconds of the tag)
        await alice.say(f"m{number}")
    bob = await irc("bob", caps=CAPS)
    bob.send("JOIN #den")
    await bob.expect("366")
    tags = [m.tags["time"] for m in await _history(bob, "LATEST #den * 4")]
    assert _texts(await _history(bob, f"AFTER #den timestamp={tags[1]} 5")) == ["m3", "m4"]
    assert _texts(await _history(bob, f"LATEST #den timestamp={tags[3]} 5")) == []
    assert _texts(await _history(bob, f"BEFORE #den timestamp={tags[2]} 5")) == ["m1", "m2"]
    assert _texts(await _history(
        bob, f"BETWEEN #den timestamp={tags[0]} timestamp={tags[3]} 5")) == ["m2", "m3"]
    assert _texts(await _history(bob, f"AROUND #den timestamp={tags[2]} 2")) == ["m2", "m3"]


async def test_chathistory_refusals(irc: IrcFactory, clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create secret")
    bob = await irc("bob", caps=CAPS)
    for query, code in [("LATEST #secret * 5", "INVALID_TARGET"),
                        ("LATEST #nowhere * 5", "INVALID_TARGET"),
                        ("SIDEWAYS #secret * 5", "INVALID_PARAMS"),
                        ("BEFORE #secret msgid=abc 5", "INVALID_PARAMS"),
                        ("LATEST bob * 0", "INVALID_PARAMS"),
                        ("BEFORE bob nonsense 5", "INVALID_PARAMS"),
                        ("BETWEEN bob msgid=1", "NEED_MORE_PARAMS"),
                        ("BETWEEN #secret msgid=1 10", "NEED_MORE_PARAMS"),
                        ("LATEST #secret", "NEED_MORE_PARAMS"),
                        ("LATEST", "NEED_MORE_PARAMS"),
                        ("TARGETS", "NEED_MORE_PARAMS"),
                        ("TARGETS msgid=1 msgid=2 5", "INVALID_PARAMS")]:
        bob.send(f"CHATHISTORY {query}")
        fail = await bob.expect("FAIL")
        assert fail.params[:2] == ("CHATHISTORY", code), query


# Conversations are read through queries of their own in each backend.
@on_both
async def test_chathistory_of_a_nick_is_the_conversation_with_them(
        server: ChatServer, irc: IrcFactory, clients: Clients, clock: ManualClock) -> None:
    alice = await clients.user("alice")
    await alice.command("/create den")
    bob = await irc("bob", caps=CAPS)
    carol = await clients.user("carol")
    sent = []
    for number in range(1, 7):
        clock.advance(1.0)
        if number % 2:
            sent.append((await alice.command(f"/msg bob d{number}"))["id"])
        else:
            bob.send(f"PRIVMSG alice :d{number}")
            sent.append((await alice.next_event(lambda e: e.get("type") == "message"))["id"])
    clock.advance(1.0)
    await carol.command("/msg bob not with alice")
    await bob.expect("PRIVMSG")

    latest = await _history(bob, "LATEST alice * 4")
    assert _texts(latest) == ["d3", "d4", "d5", "d6"]
    assert [(m.source, m.params[0]) for m in latest[:2]] == [
        ("alice!alice@chatd.local", "bob"), ("bob!bob@chatd.local", "alice")]
    assert latest[0].tags["msgid"] == str(sent[2])
    assert _texts(await _history(bob, f"BEFORE alice msgid={sent[2]} 5")) == ["d1", "d2"]
    assert _texts(await _history(bob, f"AFTER ALICE msgid={sent[3]} 5")) == ["d5", "d6"]
    assert _texts(await _history(bob, "LATEST carol * 5")) == ["not with alice"]
    start = await _history_start(bob, "LATEST Alice * 1")
    assert start.params[1:] == ("chathistory", "alice")
    # The other end reads the same conversation.
    client = await irc("alice", caps=CAPS)
    assert _texts(await _history(client, "LATEST bob * 10")) == [
        "d1", "d2", "d3", "d4", "d5", "d6"]

    bob.send("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z "
             f"timestamp={iso_ts(clock.time() + 60)} 10")
    await bob.expect("BATCH")
    targets = [m.params[1] for m in await bob.until("BATCH") if m.command == "CHATHISTORY"]
    assert targets == ["alice", "carol"]


async def _history_start(client: IrcClient, query: str) -> IrcMessage:
    client.send(f"CHATHISTORY {query}")
    start = await client.expect("BATCH")
    await client.until("BATCH")
    return start


@pytest.mark.server(accounts__guests=True)
async def test_chathistory_with_a_guest_is_empty_and_of_nobody_refused(
        irc: IrcFactory, server: ChatServer) -> None:
    assert server.irc is not None
    guest = await IrcClient.connect(server.irc.port)
    try:
        await guest.register("visitor", caps=CAPS)
        bob = await irc("bob", caps=CAPS)
        guest.send("PRIVMSG bob :hello from a guest")
        await bob.expect("PRIVMSG")
        assert await _history(bob, "LATEST visitor * 5") == []
        assert await _history(guest, "LATEST bob * 5") == []
        guest.send("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z "
                   "timestamp=2100-01-01T00:00:00.000Z 10")
        assert (await guest.expect("BATCH")).params[1] == "draft/chathistory-targets"
        assert [m.command for m in await guest.until("BATCH")] == ["BATCH"]
        bob.send("CHATHISTORY LATEST nobody * 5")
        fail = await bob.expect("FAIL")
        assert fail.params[:3] == ("CHATHISTORY", "INVALID_TARGET", "LATEST")
    finally:
        await guest.close()


# Ids beyond storage's 64 bits made the database driver (or float()) overflow, an
# internal error; digits other than ASCII and signs were read as ids by int().
BAD_MSGIDS = ("99999999999999999999999", "9223372036854775808", "1" + "0" * 400, "٣", "５", "-5",
              "+5", "1_0", "5.0", "")


async def test_chathistory_refuses_a_msgid_that_is_no_number_storage_holds(
        server: ChatServer, irc: IrcFactory, clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create den")
    for number in range(1, 4):
        await alice.say(f"m{number}")
    bob = await irc("bob", caps=CAPS)
    bob.send("JOIN #den")
    await bob.expect("366")
    # The largest id storage holds is a reference: before it are all the messages
    # (a float rounded it up to 2**63, past the largest).
    assert _texts(await _history(bob, f"BEFORE #den msgid={MAX_NUMBER} 2")) == ["m2", "m3"]
    assert _texts(await _history(bob, f"AFTER #den msgid={MAX_NUMBER} 2")) == []
    for sub in ("BEFORE", "AFTER", "AROUND", "LATEST"):
        for msgid in BAD_MSGIDS:
            bob.send(f"CHATHISTORY {sub} #den msgid={msgid} 10")
            fail = await bob.expect("FAIL", "BATCH", "400")
            assert fail.command == "FAIL", (sub, msgid, bob.lines[-1])
            assert fail.params[:2] == ("CHATHISTORY", "INVALID_PARAMS"), (sub, msgid)
    bob.send("CHATHISTORY LATEST #den * 99999999999999999999999")
    assert (await bob.expect("FAIL", "BATCH")).params[:2] == ("CHATHISTORY", "INVALID_PARAMS")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30) | st.from_regex(r"[+-]?[0-9_]{1,40}", fullmatch=True))
def test_a_msgid_is_an_id_by_the_number_rule_or_refused(value: str) -> None:
    try:
        ref = parse_ref(f"msgid={value}")
    except HistoryError as exc:
        assert exc.code == "INVALID_PARAMS"
        assert not is_number(value)
    else:
        assert ref.by_id and is_number(value)
        assert type(ref.value) is int and ref.value == int(value) <= MAX_NUMBER


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_a_bad_timestamp_or_limit_is_invalid_params(value: str) -> None:
    for parse in (lambda: parse_ref(f"timestamp={value}"), lambda: parse_limit(value)):
        try:
            parse()
        except HistoryError as exc:
            assert exc.code == "INVALID_PARAMS"


async def _reply_lines(client: IrcClient, command: str) -> list[str]:
    """The raw lines of the reply to ``command``, up to the PONG of a PING after it
    (a reply without a batch has no end of its own)."""
    client.send(command, "PING history-end")
    lines = []
    while (line := await client.raw()) != ":chatd.local PONG chatd.local :history-end":
        lines.append(line)
    return lines


@pytest.mark.parametrize("caps", [(), ("server-time",), ("message-tags",),
                                  ("batch", "server-time")])
async def test_chathistory_tags_messages_as_negotiated_like_live_ones(
        irc: IrcFactory, clients: Clients, clock: ManualClock, caps: tuple[str, ...]) -> None:
    alice = await clients.user("alice")
    await alice.command("/create lounge")
    bob = await irc("bob", caps=caps)
    bob.send("JOIN #lounge")
    await bob.expect("366")
    live = []
    for text in ("first", "second"):
        clock.advance(1.0)
        await alice.say(text)
        live.append(await bob.raw())
    await alice.command("/msg bob in private")
    live_direct = await bob.raw()

    batched = "batch" in caps
    for query, expected in [("LATEST #lounge * 2", live), ("LATEST alice * 1", [live_direct])]:
        lines = await _reply_lines(bob, f"CHATHISTORY {query}")
        if batched:
            start, *lines, end = lines
            ref = start.split()[2][1:]
            assert start.startswith(f":chatd.local BATCH +{ref} chathistory ")
            assert end == f":chatd.local BATCH -{ref}"
            # Each line in the batch: its batch tag, then the tags it had when live.
            lines = [line.replace(f"@batch={ref};", "@").replace(f"@batch={ref} ", "")
                     for line in lines]
        assert lines == expected, query
        assert not any("BATCH" in line or "batch=" in line for line in lines)
    assert ("time=" in live[0]) == ("server-time" in caps)
    assert ("msgid=" in live[0]) == ("message-tags" in caps)

    targets = await _reply_lines(bob, "CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z "
                                      f"timestamp={iso_ts(clock.time() + 60)} 10")
    found = [line for line in targets if " CHATHISTORY TARGETS " in line]
    assert [line.split()[-2] for line in found] == ["#lounge", "alice"]
    assert (len(targets) == len(found) + 2) == batched
    assert all(line.startswith("@batch=") == batched for line in found)


async def test_a_labelled_chathistory_nests_its_batch_in_the_labelled_one(
        irc: IrcFactory, clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create lounge")
    await alice.say("one")
    bob = await irc("bob", caps=(*CAPS, "labeled-response"))
    bob.send("JOIN #lounge")
    await bob.expect("366")
    bob.send("@label=h1 CHATHISTORY LATEST #lounge * 5")
    outer = await bob.read()
    assert outer.command == "BATCH" and outer.tags == {"label": "h1"}
    inner = await bob.read()
    assert inner.command == "BATCH" and inner.tags == {"batch": outer.params[0][1:]}
    raw = await bob.raw()
    # Only the innermost batch: a tag given twice is no valid line.
    assert raw.count("batch=") == 1 and f"batch={inner.params[0][1:]}" in raw
