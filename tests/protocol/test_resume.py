"""/resume over the wire: the messages missed since an id, in id order, once each."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatd.client import ChatClient
from tests.helpers import (
    PASSWORD,
    Clients,
    error_of,
    messages,
    room_with,
    start_server,
    text_client,
    text_run,
)


async def _gap(clients: Clients) -> tuple[ChatClient, int, list[int]]:
    """alice is in #general with bob and saw message ``last``; while she is away
    bob posts to #general, sends her a direct message, she sends one from another
    connection, and messages she must not see go elsewhere. Returns her new
    connection (logged in), ``last`` and the ids she missed."""
    alice, bob = await room_with(clients, "alice", "bob")
    carol = await clients.user("carol")
    await carol.command("/create elsewhere")
    last = (await alice.say("before"))["id"]
    await alice.close()
    missed = [(await bob.command("/say general one"))["id"]]
    missed.append((await bob.command("/msg alice psst"))["id"])
    await carol.command("/say elsewhere not for alice")
    await carol.command("/msg bob not for alice either")
    alice_phone = await clients.user("alice")
    missed.append((await alice_phone.command("/msg bob from my phone"))["id"])
    missed.append((await bob.command("/me waves"))["id"])
    await alice_phone.close()
    return await clients.user("alice"), last, missed


async def test_resume_replays_room_and_direct_messages_in_id_order(clients: Clients) -> None:
    alice, last, missed = await _gap(clients)
    reply = await alice.command(f"/resume {last}")
    replayed = messages(reply.lines)
    assert [m["id"] for m in replayed] == sorted(missed)
    assert all(m["replay"] is True for m in replayed)
    by_id = {m["id"]: m for m in replayed}
    assert by_id[missed[0]]["room"] == "general" and by_id[missed[0]]["text"] == "one"
    assert by_id[missed[1]]["to"] == "alice" and by_id[missed[1]]["from"] == "bob"
    assert by_id[missed[2]]["to"] == "bob" and by_id[missed[2]]["from"] == "alice"
    assert by_id[missed[3]]["action"] is True
    assert reply.final["recovered"] is True and reply.final["more"] is False
    assert reply.final["replayed"] == 4 and reply.final["last_id"] == max(missed)
    # Nothing more above the last one.
    again = await alice.command(f"/resume {max(missed)}")
    assert messages(again.lines) == [] and again.final["recovered"] is True


async def test_resume_finds_messages_not_written_yet(db_path: Path) -> None:
    server = await start_server(db_path, storage__flush_interval=3600)
    clients = Clients(server)
    try:
        alice, last, missed = await _gap(clients)
        assert server.services.writer.pending >= 1  # (a login with direct messages waiting flushes)
        reply = await alice.command(f"/resume {last}")
        assert [m["id"] for m in messages(reply.lines)] == sorted(missed)
        assert reply.final["recovered"] is True
    finally:
        await clients.close()
        await server.stop()


async def test_resume_reads_block_stored_history_of_several_rooms(clients: Clients) -> None:
    alice, bob = await room_with(clients, "alice", "bob")
    await bob.command("/create second")
    await alice.command("/join second")
    last = (await alice.say("start"))["id"]
    sent = []
    for n in range(150):  # more than two blocks, the rooms interleaved
        room = "general" if n % 3 else "second"
        sent.append((await bob.command(f"/say {room} m{n}"))["id"])
    await clients.server.services.writer.flush()
    reply = await alice.command(f"/resume {last}")
    assert [m["id"] for m in messages(reply.lines)] == sent
    assert reply.final["recovered"] is True


async def test_resume_stops_at_the_cap_and_says_more(db_path: Path) -> None:
    server = await start_server(db_path, rooms__resume_max=2)
    clients = Clients(server)
    try:
        alice, last, missed = await _gap(clients)
        first = await alice.command(f"/resume {last}")
        assert [m["id"] for m in messages(first.lines)] == sorted(missed)[:2]
        assert first.final["recovered"] is False and first.final["more"] is True
        assert first.final["reasons"] == ["more follow: /resume from last_id"]
        rest = await alice.command(f"/resume {first.final['last_id']}")
        assert [m["id"] for m in messages(rest.lines)] == sorted(missed)[2:]
        assert rest.final["recovered"] is True
    finally:
        await clients.close()
        await server.stop()


async def test_resume_from_an_id_never_issued_is_not_recovered(clients: Clients) -> None:
    [alice] = await room_with(clients, "alice")
    top = (await alice.say("hello"))["id"]
    reply = await alice.command(f"/resume {top + 1000}")
    assert messages(reply.lines) == []
    assert reply.final["recovered"] is False
    assert "another server or epoch" in reply.final["reasons"][0]
    # The id to go on from is the server's latest, not the one given: the next
    # message's id is above it (a client ignoring ids at or below the last one
    # it holds would otherwise drop every message until the counter passed it).
    assert reply.final["last_id"] == top
    assert (await alice.say("again"))["id"] > reply.final["last_id"]


async def test_resume_leaves_out_direct_messages_of_someone_blocked(clients: Clients) -> None:
    alice, last, missed = await _gap(clients)
    await alice.command("/block bob")
    reply = await alice.command(f"/resume {last}")
    replayed = messages(reply.lines)
    assert all(not (m.get("to") == "alice" and m["from"] == "bob") for m in replayed)
    assert missed[0] in [m["id"] for m in replayed]  # the room's message stays


async def test_live_messages_during_a_resume_keep_increasing(clients: Clients) -> None:
    """bob posts without pause while alice logs in and resumes on one pipelined
    write: the ids she sees from her login on increase, none twice, none missing."""
    alice, bob = await room_with(clients, "alice", "bob")
    last = (await alice.say("before"))["id"]
    await alice.close()
    for n in range(30):
        await bob.command(f"/say general gap {n}")
    stop = asyncio.Event()

    async def flood() -> list[int]:
        sent = []
        while not stop.is_set():
            sent.append((await bob.command("/say general live"))["id"])
        return sent

    flooding = asyncio.create_task(flood())
    raw = await clients.raw()
    raw.send(f"/format json\n/login alice {PASSWORD}\n@r /resume {last}\n")
    seen: list[int] = []

    def record(line: str) -> bool:
        obj = json.loads(line) if line.startswith("{") else {}
        if obj.get("type") == "message":
            seen.append(obj["id"])
        return obj.get("label") == "r" and obj.get("type") == "ok"

    async with asyncio.timeout(30):
        await raw.until(record)
        stop.set()
        sent = await flooding
        raw.send("@end /ping\n")
        await raw.until(lambda line: record(line) or '"end"' in line)
    assert seen == sorted(set(seen))
    assert set(seen) >= {i for i in sent} | set(range(last + 1, last + 31))


async def test_resume_in_text_mode_shows_the_messages_then_the_summary(
        clients: Clients) -> None:
    alice, last, _missed = await _gap(clients)
    await alice.close()
    text = await text_client(clients, "alice")
    lines = await text_run(text, f"/resume {last}")
    assert any("one" in line for line in lines)
    assert "4 messages replayed; nothing is missing." in lines[-1]


async def test_resume_before_login_is_not_logged_in(clients: Clients) -> None:
    client = await clients.anonymous()
    assert (await error_of(client, "/resume 0"))["code"] == "not-logged-in"


@pytest.mark.parametrize("word", ["", "abc", "-1", "1.5", "²", "9" * 30])
async def test_resume_with_a_bad_id_is_bad_arguments(clients: Clients, word: str) -> None:
    alice = await clients.user("alice")
    assert (await error_of(alice, f"/resume {word}".rstrip()))["code"] == "bad-arguments"


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(word=st.text(min_size=1, max_size=30).filter(
    lambda w: w.strip() == w and " " not in w and "\n" not in w and "\r" not in w))
def test_any_word_as_the_id_is_an_answer_never_a_crash(word: str) -> None:
    from chatd.errors import ChatError
    from commands.messages import MessageId

    param = MessageId("last_id")
    try:
        value: Any = param.convert(None, word, False)  # type: ignore[arg-type]
    except ChatError as exc:
        assert exc.code == "bad-arguments"
    else:
        assert word.isascii() and word.isdigit() and value == int(word)


async def test_resume_at_the_cap_counts_no_blocked_message_and_loses_none(
        db_path: Path) -> None:
    """alice blocks bob, whose direct message to her came first in the gap: the
    message left out must not make the cap look unreached (``more`` false,
    ``recovered`` true) while a message past it was never read."""
    server = await start_server(db_path, rooms__resume_max=2)
    clients = Clients(server)
    try:
        alice, bob, carol = await room_with(clients, "alice", "bob", "carol")
        last = (await alice.say("before"))["id"]
        await alice.close()
        await bob.command("/msg alice psst")
        said = [(await carol.command(f"/say general {n}"))["id"] for n in range(3)]
        alice = await clients.user("alice")
        await alice.command("/block bob")
        first = await alice.command(f"/resume {last}")
        assert [m["id"] for m in messages(first.lines)] == said[:2]
        assert first.final["recovered"] is False and first.final["more"] is True
        rest = await alice.command(f"/resume {first.final['last_id']}")
        assert [m["id"] for m in messages(rest.lines)] == said[2:]
        assert rest.final["recovered"] is True
    finally:
        await clients.close()
        await server.stop()
