"""Sender keys between five chatd-client sessions over real sockets: a join, a
leave and a removal (the chain rotates; whoever left reads nothing later), and
a fingerprint change."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from chatd.client.tui.lines import Line
from chatd.client.tui.session import ClientSession
from chatd.config import Config
from chatd.crypto import group
from chatd.domain.clock import Clock
from tests.crypto import PQ
from tests.crypto.sessions import People, messages, next_message, received, take_in
from tests.helpers import ChatServer, start_server

ROOM = "vault"
SECRETS = ("before erin came: the code is 1-1-2-3", "erin is in: the code is 5-8-13",
           "dave left: the code is 21-34", "carol is out: the code is 55-89",
           "new laptop, same erin")


def chain_of(record: dict[str, Any]) -> bytes:
    data = base64.b64decode(record["envelope"])
    assert group.is_group(data)
    return group.unpack(data).chain_id


async def everyone_reads(text: str, sender: ClientSession,
                         others: list[ClientSession]) -> dict[str, Any]:
    """``sender`` writes ``text``; each of ``others`` reads it, verified. Returns the
    record as the first of them received it."""
    said = await sender.input(text)
    assert [m.text for m in messages(said)] == [text], said
    first: dict[str, Any] | None = None
    for other in others:
        record = await next_message(other, lambda e: e.get("room") == ROOM)
        shown = messages(await other.show(record))
        assert [(m.text, m.sender, m.verified) for m in shown] == [(text, sender.user, True)], \
            (other.user, shown)
        first = first or record
    assert first is not None
    return first


async def cannot_read(session: ClientSession, record: dict[str, Any]) -> list[Line]:
    shown = await session.show(record)
    assert not messages(shown), shown
    assert "not encrypted for you" in shown[0].text
    return shown


async def test_five_clients_join_leave_removal_and_a_new_key(
        server: ChatServer, people: People, db_path: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    alice, bob, carol, dave, erin = [await people.session(n) for n in
                                     ("alice", "bob", "carol", "dave", "erin")]
    await alice.input(f"/create {ROOM}")
    await alice.input("/e2e on")
    for member in (bob, carol, dave):
        await member.input(f"/join {ROOM}")
    before = await everyone_reads(SECRETS[0], alice, [bob, carol, dave])

    # A join: erin gets alice's chain as it stands now, not from its start.
    await erin.input(f"/join {ROOM}")
    await take_in(alice)
    after_join = await everyone_reads(SECRETS[1], alice, [bob, carol, dave, erin])
    assert chain_of(after_join) == chain_of(before)
    await cannot_read(erin, {**before, "history": True})
    history = messages(await erin.input(f"/history {ROOM}"))
    assert [m.text for m in history] == [SECRETS[1]]
    await everyone_reads("hello from erin", erin, [alice, bob, carol, dave])

    # A leave: dave goes, then comes back before alice writes again. Alice's client
    # saw him go, so her next message is under a new chain he gets only now.
    await dave.input(f"/leave {ROOM}")
    await take_in(alice)
    await dave.input(f"/join {ROOM}")
    rotated = await everyone_reads(SECRETS[2], alice, [bob, carol, dave, erin])
    assert chain_of(rotated) != chain_of(after_join)
    await dave.input(f"/leave {ROOM}")
    after_leave = await everyone_reads("dave has gone for good", bob, [alice, carol, erin])
    await cannot_read(dave, after_leave)

    # A removal: carol is kicked. Whatever the others send next, she cannot read.
    await alice.input(f"/kick carol {ROOM}")
    for member in (bob, erin):
        await take_in(member)
    removed = await everyone_reads(SECRETS[3], bob, [alice, erin])
    assert chain_of(removed) != chain_of(after_leave)
    await cannot_read(carol, removed)
    leaked = [e for e in carol.client.pending_events() + dave.client.pending_events()
              if e.get("room_key") or (e.get("room") == ROOM and e.get("type") == "message")]
    assert not leaked  # neither a later message nor a key for one reached them

    # A fingerprint change: erin reinstalls, and her key is not the one pinned.
    await erin.client.close()
    erin2 = await people.session("erin", home=tmp_path / "erin-reinstalled")
    await erin2.input(f"/switch {ROOM}")
    await erin2.input(SECRETS[4])
    for member in (alice, bob):
        shown = await received(member, lambda e: e.get("room") == ROOM)
        assert [(m.text, m.verified) for m in messages(shown)] == [(SECRETS[4], False)]
        assert any(line.kind == "warning" and "NOT verified" in line.text for line in shown)
    said = await alice.input("who is this?")
    assert any("CHANGED" in line.text for line in said)
    unread = await next_message(erin2, lambda e: e.get("room") == ROOM)
    await cannot_read(erin2, unread)
    await take_in(bob)
    said = await alice.input("/trust erin")
    assert "now trust" in said[0].text
    await everyone_reads("welcome back, erin", alice, [bob, erin2])
    await cannot_read(erin2, {**unread, "history": True})  # what she was not trusted with

    # Nothing of any plaintext in the database, the logs, or a non-member's stream.
    outside = json.dumps([*carol.client.pending_events(), *dave.client.pending_events(),
                          (await carol.client.command(f"/history {ROOM}", check=False)).final])
    await server.services.writer.flush()
    await people.close()
    await server.stop()
    stored = b"".join(p.read_bytes() for p in db_path.parent.iterdir()
                      if p.name.startswith(db_path.name))
    for secret in SECRETS:
        assert secret.encode() not in stored
        assert secret not in caplog.text
        assert secret not in outside


async def test_a_ban_rotates_the_chain_too(people: People) -> None:
    alice, bob, mallory = [await people.session(n) for n in ("alice", "bob", "mallory")]
    await alice.input(f"/create {ROOM}")
    await alice.input("/e2e on")
    await bob.input(f"/join {ROOM}")
    await mallory.input(f"/join {ROOM}")
    first = await everyone_reads("all three of us", bob, [alice, mallory])
    await alice.input(f"/ban mallory {ROOM}")
    await take_in(bob)
    later = await everyone_reads("just the two of us", bob, [alice])
    assert chain_of(later) != chain_of(first)
    await cannot_read(mallory, later)


async def test_a_message_that_overtakes_its_key_waits_for_it(people: People) -> None:
    alice, bob = [await people.session(n) for n in ("alice", "bob")]
    await alice.input(f"/create {ROOM}")
    await alice.input("/e2e on")
    await bob.input(f"/join {ROOM}")
    await alice.input("the key comes first on the wire")
    await bob.client.command("/ping")
    arrived = [e for e in bob.client.pending_events() if e.get("type") == "message"]
    key = next(e for e in arrived if e.get("room_key"))
    message = next(e for e in arrived if not e.get("room_key"))
    waiting = await bob.show(message)
    assert not messages(waiting) and "key has not come yet" in waiting[0].text
    shown = await bob.show(key)
    assert [m.text for m in messages(shown)] == ["the key comes first on the wire"]
    assert not messages(await bob.show(key))  # the same handout again changes nothing


async def test_a_handout_for_someone_else_or_forged_is_not_taken(people: People) -> None:
    alice, bob, carol = [await people.session(n) for n in ("alice", "bob", "carol")]
    await alice.input(f"/create {ROOM}")
    await alice.input("/e2e on")
    for member in (bob, carol):
        await member.input(f"/join {ROOM}")
    await alice.input("hello")
    await carol.client.command("/ping")
    for_carol = next(e for e in carol.client.pending_events() if e.get("room_key"))
    assert await bob.show(for_carol) == []  # sealed for carol: bob learns nothing
    forged = await carol.show({**for_carol, "from": "mallory"})
    assert forged[0].kind == "warning" and "claims to be from alice" in forged[0].text
    moved = await carol.show({**for_carol, "room_key": "elsewhere"})
    assert moved[0].kind == "warning" and "written for #vault" in moved[0].text


@PQ
async def test_fifty_members_on_defaults_with_post_quantum_hybrid(db_path: Path,
                                                                  tmp_path: Path) -> None:
    """The goal of sender keys: the default line limit and rate limits, ML-KEM-768
    on, the default rate limits on the real clock, fifty members; the first message
    hands a key to each of them, paced by the command bucket. (Only the connections
    allowed from one address are raised: every member is on loopback.)"""
    defaults = Config().limits
    server = await start_server(
        db_path, clock=Clock(), limits__max_connections_per_ip=60,
        limits__command_rate=defaults.command_rate, limits__command_burst=defaults.command_burst,
        limits__message_rate=defaults.message_rate, limits__message_burst=defaults.message_burst)
    people = People(server, tmp_path / "homes")
    try:
        crowd = [await people.session(f"m{i:02d}") for i in range(50)]
        await crowd[0].input(f"/create {ROOM}")
        await crowd[0].input("/e2e on")
        for member in crowd[1:]:
            await member.input(f"/join {ROOM}")
        await everyone_reads("hello, all forty-nine of you", crowd[0], crowd[1:])
        record = await everyone_reads("and once more", crowd[0], crowd[1:])
        assert len(base64.b64decode(record["envelope"])) < 1024 + len("and once more")
        await everyone_reads("a reply from the back row", crowd[49], crowd[:49])
    finally:
        await people.close()
        await server.stop()


async def test_a_member_who_refuses_our_key_is_named(people: People) -> None:
    alice, bob, carol = [await people.session(n) for n in ("alice", "bob", "carol")]
    await alice.input(f"/create {ROOM}")
    await alice.input("/e2e on")
    for member in (bob, carol):
        await member.input(f"/join {ROOM}")
    await bob.input("/block alice")
    said = await alice.input("bob blocks me")
    assert any(line.kind == "warning" and "bob cannot read your messages" in line.text
               for line in said)
    assert [m.text for m in messages(said)] == ["bob blocks me"]
    assert messages(await received(carol))[0].text == "bob blocks me"
    await cannot_read(bob, await next_message(bob))
    said = await alice.input("and again")  # the refusal is tried again, not forgotten
    assert any("bob cannot read" in line.text for line in said)


async def test_leaving_forgets_our_chain_and_history_without_a_key(people: People) -> None:
    alice, bob, carol = [await people.session(n) for n in ("alice", "bob", "carol")]
    await alice.input(f"/create {ROOM}")
    await alice.input("/e2e on")
    await bob.input(f"/join {ROOM}")
    await everyone_reads("before carol", bob, [alice])
    assert bob.secure.keyring.chains.own(ROOM) is not None
    await bob.input(f"/leave {ROOM}")
    assert bob.secure.keyring.chains.own(ROOM) is None
    await carol.input(f"/join {ROOM}")
    shown = await carol.input(f"/history {ROOM}")
    assert not messages(shown) and "not encrypted for you" in shown[0].text
