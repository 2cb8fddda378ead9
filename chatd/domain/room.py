"""A room and its rules: roles, modes, succession and termination.

Everything here is pure and synchronous: the room service asks a room what a
departure means (:meth:`Room.plan_departure`), persists the plan, then applies
it. Keeping the rules here makes them testable without sockets or a database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from chatd.domain.modes import RoomModes
from chatd.errors import Remedy, Step
from storage.records import MemberRecord, RoomRecord, SanctionRecord

# Join order of members who are not stored (IRC guests) starts here, after any
# stored member's: succession that picks "the earliest joiner" prefers a member
# with an account.
UNSTORED_SEQ: Final = 1 << 62


class Role(StrEnum):
    """A member's role; the values are persisted and never change meaning."""

    OWNER = "owner"
    ADMIN = "admin"
    # A member who may speak when the room is moderated (IRC's +v).
    VOICE = "voice"
    MEMBER = "member"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Role.MEMBER: 0, Role.VOICE: 1, Role.ADMIN: 2, Role.OWNER: 3}


class Mode(StrEnum):
    """Who may join: anyone, by request, or by invitation only (unlisted)."""

    OPEN = "open"
    REQUEST = "request"
    PRIVATE = "private"


# The mode letters that choose who may join, as on IRC (i private, R request), and
# the letter of each such mode.
JOIN_LETTERS: Final = {"i": Mode.PRIVATE, "R": Mode.REQUEST}
LETTER_OF_MODE: Final = {mode: letter for letter, mode in JOIN_LETTERS.items()}


@dataclass(slots=True)
class Member:
    user_id: int
    name: str
    role: Role
    joined_at: float
    role_since: float
    seq: int
    # A bot account: succession passes it over while a person is left, since a
    # bot's usual token (read, post) cannot govern the room it would inherit.
    bot: bool = False

    @property
    def is_admin(self) -> bool:
        """Owners count as admins for every rule that speaks of admins."""
        return self.role.rank >= Role.ADMIN.rank

    @classmethod
    def from_record(cls, record: MemberRecord, name: str, bot: bool = False) -> Member:
        return cls(record.user_id, name, Role(record.role), record.joined_at,
                   record.role_since, record.seq, bot)


@dataclass(slots=True)
class Departure:
    """What happens to a room when members leave, decided before it is applied."""

    leaving: list[int]
    role_changes: list[tuple[int, Role]] = field(default_factory=list)
    # The heirs of role_changes who had voice, which their new role ends.
    voiced: frozenset[int] = frozenset()
    # The one plain member left behind when the room terminates with one member.
    evicted: int | None = None
    terminate: bool = False


class Room:
    """A room in memory: the source of truth for membership (the connections
    of its members are the delivery layer's, see chatd.domain.ports.Routes)."""

    __slots__ = ("bans", "created_at", "id", "members", "mode", "modes", "mutes", "name",
                 "settings", "topic")

    def __init__(self, record: RoomRecord) -> None:
        self.id = record.id
        self.name = record.name
        self.mode = Mode(record.mode)
        # Key, limit and switches (chatd.domain.modes); the join policy is ``mode``.
        self.modes = RoomModes(record.key, record.member_limit, record.moderated,
                               record.secret, record.no_external, record.topic_lock)
        self.topic = record.topic
        self.created_at = record.created_at
        self.settings: dict[str, Any] = dict(record.settings)
        self.members: dict[int, Member] = {}
        # Active sanctions by user id; expired ones are ignored until housekeeping drops them.
        self.bans: dict[int, SanctionRecord] = {}
        self.mutes: dict[int, SanctionRecord] = {}

    def refresh(self, record: RoomRecord) -> None:
        """Take the stored room's policy, modes, topic and settings (another node
        changed them); members and sanctions are kept apart."""
        self.mode = Mode(record.mode)
        self.modes = RoomModes(record.key, record.member_limit, record.moderated,
                               record.secret, record.no_external, record.topic_lock)
        self.topic = record.topic
        self.settings = dict(record.settings)

    def role_of(self, user_id: int) -> Role | None:
        member = self.members.get(user_id)
        return member.role if member else None

    def is_member(self, user_id: int) -> bool:
        return user_id in self.members

    def way_in(self) -> Remedy:
        """What to tell someone refused for not being a member: /join, with the key
        when the room has one, or for a private room an invitation first (a bare
        /join of it would only be refused in turn)."""
        if self.mode is Mode.PRIVATE:
            return Remedy(Step.GET_INVITED, self.name)
        if self.modes.key is not None:
            return Remedy(Step.JOIN_WITH_KEY, self.name)
        return Remedy(Step.JOIN, self.name)

    def banned(self, user_id: int, now: float) -> SanctionRecord | None:
        return _active(self.bans.get(user_id), now)

    def muted(self, user_id: int, now: float) -> SanctionRecord | None:
        return _active(self.mutes.get(user_id), now)

    @property
    def full(self) -> bool:
        """The member limit is reached: nobody else may join now."""
        limit = self.modes.limit
        return limit is not None and len(self.members) >= limit

    @property
    def owner(self) -> Member | None:
        return next((m for m in self.members.values() if m.role is Role.OWNER), None)

    def admins(self) -> list[Member]:
        return [m for m in self.members.values() if m.is_admin]

    def plan_departure(self, user_id: int, now: float) -> Departure:
        """Decide succession and termination for ``user_id`` leaving (at ``now``).

        The rules: with nobody left the room ends; with exactly one member left
        it stays only if that member is an admin (or owner), otherwise it ends
        and that member is removed too; with two or more left, if no admin
        remains the earliest joiner becomes admin; and if the owner left,
        ownership passes to the admin who has held the role longest (also when
        that admin is the only member left). A bot comes after every person
        (a person member before a bot admin): its usual token cannot govern. A
        member muted in the room comes after every other of its kind: none of
        its admins could lift the mute of an owner.
        """
        departure = Departure(leaving=[user_id])
        leaver = self.members[user_id]
        remaining = sorted((m for m in self.members.values() if m.user_id != user_id),
                           key=lambda m: m.seq)
        if not remaining:
            departure.terminate = True
        elif len(remaining) == 1 and not remaining[0].is_admin:
            departure.terminate = True
            departure.evicted = remaining[0].user_id
        else:
            departure.role_changes = _succession(
                leaver, remaining, lambda member: self.muted(member.user_id, now) is not None)
            departure.voiced = frozenset(uid for uid, _ in departure.role_changes
                                         if self.members[uid].role is Role.VOICE)
        return departure

    def apply_departure(self, departure: Departure, now: float) -> list[int]:
        """Apply a planned departure to memory; return the ids of the users who left."""
        gone = [*departure.leaving, *([departure.evicted] if departure.evicted else [])]
        for user_id in gone:
            self.members.pop(user_id, None)
        self.set_roles(departure.role_changes, now)
        return gone

    def set_roles(self, changes: list[tuple[int, Role]], now: float) -> None:
        for user_id, role in changes:
            member = self.members[user_id]
            member.role = role
            member.role_since = now


def _active(sanction: SanctionRecord | None, now: float) -> SanctionRecord | None:
    return sanction if sanction is not None and in_force(sanction, now) else None


def in_force(sanction: SanctionRecord, now: float) -> bool:
    """Whether ``sanction`` still holds at ``now`` (until None: for good)."""
    return sanction.until is None or sanction.until > now


def _succession(leaver: Member, remaining: list[Member],
                muted: Callable[[Member], bool]) -> list[tuple[int, Role]]:
    """Role changes when ``leaver`` goes and the room goes on with ``remaining``
    (in join order: two or more members, or one admin). Bots come after every
    person, and the ``muted`` after the others of their kind."""
    admins = [m for m in remaining if m.is_admin]
    if not admins:
        # No admin is left: the earliest joiner inherits the role, and with it
        # ownership when the owner is the one leaving.
        role = Role.OWNER if leaver.role is Role.OWNER else Role.ADMIN
        heir = min(remaining, key=lambda m: (m.bot, muted(m), m.seq))
        return [(heir.user_id, role)]
    if leaver.role is not Role.OWNER:
        return []
    # The admin who has held the role longest, or, when only bots are admins, the
    # earliest person: a room owned by a bot would have nobody left to govern it.
    heir = min(remaining, key=lambda m: (m.bot, not m.is_admin, muted(m),
                                         m.role_since if m.is_admin else 0.0, m.seq))
    return [(heir.user_id, Role.OWNER)]
