"""A state machine of room governance over a real daemon: five accounts (one a
server admin) on six connections send random governance commands, alone and two
at once, while the clock runs and the daemon restarts on its database.

After every step: each live room has exactly one owner, no member is banned,
no banned user holds an invitation or a join request, no member a request, and
memory equals the database. Every governance decision a command reports is
written once to the audit log and told to the user it concerns. A restart keeps
every room, role, mode, sanction, invitation and request as it was.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from chatd.client import ChatClient, Reply
from chatd.domain.clock import ManualClock
from chatd.domain.room import Role, in_force
from tests.helpers import PASSWORD, ChatServer, Clients, start_server

USERS = ("u0", "u1", "u2", "u3")
ROOT = "root"
# Connection i is logged in as CONN_USERS[i]: u0 and the server admin have two,
# so that their own commands can race each other.
CONN_USERS = (*USERS, ROOT, "u0", ROOT)
ROOMS = ("g0", "g1")
KEY = "pw"
STEP_TIMEOUT = 30.0

# A command's audit action is its name; each of these, when it changes
# something, tells its target with a notification of this kind.
NOTIFIED = {"ban": "banned", "unban": "unbanned", "kick": "kicked", "mute": "muted",
            "unmute": "unmuted", "promote": "promoted", "demote": "demoted",
            "voice": "voiced", "devoice": "devoiced", "transfer": "promoted",
            "invite": "invitation", "accept": "request-accepted",
            "decline": "request-declined"}
TARGETED = tuple(sorted(set(NOTIFIED) - {"ban", "mute"}))

T = TypeVar("T")
Snapshot = dict[str, Any]

conns = st.integers(0, len(CONN_USERS) - 1)
# Who sends a governance command: mostly someone with the power to decide it, so
# that decisions happen (a random member is refused most of the time).
actors = st.sampled_from(("owner", "owner", "admin", "root", "anyone"))
users = st.sampled_from((*USERS, ROOT))
rooms = st.sampled_from(ROOMS)
durations = st.sampled_from(("", "30s", "2h"))
mode_changes = st.sampled_from(("open", "request", "private", "+m", "-m", f"+k {KEY}", "-k"))


def governance_line(verb: str, who: str, room: str, duration: str = "") -> str:
    return f"/{verb} {who} {room} {duration}".rstrip()


class GovernanceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.db_path = Path(self.tmp.name) / "chatd.db"
        self.clock = ManualClock()
        self.server = self.run(self.start())
        self.run(self.server.services.accounts.create(ROOT, PASSWORD, is_admin=True))
        self.clients = Clients(self.server)
        self.conns = [self.run(self.clients.user(name)) for name in CONN_USERS]
        # g0 (open) is u0's, with u1 an admin and u2 a member; g1 (request) is u1's.
        for conn, line in ((0, "/create g0"), (1, "/join g0"), (2, "/join g0"),
                           (0, "/promote u1 g0"), (1, "/create g1 request")):
            self.command(conn, line)
        self.drain()

    async def start(self) -> ChatServer:
        # No login timeout: reconnecting after a restart logs in a moment later.
        return await start_server(self.db_path, clock=self.clock,
                                  limits__login_timeout=10**9)

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

    # -- helpers ---------------------------------------------------------------

    def command(self, conn: int, line: str) -> dict[str, Any]:
        """Run a command; its one final line is an ok or a (never internal) error."""
        return self.check_final(line, self.run(self.conns[conn].command(line, check=False)).final)

    @staticmethod
    def check_final(line: str, final: dict[str, Any]) -> dict[str, Any]:
        assert final["type"] in ("ok", "error"), (line, final)
        assert final.get("code") != "internal-error", (line, final)
        return final

    async def together(self, *sends: tuple[int, str]) -> list[Reply]:
        return await asyncio.gather(*(self.conns[conn].command(line, check=False)
                                      for conn, line in sends))

    def drain(self) -> None:
        for client in self.conns:
            client.pending_events()

    def connections_of(self, name: str) -> list[ChatClient]:
        return [client for user, client in zip(CONN_USERS, self.conns, strict=True)
                if user == name]

    def audit_counts(self, room_id: int) -> Counter[tuple[str, str | None, str | None]]:
        entries = self.run(self.server.storage.list_audit(100_000, room_id=room_id))
        return Counter((e.action, e.actor, e.target) for e in entries)

    def notified(self, name: str) -> list[str]:
        """The notification kinds a user's connections received since the last drain."""
        kinds = []
        for client in self.connections_of(name):
            self.run(client.command("/ping"))
            kinds += [e["notification"]["kind"] for e in client.pending_events()
                      if e.get("type") == "notice" and "notification" in e]
        return kinds

    def actor(self, kind: str, room: str, fallback: int) -> int:
        """The connection of the room's owner, of one of its admins (the earliest
        in join order), of the server admin, or ``fallback``."""
        live = self.server.services.rooms.find(room)
        wanted = {"owner": [Role.OWNER], "admin": [Role.ADMIN, Role.OWNER]}.get(kind)
        if kind == "root":
            return CONN_USERS.index(ROOT)
        if live is None or wanted is None:
            return fallback
        holders = sorted((m for m in live.members.values() if m.role in wanted),
                         key=lambda m: m.seq)
        return CONN_USERS.index(holders[0].name) if holders else fallback

    def decide(self, conn: int, verb: str, who: str, room: str, duration: str = "") -> None:
        """A governance command alone: when it changes something, the audit log
        gains exactly its entry and its target is told."""
        live = self.server.services.rooms.find(room)
        before = self.audit_counts(live.id) if live is not None else Counter()
        self.drain()
        final = self.command(conn, governance_line(verb, who, room, duration))
        if final["type"] != "ok" or final.get("already") or live is None:
            return
        actor = CONN_USERS[conn]
        gained = self.audit_counts(live.id) - before
        assert gained[(verb, actor, who)] == 1, (verb, who, room, gained)
        if who != actor:
            assert NOTIFIED[verb] in self.notified(who), (verb, who, room)

    # -- rules -------------------------------------------------------------------

    @rule(conn=conns, room=rooms, mode=st.sampled_from(("open", "request", "private")))
    def create(self, conn: int, room: str, mode: str) -> None:
        self.command(conn, f"/create {room} {mode}")

    @rule(conn=conns, room=rooms, with_key=st.booleans())
    def join(self, conn: int, room: str, with_key: bool) -> None:
        # By id where the room lives: an invitation names the id to join.
        live = self.server.services.rooms.find(room)
        ref = str(live.id) if live is not None else room
        self.command(conn, f"/join {ref} {KEY}" if with_key else f"/join {ref}")

    @rule(conn=conns, room=rooms)
    def leave(self, conn: int, room: str) -> None:
        self.command(conn, f"/leave {room}")

    @rule(actor=actors, conn=conns, verb=st.sampled_from(TARGETED), who=users, room=rooms)
    def govern(self, actor: str, conn: int, verb: str, who: str, room: str) -> None:
        self.decide(self.actor(actor, room, conn), verb, who, room)

    @rule(actor=actors, conn=conns, verb=st.sampled_from(("ban", "mute")), who=users,
          room=rooms, duration=durations)
    def sanction(self, actor: str, conn: int, verb: str, who: str, room: str,
                 duration: str) -> None:
        self.decide(self.actor(actor, room, conn), verb, who, room, duration)

    @rule(actor=actors, conn=conns, room=rooms, change=mode_changes)
    def mode(self, actor: str, conn: int, room: str, change: str) -> None:
        self.command(self.actor(actor, room, conn), f"/mode {change} {room}")

    @rule(first=actors, second=actors, conn=conns, room=rooms, who=users,
          verbs=st.tuples(st.sampled_from((*TARGETED, "ban", "mute", "leave")),
                          st.sampled_from((*TARGETED, "ban", "mute", "leave"))))
    def race(self, first: str, second: str, conn: int, room: str, who: str,
             verbs: tuple[str, str]) -> None:
        """Two commands sent together on two connections (u0's second one when
        both would go on one)."""
        one = self.actor(first, room, conn)
        other = self.actor(second, room, (conn + 1) % len(CONN_USERS))
        if other == one:
            other = len(CONN_USERS) - 1 if one == 0 else 0 if one == len(CONN_USERS) - 1 \
                else (one + 1) % len(CONN_USERS)
        lines = [f"/leave {room}" if verb == "leave" else governance_line(verb, who, room)
                 for verb in verbs]
        finals = self.run(self.together((one, lines[0]), (other, lines[1])))
        for line, reply in zip(lines, finals, strict=True):
            self.check_final(line, reply.final)

    @rule(conn=conns, who=st.sampled_from(USERS))
    def delete_account(self, conn: int, who: str) -> None:
        """A server admin deletes an account (succession in each of its rooms);
        the account is made again, new, on the same connections."""
        if self.command(conn, f"/userdel {who}")["type"] == "ok":
            self.make_again(who)

    @rule(actor=actors, conn=conns, room=rooms, who=st.sampled_from(USERS),
          other=st.one_of(st.none(), st.sampled_from(USERS)),
          verb=st.sampled_from((*TARGETED, "ban", "mute", "leave")))
    def race_a_deletion(self, actor: str, conn: int, room: str, who: str, other: str | None,
                        verb: str) -> None:
        """A governance command sent together with the deletion of an account: its
        target's, or ``other``'s."""
        deleted = other or who
        one = self.actor(actor, room, conn)
        line = f"/leave {room}" if verb == "leave" else governance_line(verb, who, room)
        deletion = f"/userdel {deleted}"
        replies = self.run(self.together((one, line), (len(CONN_USERS) - 1, deletion)))
        self.check_final(line, replies[0].final)
        if self.check_final(deletion, replies[1].final)["type"] == "ok":
            self.make_again(deleted)

    def make_again(self, name: str) -> None:
        """Register a deleted account's name again, on new connections."""
        for index, user in enumerate(CONN_USERS):
            if user == name:
                self.conns[index] = self.run(self.clients.user(name))

    @rule(seconds=st.sampled_from((45, 7300)))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule()
    def restart(self) -> None:
        """Stop the daemon and start it on the same database: nothing changes."""
        before = self.snapshot()
        self.run(self.clients.close())
        self.run(self.server.stop())
        self.server = self.run(self.start())
        self.clients = Clients(self.server)
        self.conns = [self.run(self.clients.user(name)) for name in CONN_USERS]
        assert self.snapshot() == before

    # -- invariants ---------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Rooms, roles, modes, sanctions in force, invitations and requests, by name."""
        services = self.server.services
        now = self.clock.time()
        name_of = {u.id: u.name for n in (*USERS, ROOT)
                   if (u := services.accounts.find(n)) is not None}
        live = {r.id: r for n in ROOMS if (r := services.rooms.find(n)) is not None}
        invitations = self.run(self.server.storage.load_invitations(now))
        requests = self.run(self.server.storage.load_join_requests())
        return {
            "rooms": {r.name: (r.mode.value, r.modes, r.topic) for r in live.values()},
            "roles": {(r.name, name_of[uid]): m.role.value
                      for r in live.values() for uid, m in r.members.items()},
            # Of accounts that exist: memory may keep a deleted account's sanction
            # (its id is never given again, so it binds nobody).
            "bans": {(r.name, name_of[uid]): s.until for r in live.values()
                     for uid, s in r.bans.items() if uid in name_of and in_force(s, now)},
            "mutes": {(r.name, name_of[uid]): s.until for r in live.values()
                      for uid, s in r.mutes.items() if uid in name_of and in_force(s, now)},
            "invitations": {(live[i.room_id].name, name_of[i.user_id])
                            for i in invitations if i.room_id in live},
            "requests": {(live[q.room_id].name, name_of[q.user_id])
                         for q in requests if q.room_id in live},
        }

    @invariant()
    def one_owner_and_no_banned_member(self) -> None:
        now = self.clock.time()
        for name in ROOMS:
            room = self.server.services.rooms.find(name)
            if room is None:
                continue
            owners = [m.name for m in room.members.values() if m.role is Role.OWNER]
            assert len(owners) == 1, (name, room.members)
            banned = [m.name for uid, m in room.members.items() if room.banned(uid, now)]
            assert banned == [], (name, banned)

    @invariant()
    def no_invitation_or_request_a_ban_or_membership_contradicts(self) -> None:
        now = self.clock.time()
        rooms_service = self.server.services.rooms
        for invitation in self.run(self.server.storage.load_invitations(now)):
            room = rooms_service.get(invitation.room_id)
            if room is not None:
                assert room.banned(invitation.user_id, now) is None, invitation
        for request in self.run(self.server.storage.load_join_requests()):
            room = rooms_service.get(request.room_id)
            if room is not None:
                assert room.banned(request.user_id, now) is None, request
                assert not room.is_member(request.user_id), request

    @invariant()
    def memory_and_database_agree(self) -> None:
        storage = self.server.storage
        stored_rooms = {r.id for r in self.run(storage.load_active_rooms())}
        stored_members = {(m.room_id, m.user_id): m.role
                          for m in self.run(storage.load_members())}
        live = [r for n in ROOMS if (r := self.server.services.rooms.find(n)) is not None]
        assert {r.id for r in live} == stored_rooms
        assert {(r.id, uid): m.role.value for r in live for uid, m in r.members.items()} == \
            stored_members


def test_random_governance_keeps_its_rules() -> None:
    run_state_machine_as_test(GovernanceMachine, settings=settings(
        max_examples=25, stateful_step_count=30, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow]))
