"""User accounts: registration, authentication, blocks and the online user directory.

Password hashing is bcrypt, run in its own thread pool (chatd.domain.hashing)
so a login never blocks the event loop. A wrong password and an unknown user fail alike and do
the same work: a name without an account is checked against a dummy hash made
at the configured cost, so neither the reply nor its timing reveals which
accounts exist.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from chatd.domain import hashing, names
from chatd.errors import ChatError, Code, Remedy, Step
from storage.api import Conflict, OverQuota, Storage, StorageError
from storage.quotas import Measure, Quota
from storage.records import BOT_KIND, UserBlockRecord, UserRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
    from contextlib import AbstractAsyncContextManager

    from chatd.config import Config
    from chatd.domain.clock import Clock
    from chatd.domain.room import Member

log = logging.getLogger(__name__)


class User:
    """An account as the daemon holds it in memory.

    Its connections are the delivery layer's (chatd.domain.ports.Routes); the
    account only counts them, for the many places that ask who is online."""

    __slots__ = ("address", "blocked", "connections", "created_at", "elsewhere", "id",
                 "is_admin", "kind", "name", "owner_id", "password_changes", "settings")

    def __init__(self, record: UserRecord) -> None:
        self.id = record.id
        self.name = record.name
        self.is_admin = record.is_admin
        self.created_at = record.created_at
        # "user" or "bot"; a bot logs in with tokens only and belongs to its owner.
        self.kind = record.kind
        self.owner_id = record.owner_id
        self.settings: dict[str, Any] = dict(record.settings)
        # How many connections are logged in as this user (kept by chatd.domain.presence).
        self.connections = 0
        # How many other nodes of a cluster hold a session of this user (kept by
        # chatd.cluster.presence; always 0 in the embedded mode).
        self.elsewhere = 0
        # Counts changes of password (in this process): a login whose check of the
        # password overlapped a change fails, as if it had checked the new one.
        self.password_changes = 0
        # The users whose direct messages this user refuses, with since when.
        self.blocked: dict[int, float] = {}
        # Where a user without an account (an IRC guest) connects from, its host:
        # its limits count by that address, not by its id, which is new at each
        # connection (chatd.domain.protection.Protection.holder). None for an
        # account, whose limits are its own.
        self.address: str | None = None

    @property
    def online(self) -> bool:
        return self.connections > 0 or self.elsewhere > 0

    @property
    def has_account(self) -> bool:
        """False for a user that lives only in memory (an IRC guest, whose id is not
        positive): nothing about them may be stored."""
        return self.id > 0

    @property
    def is_bot(self) -> bool:
        """A bot account (IRC shows it with the bot mode, the line protocol as bot: true)."""
        return self.kind == BOT_KIND

    def __repr__(self) -> str:
        return f"<User {self.id} {self.name}>"


class _AccountLocks(Protocol):
    """A lock per account, in this process (a ``LocalTransactions``; a protocol:
    the transaction ports know users)."""

    def account(self, user: User) -> AbstractAsyncContextManager[object]: ...


class _Audit(Protocol):
    """What accounts need of the audit log (a protocol: the log knows users)."""

    async def record(self, action: str, actor: str | None = None, target: str | None = None,
                     *, reason: str = "") -> None: ...


class NameHolder(Protocol):
    """Users without an account who hold a name while they are connected: IRC
    guests (chatd.irc.guests registers them in :attr:`Accounts.name_holders`).
    No account is made with a name one of them holds: two users would answer
    to it (a kick, a lookup, the members of a room)."""

    def holds(self, name: str) -> bool: ...

    def find(self, name: str) -> User | None:
        """The user holding ``name`` now, if any."""


class Accounts:
    """Every account, by id and by case-insensitive name."""

    def __init__(self, storage: Storage, config: Config, clock: Clock,
                 audit: _Audit, local_locks: _AccountLocks) -> None:
        self._storage = storage
        self._config = config
        self._clock = clock
        self._audit = audit
        self._by_id: dict[int, User] = {}
        self._by_key: dict[str, User] = {}
        # The administrators (few): LUSERS counts those online at every IRC welcome.
        self._admins: set[User] = set()
        # Checked against when the account does not exist, so that failing costs as much:
        # made (in the executor) at the configured cost, again when that cost changes.
        self._dummy_hash = b""
        self._dummy_cost = 0
        # A lock per account whose blocks, settings or flag are being written or read
        # (writing()): local to this process, whatever the decisions' transactions.
        self._writing = local_locks
        # The keys of the names whose accounts are being made (see _claiming).
        self._claimed: set[str] = set()
        self.name_holders: list[NameHolder] = []
        # Told of each account forgotten here (deleted here, or on another node):
        # what is kept in memory by account beside it (API and resume tokens) goes too.
        self.on_forgotten: list[Callable[[User], None]] = []
        # Told of each change made here to an account (what, and its details): a
        # cluster node announces it to the others, which apply it to their copy.
        self.on_changed: Callable[[User, str, dict[str, Any]], None] | None = None

    def reconfigure(self, config: Config) -> None:
        self._config = config

    async def load(self) -> None:
        for record in await self._storage.list_users():
            self._add(record)
        for block in await self._storage.load_user_blocks():
            self._by_id[block.user_id].blocked[block.blocked_id] = block.created_at
        # Now rather than at the first unknown name, whose failure would then cost twice.
        await self._dummy()

    def _add(self, record: UserRecord) -> User:
        user = User(record)
        self._by_id[user.id] = user
        self._by_key[names.name_key(user.name)] = user
        if user.is_admin:
            self._admins.add(user)
        return user

    def adopt(self, record: UserRecord) -> User | None:
        """Know an account made elsewhere (on another node of a cluster, which
        announced it); None when it is known already."""
        if record.id in self._by_id or self.find(record.name) is not None:
            return None
        return self._add(record)

    def _created(self, record: UserRecord) -> User:
        user = self._add(record)
        self.changed(user, "created")
        return user

    def changed(self, user: User, what: str, **details: Any) -> None:
        """``user``'s account changed here (``what``: created, deleted, password,
        tokens, block, unblock, admin, settings, away): tell whoever listens (a
        cluster's other nodes)."""
        if self.on_changed is not None and user.has_account:  # (a guest is this node's)
            self.on_changed(user, what, details)

    def refresh(self, user: User, record: UserRecord, blocks: Iterable[UserBlockRecord]) -> None:
        """Take ``user`` as stored now (another node changed it): the admin flag,
        the settings and the blocks."""
        self._set_admin_flag(user, record.is_admin)
        user.settings = dict(record.settings)
        user.blocked = {block.blocked_id: block.created_at for block in blocks}

    @staticmethod
    def password_changed_elsewhere(user: User) -> None:
        """Another node changed ``user``'s password: a log-in here checked against
        the old one meanwhile fails (see ``authenticate``)."""
        user.password_changes += 2

    def get(self, user_id: int) -> User | None:
        return self._by_id.get(user_id)

    def find(self, name: str) -> User | None:
        return self._by_key.get(names.name_key(name))

    def claimed(self, name: str) -> bool:
        """Whether ``name`` is an account's, or one's being made, or reserved: a
        guest may not take it (see _claiming)."""
        key = names.name_key(name)
        return key in self._by_key or key in self._claimed or names.reserved(name)

    @contextmanager
    def _claiming(self, name: str) -> Iterator[None]:
        """Hold ``name`` while its account is made: checked free of accounts (made
        or being made) and of the name holders, then held until the account is in
        memory. The bcrypt hash and the write are awaited in between: a check
        alone would let a guest take the name meanwhile (claimed() refuses it)."""
        why = names.why_reserved(name)
        if why is not None:
            raise ChatError(Code.NAME_TAKEN,
                            f'the name "{name}" is reserved: {why}. Choose another.')
        if self.claimed(name):
            raise _name_taken(name)
        if any(holder.holds(name) for holder in self.name_holders):
            raise ChatError(Code.NAME_TAKEN, f'the name "{name}" is in use by a guest '
                            "online; choose another.")
        key = names.name_key(name)
        self._claimed.add(key)
        try:
            yield
        finally:
            self._claimed.discard(key)

    def require(self, name: str) -> User:
        user = self.find(name)
        if user is None:
            raise ChatError(Code.NO_SUCH_USER, f'there is no user "{name}".')
        return user

    def guest(self, name: str) -> User | None:
        """The user without an account (an IRC guest) who holds ``name`` now, if any."""
        return next((user for holder in self.name_holders
                     if (user := holder.find(name)) is not None), None)

    def of_member(self, member: Member) -> User | None:
        """The user behind a room's member: its account, or, for a guest (which
        has none), the guest connected under the member's name. None for a
        member gone meanwhile (a deleted account, a guest that quit)."""
        if member.user_id > 0:
            return self.get(member.user_id)
        user = self.guest(member.name)
        # The id tells this guest from a later one that took the freed nick.
        return user if user is not None and user.id == member.user_id else None

    def account(self, name: str, for_guest: str) -> User:
        """The account ``name``. A guest's name is visibly in use (in rooms, in
        /who), so it is refused as what it is (``not-permitted``, ``for_guest``
        saying what a guest cannot be) rather than as no such user."""
        user = self.find(name)
        if user is not None:
            return user
        if self.guest(name) is not None:
            raise ChatError(Code.NOT_PERMITTED,
                            f"{name} is an IRC guest, without an account: {for_guest}")
        return self.require(name)

    def recipient(self, name: str) -> User:
        """The account ``name`` as the recipient of a direct message."""
        return self.account(name, f"direct messages reach guests over IRC only (PRIVMSG "
                                  f"{name}), not from the line protocol or the HTTP API.")

    def all(self) -> list[User]:
        return list(self._by_id.values())

    def admins(self) -> list[User]:
        return list(self._admins)

    @property
    def count(self) -> int:
        return len(self._by_id)

    async def create(self, name: str, password: str, is_admin: bool = False, *,
                     actor: str | None = None) -> User:
        """Create an account and audit it (``actor``: who asked; the new user
        itself when registering, None offline); raises ``invalid-name`` or
        ``name-taken``. Every way in (/register, /useradd, the console,
        ``chatd useradd``) comes here, so none forgets the audit entry."""
        name = _valid_user_name(name)
        _check_password(password)
        with self._claiming(name):
            password_hash = await self._hash(password)
            try:
                record = await self._storage.create_user(name, password_hash, is_admin,
                                                         self._clock.time())
            except Conflict:
                raise _name_taken(name) from None
            user = self._created(record)
        await self._audit.record("account-created", actor=actor, target=user.name,
                                 reason="admin" if is_admin else "")
        return user

    def is_bot(self, name: str) -> bool:
        """Whether ``name`` is a bot's account (False when there is no such account)."""
        user = self.find(name)
        return user is not None and user.is_bot

    def bots_of(self, owner: User | None) -> list[User]:
        """The bots ``owner`` made (every bot when None), by name."""
        return sorted((u for u in self._by_id.values()
                       if u.is_bot and (owner is None or u.owner_id == owner.id)),
                      key=lambda u: names.name_key(u.name))

    async def create_bot(self, name: str, owner: User | None, *, actor: str,
                         quota: int | None = None) -> User:
        """Create a bot account owned by ``owner``: it has no password (tokens only),
        so making it costs no bcrypt. Raises ``invalid-name``, ``name-taken``, or
        ``quota-exceeded`` when ``owner`` has ``quota`` bots already, and
        ``not-permitted`` when ``owner`` is a bot: whoever asks (``/bot create``
        from a bot's login, an operator's ``--owner``), a bot never owns bots, or
        it could make tokens for them as their owner."""
        name = _valid_user_name(name)
        if owner is not None and owner.is_bot:
            raise ChatError(Code.NOT_PERMITTED, f"{owner.name} is a bot, and a bot cannot "
                            "own bots.")
        # The database counts the owner's bots with the insert: creations sent at
        # once, on several connections and through several nodes, are counted one
        # after the other.
        quotas: tuple[Quota, ...] = () if owner is None or quota is None else (
            Quota(Measure.BOTS, owner.id, quota),)
        return await self._create_bot(name, owner, actor, quotas)

    async def _create_bot(self, name: str, owner: User | None, actor: str,
                          quotas: Sequence[Quota]) -> User:
        with self._claiming(name):
            try:
                record = await self._storage.create_user(
                    name, NO_PASSWORD, False, self._clock.time(), kind=BOT_KIND,
                    owner_id=owner.id if owner is not None else None, quotas=quotas)
            except Conflict:
                raise _name_taken(name) from None
            except OverQuota as refused:
                most = refused.quota.most
                raise ChatError(Code.QUOTA_EXCEEDED, f"you have {most} bots already; /bot "
                                "delete one first (a server admin has no limit).",
                                quota=most) from None
            user = self._created(record)
        await self._audit.record("bot-created", actor=actor, target=user.name,
                                 reason=f"owner {owner.name}" if owner is not None else "")
        return user

    async def authenticate(self, name: str, password: str) -> User:
        """The user if the password matches; ``auth-failed`` otherwise."""
        plausible = _plausible(name)
        known = self.find(name) if plausible else None
        # Noted before the stored hash is read: a change of password from here on fails
        # this attempt, so no login with the old password ends after the change.
        changes = known.password_changes if known else 0
        record = await self._storage.get_user_by_name(name) if plausible else None
        secret = password.encode()
        if len(secret) > MAX_PASSWORD_BYTES:
            # No account has such a password (bcrypt refuses them); fail alike.
            record, secret = None, b"too long"
        if record is not None and record.kind == BOT_KIND:
            # A bot has no password: it fails like a wrong one, after the same work.
            record, secret = None, b"a bot"
        stored = record.password_hash if record else await self._dummy()
        matches = await hashing.check(secret, stored)
        user = self.get(record.id) if record else None
        if matches and record is not None and user is None and known is None:
            # Made outside this process while it ran (``chatd useradd`` beside the running
            # nodes of a cluster, writing the database): known from this first login on.
            user = known = self.adopt(record)
        if not matches or user is None or user is not known or user.password_changes != changes:
            raise ChatError(Code.AUTH_FAILED, "wrong name or password.")
        return user

    async def change_password(self, user: User, old: str, new: str) -> None:
        """Replace ``user``'s password (``old`` must match). The caller ends the user's
        other sessions right after, with no await between: logins checked against
        the old password while it was replaced fail (see ``authenticate``)."""
        changes = user.password_changes
        try:
            await self.authenticate(user.name, old)
        except ChatError as exc:
            # The name is the user's own: only the old password can be wrong (or
            # another connection changed it while it was checked).
            raise (_changed_meanwhile() if user.password_changes != changes else
                   ChatError(Code.AUTH_FAILED, "wrong old password.")) from exc
        _check_password(new)
        password_hash = await self._hash(new)
        if user.password_changes != changes:
            # Another connection changed it meanwhile: that change stands.
            raise _changed_meanwhile()
        # Counted before the write, so a concurrent change stops above, and after it,
        # so a login that read the old hash during the write fails.
        user.password_changes += 1
        await self._storage.set_password(user.id, password_hash)
        user.password_changes += 1
        self.changed(user, "password")

    async def delete(self, user: User) -> None:
        await self._storage.delete_user(user.id)
        self.forget(user)
        self.changed(user, "deleted")

    def forget(self, user: User) -> None:
        """Drop a deleted account from memory (deleted here, or on another node)."""
        if self._by_id.get(user.id) is not user:
            return
        del self._by_id[user.id]
        del self._by_key[names.name_key(user.name)]
        self._admins.discard(user)
        for other in self._by_id.values():
            other.blocked.pop(user.id, None)
        for listener in self.on_forgotten:
            listener(user)

    async def block(self, user: User, target: User) -> bool:
        """Refuse ``target``'s direct messages to ``user``; False if they already are."""
        if target is user:
            raise ChatError(Code.NOT_PERMITTED, "you cannot block yourself.")
        async with self.writing(user):
            if target.id in user.blocked:
                return False
            # Each is a row and an entry in memory, and /blocks lists them all. The
            # database counts them with the insert, whatever node blocks at once.
            limit = Quota(Measure.BLOCKS, user.id, self._config.accounts.max_blocks)
            # Taken in memory before the write: direct messages are refused from here on
            # (and accepted again if the write is refused).
            since = user.blocked[target.id] = self._clock.time()
            try:
                added = await self._storage.put_user_block(
                    UserBlockRecord(user.id, target.id, since), (limit,))
            except StorageError as exc:
                user.blocked.pop(target.id, None)
                if isinstance(exc, OverQuota):
                    raise ChatError(Code.QUOTA_EXCEEDED, f"you block {limit.most} users, the "
                                    "most one may.", remedy=Remedy(Step.LIST_BLOCKS),
                                    quota=limit.most) from None
                raise
            if not added:
                # Made through another node that has not told this one yet: in force
                # already, and not counted again (at the limit, it is no refusal).
                return False
        self.changed(user, "block")
        return True

    async def unblock(self, user: User, target: User) -> None:
        """Accept ``target``'s direct messages to ``user`` again."""
        async with self.writing(user):
            since = user.blocked.pop(target.id, None)
            if since is None:
                raise ChatError(Code.BAD_ARGUMENTS, f"you do not block {target.name}.",
                                remedy=Remedy(Step.LIST_BLOCKS))
            try:
                await self._storage.delete_user_block(user.id, target.id)
            except StorageError:
                user.blocked.setdefault(target.id, since)
                raise
        self.changed(user, "unblock")

    def writing(self, user: User) -> AbstractAsyncContextManager[object]:
        """Hold ``user``'s account while its blocks, settings or admin flag are
        written, or read again after another node changed them: one at a time, in
        the order asked (a read never lands between a change in memory and its
        write, which it would undo)."""
        return self._writing.account(user)

    def blocks(self, user: User) -> list[tuple[User, float]]:
        """The accounts ``user`` blocks, with since when, by name."""
        found = ((self._by_id.get(uid), since) for uid, since in user.blocked.items())
        return sorted(((u, since) for u, since in found if u is not None),
                      key=lambda entry: names.name_key(entry[0].name))

    async def set_admin(self, user: User, is_admin: bool) -> None:
        async with self.writing(user):
            await self._storage.set_admin(user.id, is_admin)
            self._set_admin_flag(user, is_admin)
        self.changed(user, "admin")

    def _set_admin_flag(self, user: User, is_admin: bool) -> None:
        user.is_admin = is_admin
        if is_admin:
            self._admins.add(user)
        else:
            self._admins.discard(user)

    async def save_settings(self, user: User, changed: Mapping[str, Any]) -> None:
        """Take ``changed`` into ``user``'s settings and store them."""
        async with self.writing(user):
            user.settings.update(changed)
            await self._storage.merge_user_settings(user.id, dict(changed))
        self.changed(user, "settings")

    async def _dummy(self) -> bytes:
        """The hash a password is checked against when there is no account to check."""
        cost = self._config.accounts.bcrypt_cost
        if self._dummy_cost != cost:
            dummy = await self._hash("-", cost)
            self._dummy_hash, self._dummy_cost = dummy, cost
            return dummy
        return self._dummy_hash

    async def _hash(self, password: str, cost: int | None = None) -> bytes:
        return await hashing.make(password.encode(), cost or self._config.accounts.bcrypt_cost)


# A bot's stored password: no bcrypt hash, so no password can ever match it.
NO_PASSWORD = b"!bot"
MAX_PASSWORD_BYTES = 72  # bcrypt ignores anything past 72 bytes; refuse rather than truncate


def _name_taken(name: str) -> ChatError:
    return ChatError(Code.NAME_TAKEN, f'the name "{name}" is taken; choose another.')


def _check_password(password: str) -> None:
    """4 to MAX_PASSWORD_BYTES bytes of printable text with no space: a password
    must be one word of a /login line (whose words are split at spaces, and whose
    control characters are removed), or the account could never log in. The chat
    commands cannot carry another; chatctl useradd, reading a line of input, could."""
    size = len(password.encode("utf-8", "surrogatepass"))
    if size < 4 or size > MAX_PASSWORD_BYTES or not password.isprintable() or \
            any(char.isspace() for char in password):
        raise ChatError(Code.BAD_ARGUMENTS, f"a password has 4 to {MAX_PASSWORD_BYTES} "
                        "bytes of printable text and no spaces.")


def _valid_user_name(raw: str) -> str:
    """The name of an account about to be made (see names.new_user_name)."""
    try:
        return names.new_user_name(raw)
    except names.InvalidName as exc:
        raise ChatError(Code.INVALID_NAME, str(exc)) from None


def _plausible(name: str) -> bool:
    try:
        names.user_name(name)
    except names.InvalidName:
        return False
    return True


def _changed_meanwhile() -> ChatError:
    return ChatError(Code.AUTH_FAILED, "your password was changed meanwhile on another "
                                       "connection.")
