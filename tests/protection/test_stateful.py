"""A state machine of three users on four connections sending random command
sequences, checking after every step that the server still answers, that every
command got exactly one final line, and that memory and the database agree.

The machine is synchronous (Hypothesis drives it) and owns an asyncio event
loop, on which the server and its clients run between steps.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from chatd.client import ChatClient
from chatd.domain.clock import ManualClock
from tests.helpers import PASSWORD, Clients, start_server

USERS = ("u0", "u1", "u2")
# Connection i is logged in as CONN_USERS[i]: u0 has two connections.
CONN_USERS = ("u0", "u1", "u2", "u0")
ROOMS = ("r0", "r1")
STEP_TIMEOUT = 30.0

T = TypeVar("T")

conns = st.integers(0, len(CONN_USERS) - 1)
users = st.sampled_from(USERS)
rooms = st.sampled_from(ROOMS)
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=24)
durations = st.sampled_from(("", "30s", "10m", "2h"))


def send_bytes(client: ChatClient, data: bytes) -> None:
    """Write raw bytes (ChatClient only sends str lines)."""
    client._writer.write(data)


class ChatMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.clock = ManualClock()
        # No login timeout: a connection is anonymous for a moment in /logout + /login.
        self.server = self.run(start_server(Path(self.tmp.name) / "chatd.db", clock=self.clock,
                                            limits__login_timeout=10**9))
        self.clients = Clients(self.server)
        self.conns = [self.run(self.clients.user(name)) for name in CONN_USERS]
        # A populated start, so that moderation has members to act on:
        # r0 (open) is u0's with u1 and u2 in it; r1 (request) is u1's alone.
        for conn, line in ((0, "/create r0"), (1, "/join r0"), (2, "/join r0"),
                           (1, "/create r1 request")):
            self.command(conn, line)
        for client in self.conns:
            client.pending_events()
        self.serial = 0
        # Lines sent this step with no labelled reply: connection -> their tokens.
        self.unlabelled: dict[int, list[str]] = {}

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(work, STEP_TIMEOUT))

    def teardown(self) -> None:
        try:
            self.run(self.clients.close())
            self.run(self.server.stop())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
            self.tmp.cleanup()

    # -- actions -------------------------------------------------------------

    def command(self, conn: int, line: str) -> dict[str, Any]:
        """Run a command; its one final line is an ok or a (never internal) error."""
        final = self.run(self.conns[conn].command(line, check=False)).final
        assert final["type"] in ("ok", "error"), final
        assert final.get("code") != "internal-error", (line, final)
        return final

    def token(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    @rule(conn=conns, room=rooms, mode=st.sampled_from(("open", "request", "private")))
    def create(self, conn: int, room: str, mode: str) -> None:
        self.command(conn, f"/create {room} {mode}")

    @rule(conn=conns, room=rooms)
    def join(self, conn: int, room: str) -> None:
        self.command(conn, f"/join {room}")

    @rule(conn=conns, room=rooms)
    def leave(self, conn: int, room: str) -> None:
        self.command(conn, f"/leave {room}")

    @rule(conn=conns, room=rooms, text=texts)
    def say(self, conn: int, room: str, text: str) -> None:
        self.command(conn, f"/say {room} {self.token('s')} {text}")

    @rule(conn=conns, verb=st.sampled_from(("kick", "unban", "unmute", "promote", "demote",
                                            "invite", "accept", "decline")),
          who=users, room=rooms)
    def moderate(self, conn: int, verb: str, who: str, room: str) -> None:
        self.command(conn, f"/{verb} {who} {room}")

    @rule(conn=conns, verb=st.sampled_from(("ban", "mute")), who=users, room=rooms,
          duration=durations)
    def sanction(self, conn: int, verb: str, who: str, room: str, duration: str) -> None:
        self.command(conn, f"/{verb} {who} {room} {duration}".rstrip())

    @rule(conn=conns, room=rooms, text=texts)
    def topic(self, conn: int, room: str, text: str) -> None:
        self.command(conn, f"/topic {room} {text}".rstrip())

    @rule(conn=conns, room=rooms)
    def switch(self, conn: int, room: str) -> None:
        self.command(conn, f"/switch {room}")

    @rule(conn=conns)
    def relogin(self, conn: int) -> None:
        self.command(conn, "/logout")
        assert self.command(conn, f"/login {CONN_USERS[conn]} {PASSWORD}")["type"] == "ok"

    @rule(conn=conns, text=texts)
    def plain(self, conn: int, text: str) -> None:
        token = self.token("p")
        self.conns[conn].send_line(f"{token} {text}")
        self.unlabelled.setdefault(conn, []).append(token)

    @rule(conn=conns, data=st.binary(max_size=40))
    def random_bytes(self, conn: int, data: bytes) -> None:
        # No newline (one line) and no telnet IAC (0xFF would open a negotiation).
        data = bytes(b for b in data if b not in (0x0A, 0xFF))
        token = self.token("z")
        send_bytes(self.conns[conn], token.encode() + b" " + data + b"\r\n")
        self.unlabelled.setdefault(conn, []).append(token)

    @rule(conn=conns, size=st.integers(4097, 9000))
    def overlong(self, conn: int, size: int) -> None:
        self.conns[conn].send_line("y" * size)
        self.unlabelled.setdefault(conn, []).append("")

    @rule(seconds=st.sampled_from((1, 45, 700, 7300)))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    # -- invariants ------------------------------------------------------------

    @invariant()
    def every_connection_answers_once_per_line(self) -> None:
        for i, client in enumerate(self.conns):
            assert self.command(i, "/ping")["type"] == "ok"
            events = client.pending_events()
            # A labelled line after its command's final line would land here.
            assert not [e for e in events if "label" in e], events
            assert not [e for e in events if e.get("type") == "closed"], events
            errors = [e for e in events if e.get("type") == "error"]
            assert all(e.get("code") != "internal-error" for e in errors), errors
            sent = self.unlabelled.get(i, [])
            mine = [e for e in events if e.get("type") == "message"
                    and e.get("from") == CONN_USERS[i]
                    and str(e.get("text", "")).split(" ", 1)[0] in sent]
            # One answer per unlabelled line: its echo or its error, never both.
            assert len(mine) + len(errors) == len(sent), (sent, events)
        self.unlabelled.clear()

    @invariant()
    def memory_and_database_agree(self) -> None:
        server = self.server
        stored_rooms = {r.id: r for r in self.run(server.storage.load_active_rooms())}
        stored_members = {(m.room_id, m.user_id): m.role
                          for m in self.run(server.storage.load_members())}
        live = [r for name in ROOMS if (r := server.services.rooms.find(name)) is not None]
        assert {r.id for r in live} == set(stored_rooms)
        assert {(r.id, uid): m.role.value for r in live for uid, m in r.members.items()} == \
            stored_members
        for room in live:
            stored = stored_rooms[room.id]
            assert (room.name, room.mode.value, room.topic) == \
                (stored.name, stored.mode, stored.topic)
        accounts = server.services.accounts
        for name in USERS:
            user = accounts.find(name)
            assert user is not None
            assert {r.id for r in server.services.rooms.of_user(user)} == \
                {r.id for r in live if r.is_member(user.id)}
        # Routing: a room's endpoints are exactly its members' live sessions.
        bus = server.services.bus
        for room in live:
            expected = set()
            for user_id in room.members:
                user = accounts.get(user_id)
                assert user is not None
                expected.update(bus.of_user(user))
                assert user.connections == len(bus.of_user(user))
            assert set(bus.in_room(room)) == expected, room.name


def test_random_command_sequences_keep_the_server_consistent() -> None:
    run_state_machine_as_test(ChatMachine, settings=settings(
        max_examples=40, stateful_step_count=40, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow]))
