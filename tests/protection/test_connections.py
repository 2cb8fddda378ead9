"""Connection limits, login and idle timeouts, slow consumers and bad input.

Timeouts are driven by moving the ManualClock and calling ``sweep_once()``;
the server's own once-a-second sweeper may run as well, which changes nothing
since it reads the same clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from chatd.client import ChatClient, LineClient
from chatd.domain.clock import ManualClock
from tests.helpers import PASSWORD, ChatServer, eventually
from tests.protection import (
    ProtectionClients,
    error_of,
    is_error,
    messages,
    room_with,
    serving,
    settle,
    text_error_code,
)


async def closed(client: LineClient, timeout: float = 10.0) -> list[str]:
    """Read what is left until the server closes the connection; returns the lines."""
    seen = []
    async with asyncio.timeout(timeout):
        while raw := await client.reader.readline():
            seen.append(raw.decode().rstrip("\r\n"))
    return seen


async def accepted(clients: ProtectionClients, ip: str = "127.0.0.1") -> LineClient:
    client = await clients.raw_from(ip)
    banner = await client.line()
    assert text_error_code(banner) is None, banner
    return client


async def refused_connection(clients: ProtectionClients, ip: str = "127.0.0.1") -> None:
    client = await clients.raw_from(ip)
    lines = await closed(client)
    assert [text_error_code(line) for line in lines] == ["too-many-connections"], lines


# ---------------------------------------------------------------------------
# Connection limits
# ---------------------------------------------------------------------------


async def test_max_connections(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, limits__max_connections=3) as (server, clients):
        held = [await accepted(clients) for _ in range(3)]
        await refused_connection(clients)
        await refused_connection(clients, "127.0.0.2")  # the total, whatever the address
        await eventually(lambda: server.connection_count == 3)
        # The held connections work.
        held[0].send("/ping")
        assert text_error_code(await held[0].line()) is None
        # A place that frees up can be taken again.
        await held[1].close()
        await eventually(lambda: server.connection_count == 2)
        await accepted(clients)
        await refused_connection(clients)
        assert server.connection_count == 3


async def test_max_connections_per_ip(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock,
                       limits__max_connections_per_ip=2) as (server, clients):
        first = await accepted(clients)
        await accepted(clients)
        for _ in range(3):
            await refused_connection(clients)
        # Other addresses have their own allowance.
        await accepted(clients, "127.0.0.2")
        await accepted(clients, "127.0.0.2")
        await refused_connection(clients, "127.0.0.2")
        await eventually(lambda: server.connection_count == 4)
        # Refused connections did not use up the address's allowance.
        await first.close()
        await eventually(lambda: server.connection_count == 3)
        await accepted(clients)
        await refused_connection(clients)


async def test_a_json_client_sees_the_refusal_code(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, limits__max_connections=1) as (_, clients):
        await clients.anonymous()
        with pytest.raises(ConnectionError) as refused:
            await ChatClient.connect("127.0.0.1", clients.server.port)
        assert text_error_code(str(refused.value)) == "too-many-connections"


# ---------------------------------------------------------------------------
# Timeouts
# ---------------------------------------------------------------------------


async def test_login_timeout_closes_anonymous_connections(
        db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (server, clients):
        anonymous = await clients.anonymous()
        alice = await clients.user("alice")
        clock.advance(59)
        server.sweep_once()
        await anonymous.command("/ping")
        clock.advance(2)  # past limits.login_timeout (60 s)
        server.sweep_once()
        error = await anonymous.next_event(lambda e: e.get("type") == "error")
        assert error["code"] == "not-logged-in"
        assert (await anonymous.next_event())["type"] == "closed"
        # A logged-in connection is not subject to it (and idle_timeout is 0: never).
        clock.advance(3600)
        server.sweep_once()
        assert (await alice.command("/ping"))["type"] == "ok"
        await eventually(lambda: server.connection_count == 1)


async def test_login_timeout_is_configurable(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, limits__login_timeout=10) as (server, clients):
        raw = await accepted(clients)
        clock.advance(11)
        server.sweep_once()
        lines = await closed(raw)
        assert [text_error_code(line) for line in lines] == ["not-logged-in"], lines
        # Typing commands without logging in does not extend the time.
        anonymous = await clients.anonymous()
        for _ in range(3):
            clock.advance(4)
            await anonymous.command("/ping")
        server.sweep_once()
        assert (await anonymous.next_event())["code"] == "not-logged-in"


async def test_logging_out_starts_a_new_login_window(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (server, clients):
        alice = await clients.user("alice")
        clock.advance(120)
        await alice.command("/logout")
        server.sweep_once()
        # "/logout: this connection stays open": time to log in as someone else.
        assert (await alice.command("/ping"))["type"] == "ok"
        assert not [e for e in alice.pending_events() if e.get("type") == "error"]
        clock.advance(61)
        server.sweep_once()
        assert (await alice.next_event(is_error("not-logged-in")))["code"] == "not-logged-in"


async def test_idle_timeout_closes_idle_connections_only(
        db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, limits__idle_timeout=30) as (server, clients):
        idle, active = await room_with(clients, "idle", "active")
        clock.advance(20)
        await active.command("/ping")
        clock.advance(15)  # idle: 35 s without input; active: 15 s
        server.sweep_once()
        error = await idle.next_event(lambda e: e.get("type") == "error")
        assert error["code"] == "idle-timeout"
        assert (await idle.next_event())["type"] == "closed"
        assert (await active.command("/ping"))["type"] == "ok"
        # Receiving messages is not activity: only what the client sends is.
        listener = await clients.user("idle")
        clock.advance(20)
        for i in range(3):
            await active.say(f"keep talking {i}")
        clock.advance(11)
        server.sweep_once()
        assert (await listener.next_event(is_error("idle-timeout")))["code"] == "idle-timeout"
        assert (await active.command("/ping"))["type"] == "ok"
        await eventually(lambda: server.connection_count == 1)


async def test_idle_timeout_never_closes_a_connection_early(
        db_path: Path, clock: ManualClock) -> None:
    """A connection keeps a coarse time of its last input (one float shared by the
    connections of that moment): the sweep allows for it, so an input a moment
    after the time was taken still counts in full."""
    async with serving(db_path, clock, limits__idle_timeout=30) as (server, clients):
        [busy] = await room_with(clients, "busy")
        await busy.command("/ping")
        clock.advance(0.2)
        await busy.command("/ping")  # within the coarse time's step: the same float
        clock.advance(29.9)  # 30.1 s after the first input, 29.9 after the last
        server.sweep_once()
        assert (await busy.command("/ping"))["type"] == "ok"
        clock.advance(30.3)
        server.sweep_once()
        assert (await busy.next_event(is_error("idle-timeout")))["code"] == "idle-timeout"


# ---------------------------------------------------------------------------
# Slow consumers
# ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def never_reading(server: ChatServer, name: str, *lines: str) -> AsyncIterator[socket.socket]:
    """A raw socket that logs in as ``name``, sends ``lines`` and then never reads."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", server.port))
        script = [f"/register {name} {PASSWORD}", *lines]
        await loop.sock_sendall(sock, "".join(f"{line}\r\n" for line in script).encode())
        yield sock
    finally:
        sock.close()


def member_names(server: ChatServer, room_name: str) -> set[str]:
    room = server.services.rooms.find(room_name)
    return set() if room is None else {m.name for m in room.members.values()}


async def send_batch(sender: ChatClient, texts: list[str]) -> None:
    """Send plain lines back to back, then wait for every echo, in order."""
    for text in texts:
        sender.send_line(text)
    for text in texts:
        echo = await sender.next_event(lambda e: e.get("type") in ("message", "error"))
        assert echo.get("text") == text, echo


async def test_a_slow_consumer_is_dropped_and_nobody_else_suffers(
        db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, limits__output_buffer=65536) as (server, clients):
        alice, bob, carol = await room_with(clients, "alice", "bob", "carol")
        async with never_reading(server, "slow", "/join general"):
            await eventually(lambda: "slow" in member_names(server, "general"))
            await settle(bob)
            await settle(carol)
            assert server.connection_count == 4
            big = "x" * 3000
            sent: list[str] = []
            # Up to ~15 MB: far more than the kernel's buffers and the 64 KiB bound.
            while server.connection_count == 4 and len(sent) < 5000:
                batch = [f"{len(sent) + i} {big}" for i in range(25)]
                await send_batch(alice, batch)
                sent += batch
            assert server.connection_count == 3, "the slow consumer was never dropped"
            slow = server.services.accounts.find("slow")
            assert slow is not None and not slow.online
            # The room goes on.
            tail = [f"after {i}" for i in range(5)]
            await send_batch(alice, tail)
            sent += tail
            for member in (bob, carol):
                got = messages(await settle(member))
                assert [m["text"] for m in got] == sent
                ids = [m["id"] for m in got]
                assert ids == sorted(ids) and len(set(ids)) == len(ids)
            # The slow user's membership is not affected: only the connection went.
            assert "slow" in member_names(server, "general")


async def read_json_lines(sock: socket.socket, until: Callable[[dict[str, Any]], bool],
                          timeout: float = 20.0) -> list[dict[str, Any]]:
    """Read a raw socket's JSON lines until one satisfies ``until``."""
    loop = asyncio.get_running_loop()
    buffer = b""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            chunk = await loop.sock_recv(sock, 1 << 20)
            assert chunk, "connection closed"
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"{"):
                    seen.append(json.loads(line))
                    if until(seen[-1]):
                        return seen


async def test_a_lagging_client_loses_typing_and_presence_but_no_message(
        db_path: Path, clock: ManualClock) -> None:
    # Bound 32 MiB: the connection counts as behind past 8 MiB of unsent output.
    # About 20 MB are sent while it does not read: more than the kernel's socket
    # buffers (a few MB on loopback) plus 8 MiB, so it is behind; less than the
    # bound, so it is not dropped.
    async with serving(db_path, clock, limits__output_buffer=32 << 20) as (server, clients):
        alice, bob = await room_with(clients, "alice", "bob")
        async with never_reading(server, "lag", "/format json", "/join general") as sock:
            await eventually(lambda: "lag" in member_names(server, "general"))
            big = "y" * 4000
            sent: list[str] = []
            while len(sent) < 5000:
                batch = [f"{len(sent) + i} {big}" for i in range(50)]
                await send_batch(alice, batch)
                sent += batch
            assert server.connection_count == 3
            # Presence and typing while it lags behind.
            carol = await clients.user("carol")
            await carol.command("/join general")
            await carol.command("/leave general")
            await alice.command("/typing")
            await bob.command("/typing")
            await send_batch(alice, ["the end"])
            sent.append("the end")
            seen = await read_json_lines(sock, lambda o: o.get("text") == "the end")
        got = [o for o in seen if o.get("type") == "message"]
        assert [m["text"] for m in got if m["from"] == "alice"] == sent
        assert not [o for o in seen if o.get("event") == "typing"]
        assert not [o for o in seen if o.get("user") == "carol"]
        summaries = [o for o in seen if o.get("type") == "notice" and "coalesced" in o]
        assert [s["coalesced"] for s in summaries] == [2], summaries
        # The others saw all of it.
        events = await settle(bob)
        assert [e["event"] for e in events if e.get("user") == "carol"] == ["join", "leave"]
        assert [e["user"] for e in events if e.get("event") == "typing"] == ["alice"]


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


async def test_absurd_argument_counts(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, listen__max_line=1 << 16) as (server, clients):
        alice, bob = await room_with(clients, "alice", "bob")
        # (/leave takes a reason after its room: free text, like /say's below.)
        for line in ("/join general", "/ping", "/whoami", "/typing general",
                     "/ratelimit 5 10 general", "/token list", "/promote bob general",
                     "/mute bob general 1h", "/invite bob general", "/history general 5",
                     "/create newroom", "/switch general", "/who general", "/unban bob general",
                     "/format json", "/help", "/rooms", "/myrooms", "/notifications"):
            many = " ".join([line, *(["a"] * 10_000)])
            reply = await alice.command(many, check=False)
            assert reply.final["code"] == "bad-arguments", (line, reply.final)
        # Nothing was done by any of them.
        assert member_names(server, "general") == {"alice", "bob"}
        assert server.services.rooms.find("newroom") is None
        # Commands whose last argument is free text take the words as text.
        many = " ".join(["a"] * 10_000)
        reply = await alice.command(f"/say general {many}")
        assert reply["room"] == "general"
        assert (await bob.next_event(lambda e: e.get("type") == "message"))["text"] == many
        anonymous = await clients.anonymous()
        reply = await anonymous.command(f"/login {many}", check=False)
        assert reply.final["code"] == "bad-arguments"
        assert (await alice.command("/ping"))["type"] == "ok"
        assert (await anonymous.command("/ping"))["type"] == "ok"
        assert server.connection_count == 3


async def test_absurd_argument_counts_after_an_optional_number(
        db_path: Path, clock: ManualClock) -> None:
    # An optional number or duration that declines a word must not turn the
    # surplus into anything but bad-arguments (it once became internal-error).
    async with serving(db_path, clock, listen__max_line=1 << 16) as (server, clients):
        alice, _ = await room_with(clients, "alice", "bob")
        for line in ("/token list", "/token create x", "/mute bob general", "/rooms",
                     "/audit general"):
            many = " ".join([line, *(["a"] * 10_000)])
            reply = await alice.command(many, check=False)
            assert reply.final["code"] == "bad-arguments", (line, reply.final)
        room = server.services.rooms.find("general")
        assert room is not None and not room.mutes


async def test_absurd_argument_counts_before_lookups(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, listen__max_line=1 << 16) as (_, clients):
        alice = await clients.user("alice")
        many = " ".join(["a"] * 10_000)
        assert (await error_of(alice, f"/join {many}"))["code"] == "bad-arguments"


async def test_ten_thousand_arguments_over_the_line_limit(
        db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (_, clients):
        alice = await clients.user("alice")
        alice.send_line("/join " + " ".join(["a"] * 10_000))
        error = await alice.next_event(lambda e: e.get("type") == "error")
        assert error["code"] == "line-too-long"
        assert (await alice.command("/ping"))["type"] == "ok"


async def test_a_line_of_exactly_the_limit(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (_, clients):
        alice, bob = await room_with(clients, "alice", "bob")
        word = "w" * 4096
        assert (await alice.say(word))["text"] == word
        assert (await bob.next_event(lambda e: e.get("type") == "message"))["text"] == word
        wide = "é" * 2048  # 4096 bytes of UTF-8
        assert (await alice.say(wide))["text"] == wide
        alice.send_line("/" + "x" * 4095)
        assert (await alice.next_event(lambda e: e.get("type") == "error"))["code"] == \
            "unknown-command"
        alice.send_line("/join " + "r" * 4090)
        assert (await alice.next_event(lambda e: e.get("type") == "error"))["code"] == \
            "no-such-room"
        alice.send_line("w" * 4097)
        assert (await alice.next_event(lambda e: e.get("type") == "error"))["code"] == \
            "line-too-long"
        anonymous = await clients.anonymous()
        anonymous.send_line("/login " + "n" * 4089)
        assert (await anonymous.next_event(lambda e: e.get("type") == "error"))["code"] == \
            "bad-arguments"
        anonymous.send_line("/login " + "n" * 4080 + " " + "p" * 8)
        assert (await anonymous.next_event(lambda e: e.get("type") == "error"))["code"] == \
            "auth-failed"
        assert (await anonymous.command("/ping"))["type"] == "ok"
        got = [m["text"] for m in messages(await settle(bob))]
        assert got == [wide]


async def test_commands_in_the_wrong_state(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (server, clients):
        alice, _ = await room_with(clients, "alice", "bob")
        anonymous = await clients.anonymous()
        assert (await error_of(anonymous, "/frobnicate"))["code"] == "unknown-command"
        for line in ("/join general", "/create room2", "/say general hi", "/me waves",
                     "/msg alice hi", "/leave general", "/typing general", "/token list",
                     "/ratelimit 5", "/kick alice general", "/history general", "/whoami",
                     "/logout", "/passwd a b", "/myrooms", "/mute alice general"):
            assert (await error_of(anonymous, line))["code"] == "not-logged-in", line
        anonymous.send_line("hello, anyone?")
        assert (await anonymous.next_event(lambda e: e.get("type") == "error"))["code"] == \
            "not-logged-in"
        for line in (f"/register carol {PASSWORD}", f"/login alice {PASSWORD}",
                     "/auth chatd_x", f"/login alice --token chatd_{'x' * 40}"):
            assert (await error_of(alice, line))["code"] == "already-logged-in", line
        assert (await error_of(alice, "/frobnicate now"))["code"] == "unknown-command"
        # Nothing leaked from the anonymous connection into the room.
        assert (await alice.command("/history general"))["messages"] == []
        assert (await anonymous.command("/ping"))["type"] == "ok"
        assert (await alice.command("/ping"))["type"] == "ok"
        assert server.connection_count == 3


async def test_a_long_password_fails_like_a_wrong_one(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (_, clients):
        await clients.user("alice")
        anonymous = await clients.anonymous()
        for name in ("alice", "nobody"):
            error = await error_of(anonymous, f"/login {name} {'p' * 73}")
            assert error["code"] == "auth-failed", error
