"""CHATHISTORY: a channel's stored messages in a batch, by msgid or timestamp."""

from __future__ import annotations

from chatd.domain.clock import ManualClock, iso_ts
from chatd.irc.codec import IrcMessage
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
                        ("TARGETS msgid=1 msgid=2 5", "INVALID_PARAMS")]:
        bob.send(f"CHATHISTORY {query}")
        fail = await bob.expect("FAIL")
        assert fail.params[:2] == ("CHATHISTORY", code), query
