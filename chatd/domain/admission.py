"""Getting into a room: open joins, join requests and invitations.

- open rooms: anyone joins;
- request rooms: ``/join`` files a request; an admin accepts or declines it;
- private rooms: only with an invitation (single use, expiring), joined by id.
A ban stops all three. An invitation also lets its holder into a request room.
A room's key (``+k``) must be given to join it or to ask to, and its member
limit (``+l``) refuses joins once reached; an invitation lets its holder past
both, and an accepted request past the limit (admins decided it).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from chatd.domain import events
from chatd.domain.names import format_duration
from chatd.domain.permissions import Action, authorize
from chatd.domain.room import Member, Mode, Room
from chatd.domain.rooms import unless_deleted
from chatd.errors import ChatError, Code, Remedy, Step
from storage.records import InvitationRecord, JoinRequestRecord, SanctionRecord

if TYPE_CHECKING:
    from chatd.config import Config
    from chatd.domain.accounts import Accounts, User
    from chatd.domain.audit import AuditLog
    from chatd.domain.clock import Clock
    from chatd.domain.notifications import Notifier
    from chatd.domain.ports import Bus, Endpoint, RoomTransactions
    from chatd.domain.rooms import Rooms
    from storage.api import Storage


class Admission:
    """Decides and records how users get into rooms."""

    def __init__(self, storage: Storage, rooms: Rooms, accounts: Accounts, bus: Bus,
                 notifier: Notifier, audit: AuditLog, clock: Clock, config: Config,
                 transactions: RoomTransactions) -> None:
        self._storage = storage
        self._rooms = rooms
        self._accounts = accounts
        self._bus = bus
        self._notifier = notifier
        self._audit = audit
        self._clock = clock
        self._transactions = transactions
        self.config = config

    async def admit(self, user: User, room: Room, session: Endpoint | None = None,
                    key: str | None = None) -> str:
        """Let ``user`` into ``room`` by its rules: "joined", "requested", or
        "already" when another connection of the account joined it while this one
        waited for the room's turn (it is in, as asked: not an error).

        The rules are applied in the room's transaction, where a ban, a new key
        or a member limit takes effect too, so a ban and a join sent together
        never leave a banned member, and a room is never joined past its limit.
        ``key`` is what the user gave for a room with a key (IRC's ``+k``).
        """
        # Whether the request is new: asking again while one is pending refreshes it
        # but does not tell the admins again (each /join would, one user's spam).
        filed = False

        async def decide() -> bool:
            nonlocal filed
            if room.is_member(user.id):
                raise ChatError(Code.ALREADY_IN_ROOM, f"you are already in #{room.name}.")
            self.refuse_banned(user, room)
            if user.is_admin or (room.mode is Mode.OPEN and keyed(room, key)
                                 and not room.full):
                # An invitation held is used up by this join as by any other: it
                # must not let its holder back in once the room is private.
                await self._storage.delete_invitation(room.id, user.id)
                return await self._entering(room, user)
            # An invitation lets its holder past the mode, the key and the limit.
            invitation = await self._storage.use_invitation(room.id, user.id)
            now = self._clock.time()
            if invitation is not None and invitation.expires_at > now:
                return await self._entering(room, user)
            if room.mode is Mode.PRIVATE:
                raise ChatError(Code.NOT_PERMITTED, _uninvited(room, invitation, now))
            refuse_gate(room, key, joining=room.mode is Mode.OPEN)
            filed = await unless_deleted(self._storage.put_join_request(
                JoinRequestRecord(room.id, user.id, now)), self._storage, user)
            return False

        try:
            if await self._rooms.join(user, room, session, admit=decide) is not None:
                return "joined"
        except ChatError as exc:
            if exc.code is not Code.ALREADY_IN_ROOM:
                raise
            return "already"
        if filed:
            await self._requested(user, room)
        return "requested"

    async def _entering(self, room: Room, user: User) -> bool:
        """``user`` is let in without an admin's answer (the room is open, or they
        hold an invitation): a join request they filed is answered by the join, and
        goes, or /requests would list a member (and a later request of theirs would
        not reach the admins). True, the join to make."""
        await self._storage.delete_join_request(room.id, user.id)
        return True

    async def _requested(self, user: User, room: Room) -> None:
        """Tell the room's admins of a request just filed, and write it down."""
        admins = (self._accounts.get(admin.user_id) for admin in room.admins())
        self._bus.to_users([a for a in admins if a is not None],
                           events.JoinRequested(room.name, user.name), room_id=room.id)
        await self._audit.record("request", user.name, None, room)

    async def invite(self, actor: User, room: Room, target: User) -> InvitationRecord:
        # In the room's transaction, as a ban is: a ban never leaves an invitation
        # behind, nor does the room's ending (an invitation to no room).
        async with self._transactions.room(room):
            self._rooms.ensure_live(room)
            authorize(Action.INVITE, room, actor)
            if not target.has_account:
                # IRC's INVITE refuses a guest as well (chatd.irc.channels).
                raise ChatError(Code.NOT_PERMITTED, f"{target.name} is an IRC guest, without "
                                "an account: guests join open rooms only, and an invitation "
                                "is kept with an account.")
            self.refuse_banned(target, room, who=target.name)
            if room.is_member(target.id):
                raise ChatError(Code.ALREADY_IN_ROOM,
                                f"{target.name} is already in #{room.name}.")
            now = self._clock.time()
            ttl = self.config.rooms.invitation_ttl
            record = InvitationRecord(room.id, target.id, actor.id, now, now + ttl)
            await unless_deleted(self._storage.put_invitation(record), self._storage, target,
                                 actor)
        self._bus.to_room(room, events.Invited(room.name, target.name, actor.name))
        await self._notifier.notify(
            target, "invitation",
            f"{actor.name} invited you to #{room.name}: /join {_joined_by(room)} "
            f"(valid {format_duration(ttl)}).",
            room=room.name, room_id=room.id, actor=actor.name, expires=record.expires_at)
        await self._audit.record("invite", actor.name, target.name, room)
        return record

    async def pending(self, actor: User, room: Room) -> list[JoinRequestRecord]:
        authorize(Action.REQUESTS, room, actor)
        return await self._storage.join_requests_of(room.id)

    async def accept(self, actor: User, room: Room, target: User) -> None:
        authorize(Action.ACCEPT, room, actor)

        async def decide() -> bool:
            # Checked again where the join happens: the actor's role or a ban may
            # have changed meanwhile.
            authorize(Action.ACCEPT, room, actor)
            if room.is_member(target.id):
                # Before the request is looked for: a member has none to answer, and
                # the join's own refusal would speak to the admin as "you".
                raise ChatError(Code.ALREADY_IN_ROOM,
                                f"{target.name} is already in #{room.name}.")
            self.refuse_banned(target, room, who=target.name)
            await self._take_request(room, target)
            return True

        await self._rooms.join(target, room, admit=decide)
        await self._audit.record("accept", actor.name, target.name, room)
        await self._notifier.notify(target, "request-accepted",
                                    f"your request to join #{room.name} was accepted.",
                                    room=room.name, room_id=room.id, actor=actor.name)

    async def decline(self, actor: User, room: Room, target: User) -> None:
        # In the room's transaction, as an accept is: a demotion decided meanwhile
        # is seen, and the request goes exactly once.
        async with self._transactions.room(room):
            self._rooms.ensure_live(room)
            authorize(Action.DECLINE, room, actor)
            await self._take_request(room, target)
        await self._audit.record("decline", actor.name, target.name, room)
        await self._notifier.notify(target, "request-declined",
                                    f"your request to join #{room.name} was declined.",
                                    room=room.name, room_id=room.id, actor=actor.name)

    async def _take_request(self, room: Room, target: User) -> None:
        if not await self._storage.delete_join_request(room.id, target.id):
            raise ChatError(Code.BAD_ARGUMENTS,
                            f"{target.name} has no pending request for #{room.name}.")

    def require_visible(self, user: User, room: Room) -> None:
        """Raise unless ``user`` may see ``room``: ``banned`` (a ban hides any room,
        open ones too, and says so), else ``not-permitted`` for a stranger to a
        private or secret room."""
        if self._rooms.can_see(user, room):
            return
        self.refuse_banned(user, room)
        raise ChatError(Code.NOT_PERMITTED, f"#{room.name} is hidden; only members see it.")

    def members_shown(self, user: User, room: Room) -> list[tuple[Member, User | None]]:
        """The members of ``room`` as ``user`` is shown them (/who, the API's member
        list): the owner, then admins, voiced members and members, each in join
        order, with the user behind each (an IRC guest's too; None for one gone
        meanwhile). ``not-permitted`` unless ``user`` may see who is in the room."""
        self._require_members_visible(user, room)
        ordered = sorted(room.members.values(), key=lambda m: (-m.role.rank, m.seq))
        return [(member, self._accounts.of_member(member)) for member in ordered]

    def _require_members_visible(self, user: User, room: Room) -> None:
        """A ban hides any room, an open one too, whose members are no secret to
        others, and says so; else the room is private or secret."""
        if self._rooms.can_see(user, room):
            return
        ban = room.banned(user.id, self._clock.time())
        if ban is not None:
            raise ChatError(Code.NOT_PERMITTED,
                            f"{self.banned_words(ban, room)}, which hides who is in it.")
        raise ChatError(Code.NOT_PERMITTED, f"only members can see who is in #{room.name}.")

    def refuse_banned(self, user: User, room: Room, who: str = "you") -> None:
        """Raise ``banned`` (with how long it lasts) if ``user`` is banned from ``room``."""
        ban = room.banned(user.id, self._clock.time())
        if ban is None:
            return
        raise ChatError(Code.BANNED, f"{self.banned_words(ban, room, who)}.", until=ban.until)

    def banned_words(self, ban: SanctionRecord, room: Room, who: str = "you") -> str:
        """``you are banned from #dev for 2h more``: ``ban`` (of ``who``) said."""
        verb = "are" if who == "you" else "is"
        left = ("" if ban.until is None else
                f" for {format_duration(ban.until - self._clock.time())} more")
        return f"{who} {verb} banned from #{room.name}{left}"


def keyed(room: Room, key: str | None) -> bool:
    """``key`` opens ``room``: it has no key, or this is it."""
    wanted = room.modes.key
    return wanted is None or (key is not None and hmac.compare_digest(key.encode(),
                                                                       wanted.encode()))


def refuse_gate(room: Room, key: str | None, joining: bool = True) -> None:
    """Raise ``bad-room-key`` unless ``key`` opens ``room``, and, for a join now
    (not a request to join later), ``room-full`` when its member limit is reached."""
    if not keyed(room, key):
        said = "a wrong key" if key else "no key"
        raise ChatError(Code.BAD_ROOM_KEY, f"#{room.name} needs a key to join, and you gave "
                        f"{said}.", remedy=Remedy(Step.JOIN_WITH_KEY, room.name))
    if joining and room.full:
        if room.modes.secret:  # its limit would tell a stranger how many are in it
            raise ChatError(Code.ROOM_FULL, f"#{room.name} is full.")
        raise ChatError(Code.ROOM_FULL, f"#{room.name} is full: it takes at most "
                        f"{room.modes.limit} members.", limit=room.modes.limit)


def _joined_by(room: Room) -> str:
    """How an invitation says to join ``room``: by its id, as a private room is joined;
    a secret room by its name, its id being no room to whoever is not in it."""
    return room.name if room.modes.secret else str(room.id)


def _uninvited(room: Room, invitation: InvitationRecord | None, now: float) -> str:
    """Why a private room refuses a join: no invitation, or one that expired."""
    if invitation is None:
        return f"#{room.name} is private: you need an invitation to join."
    ago = format_duration(now - invitation.expires_at)
    return (f"your invitation to #{room.name} expired {ago} ago: "
            "ask one of its admins for a new one.")
