"""Moderation: kick, ban, unban, mute, unmute, promote, demote, voice, devoice,
transfer and room modes.

Every action checks, in the room's transaction, that the room is still live (a
change queued behind its end is ``no-such-room``) and the actor's permission at
the moment it runs (a demotion queued before the action is decided first), then
decides from the room's state read there (never from what was seen before the
lock), persists,
applies, tells the room (an ``event``), tells the target (a notification) and writes
the audit log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from chatd.domain import events
from chatd.domain.modes import ModeChange, apply_changes, format_changes
from chatd.domain.names import CONSOLE, format_duration
from chatd.domain.permissions import Action, authorize
from chatd.domain.room import Mode, Role, Room
from chatd.errors import ChatError, Code, Remedy, Step
from storage.records import SanctionRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from chatd.domain.accounts import Accounts, User
    from chatd.domain.audit import AuditLog
    from chatd.domain.clock import Clock
    from chatd.domain.notifications import Notifier
    from chatd.domain.ports import Bus, RoomTransactions
    from chatd.domain.rooms import Rooms
    from storage.api import Storage

log = logging.getLogger(__name__)
SANCTION_KINDS = ("ban", "mute")
# The participle of each sanction kind: "banned", "unmuted" ...
_DONE = {"ban": "banned", "mute": "muted"}
# The preposition of each, the same in every sentence: "banned from #dev", "muted in #dev".
_PREP = {"ban": "from", "mute": "in"}
_A = {Role.OWNER: "the owner", Role.ADMIN: "an admin", Role.VOICE: "a voiced member",
      Role.MEMBER: "a member"}
# The event of each role change an actor makes.
_ROLE_EVENTS: dict[Action, type[events.Promoted | events.Demoted | events.Voiced
                               | events.Devoiced]] = {
    Action.PROMOTE: events.Promoted, Action.DEMOTE: events.Demoted,
    Action.VOICE: events.Voiced, Action.DEVOICE: events.Devoiced}
# What the target is told of each.
_TOLD = {Action.PROMOTE: "{actor} made you an admin of #{room}.",
         Action.DEMOTE: "{actor} made you a member of #{room}.",
         # True whether or not the room is moderated now (+m may come later).
         Action.VOICE: "{actor} gave you voice in #{room}: you may speak there when it is "
                       "moderated too.",
         Action.DEVOICE: "{actor} took your voice in #{room}."}
# The actor named when no user acts: the control socket (an actor of None,
# names.CONSOLE, which no account may take) and the daemon itself (expiry, flood
# control).
SERVER = "the server"


class GuestBans(Protocol):
    """The bans of users without an account, IRC guests (chatd.irc.guests.Guests,
    which IRC's ``MODE +b`` and ``-b`` use): by nick and address, kept in memory
    (and on a cluster where every node reads them) until the server restarts
    (on a cluster, for good), their room ends or they are lifted. A ban row
    names an account."""

    async def ban(self, actor: User | None, room: Room, target: User,
                  reason: str = "", until: float | None = None) -> str:
        """Ban the guest ``target`` (until lifted, or ``until``, a time); the nick
        banned (its nick when the ban was decided, which the room was told)."""

    async def unban(self, actor: User | None, room: Room, nick: str) -> bool:
        """Lift the ban of ``nick`` (online or gone); False when there was none."""

    async def lift(self, room: Room, nick: str) -> bool:
        """Drop the ban of ``nick`` in ``room`` (False: there was none), telling
        nobody: the caller holds the room's transaction, and tells the room."""

    def banned_nick(self, nick: str) -> bool:
        """Whether a ban of some room holds ``nick``."""


@dataclass(frozen=True, slots=True)
class Ban:
    """A ban made: its record (a guest's is not stored) and the name it holds, as
    the room was told it (a guest's nick may have changed while the ban waited)."""

    record: SanctionRecord
    name: str


@dataclass(frozen=True, slots=True)
class Lifted:
    """What an unban lifted, of ``name``: the account's ban, the ban an IRC guest by
    that nick was given (:class:`GuestBans`), or both. A guest's ban outlives the
    guest, and its nick may be an account's name since."""

    name: str
    account: bool
    guest: bool


@dataclass(frozen=True, slots=True)
class RoleChange:
    """What a change of role did: ``changed`` is False when it changed nothing (the
    target had the role it gives, or speaks by a role above voice, which a ``v``
    leaves as it is); ``role`` is the target's role after it."""

    changed: bool
    role: Role


class Moderation:
    """The room-governance actions of admins, owners and server admins.

    An ``actor`` of None is the control socket: like a server admin, it may do anything.
    A target may be an IRC guest, a user without an account: what can be kept for
    one (a kick, a ban by nick and address, voice) is done, the rest refused.
    """

    def __init__(self, storage: Storage, rooms: Rooms, accounts: Accounts, bus: Bus,
                 notifier: Notifier, audit: AuditLog, clock: Clock,
                 transactions: RoomTransactions) -> None:
        self._storage = storage
        self._rooms = rooms
        self._accounts = accounts
        self._bus = bus
        self._notifier = notifier
        self._audit = audit
        self._clock = clock
        self._transactions = transactions
        # Where guests' bans are kept: the IRC front's guests, when IRC is on.
        self.guest_bans: GuestBans | None = None

    async def load(self) -> None:
        for kind in SANCTION_KINDS:
            for record in await self._storage.load_sanctions(kind):
                room = self._rooms.get(record.room_id)
                if room is not None:
                    _table(room, kind)[record.user_id] = record

    # -- removal -----------------------------------------------------------

    async def kick(self, actor: User | None, room: Room, target: User, reason: str) -> None:
        if not room.is_member(target.id):
            raise ChatError(Code.NOT_IN_ROOM, f"{target.name} is not in #{room.name}.")
        name = _name(actor)
        await self._rooms.remove(room, target, "kick", name, reason,
                                 authorize=lambda: _authorize(Action.KICK, room, actor, target))
        if not target.has_account:
            return  # a guest has nowhere to keep a notification: its KICK says it
        await self._notifier.notify(target, "kicked",
                                    _sentence(f"{name} kicked you from #{room.name}", reason),
                                    room=room.name, room_id=room.id, actor=name, reason=reason)

    async def ban(self, actor: User | None, room: Room, target: User, duration: float | None,
                  reason: str) -> Ban:
        """Ban ``target`` (a member or not) for ``duration`` seconds, or for good.

        The check, the ban and the removal happen in the room's transaction in one
        go, so a refusal leaves nothing half done. A guest is banned as IRC's
        ``MODE +b`` bans it (:class:`GuestBans`), for as long as that lasts.
        """
        if not target.has_account:
            return await self._ban_guest(actor, room, target, duration, reason)
        now = self._clock.time()
        record = SanctionRecord(room.id, target.id, _stored_id(actor), reason, now,
                                now + duration if duration else None)

        name = _name(actor)

        async def impose() -> None:
            await self._storage.put_sanction("ban", record)
            room.bans[target.id] = record
            # A ban revokes what would let the user back in once it is lifted.
            await self._storage.delete_join_request(room.id, target.id)
            await self._storage.delete_invitation(room.id, target.id)
            if not room.is_member(target.id):
                # A pre-emptive ban of a non-member is told under the room's lock,
                # as a member's is (by its departure): it takes its place in order.
                self._emit(room, target, events.Banned(room.name, target.name, name, reason))

        # As a mute's: the reason, or for how long when none was given.
        audited = reason or _for(duration).strip()
        removed = await self._rooms.remove(
            room, target, "ban", name, reason, prepare=impose, missing_ok=True,
            authorize=lambda: _authorize(Action.BAN, room, actor, target), audited=audited)
        if removed is None:  # a pre-emptive ban of a non-member
            await self._audit.record("ban", name, target.name, room, audited)
        await self._notifier.notify(
            target, "banned", _sentence(f"you are banned from #{room.name}{_for(duration)}",
                                        reason),
            room=room.name, room_id=room.id, actor=name, until=record.until, reason=reason)
        return Ban(record, target.name)

    async def _ban_guest(self, actor: User | None, room: Room, target: User,
                         duration: float | None, reason: str) -> Ban:
        """Ban an IRC guest by nick and address; the record is not stored."""
        if self.guest_bans is None:  # (guests come with IRC, and so do their bans)
            raise _needs_account(target, "a ban without an account needs IRC's guests")
        now = self._clock.time()
        until = now + duration if duration else None
        nick = await self.guest_bans.ban(actor, room, target, reason, until)
        return Ban(SanctionRecord(room.id, target.id, actor.id if actor else None, reason,
                                  now, until), nick)

    async def unban(self, actor: User | None, room: Room, target: User) -> Lifted:
        """Lift ``target``'s ban. An account's name may be the nick of an IRC guest
        banned before the account was made (the guest gone since): that ban is
        lifted too, in the same decision, as nothing else could name it now."""
        if not target.has_account:
            return await self.unban_guest(actor, room, target.name)
        return await self._lift("ban", Action.UNBAN, room, target, actor,
                                guests=self.guest_bans)

    async def unban_guest(self, actor: User | None, room: Room, nick: str) -> Lifted:
        """Lift the ban of the guest ``nick``, online or gone since (IRC's ``MODE -b``)."""
        if self.guest_bans is None or not await self.guest_bans.unban(actor, room, nick):
            raise ChatError(Code.BAD_ARGUMENTS, f"{nick} is not banned from #{room.name}.")
        return Lifted(nick, account=False, guest=True)

    def guest_banned(self, nick: str) -> bool:
        """Whether a room's ban holds the guest ``nick`` (gone or not)."""
        return self.guest_bans is not None and self.guest_bans.banned_nick(nick)

    # -- mutes -------------------------------------------------------------

    async def mute(self, actor: User | None, room: Room, target: User,
                   duration: float | None) -> SanctionRecord:
        async with self._transactions.room(room):
            self._rooms.ensure_live(room)
            if not room.is_member(target.id):
                raise ChatError(Code.NOT_IN_ROOM, f"{target.name} is not in #{room.name}.")
            _authorize(Action.MUTE, room, actor, target)
            if not target.has_account:
                raise _needs_account(target, "a mute is kept with an account, so a guest "
                                     f"cannot be muted; /kick or /ban {target.name} instead")
            record = await self._impose_mute(room, target, duration,
                                             _stored_id(actor), "", _name(actor))
        await self._announce_mute(room, target, record, duration, _name(actor))
        return record

    async def mute_for_flood(self, room: Room, target: User, duration: float) -> None:
        """Flood control mutes a member; a mute already running is left as it is.

        Decided in the room's transaction: one burst can pass the flood
        threshold twice before the first mute is stored, and the second must
        find the first (one mute, one notice, one audit entry)."""
        if self._accounts.get(target.id) is None:
            return  # a guest without an account: a mute cannot be stored for them
        async with self._transactions.room(room):
            if not room.is_member(target.id) or room.muted(target.id, self._clock.time()):
                return
            record = await self._impose_mute(room, target, duration, None, "flooding", SERVER)
        await self._announce_mute(room, target, record, duration, SERVER)

    async def _impose_mute(self, room: Room, target: User, duration: float | None,
                           actor_id: int | None, reason: str, actor: str) -> SanctionRecord:
        """Store and apply a mute, and tell the room, under the room's lock: on a
        shared log the mute then takes its place before any later decision (an
        unmute decided elsewhere must not be ordered before it)."""
        now = self._clock.time()
        record = SanctionRecord(room.id, target.id, actor_id, reason, now,
                                now + duration if duration else None)
        await self._storage.put_sanction("mute", record)
        room.mutes[target.id] = record
        self._emit(room, target,
                   events.Muted(room.name, target.name, actor, record.until, record.reason))
        return record

    async def _announce_mute(self, room: Room, target: User, record: SanctionRecord,
                             duration: float | None, actor: str) -> None:
        """A mute's audit entry and the muted member's notification."""
        await self._audit.record("mute", actor, target.name, room,
                                 record.reason or _for(duration).strip())
        await self._notifier.notify(target, "muted",
                                    f"you are muted in #{room.name}{_for(duration)}.",
                                    room=room.name, room_id=room.id, actor=actor,
                                    until=record.until)

    async def unmute(self, actor: User | None, room: Room, target: User) -> None:
        await self._lift("mute", Action.UNMUTE, room, target, actor)

    async def expire(self) -> int:
        """Lift every ban and mute whose time is up; returns how many."""
        count = 0
        for kind in SANCTION_KINDS:
            now = self._clock.time()
            for record in await self._storage.expired_sanctions(kind, now):
                try:
                    count += await self._expire(kind, record, now)
                except ChatError as exc:
                    # The room's lock was refused (a cluster's busy room, or PostgreSQL
                    # or Redis away): its row stays for the next pass, the others go on.
                    log.warning("sanction expiry put off: %s", exc.message, extra={
                        "fields": {"kind": kind, "room_id": record.room_id,
                                   "user_id": record.user_id}})
        return count

    async def _expire(self, kind: str, record: SanctionRecord, now: float) -> bool:
        """Lift one sanction that ran out, in its room's transaction as an /unmute
        is: its row goes only if it is still the one that ran out (one imposed or
        lifted since, through any node, stays as it is, and nobody is told), and
        the lift takes its place among the room's decisions before any later one.
        A pass stopped by an error leaves the rest, rows and all, to the next."""
        room, user = self._rooms.get(record.room_id), self._accounts.get(record.user_id)
        if room is None or user is None:  # the room ended or the account went
            return await self._storage.delete_sanction(kind, record.room_id, record.user_id,
                                                       ran_out_by=now)
        async with self._transactions.room(room):
            if not await self._storage.delete_sanction(kind, room.id, user.id, ran_out_by=now):
                return False
            _table(room, kind).pop(user.id, None)
            self._emit_lift(kind, room, user, None)
        await self._told_lifted(kind, room, user, None)
        return True

    async def _lift(self, kind: str, action: Action, room: Room, target: User,
                    actor: User | None, guests: GuestBans | None = None) -> Lifted:
        """Lift the account ``target``'s sanction; with ``guests``, also their ban
        of an IRC guest by its name (one decision, told as one lift)."""
        # In the room's transaction, as sanctions are imposed: a flood mute landing
        # between the delete and the removal from memory would be stored but not
        # applied. The actor's right is judged there too: a demotion queued before
        # this lift is decided first, and forbids it.
        async with self._transactions.room(room):
            self._rooms.ensure_live(room)
            _authorize(action, room, actor, target)
            existed = await self._storage.delete_sanction(kind, room.id, target.id)
            held = bool(_table(room, kind).pop(target.id, None)) or existed
            guest = guests is not None and await guests.lift(room, target.name)
            if not (held or guest):
                raise ChatError(Code.BAD_ARGUMENTS,
                                f"{target.name} is not {_DONE[kind]} {_PREP[kind]} "
                                f"#{room.name}.")
            # Told under the room's lock, as the sanction was (see _impose_mute);
            # the account only of its own ban's lift.
            self._emit_lift(kind, room, target, _name(actor), tell_target=held)
        if held:
            await self._told_lifted(kind, room, target, _name(actor),
                                    "and an IRC guest's" if guest else "")
        else:  # the guest's ban alone: the account was not banned, nor is it told
            await self._audit.record(f"un{kind}", _name(actor), target.name, room,
                                     "an IRC guest's")
        return Lifted(target.name, account=held, guest=guest)

    def _emit_lift(self, kind: str, room: Room, target: User, actor: str | None,
                   tell_target: bool = True) -> None:
        lifted = events.Unbanned if kind == "ban" else events.Unmuted
        self._emit(room, target if tell_target else None,
                   lifted(room.name, target.name, actor or SERVER))

    async def _told_lifted(self, kind: str, room: Room, target: User,
                           actor: str | None, reason: str = "") -> None:
        """A lift's audit entry and the member's notification."""
        event = f"un{kind}"
        await self._audit.record(event, actor, target.name, room,
                                 reason if actor else "expired")
        await self._notifier.notify(target, f"un{_DONE[kind]}",
                                    f"you are no longer {_DONE[kind]} {_PREP[kind]} "
                                    f"#{room.name}.",
                                    room=room.name, room_id=room.id)

    # -- roles and modes -----------------------------------------------------

    # Each change of role answers what it did (RoleChange): nothing when the target
    # has the role it gives already (voicing a voiced member), which is done, as a
    # second /block is, without an event, an audit entry or a notification.

    async def promote(self, actor: User, room: Room, target: User) -> RoleChange:
        if not target.has_account:
            authorize(Action.PROMOTE, room, actor, target)
            raise _needs_account(target, "guests cannot be room admins")
        return await self._set_role(Action.PROMOTE, actor, room, target)

    async def demote(self, actor: User, room: Room, target: User) -> RoleChange:
        return await self._set_role(Action.DEMOTE, actor, room, target)

    async def voice(self, actor: User, room: Room, target: User) -> RoleChange:
        """Let a member speak while the room is moderated (IRC's ``+v``)."""
        return await self._set_role(Action.VOICE, actor, room, target)

    async def devoice(self, actor: User, room: Room, target: User) -> RoleChange:
        return await self._set_role(Action.DEVOICE, actor, room, target)

    async def _set_role(self, action: Action, actor: User, room: Room,
                        target: User) -> RoleChange:
        async with self._transactions.room(room):
            self._rooms.ensure_live(room)
            role = room.role_of(target.id)
            after = checked_role_change(action, room, actor, target, role)
            if role is after:  # decided under the room's lock: nothing to change
                return RoleChange(changed=False, role=after)
            now = self._clock.time()
            await self._storage.set_roles(room.id, [(target.id, after.value)], now)
            room.set_roles([(target.id, after)], now)
            if action is Action.PROMOTE:
                change: events.Event = events.Promoted(room.name, target.name, actor.name,
                                                       after.value, voiced=role is Role.VOICE)
            else:
                change = _ROLE_EVENTS[action](room.name, target.name, actor.name, after.value)
            # Told under the room's lock, as a mute is (see _impose_mute): on a shared
            # log a devoice or demotion takes its place before any later decision, and
            # silences what the member (or their webhook) says after it.
            self._emit(room, target, change)
        await self._audit.record(action.value, actor.name, target.name, room)
        if target.has_account:  # a guest has nowhere to keep a notification
            await self._notifier.notify(
                target, f"{action.value}d", _TOLD[action].format(actor=actor.name,
                                                                room=room.name),
                room=room.name, room_id=room.id, role=after.value)
        return RoleChange(changed=True, role=after)

    async def transfer(self, actor: User, room: Room, target: User) -> str:
        """Make ``target`` (a member) the owner; the owner until now becomes an admin.

        Returns the name of the previous owner.
        """
        async with self._transactions.room(room):
            self._rooms.ensure_live(room)
            authorize(Action.TRANSFER, room, actor)
            if not target.has_account:
                raise _needs_account(target, "ownership is handed to accounts only")
            owner = room.owner
            role = room.role_of(target.id)
            if role is None:
                raise ChatError(Code.NOT_IN_ROOM,
                                f"{target.name} is not a member of #{room.name}.")
            if owner is None or owner.user_id == target.id:
                raise ChatError(Code.BAD_ARGUMENTS,
                                f"{target.name} is already the owner of #{room.name}.")
            now = self._clock.time()
            if room.muted(target.id, now) is not None:
                # Once the owner, only a server admin could lift it.
                raise ChatError(Code.NOT_PERMITTED,
                                f"{target.name} is muted in #{room.name}: lift the mute "
                                f"(/unmute {target.name}) before handing the room over.")
            # A guest owner (of a room it made) becomes a member: guests cannot be
            # room admins, and have no row to keep a role in.
            guest = self._accounts.get(owner.user_id) is None
            demoted = Role.MEMBER if guest else Role.ADMIN
            changes = [(owner.user_id, demoted), (target.id, Role.OWNER)]
            stored = changes[1:] if guest else changes
            await self._storage.set_roles(room.id, [(uid, r.value) for uid, r in stored], now)
            room.set_roles(changes, now)
            # Told under the room's lock, as every change of a role is (see _set_role).
            self._emit(room, target, events.OwnerChanged(room.name, target.name, actor.name,
                                                         Role.OWNER.value, owner.name,
                                                         voiced=role is Role.VOICE,
                                                         previous_role=demoted.value))
        await self._audit.record("transfer", actor.name, target.name, room,
                                 f"from {owner.name}")
        await self._notifier.notify(target, "promoted",
                                    f"{actor.name} made you the owner of #{room.name}.",
                                    room=room.name, room_id=room.id, role=Role.OWNER.value)
        previous = self._accounts.get(owner.user_id)
        if previous is not None and previous.id != actor.id:
            await self._notifier.notify(
                previous, "demoted",
                f"{actor.name} made {target.name} the owner of #{room.name}; "
                "you are an admin of it now.",
                room=room.name, room_id=room.id, role=Role.ADMIN.value)
        return owner.name

    async def set_mode(self, actor: User, room: Room, mode: Mode) -> None:
        """Make ``mode`` the room's join policy (set again when it is already)."""
        await self._change_mode(actor, room, lambda _now: mode)

    async def switch_modes(self, actor: User, room: Room,
                           switches: Sequence[tuple[Mode, bool]]) -> tuple[Mode, Mode] | None:
        """IRC's ``+i``/``+R`` (``True``: make the mode the room's) and ``-i``/``-R``
        (open the room, only if the mode is its policy by then), in order, as one
        change; the policy before and after, or None when it ends as it was.

        One decision for all the letters of a mode string: ``-i+R`` takes a
        private room to request without opening it on the way (a join between
        the two would have walked in). Decided from the policy in force in the
        room's transaction: a change another admin made meanwhile is built on,
        never undone (``-i`` leaves a room made ``request`` meanwhile as it is)."""
        before = after = room.mode

        def decide(now: Mode) -> Mode | None:
            nonlocal before, after
            before, after = now, switched(now, switches)
            return None if after is now else after

        if not await self._change_mode(actor, room, decide):
            return None
        return before, after

    async def _change_mode(self, actor: User, room: Room,
                           decide: Callable[[Mode], Mode | None]) -> bool:
        """Set the policy ``decide`` derives from the current one, in the room's
        transaction; whether it was set (None: no change, which needs no right)."""
        async with self._transactions.room(room):
            self._rooms.ensure_live(room)
            mode = decide(room.mode)
            if mode is None:
                return False
            authorize(Action.MODE, room, actor)
            await self._storage.set_room_mode(room.id, mode.value)
            room.mode = mode
        self._emit(room, None, events.ModeChanged(room.name, actor.name, mode.value))
        await self._audit.record("mode", actor.name, None, room, mode.value)
        return True

    async def change_modes(self, actor: User, room: Room,
                           changes: Sequence[ModeChange]) -> list[ModeChange]:
        """Change ``room``'s key, limit and switches (admins and the owner); return the
        changes that made a difference. A bad key or limit changes nothing."""
        async with self._transactions.room(room):
            self._rooms.ensure_live(room)
            authorize(Action.MODES, room, actor)
            modes, applied = apply_changes(room.modes, changes)
            if applied:
                await self._storage.set_room_modes(room.id, modes.key, modes.limit,
                                                   modes.moderated, modes.secret,
                                                   modes.no_external, modes.topic_lock)
                room.modes = modes
                # Told under the room's lock (see _set_role): on a shared log a room
                # made moderated silences, from its place on, those without voice.
                self._emit(room, None, events.ModesChanged(room.name, actor.name,
                                                           tuple(applied), modes))
        if applied:
            # The audit log names a new key's existence, not the key.
            spec, arguments = format_changes(
                ModeChange(c.on, c.letter, "*") if c.letter == "k" and c.on else c
                for c in applied)
            await self._audit.record("modes", actor.name, None, room,
                                     " ".join([spec, *arguments]))
        return applied

    def _emit(self, room: Room, target: User | None, event: events.Event) -> None:
        """Tell the room (and a target who is not a member) what happened."""
        self._bus.to_room(room, event)
        if target is not None and not room.is_member(target.id):
            self._bus.to_user(target, event, room_id=room.id)


def switched(now: Mode, switches: Sequence[tuple[Mode, bool]]) -> Mode:
    """The join policy IRC's ``+i``/``+R`` (True) and ``-i``/``-R`` make of ``now``,
    in order: a minus opens the room only if its mode is the policy by then."""
    after = now
    for mode, on in switches:
        after = mode if on else Mode.OPEN if after is mode else after
    return after


# The roles each change of role takes a member from, and the role it gives.
_ROLE_CHANGES: Final = {Action.PROMOTE: ((Role.MEMBER, Role.VOICE), Role.ADMIN),
                        Action.DEMOTE: ((Role.ADMIN,), Role.MEMBER),
                        Action.VOICE: ((Role.MEMBER,), Role.VOICE),
                        Action.DEVOICE: ((Role.VOICE,), Role.MEMBER)}


# The changes of role that voice or silence a member.
_VOICING: Final = frozenset({Action.VOICE, Action.DEVOICE})


def checked_role_change(action: Action, room: Room, actor: User, target: User,
                        role: Role | None) -> Role:
    """The role ``action`` by ``actor`` gives ``target``, whose role in ``room`` is
    ``role``; the refusal when ``actor`` may not, or ``target`` may not be given it.

    An admin or the owner speaks in a moderated room by that role, with or without
    voice: a ``v`` of them (an IRC client voicing everyone, its own operators too)
    changes nothing, and so harms nobody. It asks only whether ``actor`` may voice
    at all, and keeps the role as it is."""
    if action in _VOICING and role is not None and role.rank >= Role.ADMIN.rank:
        authorize(action, room, actor)
        return role
    authorize(action, room, actor, target)
    return role_changed(action, room, target, role)


def role_changed(action: Action, room: Room, target: User, role: Role | None) -> Role:
    """The role ``action`` (promote, demote, voice, devoice) gives ``target``, whose
    role in ``room`` is ``role`` (None: not a member); the refusal when it may not.
    A target who has that role already is no refusal: the role is ``role`` itself."""
    if role is None:
        raise ChatError(Code.NOT_IN_ROOM, f"{target.name} is not a member of #{room.name}.")
    before, after = _ROLE_CHANGES[action]
    if role is not after and role not in before:
        raise _wrong_role(action, room, target, role, before[0])
    return after


def _wrong_role(action: Action, room: Room, target: User, role: Role,
                before: Role) -> ChatError:
    if role is Role.OWNER:
        # The room keeps exactly one owner: a new one is chosen, and the old one
        # steps down to admin, by a transfer.
        return ChatError(Code.BAD_ARGUMENTS, f"{target.name} is the owner of #{room.name}; "
                         "ownership changes hands by a transfer.",
                         remedy=Remedy(Step.TRANSFER, room.name))
    return ChatError(Code.BAD_ARGUMENTS, f"{target.name} is {_A[role]} of #{room.name}; "
                     f"only {_A[before]} can be {action.value}d.")


def _needs_account(target: User, why: str) -> ChatError:
    """The refusal of what cannot be done to ``target``, an IRC guest: it has no
    account to keep it with."""
    return ChatError(Code.NOT_PERMITTED,
                     f"{target.name} is an IRC guest, without an account: {why}.")


def _authorize(action: Action, room: Room, actor: User | None, target: User) -> None:
    if actor is not None:
        authorize(action, room, actor, target)


def _name(actor: User | None) -> str:
    return actor.name if actor is not None else CONSOLE


def _stored_id(actor: User | None) -> int | None:
    """The setter a sanction's row names: an account, or nobody (the console, or an
    IRC guest owning its room, whose id is no account's: the row's reference to
    the users table would refuse it)."""
    return actor.id if actor is not None and actor.has_account else None


def _table(room: Room, kind: str) -> dict[int, SanctionRecord]:
    return room.bans if kind == "ban" else room.mutes


def _for(duration: float | None) -> str:
    return f" for {format_duration(duration)}" if duration else ""


def _sentence(text: str, reason: str) -> str:
    """A sentence with its reason in parentheses, as events show one."""
    return f"{text} ({reason})." if reason else f"{text}."
