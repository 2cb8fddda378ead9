"""Guests: IRC connections without an account (``accounts.guests``, off by default).

A guest takes a free nick (no account's name, no other guest's) and may use
open rooms, and create rooms when ``rooms.creation`` is "everyone" (then it
owns them, in memory, while it is there). Nothing of a guest persists except
their messages and audit entries, so a guest is a
:class:`chatd.domain.accounts.User` that lives only in memory:

* its id is a negative :class:`GuestId`, which the database stores as NULL:
  a guest's messages are kept like those of a deleted account (the sender's
  name, no sender id), and nothing can refer to a row that does not exist;
* its room memberships are kept in memory only; a guest leaves every room
  when the connection ends; bans of guests are kept in memory too, and on a
  cluster's node also where every node reads them (:class:`SharedBans`);
* domain steps that would store something about a guest (notifications,
  invitations, sanction rows, membership rows) are never taken for one: the
  IRC handlers route guests through this module instead.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from chatd.domain import events
from chatd.domain.accounts import User
from chatd.domain.admission import refuse_gate
from chatd.domain.limits import address_key
from chatd.domain.names import CONSOLE, name_key
from chatd.domain.permissions import Action, authorize
from chatd.domain.ports import settled
from chatd.domain.room import UNSTORED_SEQ, Member, Mode, Role, Room
from chatd.errors import ChatError, Code
from chatd.irc import numerics as n
from chatd.irc.numerics import IrcError
from chatd.irc.render import channel
from chatd.irc.session import QUIT_PREFIX
from storage.records import UserRecord

if TYPE_CHECKING:
    from collections.abc import Mapping

    from chatd.irc.session import IrcSession
    from chatd.protocol.services import Services

log = logging.getLogger(__name__)

# Join order of guests starts here, after any account's: succession that picks
# "the earliest joiner" prefers a member with an account.
GUEST_SEQ: Final = UNSTORED_SEQ + 1
# Rooms one guest may be in at once: a guest's memberships live in memory only.
MAX_GUEST_ROOMS: Final = 20
# Bans of guests one room may hold: they live in memory until the room ends (or a
# restart), and a room's admin with guests to ban, one after another under new
# nicks, could otherwise grow the list without end.
MAX_GUEST_BANS: Final = 100


class GuestId(int):
    """The id of a guest: negative, never an account's. Storage keeps a message's
    non-positive sender id as NULL, as for a deleted account's messages."""

    __slots__ = ()


def is_guest(user: User | None) -> bool:
    return user is not None and isinstance(user.id, GuestId)


@dataclass(slots=True)
class GuestBan:
    """A room's ban of a guest: by nick and by address, until the server restarts
    (on a cluster, until the room ends or it is lifted), or ``until`` that time
    (a ``/ban`` with a duration) if sooner: then it holds nobody, and goes at the
    room's next change of its bans.
    ``address`` is the guest's host as it connected (empty: the nick alone); it
    holds out every address of the same key (:meth:`Guests.banned`).
    ``guest`` is the guest banned (0 when it is another node's): its ``nick``
    follows the guest's NICK while it is still in the room (the ban is being
    applied: see :meth:`Guests.rename`)."""

    nick: str
    address: str
    actor: str
    at: float
    guest: int
    until: float | None = None

    def holds(self, now: float) -> bool:
        """Whether the ban still holds at ``now`` (it has not run out)."""
        return self.until is None or now < self.until


class SharedBans(Protocol):
    """Where a cluster's nodes keep the bans of guests, so that a ban decided
    through one node holds on every node (chatd.cluster.guestbans). Read and
    written in the room's transaction, which every node's decision about the
    room takes in turn: a JOIN on another node is checked against the bans the
    last decision left."""

    async def load(self, room_id: int) -> dict[str, GuestBan]:
        """The room's bans of guests, by the key of the nick they hold."""

    async def load_every(self) -> dict[int, dict[str, GuestBan]]:
        """Every room's bans of guests, by room id."""

    async def store(self, room_id: int, bans: Mapping[str, GuestBan]) -> None:
        """Keep ``bans`` as the room's bans of guests (none: forget the room's)."""

    def announce(self, room_id: int) -> None:
        """Have the other nodes read the room's bans again now, not at the room's next
        decision: a change made without one (a ban moved to a renamed guest's nick)."""

    def forget(self, room_id: int) -> None:
        """The room ended: its bans go with it (in the background)."""


class Guests:
    """The guests online, their rooms, and the bans that hold them out."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._ids = itertools.count(1)
        self._seq = itertools.count(GUEST_SEQ)
        self._online: dict[str, IrcSession] = {}
        # Guests whose connection ended, while they leave their rooms (QUIT).
        self._quitting: set[str] = set()
        self._bans: dict[int, dict[str, GuestBan]] = {}
        # A cluster's: where the other nodes read the bans this node decides.
        self.shared: SharedBans | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # (room id, guest id) of this node's guests leaving a room another node's ban
        # holds them out of: each taken out once, whatever reads the ban meanwhile.
        self._evicting: set[tuple[int, int]] = set()

    @property
    def enabled(self) -> bool:
        return self._services.config.accounts.guests

    # -- nicks -------------------------------------------------------------------

    def nick_free(self, nick: str) -> bool:
        """A guest may take ``nick``: it is no account's name (nor one's being made)
        and no guest's."""
        return not self._services.accounts.claimed(nick) and not self.holds(nick)

    def holds(self, name: str) -> bool:
        """Whether a guest online has ``name`` (the accounts' NameHolder: no account
        is made with it)."""
        return name_key(name) in self._online

    def find(self, nick: str) -> User | None:
        session = self._online.get(name_key(nick))
        return session.user if session is not None else None

    def admit(self, session: IrcSession, nick: str) -> User:
        """A new guest user named ``nick`` for ``session`` (the nick must be free)."""
        services = self._services
        now = services.clock.time()
        record = UserRecord(id=GuestId(-next(self._ids)), name=nick, password_hash=b"",
                            is_admin=False, created_at=now, settings={})
        user = User(record)
        # Its limits count by its address (Protection.holder): connecting again
        # under a new nick makes a new guest, not a new budget.
        user.address = _address(session)
        self._online[name_key(nick)] = session
        return user

    def quitting(self, name: str) -> bool:
        """Whether ``name`` is a guest leaving its rooms because its connection ended."""
        return name_key(name) in self._quitting

    def rename(self, session: IrcSession, new: str) -> str:
        """Give the guest of ``session`` the nick ``new`` (free, or its own in another
        case); every room it is in is told. Returns the old nick."""
        user = session.user
        assert user is not None and is_guest(user)
        old = user.name
        if name_key(new) != name_key(old) and not self.nick_free(new):
            raise IrcError(n.ERR_NICKNAMEINUSE, new, "Nickname is already in use")
        # No await from here on: every room sees the new name at once.
        del self._online[name_key(old)]
        self._online[name_key(new)] = session
        user.name = new
        session.nick = new
        bus = self._services.bus
        for room in self.rooms_of(user):
            room.members[user.id].name = new
            self._follow(room, user, old, new)
            bus.to_room(room, events.Renamed(room.name, old, new), skip=session)
        return old

    def _follow(self, room: Room, user: User, old: str, new: str) -> None:
        """A ban of ``user`` decided while it is still in ``room`` (its departure is
        being stored) holds the nick it is renamed to: the room is told of the ban
        under that nick. Another ban of the new nick stays as it is."""
        self._move_ban(room.id, old, new, user.id)

    def _move_ban(self, room_id: int, old: str, new: str, guest: int | None = None) -> bool:
        """Move the room's ban of the nick ``old`` to ``new`` (only the guest
        ``guest``'s, when given); whether there was one to move. Another ban of the
        new nick stays as it is."""
        bans = self._bans.get(room_id)
        ban = bans.get(name_key(old)) if bans is not None else None
        if bans is None or ban is None or (guest is not None and ban.guest != guest):
            return False
        del bans[name_key(old)]
        ban.nick = new
        bans.setdefault(name_key(new), ban)
        return True

    # -- rooms -----------------------------------------------------------------

    def rooms_of(self, user: User) -> list[Room]:
        return self._services.rooms.of_user(user)

    def present(self, session: IrcSession) -> bool:
        """Whether the guest of ``session`` is still here: its connection open, its
        nick its own. A command that awaited (a room's lock, a write) asks before
        it makes the guest a member: the disconnection took the guest out of the
        rooms it was in then, and nothing would take it out of a later one."""
        return not session.closing and self._online.get(name_key(session.nick)) is session

    async def join(self, session: IrcSession, room: Room, key: str | None = None) -> None:
        """Add the guest of ``session`` to the open ``room``, in memory only; ``key``
        opens a room with a key, and a full room refuses. All is decided in the
        room's lock: a mode change or ban queued before this JOIN applies to it."""
        user = session.user
        assert user is not None
        services = self._services
        async with services.transactions.room(room):
            if not self.present(session):
                raise _gone()
            if room.is_member(user.id):
                return
            services.rooms.ensure_live(room)
            self._check_join(session, room)
            refuse_gate(room, key)
            now = services.clock.time()
            services.rooms.add_guest(
                room, Member(user.id, user.name, Role.MEMBER, now, now, next(self._seq)),
                session)
        services.bus.to_room(room, events.Joined(room.name, user.name), skip=session)
        await services.audit.record("join", actor=user.name, room=room)

    def _check_join(self, session: IrcSession, room: Room) -> None:
        name = channel(room.name)
        if room.mode is Mode.PRIVATE:
            raise IrcError(n.ERR_INVITEONLYCHAN, name, "Cannot join channel (+i)")
        if room.mode is not Mode.OPEN:
            raise IrcError(n.ERR_NEEDREGGEDNICK, name,
                           "Cannot join channel (+R): requests need an account")
        if self.banned(room, session):
            raise IrcError(n.ERR_BANNEDFROMCHAN, name, "Cannot join channel (+b)")
        assert session.user is not None
        if len(self.rooms_of(session.user)) >= MAX_GUEST_ROOMS:
            raise IrcError(n.ERR_TOOMANYCHANNELS, name, "You have joined too many channels")

    async def create(self, session: IrcSession, name: str) -> Room:
        """Create the open room ``name`` with the guest of ``session`` as its owner
        (``rooms.creation`` "everyone"). Storing it is awaited: a guest whose
        connection ended meanwhile leaves it as its disconnection would have, had
        the room been made by then (one left empty ends)."""
        user = session.user
        assert user is not None
        room = await self._services.rooms.create(user, name, Mode.OPEN)
        if not self.present(session):
            await self._services.rooms.remove(room, user, "leave", user.name,
                                              _quit_reason(session), missing_ok=True)
            raise _gone()
        return room

    async def leave(self, session: IrcSession, room: Room, reason: str = "") -> None:
        user = session.user
        assert user is not None
        await self._services.rooms.remove(room, user, "leave", user.name, reason, skip=session)

    # -- bans ------------------------------------------------------------------

    def banned(self, room: Room, session: IrcSession) -> bool:
        """Whether a ban of ``room`` holds the guest of ``session`` out: by its nick,
        or by its address's key (limits.ipv6_prefix: an IPv6 address by its /64,
        from which one host picks an address at will; IPv4 whole). A ban keeps
        the address it saw: the keys are compared with the prefix in force now."""
        bans = self.bans(room)
        if not bans:
            return False
        nick = name_key(session.nick)
        prefix = self._services.config.limits.ipv6_prefix
        key = address_key(_address(session), prefix)
        return any(name_key(ban.nick) == nick
                   or (ban.address and address_key(ban.address, prefix) == key)
                   for ban in bans)

    def bans(self, room: Room) -> list[GuestBan]:
        """The room's bans of guests that hold now (not run out)."""
        now = self._services.clock.time()
        return [ban for ban in self._bans.get(room.id, {}).values() if ban.holds(now)]

    def banned_nick(self, nick: str) -> bool:
        """Whether a ban of some live room holds ``nick``
        (chatd.domain.moderation.GuestBans)."""
        key, now = name_key(nick), self._services.clock.time()
        return any(ban.holds(now) for bans in self._bans.values()
                   if (ban := bans.get(key)) is not None)

    def room_ended(self, room: Room) -> None:
        """``room`` ended (chatd.domain.rooms.Rooms.ended): its bans go with it. A room
        made later with its name is another room, which they never held."""
        self._bans.pop(room.id, None)
        if self.shared is not None:
            self.shared.forget(room.id)

    async def reload_bans(self, room_id: int) -> None:
        """Read the room's bans again from where the cluster keeps them: called when
        the node reads the room again (before its own decision about the room, in
        the room's transaction, and after another node's)."""
        if self.shared is None:
            return
        bans = await self.shared.load(room_id)
        if self._services.rooms.get(room_id) is None:
            self._ended(room_id, bool(bans))
        elif bans:
            self._bans[room_id] = bans
        else:
            self._bans.pop(room_id, None)
        room = self._services.rooms.get(room_id)
        if room is not None and bans:
            self._evict_banned(room)

    def _evict_banned(self, room: Room) -> None:
        """This node's guests in ``room`` whose nick a ban holds, a ban decided through
        another node (which does not know them), leave the room as a ban takes them
        out on their own node. In the background: the bans are read in the room's
        transaction too, and the departure takes one of its own. By the bans (at most
        MAX_GUEST_BANS), not by the members, whom a large room has thousands of."""
        for key in list(self._bans.get(room.id, {})):
            session = self._online.get(key)
            user = session.user if session is not None else None
            if (user is None or not room.is_member(user.id) or (room.id, user.id) in self._evicting
                    or self._ban_holding(room, user) is None):
                continue
            self._evicting.add((room.id, user.id))
            task = asyncio.ensure_future(self._evict(room, user))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _ban_holding(self, room: Room, user: User) -> GuestBan | None:
        """The ban of ``room`` that holds the guest ``user`` by its nick, read from where
        the cluster keeps them (its ``guest`` unknown, 0): not one this node is
        applying to it (its own departure takes it out)."""
        ban = self._bans.get(room.id, {}).get(name_key(user.name))
        if ban is None or ban.guest == user.id or not ban.holds(self._services.clock.time()):
            return None
        return ban

    async def _evict(self, room: Room, user: User) -> None:
        """Take the guest ``user`` out of ``room``, in the room's transaction, if a ban
        still holds it then (not lifted, the guest not renamed or gone meanwhile).
        The ban's MODE +b reached the room from the deciding node: the guest's
        departure is told as the KICK that follows it on one node, by the ban's
        setter, once (a later reading of the ban finds it gone). A departure refused
        busy (the room's lock not had in time) is tried again after the wait the
        refusal names: left to the room's next decision, which a quiet room may not
        have for long, the banned guest would go on hearing the room."""
        try:
            while True:
                wait = await self._evict_once(room, user)
                if wait is None:
                    return
                await asyncio.sleep(wait)  # the room was busy: tried again
        except Exception:  # the server may be stopping: nothing of it was stored
            log.warning("a banned guest's departure failed", exc_info=True,
                        extra={"fields": {"user": user.name, "room": room.name}})
        finally:
            self._evicting.discard((room.id, user.id))

    async def _evict_once(self, room: Room, user: User) -> float | None:
        """One try of :meth:`_evict`: None when it is done or there is nothing to take
        out; else the seconds to wait before the next (the room was busy)."""

        async def still_banned() -> None:
            if self._ban_holding(room, user) is None:
                raise _NoLongerBanned

        ban = self._ban_holding(room, user)
        if ban is None or not self._online_still(user):
            return None  # (a guest gone leaves its rooms by its connection's end)
        try:
            await self._services.rooms.remove(room, user, "kick", ban.actor, "",
                                              missing_ok=True, prepare=still_banned,
                                              audited="banned")
        except _NoLongerBanned:
            return None  # lifted or renamed meanwhile: nothing to take out
        except ChatError as exc:
            if exc.code is not Code.BUSY:
                return None  # gone, or the room ended
            return float(exc.details.get("retry_ms", _EVICT_RETRY_MS)) / 1000
        return None

    def _online_still(self, user: User) -> bool:
        """Whether ``user`` is still this node's guest online, under its name."""
        session = self._online.get(name_key(user.name))
        return session is not None and session.user is user

    def _ended(self, room_id: int, kept: bool) -> None:
        """The room, read again just before its bans, is no live room: it ended, and
        its bans with it (:meth:`room_ended`). Bans still ``kept`` for it are ones
        whose deletion was lost (Redis did not answer at the end, or every node
        stopped before its deletion ran): deleted now, not read back into memory,
        where they would hold the nicks of a room that is no more."""
        self._bans.pop(room_id, None)
        if kept and self.shared is not None:
            self.shared.forget(room_id)

    async def load_shared_bans(self) -> list[int]:
        """A cluster's node starting: the bans every room holds, for the lists and the
        unbans of nicks that read this node's memory (a JOIN reads them again).
        Returns the rooms with bans kept that this node does not know: ended (their
        bans' deletion lost), or made since it loaded the rooms; the node reads
        each again, which tells which (:meth:`reload_bans`)."""
        if self.shared is None:
            return []
        rooms = self._services.rooms
        every = await self.shared.load_every()
        self._bans = {room_id: bans for room_id, bans in every.items()
                      if rooms.get(room_id) is not None}
        return [room_id for room_id in every if room_id not in self._bans]

    async def _share(self, room: Room) -> None:
        """Keep the room's bans where every node reads them (a cluster's), in the
        room's transaction that changed them."""
        if self.shared is not None:
            await self.shared.store(room.id, self._bans.get(room.id, {}))

    async def ban(self, actor: User | None, room: Room, target: User, reason: str = "",
                  until: float | None = None) -> str:
        """Ban a guest from ``room`` by nick and address, removing them if a member
        (``actor`` None: the console), until lifted or ``until`` (a time), if given;
        returns the nick banned.

        Decided in the room's transaction, after the actor's right is judged there:
        a demotion queued before the ban refuses it, leaving nothing done. The nick
        and address are the guest's then (a NICK sent while the ban waited for the
        room is the nick banned, and the one the room is told)."""
        name = actor.name if actor is not None else CONSOLE
        banned: GuestBan | None = None
        target_nick = target.name

        async def impose() -> None:
            nonlocal banned
            self._drop_run_out(room)
            self._refuse_full(room, target)
            banned = GuestBan(target.name, self._address_of(target), name,
                              self._services.clock.time(), target.id, until)
            self._bans.setdefault(room.id, {})[name_key(target.name)] = banned
            await self._share(room)
            if not room.is_member(target.id):
                # Told under the room's lock, as a member's ban is (by its departure).
                self._services.bus.to_room(room, events.Banned(room.name, target.name, name,
                                                               reason))

        removed = await self._services.rooms.remove(
            room, target, "ban", name, reason, missing_ok=True, prepare=impose,
            authorize=lambda: _authorize(Action.BAN, room, actor, target))
        assert banned is not None  # (remove raises when it does not prepare)
        # The nick as the room was told it: out of the room, the guest's NICK no
        # longer moves the ban.
        nick = banned.nick
        if self.shared is not None and name_key(nick) != name_key(target_nick):
            await self._move_shared(room, target_nick, nick)
        if removed is None:
            await self._services.audit.record("ban", name, nick, room, reason)
        return nick

    async def _move_shared(self, room: Room, old: str, new: str) -> None:
        """A cluster's: the guest was renamed while its departure was stored, after its
        ban was written under ``old``; the ban moves to ``new`` as it did in this
        node's memory, in a transaction of its own (which reads the bans again:
        nothing if the ban was lifted meanwhile)."""
        async with self._services.transactions.room(room):
            if not self._move_ban(room.id, old, new):
                return
            await self._share(room)
            # No event tells the room of the move: the other nodes' ban lists and
            # their /unban of the new nick would read the old one until the next.
            if self.shared is not None:
                self.shared.announce(room.id)

    def _address_of(self, target: User) -> str:
        """The address a ban of the guest ``target`` holds: its connection's, or, once
        it is gone (it disconnected while the ban waited for the room), the one the
        guest object kept (``User.address``). Empty, the nick alone, only for a guest
        that kept none."""
        session = self._online.get(name_key(target.name))
        if session is not None and session.user is target:
            return _address(session)
        # Not its connection's: another guest may have the nick now.
        return target.address or ""

    def _drop_run_out(self, room: Room) -> None:
        """Forget the room's bans that ran out (in its transaction, before a change):
        they hold nobody, and must not take a place of the room's most."""
        now = self._services.clock.time()
        bans = self._bans.get(room.id, {})
        for key in [key for key, ban in bans.items() if not ban.holds(now)]:
            del bans[key]

    def _refuse_full(self, room: Room, target: User) -> None:
        """Refuse one more ban of a guest to a room that holds ``MAX_GUEST_BANS``."""
        bans = self._bans.get(room.id, {})
        if len(bans) >= MAX_GUEST_BANS and name_key(target.name) not in bans:
            raise ChatError(Code.QUOTA_EXCEEDED, f"#{room.name} holds {MAX_GUEST_BANS} bans "
                            "of guests, the most a room may: lift one first.",
                            quota=MAX_GUEST_BANS)

    async def unban(self, actor: User | None, room: Room, nick: str) -> bool:
        """Lift a guest ban by nick; False when there was none. Decided in the room's
        transaction, the actor's right judged there, as a ban is."""
        services = self._services
        name = actor.name if actor is not None else CONSOLE
        async with services.transactions.room(room):
            services.rooms.ensure_live(room)
            _authorize(Action.UNBAN, room, actor)
            ban = await self.lift_ban(room, nick)
            if ban is None:
                return False
            # Told under the room's lock, as the ban was.
            services.bus.to_room(room, events.Unbanned(room.name, ban.nick, name))
        await services.audit.record("unban", name, ban.nick, room)
        return True

    async def lift(self, room: Room, nick: str) -> bool:
        """Drop the ban of ``nick`` in ``room``, telling nobody; False when there was
        none (chatd.domain.moderation.GuestBans: the caller holds the room's
        transaction and tells the room)."""
        return await self.lift_ban(room, nick) is not None

    async def lift_ban(self, room: Room, nick: str) -> GuestBan | None:
        """Drop the ban of ``nick`` in ``room`` (in its transaction): the ban, or None."""
        bans = self._bans.get(room.id)
        ban = bans.pop(name_key(nick), None) if bans is not None else None
        if bans is not None and not bans:
            del self._bans[room.id]
        if ban is not None:
            await self._share(room)
        # One that ran out held nobody: there was nothing to lift.
        return ban if ban is not None and ban.holds(self._services.clock.time()) else None

    # -- direct messages ----------------------------------------------------------

    async def direct(self, session: IrcSession, target: User, text: str, label: str,
                     kind: str = "text", extra: dict[str, object] | None = None) -> None:
        """A direct message to a guest: delivered, never stored. It still takes a
        message id (msgid), from the one sequence of every message."""
        user = session.user
        assert user is not None
        services = self._services
        charged = services.protection.charge_message(session, None)
        if charged is not None:
            await charged
        number = await settled(services.sequencer.for_direct(target.id))
        message = events.Message(user.name, text, services.clock.time(),
                                 id=number, to=target.name,
                                 msg_kind=kind, extra=dict(extra or {}))
        # The sender's copy is the bus's to send, in its place among the messages
        # this connection receives (on a cluster, when the log's reader delivers it).
        bus = self._services.bus
        bus.to_users((target,), message, skip=session, echo=True, label=label)
        placing = bus.placed(number)
        if placing is not None:
            await placing  # a shared log: sent once it holds the message

    # -- the end of a guest ----------------------------------------------------------

    def disconnected(self, session: IrcSession) -> None:
        """The guest's connection ended: free the nick, leave every room."""
        if self._online.get(name_key(session.nick)) is session:
            del self._online[name_key(session.nick)]
        user = session.user
        if user is None or not is_guest(user):
            return
        rooms = self.rooms_of(user)
        for room in rooms:
            # At once: the room service finds a departing member's connections by
            # their user, which the logout that follows clears.
            self._services.bus.disconnect(room, (session,))
        if rooms:
            self._quitting.add(name_key(user.name))
            task = asyncio.ensure_future(self._leave_all(user, rooms, _quit_reason(session)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _leave_all(self, user: User, rooms: list[Room], reason: str) -> None:
        try:
            for room in rooms:
                try:
                    await self._services.rooms.remove(room, user, "leave", user.name, reason,
                                                      missing_ok=True)
                except Exception:  # the server may be stopping: nothing of it was stored
                    log.warning("a guest's departure failed", exc_info=True,
                                extra={"fields": {"user": user.name, "room": room.name}})
        finally:
            self._quitting.discard(name_key(user.name))


# How long a banned guest's departure refused busy waits before its next try, when
# the refusal does not say.
_EVICT_RETRY_MS: Final = 2000


class _NoLongerBanned(Exception):
    """The guest a ban held is no longer held by it when its departure's turn came."""


def _authorize(action: Action, room: Room, actor: User | None,
               target: User | None = None) -> None:
    """``actor``'s right to act on a guest; None, the console, has every right."""
    if actor is not None:
        authorize(action, room, actor, target)


def _quit_reason(session: IrcSession) -> str:
    """Why a guest leaves its rooms when its connection ends (shown as its QUIT)."""
    return QUIT_PREFIX + (session.quit_message or "Connection closed")


def _gone() -> ChatError:
    """What stops a command of a guest that is gone (its reply goes nowhere)."""
    return ChatError(Code.NOT_LOGGED_IN, "the connection closed meanwhile.")


def _address(session: IrcSession) -> str:
    return session.peer.rpartition(":")[0]
