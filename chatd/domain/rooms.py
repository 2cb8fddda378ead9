"""The room service: the life of rooms and their memberships.

Each change follows one pattern inside a transaction on the room (see
``chatd.domain.ports.RoomTransactions``): check the rules, persist, apply to
memory; then emit events. Memory is the source of truth for
routing; the database makes it survive a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from chatd.domain import events, names
from chatd.domain.permissions import Action, authorize, heard, refuse_silenced
from chatd.domain.room import UNSTORED_SEQ, Departure, Member, Mode, Role, Room, in_force
from chatd.errors import ChatError, Code, Remedy, Step
from storage.api import Conflict, OverQuota, Refused
from storage.quotas import Measure, Quota

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from chatd.config import Config
    from chatd.domain.accounts import Accounts, User
    from chatd.domain.audit import AuditLog
    from chatd.domain.clock import Clock
    from chatd.domain.notifications import Notifier
    from chatd.domain.ports import Bus, Endpoint, RoomTransactions
    from storage.api import Storage
    from storage.records import AssociationRecord, MemberRecord, RoomRecord, SanctionRecord

log = logging.getLogger(__name__)
T = TypeVar("T")
# The longest topic, in characters: one that every joiner is shown, and that an IRC
# line carries whole beside its numeric, source and channel (IRC's TOPICLEN).
TOPIC_MAX = 390

# The event of each way out of a room (Rooms.remove).
_DEPARTURES: dict[str, Callable[[str, str, str, str], events.Event]] = {
    "leave": events.Left, "kick": events.Kicked, "ban": partial(events.Banned, member=True)}


class Rooms:
    """All live rooms, indexed by id, by name and by member."""

    def __init__(self, storage: Storage, accounts: Accounts, bus: Bus, notifier: Notifier,
                 audit: AuditLog, clock: Clock, transactions: RoomTransactions) -> None:
        self._storage = storage
        self._accounts = accounts
        self._bus = bus
        self._notifier = notifier
        self._audit = audit
        self._clock = clock
        self._transactions = transactions
        self._by_id: dict[int, Room] = {}
        self._by_key: dict[str, Room] = {}
        self._of_user: dict[int, set[Room]] = {}
        # The accounts whose deletion is under way here (see ``deleting``).
        self._deleting: set[int] = set()
        # Not a room transaction: a name is taken once by storage's unique
        # constraint (Conflict), whoever asks; this only spares a doomed write.
        self._create_lock = asyncio.Lock()
        # Who may create rooms (rooms.creation): "accounts", or "everyone",
        # IRC guests included; and the most rooms one user (not a server admin)
        # may own when creating another (rooms.max_owned). Set from the
        # configuration (reconfigure), at start and reload.
        self.creation = "accounts"
        self.max_owned = 100
        # On a cluster's node: reads a live room from the database into memory (one
        # another node created a moment ago, whose announcement is not read here yet).
        self.read_room: Callable[[int], Awaitable[None]] | None = None
        # Told of each room that ends in this process's memory (terminated here, or
        # another node's termination read): what others keep of it in memory only
        # (IRC guests' bans) goes with it.
        self.ended: list[Callable[[Room], None]] = []

    def reconfigure(self, config: Config) -> None:
        self.creation = config.rooms.creation
        self.max_owned = config.rooms.max_owned

    async def load(self) -> None:
        for record in await self._storage.load_active_rooms():
            self._index(Room(record))
        for member in await self._storage.load_members():
            room = self._by_id.get(member.room_id)
            user = self._accounts.get(member.user_id)
            if room is not None and user is not None:
                self._add_member(room, Member.from_record(member, user.name, user.is_bot))

    # -- lookups -----------------------------------------------------------

    def get(self, room_id: int) -> Room | None:
        return self._by_id.get(room_id)

    def find(self, ref: str) -> Room | None:
        """A room by name (``#`` optional, any case) or by numeric id."""
        if names.is_number(ref):
            return self._by_id.get(int(ref))
        return self._by_key.get(names.name_key(ref.removeprefix("#")))

    def require(self, ref: str) -> Room:
        room = self.find(ref)
        if room is None:
            raise _no_such_room(ref)
        return room

    def require_as(self, user: User | None, ref: str) -> Room:
        """The room ``ref`` names, as ``user`` may name it. By name, any live room: a
        name is no secret from whoever asks by it, since /create of that name says it
        is taken. By id, a secret room (+s) is ``no-such-room`` to whoever is not in
        it, worded as an id no room has: ids count up from 1, and trying each would
        otherwise tell its name to a stranger. (A private room's id is how its
        invitation is used, so it answers by id as by name.)"""
        room = self.require(ref)
        if names.is_number(ref) and room.modes.secret and not (
                user is not None and (user.is_admin or room.is_member(user.id))):
            raise _no_such_room(ref)
        return room

    def ensure_live(self, room: Room) -> None:
        """Raise ``no-such-room`` when ``room`` has ended (checked in the room's
        transaction: a change decided there must not land in an ended room)."""
        if self._by_id.get(room.id) is not room:
            raise ChatError(Code.NO_SUCH_ROOM, f"#{room.name} no longer exists.")

    def of_user(self, user: User) -> list[Room]:
        return sorted(self._of_user.get(user.id, ()), key=lambda r: r.name)

    async def of_user_stored(self, user: User) -> list[Room]:
        """:meth:`of_user`, and the live rooms the database has ``user`` in: a join
        another node decided may not have reached this process yet, nor a room
        another node created (read here, with :attr:`read_room`). An account's deletion
        leaves those too: none stays live with a deleted member as its owner."""
        rooms = set(self._of_user.get(user.id, ()))
        if user.has_account:
            for room_id in await self._storage.member_room_ids(user.id):
                if room_id not in self._by_id and self.read_room is not None:
                    await self.read_room(room_id)
                room = self._by_id.get(room_id)
                if room is not None:
                    rooms.add(room)
        return sorted(rooms, key=lambda r: r.name)

    def forget_member(self, user_id: int) -> None:
        """Drop a deleted account from the rooms this process remembers it in, with
        no departure: the deletion decided those (here, or on the node that deleted
        it), and the database's rows went with the account. What is left is a join
        another node of a cluster made too late for that deletion to see."""
        for room in list(self._of_user.get(user_id, ())):
            self._drop_member(room, user_id)

    async def joined_before(self, user: User) -> list[AssociationRecord]:
        """Every room ``user`` has joined at some time, ended ones included (/myrooms)."""
        return await self._storage.list_associations(user.id)

    def listed_for(self, user: User | None) -> list[Room]:
        """Rooms shown by /rooms to ``user``: all but the private and secret rooms
        they are not in."""
        return sorted((r for r in self._by_id.values() if self.can_see(user, r)),
                      key=lambda r: r.id)

    def hidden_rooms(self) -> list[Room]:
        """Every private or secret room (those /rooms hides from strangers), by id."""
        return sorted((r for r in self._by_id.values() if _hidden(r)), key=lambda r: r.id)

    def can_see(self, user: User | None, room: Room) -> bool:
        """Members and server admins see a room; banned users and strangers to a
        private or secret room do not."""
        if user is not None:
            if user.is_admin or room.is_member(user.id):
                return True
            if room.banned(user.id, self._clock.time()):
                return False
        return not _hidden(room)

    @property
    def count(self) -> int:
        return len(self._by_id)

    def summary(self, room: Room) -> dict[str, Any]:
        return {"id": room.id, "name": room.name, "mode": room.mode.value,
                "members": len(room.members), "topic": room.topic,
                "e2e": bool(room.settings.get("e2e")), "modes": "+" + room.modes.letters()}

    # -- accounts that go ------------------------------------------------------

    @contextmanager
    def deleting(self, user: User) -> Iterator[None]:
        """While ``user``'s account is being deleted: from the moment this is entered,
        it joins and creates no room (checked in the step that would add the member,
        after any await), so the rooms it is in then are all it will ever be in here,
        and a deletion that takes it out of them leaves it in none."""
        self._deleting.add(user.id)
        try:
            yield
        finally:
            self._deleting.discard(user.id)

    def account_gone(self, user: User) -> bool:
        """Whether ``user``'s account was deleted, or its deletion is under way: it
        may join, create and log in no more. (A guest's never is.)"""
        return user.has_account and (user.id in self._deleting
                                     or self._accounts.get(user.id) is not user)

    def _refuse_gone(self, user: User) -> None:
        if self.account_gone(user):
            raise deleted_account(user)

    # -- connections ---------------------------------------------------------

    def attach(self, endpoint: Endpoint) -> None:
        """A logged-in endpoint starts receiving its user's rooms."""
        user = endpoint.user
        assert user is not None
        self._bus.add_user(user, endpoint)
        for room in self._of_user.get(user.id, ()):
            self._bus.connect(room, (endpoint,))

    def detach(self, endpoint: Endpoint) -> None:
        user = endpoint.user
        if user is None:
            return
        for room in self._of_user.get(user.id, ()):
            self._bus.disconnect(room, (endpoint,))
        self._bus.remove_user(user, endpoint)

    def connections(self, user: User) -> Sequence[Endpoint]:
        """``user``'s logged-in endpoints, oldest first."""
        return self._bus.of_user(user)

    def online_in(self, room: Room) -> int:
        """How many endpoints receive ``room``'s messages."""
        return len(self._bus.in_room(room))

    # -- changes -------------------------------------------------------------

    async def create(self, user: User, raw_name: str, mode: Mode,
                     actor: Endpoint | None = None) -> Room:
        """Create a room with ``user`` as its owner and first member.

        A user without an account (an IRC guest) may create one only when
        ``rooms.creation`` is "everyone"; their ownership lives in memory, like
        the rest of a guest, and the room's seed rules (succession, termination)
        apply when they go. The account's other connections (``actor`` made it)
        are told it joined: an IRC client is shown the channel at once.
        """
        if not user.has_account and self.creation != "everyone":
            raise ChatError(Code.NOT_PERMITTED, "guests cannot create rooms here: only "
                            "accounts can (rooms.creation).")
        name = _valid_room_name(raw_name)
        await self._transactions.creatable()
        async with self._create_lock:
            if self.find(name) is not None:
                raise ChatError(Code.NAME_TAKEN, f'a room named "{name}" exists.',
                                remedy=Remedy(Step.JOIN_EXISTING, name))
            self._refuse_gone(user)  # (spares a doomed write; checked again below)
            try:
                room, member = await unless_deleted(self._create_row(user, name, mode),
                                                    self._storage, user)
            except Conflict:
                raise ChatError(Code.NAME_TAKEN, f'a room named "{name}" exists.') from None
            except OverQuota as refused:
                raise self._over_quota(refused.quota.most) from None
            if self.account_gone(user):
                # Deleted, or its deletion began, while the rows were written: that
                # deletion cannot see a room not yet in memory, so the room ends
                # unborn rather than live without its owner.
                await self._unmake(room, user)
                raise deleted_account(user)
            # No await since the check: a deletion that begins now sees the room.
            self._index(room)
            self._add_member(room, member, user)
        if user.has_account:
            self._bus.to_users([user], events.Joined(room.name, user.name), skip=actor,
                               room_id=room.id)
        await self._audit.record("create", actor=user.name, room=room, reason=mode.value)
        return room

    def owned(self, user: User) -> int:
        """How many live rooms ``user`` owns."""
        return sum(1 for room in self._of_user.get(user.id, ())
                   if room.role_of(user.id) is Role.OWNER)

    def _quotas(self, user: User) -> tuple[Quota, ...]:
        """What a new room of ``user``'s is counted against: the rooms they own, at
        most ``max_owned`` (rooms live in memory as long as they have members, so
        one account must not make them without end). Server admins have no limit.
        The database counts them with the room's insert, so that creations sent at
        once, through one node or several, cannot each take the last place."""
        if user.is_admin:
            return ()
        return (Quota(Measure.OWNED_ROOMS, user.id, self.max_owned),)

    def _over_quota(self, most: int) -> ChatError:
        return ChatError(Code.QUOTA_EXCEEDED, f"you own {most} rooms, the most one may own: "
                         "transfer or leave one first.", quota=most)

    async def _create_row(self, user: User, name: str, mode: Mode) -> tuple[Room, Member]:
        """The room's rows (and its owner's), written; not in memory yet."""
        now = self._clock.time()
        if user.has_account:
            record, member = await self._storage.create_room(name, mode.value, user.id, now,
                                                             self._quotas(user))
            return Room(record), Member.from_record(member, user.name, user.is_bot)
        # An IRC guest is stored nowhere, and lives on one node: its rooms are
        # counted in this node's memory, under the creation lock.
        if not user.is_admin and self.owned(user) >= self.max_owned:
            raise self._over_quota(self.max_owned)
        record = await self._storage.create_unowned_room(name, mode.value, now)
        owner = Member(user.id, user.name, Role.OWNER, now, now, UNSTORED_SEQ)
        return Room(record), owner

    async def _unmake(self, room: Room, owner: User) -> None:
        """Undo the rows of a room whose creation is refused after they were
        written: its name is free again, and no member row stays behind."""
        await self._storage.remove_member(room.id, owner.id)
        await self._storage.terminate_room(room.id, self._clock.time())

    async def join(self, user: User, room: Room, actor: Endpoint | None = None,
                   admit: Callable[[], Awaitable[bool]] | None = None) -> Member | None:
        """Add ``user`` to ``room`` by the rules ``admit`` applies.

        ``admit`` runs first, in the room's transaction, so a ban, a mode change or a
        revoked invitation cannot slip in between the decision and the join. It
        raises a refusal, or answers False when the user is not to be added now
        (a join request was filed): then nothing changes and the result is None.
        A user who is a member already is ``already-in-room``.
        """
        async with self._transactions.room(room):
            self.ensure_live(room)
            self._refuse_gone(user)
            if admit is not None and not await admit():
                return None
            if room.is_member(user.id):
                raise ChatError(Code.ALREADY_IN_ROOM, f"you are already in #{room.name}.")
            record = await unless_deleted(
                self._storage.add_member(room.id, user.id, Role.MEMBER.value,
                                         self._clock.time()), self._storage, user)
            if self.account_gone(user):
                # Deleted, or its deletion began, while the row was written: that
                # deletion does not see this membership, so it is not made. The row
                # goes too (a deletion takes it with the account, but may fail).
                await self._storage.remove_member(room.id, user.id)
                raise deleted_account(user)
            member = Member.from_record(record, user.name, user.is_bot)
            self._add_member(room, member)
            # Told under the room's lock, as a departure is: on a shared log the
            # join then takes its place before any later decision about the room
            # (a kick decided elsewhere must not be ordered before it).
            self._bus.to_room(room, events.Joined(room.name, user.name), skip=actor)
        await self._audit.record("join", actor=user.name, room=room)
        return member

    async def leave(self, user: User, room: Room, actor: Endpoint | None = None,
                    reason: str = "") -> Departure | None:
        """``user`` leaves ``room`` of their own accord, saying why if ``reason`` (the
        line protocol's ``/leave``, IRC's ``PART``); what the departure did (did the
        room end?).

        None when, by the time the decision is made, ``user`` is no longer a
        member: a decision that came first (another member leaving, which ended
        the room and evicted its last member, or a kick) already took them out,
        which is what they asked for.
        """
        return await self.remove(room, user, "leave", actor_name=user.name,
                                 reason=reason, skip=actor, missing_ok=True)

    async def remove(self, room: Room, user: User, event: str, actor_name: str,
                     reason: str = "", skip: Endpoint | None = None,
                     authorize: Callable[[], None] | None = None,
                     prepare: Callable[[], Awaitable[None]] | None = None,
                     missing_ok: bool = False,
                     audited: str | None = None) -> Departure | None:
        """Take ``user`` out of ``room`` (leave, kick or ban) with succession and termination.

        ``authorize`` runs in the room's transaction, so a permission is checked at
        the moment the change is made; then ``prepare`` (a ban records itself
        there). A user who is not a member is ``not-in-room``, or, with
        ``missing_ok``, nothing to remove (None). A room that ended meanwhile is
        ``no-such-room`` (a ban or a kick records nothing in it), except for a
        plain departure with ``missing_ok``: its ending took everyone out already.
        ``audited``: the audit entry's reason, when it says more than ``reason``.
        """
        async with self._transactions.room(room):
            if prepare is not None or not missing_ok:
                self.ensure_live(room)
            if authorize is not None:
                authorize()
            if prepare is not None:
                await prepare()
            if not room.is_member(user.id):
                if missing_ok:
                    return None
                raise ChatError(Code.NOT_IN_ROOM, f"{user.name} is not in #{room.name}.")
            now = self._clock.time()
            # Decided here, under the room's lock, as a message's right is: a mute
            # ordered before this leave holds its reason back.
            shown = reason if event != "leave" or _spoken(user, room, now) else ""
            departure = room.plan_departure(user.id, now)
            await self._persist_departure(room, departure)
            self._bus.to_room(room, _DEPARTURES[event](room.name, user.name, actor_name,
                                                       shown), skip=skip)
            # Read before the departure takes it out of the room: a guest is found
            # by its member's name alone.
            evicted_member = room.members.get(departure.evicted) if departure.evicted else None
            self._apply_departure(room, departure)
            # Told under the room's lock: a command that waited for it (the evicted
            # member's own /leave) is answered after these events; on a cluster they
            # are numbered before the lock is released.
            heirs = self._tell_roles(room, departure.role_changes, departure.voiced)
            evicted = self._tell_terminated(room, departure, evicted_member)
        await self._audit.record(event, actor=actor_name, target=user.name, room=room,
                                 reason=reason if audited is None else audited)
        await self._record_roles(room, heirs)
        if departure.terminate:
            await self._record_termination(room, evicted)
        return departure

    async def terminate_empty(self) -> int:
        """End rooms that have no member left (for example after accounts were deleted)."""
        ended = 0
        for room in [room for room in self._by_id.values() if not room.members]:
            async with self._transactions.room(room):
                # Checked again in the transaction: someone may have joined, or another
                # pass may have ended the room meanwhile.
                if room.members or self._by_id.get(room.id) is not room:
                    continue
                departure = Departure(leaving=[], terminate=True)
                await self._persist_departure(room, departure)
                self._apply_departure(room, departure)
            await self._record_termination(room, None)
            ended += 1
        return ended

    async def set_topic(self, user: User, room: Room, topic: str) -> None:
        if len(topic) > TOPIC_MAX:
            raise ChatError(Code.BAD_ARGUMENTS, f"a topic is at most {TOPIC_MAX} characters; "
                            f"this one has {len(topic)}.")
        async with self._transactions.room(room):
            # The room first: one that ended while this waited took every role with
            # it, and the refusal is that it is gone, not a role the user lost then.
            self.ensure_live(room)
            authorize(Action.TOPIC, room, user)
            # A topic is said to the whole room: who may not speak there now (a
            # member muted in a room whose topic is open to all) may not set one.
            refuse_silenced(room, user, self._clock.time())
            if topic == room.topic:
                # Nothing changes: nothing to store, and no one to tell (IRC servers
                # do not repeat an unchanged TOPIC either).
                return
            await self._storage.set_room_topic(room.id, topic)
            room.topic = topic
        self._bus.to_room(room, events.TopicChanged(room.name, user.name, topic))

    async def update_settings(self, user: User, room: Room, action: Action,
                              change: Callable[[dict[str, Any]], dict[str, Any]]
                              ) -> dict[str, Any]:
        """Change ``room``'s settings as ``change`` derives them from the current ones.

        In the room's transaction, the permission for ``action``, the derivation, the
        database and memory go together: two changes at once both take effect,
        in some order, and neither undoes the other. Returns the new settings.
        """
        async with self._transactions.room(room):
            self.ensure_live(room)  # first, as for a topic
            authorize(action, room, user)
            settings = change(dict(room.settings))
            await self._storage.set_room_settings(room.id, settings)
            room.settings = settings
        return settings

    # -- internals -----------------------------------------------------------

    # -- another node's decisions ------------------------------------------------

    def resync(self, room_id: int, record: RoomRecord | None, members: Iterable[MemberRecord],
               sanctions: Mapping[str, Iterable[SanctionRecord]]) -> None:
        """Make this process's copy of a room what storage says it is now.

        A cluster node calls it when another node decided about the room (or
        before deciding itself, under the room's transaction): ``record`` is the
        room as stored (None when it ended or never existed), ``members`` its
        members, ``sanctions`` its bans and mutes by kind ("ban", "mute").
        Connections follow: a member gone is disconnected and told the room is
        no longer theirs, a member come is connected, an ended room is closed.
        Nothing is announced: the deciding node's events do that.
        """
        room = self._by_id.get(room_id)
        if record is None:
            if room is not None:
                self._forget(room)
            return
        if room is None:
            room = self._index(Room(record))
        else:
            room.refresh(record)
        # Only those in force: a sanction whose time is up no longer applies, even
        # before the expiry (under the room's lock, later) deletes its row.
        now = self._clock.time()
        room.bans = {s.user_id: s for s in sanctions.get("ban", ()) if in_force(s, now)}
        room.mutes = {s.user_id: s for s in sanctions.get("mute", ()) if in_force(s, now)}
        fresh = {m.user_id: m for m in members}
        # A member storage never holds (an IRC guest, this node's alone) stays.
        for user_id in [u for u, m in room.members.items()
                        if u not in fresh and m.seq < UNSTORED_SEQ]:
            self._drop_member(room, user_id)
        for user_id, stored in fresh.items():
            user = self._accounts.get(user_id)
            if user is None:
                continue
            had = room.members.get(user_id)
            member = Member.from_record(stored, user.name, user.is_bot)
            if had is None:
                self._add_member(room, member, user)
            else:
                room.members[user_id] = member

    def _drop_member(self, room: Room, user_id: int) -> None:
        room.members.pop(user_id, None)
        self._unindex(room, user_id)
        for endpoint in self._bus.disconnect_user(room, user_id):
            endpoint.left_room(room)

    def _forget(self, room: Room) -> None:
        for user_id in list(room.members):
            self._drop_member(room, user_id)
        self._by_id.pop(room.id, None)
        self._by_key.pop(names.name_key(room.name), None)
        for endpoint in self._bus.close_room(room):
            endpoint.left_room(room)
        self._tell_ended(room)

    def _tell_ended(self, room: Room) -> None:
        for told in self.ended:
            told(room)

    def _index_member(self, room: Room, member: Member) -> None:
        room.members[member.user_id] = member
        self._of_user.setdefault(member.user_id, set()).add(room)

    def _unindex(self, room: Room, user_id: int) -> None:
        """``user_id`` is no longer in ``room``'s members: out of its index too, and
        out of the index altogether when in no room (a guest's id is never seen
        again once it left)."""
        rooms = self._of_user.get(user_id)
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._of_user[user_id]

    def _index(self, room: Room) -> Room:
        self._by_id[room.id] = room
        self._by_key[names.name_key(room.name)] = room
        return room

    def add_guest(self, room: Room, member: Member, endpoint: Endpoint) -> None:
        """An IRC guest becomes a member of ``room``: in memory only (it has no
        account, so no row), indexed as every member is, so that :meth:`of_user`
        knows a guest's rooms as it knows an account's. The caller holds the
        room's transaction; the guest leaves as anyone does (:meth:`remove`)."""
        self._index_member(room, member)
        self._bus.connect(room, (endpoint,))

    def _add_member(self, room: Room, member: Member, user: User | None = None) -> None:
        self._index_member(room, member)
        user = user or self._accounts.get(member.user_id)
        if user is not None:
            self._bus.connect(room, self._bus.of_user(user))

    async def _persist_departure(self, room: Room, departure: Departure) -> None:
        for user_id in departure.leaving + ([departure.evicted] if departure.evicted else []):
            await self._storage.remove_member(room.id, user_id)
        if departure.role_changes:
            await self._storage.set_roles(
                room.id, [(uid, role.value) for uid, role in departure.role_changes],
                self._clock.time())
        if departure.terminate:
            await self._storage.terminate_room(room.id, self._clock.time())

    def _apply_departure(self, room: Room, departure: Departure) -> None:
        gone = room.apply_departure(departure, self._clock.time())
        left = [e for user_id in gone for e in self._bus.disconnect_user(room, user_id)]
        for user_id in gone:
            self._unindex(room, user_id)
        for endpoint in left:
            endpoint.left_room(room)
        if departure.terminate:
            del self._by_id[room.id]
            del self._by_key[names.name_key(room.name)]
            for endpoint in self._bus.close_room(room):
                endpoint.left_room(room)
            self._tell_ended(room)

    def _tell_roles(self, room: Room, changes: list[tuple[int, Role]],
                    voiced: frozenset[int]) -> list[tuple[int, str, Role]]:
        """Tell the room of the roles succession gave; the heirs (id, name, role)."""
        heirs = []
        for user_id, role in changes:
            member = room.members.get(user_id)
            if member is None:
                continue
            had_voice = user_id in voiced
            self._bus.to_room(room, (
                events.OwnerChanged(room.name, member.name, None, role.value, voiced=had_voice)
                if role is Role.OWNER else
                events.Promoted(room.name, member.name, None, role.value, voiced=had_voice)))
            heirs.append((user_id, member.name, role))
        return heirs

    async def _record_roles(self, room: Room, heirs: list[tuple[int, str, Role]]) -> None:
        """Audit and notify what :meth:`_tell_roles` told."""
        for user_id, name, role in heirs:
            event = "owner" if role is Role.OWNER else "promote"
            await self._audit.record(event, None, name, room, "succession")
            user = self._accounts.get(user_id)
            if user is None:
                continue  # a guest (never told by notification) or a deleted account
            await self._notifier.notify(user, "promoted",
                                        f"you are now the {role.value} of #{room.name}.",
                                        room=room.name, room_id=room.id, role=role.value)

    def _tell_terminated(self, room: Room, departure: Departure,
                         member: Member | None) -> User | None:
        """Tell the member a termination evicted (if any), an IRC guest too, whose
        client would otherwise think itself still in the channel; the account to
        notify (a guest has no notifications)."""
        if not departure.terminate or member is None:
            return None
        evicted = self._accounts.of_member(member)
        if evicted is None:
            return None
        self._bus.to_user(evicted, events.Terminated(room.name, evicted.name), room_id=room.id)
        return evicted if evicted.has_account else None

    async def _record_termination(self, room: Room, evicted: User | None) -> None:
        await self._audit.record("terminate", room=room)
        if evicted is not None:
            await self._notifier.notify(evicted, "terminated",
                                        f"#{room.name} was terminated: you were its last "
                                        "member.", room=room.name, room_id=room.id)


def _spoken(user: User, room: Room, now: float) -> bool:
    """Whether plain words ``user`` says to ``room`` at ``now`` reach its members: not
    while they are silenced there, nor in an end-to-end room, which takes envelopes
    alone (a leave's reason is said as a message is)."""
    return heard(user, room, now) and not room.settings.get("e2e")


def _no_such_room(ref: str) -> ChatError:
    return ChatError(Code.NO_SUCH_ROOM, f"there is no room with id {ref}."
                     if names.is_number(ref) else f'there is no room "{ref}".',
                     remedy=Remedy(Step.LIST_ROOMS))


def _hidden(room: Room) -> bool:
    """Whether strangers are kept from seeing ``room``: private or secret."""
    return room.mode is Mode.PRIVATE or room.modes.secret


def _valid_room_name(raw: str) -> str:
    """The name of a new room. One that reads as a duration (``10m``, ``1x``) is
    refused: a moderator's ``/ban bob 10m spam`` would ban bob from that room, for
    good, when meant for ten minutes in the current one (an optional room before a
    duration takes a word naming an existing room first)."""
    try:
        name = names.room_name(raw)
    except names.InvalidName as exc:
        raise ChatError(Code.INVALID_NAME, str(exc)) from None
    if names.meant_as_duration(name):
        raise ChatError(Code.INVALID_NAME, f"invalid room name {names.quoted(raw)}: it reads "
                        "as a duration (as in /ban bob 10m); add a letter before the number.")
    return name


async def unless_deleted(write: Awaitable[T], storage: Storage, *users: User) -> T:
    """``write`` (a row naming ``users``: a member, a room's owner, a join request,
    an invitation), answered ``no-such-user`` when the database refuses it because
    one of their accounts was deleted meanwhile, on another node or while the
    caller awaited a room's lock: in words, rather than as an internal error."""
    try:
        return await write
    except Conflict:
        raise  # a unique row already there: the caller's to say
    except Refused:
        for user in users:
            if user.has_account and await storage.get_user(user.id) is None:
                raise deleted_account(user) from None
        raise


def deleted_account(user: User) -> ChatError:
    """The refusal of a change naming ``user`` when its account was deleted meanwhile."""
    return ChatError(Code.NO_SUCH_USER, f"the account {user.name} was deleted.")
