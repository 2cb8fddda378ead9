"""The server's life: orderly shutdown, durability of acknowledged messages, limits, timeouts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatd.client import ChatClient, LineClient
from chatd.domain.clock import ManualClock
from tests.helpers import PASSWORD, ChatServer, Clients, start_server, text_client


def is_message(event: dict[str, Any]) -> bool:
    return event.get("type") == "message"




async def assert_closed(client: LineClient) -> None:
    with pytest.raises(ConnectionError):
        await client.line(timeout=5)


# -- shutdown -----------------------------------------------------------------------


async def test_stop_tells_every_client_and_disconnects_it(
        server: ChatServer, clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    anonymous = await clients.anonymous()
    text = await text_client(clients)
    port = server.port
    await server.stop()
    for client in (alice, anonymous):
        notice = await client.next_event(timeout=5)
        assert notice["type"] == "notice" and notice["shutdown"] is True
        assert (await client.next_event(timeout=5))["type"] == "closed"
    assert (await text.line()).startswith("* ")
    await assert_closed(text)
    with pytest.raises(OSError):
        await LineClient.connect("127.0.0.1", port, timeout=5)
    await server.stop()  # a second stop is harmless


async def test_messages_acknowledged_before_stop_are_stored(
        tmp_path: Path, clock: ManualClock) -> None:
    db_path = tmp_path / "durable.db"
    # A long flush interval: only the shutdown itself can have written the messages.
    server = await start_server(db_path, clock=clock, storage__flush_interval=3600)
    before = Clients(server)
    try:
        alice = await before.user("alice")
        await alice.command("/create general")
        bob = await before.user("bob")
        await bob.command("/logout")
        for n in range(150):
            alice.send_line(f"line {n}")
        acknowledged = []
        while len(acknowledged) < 150:
            acknowledged.append((await alice.next_event(is_message, timeout=5))["id"])
        said = await alice.command("/say general last words")
        action = await alice.command("/me leaves the lights on")
        direct = await alice.command("/msg bob for later")
        assert server.services.writer.pending > 0
        await server.stop()
        assert [e for e in alice.pending_events() if e.get("shutdown")]
    finally:
        await before.close()
        await server.stop()

    server = await start_server(db_path, clock=clock)
    after = Clients(server)
    try:
        alice = await after.user("alice")
        history = (await alice.command("/history general 200"))["messages"]
        assert [m["id"] for m in history] == [*acknowledged, said["id"], action["id"]]
        assert history[0]["text"] == "line 0" and history[-2]["text"] == "last words"
        bob = await after.anonymous()
        login = await bob.command(f"/login bob {PASSWORD}")
        [pending] = [e for e in login.lines if is_message(e)]
        assert pending["id"] == direct["id"] and pending["offline"] is True
    finally:
        await after.close()
        await server.stop()


# -- connection limit ---------------------------------------------------------------


@pytest.fixture
async def limited_server(tmp_path: Path, clock: ManualClock) -> AsyncIterator[ChatServer]:
    server = await start_server(tmp_path / "limited.db", clock=clock,
                                limits__max_connections_per_ip=2)
    yield server
    await server.stop()


async def test_too_many_connections_from_one_address(limited_server: ChatServer) -> None:
    opened = Clients(limited_server)
    try:
        first = await opened.user("alice")
        second = await opened.anonymous()
        third = await opened.raw()
        refused = await third.line()
        assert refused.startswith("! too-many-connections:")
        await assert_closed(third)
        # The two accepted connections are unaffected.
        assert (await first.command("/whoami"))["user"] == "alice"
        assert (await second.command("/ping"))["command"] == "ping"
        # A freed slot can be used again; the refused connection took none.
        await second.command("/quit")
        assert (await second.next_event(timeout=5))["type"] == "closed"
        fourth = await opened.raw()
        assert (await fourth.line()).startswith("* chatd")
        fourth.send(f"/register bob {PASSWORD}")
        assert (await fourth.line()).startswith("* ")
        fifth = await opened.raw()
        assert (await fifth.line()).startswith("! too-many-connections:")
        await assert_closed(fifth)
    finally:
        await opened.close()


# -- login timeout --------------------------------------------------------------------


async def test_login_timeout_closes_idle_anonymous_connections(
        server: ChatServer, clients: Clients, clock: ManualClock) -> None:
    timeout = server.config.limits.login_timeout
    idle = await text_client(clients)
    idle_json = await clients.anonymous()
    member = await clients.user("alice")
    clock.advance(timeout - 1)
    server.sweep_once()
    assert (await idle_json.command("/ping"))["command"] == "ping"
    idle.send("/ping")
    assert await idle.line() == "* pong"
    clock.advance(2)
    late = await text_client(clients)  # connected just now: not timed out
    server.sweep_once()
    assert (await idle.line()).startswith("! not-logged-in:")
    await assert_closed(idle)
    error = await idle_json.next_event(timeout=5)
    assert error["type"] == "error" and error["code"] == "not-logged-in"
    assert (await idle_json.next_event(timeout=5))["type"] == "closed"
    assert (await member.command("/whoami"))["user"] == "alice"
    late.send(f"/register bob {PASSWORD}")
    assert (await late.line()).startswith("* ")
    clock.advance(timeout + 1)
    server.sweep_once()
    assert (await member.command("/ping"))["command"] == "ping"
    late.send("/whoami")
    assert "bob" in await late.line()


async def test_logging_in_in_time_keeps_the_connection(
        server: ChatServer, clients: Clients, clock: ManualClock) -> None:
    await clients.user("alice")
    client: ChatClient = await clients.anonymous()
    clock.advance(server.config.limits.login_timeout / 2)
    await client.command(f"/login alice {PASSWORD}")
    clock.advance(server.config.limits.login_timeout)
    server.sweep_once()
    assert (await client.command("/whoami"))["user"] == "alice"


# -- a connection that goes away during its login --------------------------------------


async def test_a_login_cut_off_by_a_disconnect_leaves_no_ghost(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    await alice.command("/quit")
    await alice.next_event(lambda e: e["type"] == "closed", timeout=5)
    bob = await clients.user("bob")
    await bob.command("/join general")
    server = clients.server
    before = server.connection_count
    leaver = await text_client(clients)
    leaver.send(f"/login alice {PASSWORD}")
    await leaver.writer.drain()
    await leaver.close()
    # The login may finish (a closed sending side is answered first), but no
    # session may outlive the connection. Wait, by round trips (bounded), until
    # the server has let the connection go; then alice must be and stay offline.
    for _ in range(5000):
        if server.connection_count == before:
            break
        await bob.command("/ping")
    assert server.connection_count == before, "the closed connection was never released"
    for _ in range(50):
        who = await bob.command("/who general")
        assert {m["user"]: m["online"] for m in who["members"]}["alice"] is False
    assert (await bob.command("/msg alice are you there?"))["online"] is False
    back = await clients.anonymous()
    assert (await back.command(f"/login alice {PASSWORD}"))["direct_messages"] == 1
