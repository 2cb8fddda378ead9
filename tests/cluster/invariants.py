"""The cluster's promises, checked on what the clients of a run saw.

A run's :class:`Journal` holds every line each client connection received and
every command it sent with its final reply, stamped with one counter shared by
all the connections (they live on the test's one event loop, so the stamps
order what the test saw). :class:`Stored` is what PostgreSQL holds at the end.
:func:`violations` checks the promises of docs/CLUSTER.md and returns one
sentence per broken one:

1. ids strictly increase on every connection;
2. one order per room: two connections order the messages and sanctions of a
   room they both received the same way;
3. zero loss: every acknowledged message is in history, and reached every
   member connection that was in the room from before it was sent until the end;
   every acknowledged direct message is stored, and reached every connection
   of its recipient open from before it was sent until the end;
4. history is what was delivered: no duplicate, nothing stored that nobody
   received, nothing delivered that was not stored (direct messages too);
5. the gate: in each connection's view of a room, no message from a user after
   the kick, ban, leave or mute that stopped them (until a join or an unmute),
   and none from a member without voice or an admin's role while the room is
   moderated (after the ``+m``, the ``-v`` or the demotion that silenced them,
   until a ``-m``, a voice or a promotion);
6. governance once: one owner per live room, one termination per ended room,
   and the audit rows of kicks, bans, mutes, promotions ... are the decisions
   the clients were told were made.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Events that stop a user sending in a room, and those that let them again.
CLOSING = frozenset({"kick", "ban", "leave"})
# The sanctions every member connection receives, so two connections can be
# compared on where they sit among the messages.
ORDERED_EVENTS = frozenset({"kick", "ban", "mute", "unmute"})
# The commands whose success is one audit row (action, room, target user).
DECISIONS = frozenset({"kick", "ban", "mute", "unmute", "promote", "demote"})
# Commands whose success makes the connection a member of the reply's room.
ENTERING = frozenset({"create", "join"})
# Events that give a member a role (in their ``role`` field): a member without
# voice is "member"; "voice", "admin" and "owner" speak in a moderated room.
ROLE_EVENTS = frozenset({"promote", "demote", "owner", "voice", "devoice"})
SILENT_ROLE = "member"

Line = dict[str, Any]


@dataclass
class Connection:
    """One client connection: whose, and when (journal stamps) it opened and closed."""

    name: str
    user: str
    opened_at: int
    closed_at: int | None = None


@dataclass(frozen=True)
class Received:
    conn: str
    at: int
    line: Line


@dataclass
class Sent:
    """A command and its final reply (``None``: no reply came, the connection died)."""

    conn: str
    line: str
    sent_at: int
    reply: Line | None = None
    replied_at: int | None = None

    @property
    def ok(self) -> bool:
        return self.reply is not None and self.reply.get("type") == "ok"

    @property
    def command(self) -> str:
        return str(self.fields.get("command", ""))

    @property
    def fields(self) -> Line:
        """The reply's fields (none when no reply came)."""
        return self.reply or {}


@dataclass
class Journal:
    """What every connection of a run received and sent, in one stamp order."""

    connections: dict[str, Connection] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    _clock: Iterator[int] = field(default_factory=itertools.count)

    def tick(self) -> int:
        return next(self._clock)

    def opened(self, conn: str, user: str) -> None:
        self.connections[conn] = Connection(conn, user, self.tick())

    def closed(self, conn: str) -> None:
        connection = self.connections.get(conn)
        if connection is not None and connection.closed_at is None:
            connection.closed_at = self.tick()

    def receive(self, conn: str, line: Line) -> None:
        self.received.append(Received(conn, self.tick(), line))

    def send(self, conn: str, line: str) -> Sent:
        sent = Sent(conn, line, self.tick())
        self.sent.append(sent)
        return sent

    def reply(self, sent: Sent, reply: Line) -> None:
        sent.reply, sent.replied_at = reply, self.tick()

    def acked(self) -> list[Sent]:
        """The room messages the senders were told were sent (an ``ok`` with an id)."""
        return [s for s in self.sent if s.ok and s.command in ("say", "me")
                and "id" in s.fields and "room" in s.fields]

    def acked_direct(self) -> list[Sent]:
        """The direct messages the senders were told were sent."""
        return [s for s in self.sent if s.ok and s.command == "msg"
                and "id" in s.fields and "to" in s.fields]

    def lines_of(self, conn: str) -> list[Received]:
        return [r for r in self.received if r.conn == conn]


@dataclass
class Stored:
    """What PostgreSQL holds after the run."""

    # Room name: the ids of its stored messages (duplicates kept, to be caught).
    history: dict[str, list[int]] = field(default_factory=dict)
    # Live room name: how many members hold the owner role.
    owners: dict[str, int] = field(default_factory=dict)
    # Room name: how many "terminate" audit rows it has.
    terminations: dict[str, int] = field(default_factory=dict)
    # Rooms that ended (terminated_at set).
    ended: set[str] = field(default_factory=set)
    # (action, room, target) of every audit row.
    audit: list[tuple[str, str, str]] = field(default_factory=list)
    # The ids of the stored direct messages (duplicates kept, to be caught).
    direct: list[int] = field(default_factory=list)


def is_room_message(line: Line) -> bool:
    return line.get("type") == "message" and "room" in line and not line.get("history")


def is_direct_message(line: Line) -> bool:
    return line.get("type") == "message" and "to" in line and not line.get("history")


def is_event(line: Line, kinds: Collection[str]) -> bool:
    return line.get("type") == "event" and line.get("event") in kinds


# -- 1. ids increase --------------------------------------------------------

def increasing_ids(journal: Journal) -> list[str]:
    found = []
    for conn in journal.connections:
        ids = [r.line["id"] for r in journal.lines_of(conn)
               if r.line.get("type") == "message" and not r.line.get("history")
               and not r.line.get("offline")]
        for before, after in itertools.pairwise(ids):
            if after <= before:
                found.append(f"{conn}: id {after} after {before}")
    return found


# -- 2. one order per room --------------------------------------------------

def _room_items(journal: Journal, conn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Per room, the connection's messages (by id) and sanctions (by what they say
    and how many alike came before), in the order received."""
    items: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    seen: Counter[tuple[Any, ...]] = Counter()
    for r in journal.lines_of(conn):
        line = r.line
        if is_room_message(line):
            items[line["room"]].append(("message", line["id"]))
        elif is_event(line, ORDERED_EVENTS):
            key = (line["event"], line["room"], line.get("user"), line.get("actor"))
            seen[key] += 1
            items[line["room"]].append((*key, seen[key]))
    return items


def one_order(journal: Journal) -> list[str]:
    views = {conn: _room_items(journal, conn) for conn in journal.connections}
    found = []
    for a, b in itertools.combinations(sorted(views), 2):
        for room in views[a].keys() & views[b].keys():
            common = set(views[a][room]) & set(views[b][room])
            in_a = [i for i in views[a][room] if i in common]
            in_b = [i for i in views[b][room] if i in common]
            if in_a != in_b:
                found.append(f"#{room}: {a} and {b} disagree on the order: "
                             f"{_first_difference(in_a, in_b)}")
    return found


def _first_difference(a: list[Any], b: list[Any]) -> str:
    for x, y in zip(a, b, strict=False):
        if x != y:
            return f"{x} against {y}"
    return f"lengths {len(a)} and {len(b)}"


# -- 3. zero loss ------------------------------------------------------------

@dataclass(frozen=True)
class Membership:
    """A connection's stay in a room, in journal stamps (``until`` None: still there)."""

    conn: str
    room: str
    since: int
    until: int | None


def memberships(journal: Journal) -> list[Membership]:
    """When each connection was a member of each room: from its own ``/create`` or
    ``/join`` (or a login naming the room) to its ``/leave``, a kick or ban of its
    user, the room's end, or the connection's close."""
    stays = []
    for conn, connection in journal.connections.items():
        starts = _entries(journal, conn)
        ends = _exits(journal, conn, connection.user)
        for room, since_list in starts.items():
            for since in since_list:
                later = [at for at in ends.get(room, []) if at > since]
                until = min(later, default=connection.closed_at)
                if connection.closed_at is not None and until is not None:
                    until = min(until, connection.closed_at)
                stays.append(Membership(conn, room, since, until))
    return stays


def _entries(journal: Journal, conn: str) -> dict[str, list[int]]:
    starts: dict[str, list[int]] = defaultdict(list)
    for s in journal.sent:
        if s.conn != conn or not s.ok or s.replied_at is None:
            continue
        reply = s.fields
        if s.command in ENTERING and "room" in reply:
            starts[reply["room"]].append(s.replied_at)
        elif s.command == "login":
            for room in reply.get("rooms") or ():
                starts[room if isinstance(room, str) else room.get("name", "")].append(
                    s.replied_at)
    return starts


def _exits(journal: Journal, conn: str, user: str) -> dict[str, list[int]]:
    ends: dict[str, list[int]] = defaultdict(list)
    for s in journal.sent:
        if s.conn == conn and s.line.split()[:1] in (["/leave"], ["/part"]):
            ends[s.line.split()[1] if len(s.line.split()) > 1 else ""].append(s.sent_at)
    for r in journal.lines_of(conn):
        line = r.line
        if is_event(line, ("kick", "ban", "terminated")) and line.get("user") == user:
            ends[line["room"]].append(r.at)
    return ends


def no_loss(journal: Journal, stored: Stored) -> list[str]:
    delivered: dict[str, set[int]] = defaultdict(set)
    for r in journal.received:
        if is_room_message(r.line):
            delivered[r.conn].add(r.line["id"])
    stays = memberships(journal)
    found = []
    for ack in journal.acked():
        reply = ack.fields
        message_id, room = reply["id"], reply["room"]
        if message_id not in stored.history.get(room, ()):
            found.append(f"#{room}: acknowledged message {message_id} is not in history")
        for stay in stays:
            through = stay.room == room and stay.since <= ack.sent_at and stay.until is None
            if through and message_id not in delivered[stay.conn]:
                found.append(f"#{room}: acknowledged message {message_id} never reached "
                             f"{stay.conn}, a member all along")
    return found


def no_direct_loss(journal: Journal, stored: Stored) -> list[str]:
    delivered: dict[str, set[int]] = defaultdict(set)
    for r in journal.received:
        if is_direct_message(r.line):
            delivered[r.conn].add(r.line["id"])
    kept = set(stored.direct)
    found = []
    for ack in journal.acked_direct():
        message_id, recipient = ack.fields["id"], ack.fields["to"]
        if message_id not in kept:
            found.append(f"direct message {message_id} to {recipient} was acknowledged "
                         "but is not stored")
        for conn, connection in journal.connections.items():
            through = (connection.user == recipient and connection.opened_at < ack.sent_at
                       and connection.closed_at is None)
            if through and message_id not in delivered[conn]:
                found.append(f"direct message {message_id} never reached {conn}, a "
                             f"connection of {recipient} all along")
    return found


# -- 4. history is what was delivered ----------------------------------------

def history_matches(journal: Journal, stored: Stored) -> list[str]:
    delivered: dict[str, set[int]] = defaultdict(set)
    for r in journal.received:
        if is_room_message(r.line):
            delivered[r.line["room"]].add(r.line["id"])
    for ack in journal.acked():
        reply = ack.fields
        delivered[reply["room"]].add(reply["id"])
    found = []
    for room in sorted(stored.history.keys() | delivered.keys()):
        ids = stored.history.get(room, [])
        twice = sorted(i for i, n in Counter(ids).items() if n > 1)
        if twice:
            found.append(f"#{room}: stored more than once: {twice}")
        if missing := sorted(delivered[room] - set(ids)):
            found.append(f"#{room}: delivered but not in history: {missing}")
        if extra := sorted(set(ids) - delivered[room]):
            found.append(f"#{room}: in history but delivered to nobody: {extra}")
    return found


# -- 5. the gate ---------------------------------------------------------------

def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class _RoomGate:
    """Who may send in one room, replayed from one connection's view of it. Roles
    start as the run made them: its creator the owner, everyone else a member
    without voice (a run that gives voice before a connection joins is not
    judged right from that connection's view)."""

    def __init__(self, creator: str | None = None) -> None:
        self.closed: dict[str, str] = {}
        self.muted: dict[str, float | None] = {}
        self.moderated = False
        self.roles: dict[str, str] = {} if creator is None else {creator: "owner"}

    def apply(self, line: Line) -> None:
        kind, user = line.get("event"), str(line.get("user", ""))
        if kind == "modes" and "moderated" in line:
            self.moderated = bool(line["moderated"])
        elif kind in ROLE_EVENTS:
            self.roles[user] = str(line.get("role", SILENT_ROLE))
            if kind == "owner" and line.get("previous"):
                self.roles[str(line["previous"])] = str(line.get("previous_role", "admin"))
        elif kind in CLOSING:
            self.closed[user] = str(kind)
        elif kind == "join":
            self.closed.pop(user, None)
        elif kind == "mute":
            self.muted[user] = line.get("until")
        elif kind == "unmute":
            self.muted.pop(user, None)

    def forbidden(self, line: Line) -> str | None:
        sender = str(line.get("from", ""))
        if sender in self.closed:
            return self.closed[sender]
        if sender in self.muted:
            until = self.muted[sender]
            if until is None or _epoch(str(line.get("ts", "1970-01-01T00:00:00Z"))) < until:
                return "mute"
        if self.moderated and self.roles.get(sender, SILENT_ROLE) == SILENT_ROLE:
            return "+m"
        return None


def gate(journal: Journal) -> list[str]:
    creators = _creators(journal)
    found = []
    for conn, connection in journal.connections.items():
        gates: dict[str, _RoomGate] = {}
        for _, line in _view(journal, conn, connection.user):
            room = line.get("room")
            if room is None:
                continue
            room_gate = gates.setdefault(room, _RoomGate(creators.get(room)))
            if line.get("type") == "event":
                room_gate.apply(line)
            elif is_room_message(line) and (why := room_gate.forbidden(line)):
                found.append(f"#{room}: {conn} got message {line['id']} from "
                             f"{line.get('from')} after the {why} that stopped them")
    return found


def _creators(journal: Journal) -> dict[str, str]:
    """Each room's creator (its first owner), by whose ``/create`` succeeded."""
    return {s.fields["room"]: journal.connections[s.conn].user for s in journal.sent
            if s.ok and s.command == "create" and "room" in s.fields}


def _view(journal: Journal, conn: str, user: str) -> list[tuple[int, Line]]:
    """The connection's lines, with its own successful joins as join events (a
    connection is not sent the event of its own join)."""
    view = [(r.at, r.line) for r in journal.lines_of(conn)]
    for s in journal.sent:
        if s.conn == conn and s.ok and s.command in ENTERING and s.replied_at is not None:
            room = s.fields.get("room")
            view.append((s.replied_at, {"type": "event", "event": "join", "room": room,
                                        "user": user}))
    return sorted(view, key=lambda item: item[0])


# -- 6. governance once --------------------------------------------------------

def governance_once(journal: Journal, stored: Stored) -> list[str]:
    found = [f"#{room}: {count} owners" for room, count in sorted(stored.owners.items())
             if room not in stored.ended and count != 1]
    found += [f"#{room}: terminated {count} times"
              for room, count in sorted(stored.terminations.items()) if count > 1]
    found += [f"#{room}: ended without a termination record" for room in sorted(stored.ended)
              if stored.terminations.get(room, 0) == 0]
    decided = Counter((s.command, s.fields["room"], s.fields["user"])
                      for s in journal.sent if s.ok and s.command in DECISIONS)
    audited = Counter(row for row in stored.audit if row[0] in DECISIONS)
    for decision in sorted((decided - audited).keys()):
        found.append(f"decision {decision} has no audit row")
    for row in sorted((audited - decided).keys()):
        found.append(f"audit row {row} was decided by nobody who was told so")
    return found


def direct_history_matches(journal: Journal, stored: Stored) -> list[str]:
    delivered = {r.line["id"] for r in journal.received if is_direct_message(r.line)}
    delivered |= {ack.fields["id"] for ack in journal.acked_direct()}
    found = []
    if twice := sorted(i for i, n in Counter(stored.direct).items() if n > 1):
        found.append(f"direct messages stored more than once: {twice}")
    if missing := sorted(delivered - set(stored.direct)):
        found.append(f"direct messages delivered but not stored: {missing}")
    if extra := sorted(set(stored.direct) - delivered):
        found.append(f"direct messages stored but delivered to nobody: {extra}")
    return found


def violations(journal: Journal, stored: Stored) -> list[str]:
    """Every broken promise of the run (empty when all hold)."""
    return [*increasing_ids(journal), *one_order(journal), *no_loss(journal, stored),
            *no_direct_loss(journal, stored), *history_matches(journal, stored),
            *direct_history_matches(journal, stored), *gate(journal),
            *governance_once(journal, stored)]


def assert_holds(journal: Journal, stored: Stored) -> None:
    found = violations(journal, stored)
    assert not found, "invariants broken:\n" + "\n".join(found[:40])
