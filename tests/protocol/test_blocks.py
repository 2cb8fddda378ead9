"""Blocking direct messages: /block, /unblock, /blocks.

A blocked user's direct messages are refused with ``blocked`` before they are
stored: they reach none of the blocker's connections, and no notification.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from chatd.crypto import envelope
from chatd.crypto.envelope import Identity, seal
from chatd.domain.clock import ManualClock
from tests.helpers import (
    PASSWORD,
    Clients,
    error_of,
    messages,
    settle,
    start_server,
    text_client,
    text_run,
)


async def test_a_blocked_user_is_refused_and_nothing_reaches_the_blocker(
        clients: Clients) -> None:
    first, second = await clients.user("alice"), await clients.user("alice")
    bob, carol = await clients.user("bob"), await clients.user("carol")
    reply = await first.command("/block bob")
    assert reply["user"] == "bob" and reply["already"] is False
    error = await error_of(bob, "/msg alice let me in")
    assert error["code"] == "blocked"
    assert error["message"] == "alice does not accept direct messages from you."
    for connection in (first, second):
        assert messages(await settle(connection)) == []
    # One way only, and for bob only.
    assert (await first.command("/msg bob stop it"))["to"] == "bob"
    assert (await carol.command("/msg alice hello"))["to"] == "alice"
    assert [m["from"] for m in messages(await settle(second))] == ["alice", "carol"]


async def test_an_offline_blocker_gets_neither_the_message_nor_a_notification(
        clients: Clients) -> None:
    alice = await clients.user("alice")
    bob = await clients.user("bob")
    await alice.command("/block bob")
    await alice.command("/logout")
    assert (await error_of(bob, "/msg alice are you there"))["code"] == "blocked"
    back = await alice.command(f"/login alice {PASSWORD}")
    assert back["notifications"] == 0 and back["direct_messages"] == 0


async def test_an_end_to_end_message_of_a_blocked_user_is_refused_too(
        clients: Clients) -> None:
    alice, bob = await clients.user("alice"), await clients.user("bob")
    await alice.command("/block bob")
    keys = {name: Identity.generate() for name in ("alice", "bob")}
    sealed = envelope.b64(seal(b"hi", "bob", "@alice", keys["bob"],
                               [keys[name].public(name) for name in ("bob", "alice")]))
    assert (await error_of(bob, f"/emsg @alice {sealed}"))["code"] == "blocked"
    assert messages(await settle(alice)) == []


async def test_unblock_lets_messages_through_again(clients: Clients) -> None:
    alice = await clients.user("alice")
    bob = await clients.user("bob")
    await alice.command("/block BOB")
    assert (await alice.command("/block bob"))["already"] is True
    assert (await alice.command("/unblock bob"))["user"] == "bob"
    sent = await bob.command("/msg alice hi again")
    got = await alice.next_event(lambda e: e.get("type") == "message")
    assert got["id"] == sent["id"]
    error = await error_of(alice, "/unblock bob")
    assert error["code"] == "bad-arguments" and "/blocks" in error["message"]


async def test_block_refuses_yourself_and_unknown_users(clients: Clients) -> None:
    alice = await clients.user("alice")
    assert (await error_of(alice, "/block alice"))["code"] == "not-permitted"
    assert (await error_of(alice, "/block nobody"))["code"] == "no-such-user"
    assert (await error_of(alice, "/unblock nobody"))["code"] == "no-such-user"
    assert (await error_of(alice, "/block"))["code"] == "bad-arguments"
    assert (await alice.command("/blocks"))["blocks"] == []


async def test_blocks_lists_by_name_in_json_and_as_a_table(
        clients: Clients, clock: ManualClock) -> None:
    for name in ("bob", "Carol", "dave"):
        await clients.user(name)
    alice = await clients.user("alice")
    await alice.command("/block dave")
    clock.advance(60)
    await alice.command("/block carol")
    await alice.command("/block bob")
    listed = await alice.command("/blocks")
    assert [b["user"] for b in listed["blocks"]] == ["bob", "Carol", "dave"]
    assert listed["blocks"][2]["since"] == listed["blocks"][0]["since"] - 60
    text = await text_client(clients, "alice")
    lines = await text_run(text, "/blocks")
    assert lines[0].split() == ["user", "since", "(UTC)"]
    assert [line.split()[0] for line in lines[1:4]] == ["bob", "Carol", "dave"]
    assert lines[-1] == "* You block 3 users."
    [refused] = await text_run(await text_client(clients, "bob"), "/msg alice hello?")
    assert refused == "! blocked: alice does not accept direct messages from you."


async def test_blocks_survive_a_restart_and_go_with_a_deleted_account(
        tmp_path: Path, clock: ManualClock) -> None:
    db_path = tmp_path / "blocks.db"
    server = await start_server(db_path, clock=clock)
    before = Clients(server)
    try:
        alice = await before.user("alice")
        await before.user("bob")
        await before.user("carol")
        await alice.command("/block bob")
        await alice.command("/block carol")
    finally:
        await before.close()
        await server.stop()
    server = await start_server(db_path, clock=clock)
    after = Clients(server)
    try:
        assert (await error_of(await after.user("bob"), "/msg alice hi"))["code"] == "blocked"
        alice = await after.user("alice")
        assert [b["user"] for b in (await alice.command("/blocks"))["blocks"]] == \
            ["bob", "carol"]
        carol = server.services.accounts.find("carol")
        assert carol is not None
        await server.services.presence.delete_account(carol, "test")
        assert [b["user"] for b in (await alice.command("/blocks"))["blocks"]] == ["bob"]
    finally:
        await after.close()
        await server.stop()


async def test_a_message_sent_with_a_block_arrives_if_and_only_if_it_is_accepted(
        clients: Clients) -> None:
    alice, bob = await clients.user("alice"), await clients.user("bob")
    for round_ in range(30):
        sent, blocked = await asyncio.gather(
            bob.command(f"/msg alice round {round_}", check=False),
            alice.command("/block bob"))
        assert blocked["already"] is False
        arrived = messages(await settle(alice))
        if sent.ok:
            assert [m["id"] for m in arrived] == [sent["id"]]
        else:
            assert sent.final["code"] == "blocked" and arrived == []
        await alice.command("/unblock bob")


async def test_concurrent_block_and_unblock_leave_memory_and_storage_agreeing(
        clients: Clients) -> None:
    first, second = await clients.user("alice"), await clients.user("alice")
    await clients.user("bob")
    accounts, storage = clients.server.services.accounts, clients.server.services.storage
    alice, bob = accounts.find("alice"), accounts.find("bob")
    assert alice is not None and bob is not None
    for round_ in range(30):
        one, other = (first, second) if round_ % 2 else (second, first)
        await asyncio.gather(one.command("/block bob", check=False),
                             other.command("/unblock bob", check=False))
        stored = {(b.user_id, b.blocked_id) for b in await storage.load_user_blocks()}
        assert ((alice.id, bob.id) in stored) == (bob.id in alice.blocked)


async def test_a_block_storage_refuses_is_not_kept(clients: Clients, db_path: Path) -> None:
    alice = await clients.user("alice")
    await clients.user("bob")
    # Another process removes bob's row: the block's write breaks a foreign key.
    # In a thread, as another process would: the daemon shares this test's event
    # loop, and a write of its own in progress (the batched log-in audit entries)
    # needs the loop to finish and release the database's lock.
    def remove_bob() -> None:
        with sqlite3.connect(db_path, timeout=30) as conn:
            conn.execute("DELETE FROM users WHERE name = 'bob'")

    await asyncio.to_thread(remove_bob)
    assert (await error_of(alice, "/block bob"))["code"] == "internal-error"
    assert (await alice.command("/blocks"))["blocks"] == []
