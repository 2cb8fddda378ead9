"""API tokens, so a bot logs in without storing a password.

A token is 32 random bytes shown once at creation; only its SHA-256 is
stored. Tokens carry the scopes they grant (chatd.domain.scopes), an
optional expiry, and the time they were last used; they are revoked by name.

Every token is read into memory at start, so a token login asks the database
nothing. On a cluster's node, a token made or revoked on another node is
reloaded when that node announces it, and a token this node does not hold yet
is looked up in the database. The last use is noted in memory and written in batches
(:meth:`Tokens.flush_use`, every few seconds and at shutdown), never once per
login: a bot that reconnects in a loop costs no writes.

A token that is revoked or expires ends the connections logged in with it (or
with a resume token made from it): each names its token, and
:class:`TokenSessions` watches the expiries.

A token has a kind, set by what makes it: an ``api`` token is one a user makes
for a script or a bot (``/token create``, ``/bot``), a ``session`` token one
the web client makes for a browser tab (``/token create ... --session``), to
log the tab in again. A webhook made from a session logged in with an ``api``
token lives as long as that token (chatd.domain.webhooks); one made with a
``session`` token lives as its account, as a password session's does: the tab
logging out (which revokes its token) must not end what its user made there.
An account's ``session`` tokens are not counted among its MAX_TOKENS: they have
their own bound (``accounts.max_session_tokens``), past which a new one revokes
the least recently used rather than being refused.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import re
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from chatd.domain import names
from chatd.domain.scopes import ALL_SCOPES, DEFAULT_SCOPES, Scope, loaded, stored
from chatd.errors import ChatError, Code, Remedy, Step
from storage.api import Conflict, OverQuota, Refused, StorageError
from storage.quotas import Measure, Quota
from storage.records import API_TOKEN_KIND, SESSION_TOKEN_KIND

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from chatd.config import Config
    from chatd.domain.accounts import Accounts, User
    from chatd.domain.clock import Clock
    from storage.api import Storage
    from storage.records import TokenRecord

log = logging.getLogger(__name__)

PREFIX = "chatd_"
# The 32 random bytes of a token, in base64url without padding.
_SECRET_CHARS = 43
_TOKEN_FORM = re.compile(rf"{PREFIX}[A-Za-z0-9_-]{{{_SECRET_CHARS}}}")
# A token's name: a word that lists, logs and commands show as it is.
NAME_MAX = 32
# The most API tokens an account (a person or a bot) may hold. Each is kept in
# memory and listed whole; without a bound an account could make them until the
# daemon's memory gave out (resume tokens are bounded too, bots per owner as well).
MAX_TOKENS = 100
# The most session tokens (browser tabs') an account keeps unless configured
# (accounts.max_session_tokens): they are not counted among MAX_TOKENS, and one
# more revokes the least recently used instead of being refused.
MAX_SESSION_TOKENS = 20
_NAME = re.compile(rf"[A-Za-z0-9._-]{{1,{NAME_MAX}}}")
# What a token is made for, as stored (storage.records): a script's or a bot's
# (API_KIND), or a browser tab's (SESSION_KIND).
API_KIND = API_TOKEN_KIND
SESSION_KIND = SESSION_TOKEN_KIND


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(secret: str) -> bool:
    """Whether ``secret`` has the form of an API token (what :meth:`Tokens.create`
    makes), so a login that takes a password or a token can tell them apart."""
    return _TOKEN_FORM.fullmatch(secret) is not None


@dataclass(frozen=True, slots=True)
class _Row:
    """What a token is made of before it is stored: whose, its secret, lifetime,
    scopes and kind, the token the session asking logged in with (kept), and the
    latest it may expire (``not_after``: that token's expiry, if it has one)."""

    user: User
    secret: str
    ttl: float | None
    scopes: frozenset[Scope]
    kind: str
    keeping: int | None
    not_after: float | None = None

    def capped(self, now: float) -> bool:
        """Whether the lifetime asked for, made at ``now``, would outlive ``not_after``
        (a token made with a token must not outlive it: a leaked short-lived token
        would otherwise mint a permanent one)."""
        return self.not_after is not None and (
            not self.ttl or now + self.ttl > self.not_after)

    def expiry(self, now: float) -> float | None:
        """When the token expires, made at ``now``: its ttl's end, no later than
        ``not_after``."""
        if self.capped(now):
            return self.not_after
        return now + self.ttl if self.ttl else None


# A token stored, and the session tokens revoked to make room for it.
_Made = tuple["TokenRecord", list["TokenRecord"]]


@dataclass(frozen=True, slots=True)
class Minted:
    """A new token: its secret (shown once), its record, and the account's session
    tokens revoked to make room for it (a tab's token past the bound), whose names
    the reply tells, as nobody chose to revoke them."""

    secret: str
    record: TokenRecord
    revoked: tuple[TokenRecord, ...] = ()
    # Whether its expiry was cut to the expiry of the token the asking session
    # logged in with (the lifetime asked for, or none, would have outlived it).
    capped: bool = False


@dataclass(frozen=True, slots=True)
class Grant:
    """Who a login is, and what it may do: every scope for a password login,
    the token's for a token login (``token_id``: that API token)."""

    user: User
    scopes: frozenset[Scope] = ALL_SCOPES
    token_id: int | None = None


class TokenSessions:
    """What ends the connections logged in with an API token (or with a resume token
    made from it): whether a log-in may still use a token, and when the next of the
    tokens in use expires.

    The connections themselves name their token (``Endpoint.token_id``); a
    revocation or an expiry, both rare, finds them by a pass over the sessions
    (chatd.domain.presence), so a log-in adds no entry to any index."""

    def __init__(self, tokens: Tokens) -> None:
        self._tokens = tokens
        # The earliest expiry among the tokens logged in with: the sweep looks no
        # further till then.
        self._due = math.inf

    def admits(self, token_id: int) -> bool:
        """Whether a connection may log in with that token now: it is held and alive
        (revoked or expired since it was checked: no), or, on a cluster's node, it is
        not held here yet (made on another node a moment ago)."""
        if self._tokens.record(token_id) is None:
            return self._tokens.shared
        return self._tokens.alive(token_id)

    def add(self, token_id: int) -> None:
        """A connection logged in with that token: its expiry, if any, is watched."""
        record = self._tokens.record(token_id)
        if record is not None and record.expires_at is not None:
            self._due = min(self._due, record.expires_at)

    def due(self, now: float) -> bool:
        """Whether a token logged in with may have expired by ``now``."""
        return now >= self._due

    def expired(self, now: float, in_use: set[int]) -> list[TokenRecord]:
        """Of the tokens ``in_use`` (by connections), those expired by ``now``; the
        next expiry among the others is watched."""
        held = [r for i in in_use if (r := self._tokens.record(i)) is not None]
        gone = [r for r in held if r.expires_at is not None and r.expires_at <= now]
        self._due = min((r.expires_at for r in held
                         if r.expires_at is not None and r.expires_at > now), default=math.inf)
        return gone


class Tokens:
    """Issues, lists, revokes and checks API tokens (all of them held in memory)."""

    def __init__(self, storage: Storage, accounts: Accounts, clock: Clock) -> None:
        self._storage = storage
        self._accounts = accounts
        self._clock = clock
        self._by_hash: dict[str, TokenRecord] = {}
        self._by_id: dict[int, TokenRecord] = {}
        # Last use by token id, of those not yet written; once written, a token's
        # record holds it (no second map: it cost each held connection ~60 bytes).
        self._unwritten: dict[int, float] = {}
        # The time uses are noted with, to the second: one float for the log-ins of
        # that second (a wave of 10,000 held 10,000 floats until the next write).
        self._use_time = -math.inf
        # True on a cluster's node: a token this node does not hold may be another's.
        self.shared = False
        # How many session tokens an account keeps (accounts.max_session_tokens): set
        # from the configuration (reconfigure), at start and reload.
        self.max_sessions = MAX_SESSION_TOKENS
        self.sessions = TokenSessions(self)
        # Told (the record, and False: not expired) when a token this process held
        # is revoked here or on another node: its connections are closed.
        self.on_revoked: Callable[[TokenRecord, bool], object] | None = None
        accounts.on_forgotten.append(self._forget_account)

    def reconfigure(self, config: Config) -> None:
        self.max_sessions = config.accounts.max_session_tokens

    async def load(self) -> None:
        for record in await self._storage.load_tokens():
            self._remember(record)

    def _remember(self, record: TokenRecord) -> None:
        self._by_hash[record.token_hash] = record
        self._by_id[record.id] = record

    def _forget(self, record: TokenRecord, revoked: bool = True) -> None:
        self._by_hash.pop(record.token_hash, None)
        self._by_id.pop(record.id, None)
        self._unwritten.pop(record.id, None)
        if revoked and self.on_revoked is not None:
            self.on_revoked(record, False)

    def _forget_account(self, user: User) -> None:
        """A deleted account's tokens went with its rows: they leave memory too, where
        they would otherwise stay until someone tried to log in with them. (Not told
        as revocations: the deletion closes the account's connections itself.)"""
        for record in self.of(user):
            self._forget(record, revoked=False)

    async def create(self, user: User, name: str | None, ttl: float | None,
                     scopes: frozenset[Scope] = DEFAULT_SCOPES,
                     kind: str = API_KIND,
                     keeping: int | None = None) -> tuple[str, TokenRecord]:
        """A new token of ``kind`` (see :meth:`mint`): the secret (to show once) and its
        stored record."""
        minted = await self.mint(user, name, ttl, scopes, kind, keeping)
        return minted.secret, minted.record

    async def mint(self, user: User, name: str | None, ttl: float | None,
                   scopes: frozenset[Scope] = DEFAULT_SCOPES,
                   kind: str = API_KIND,
                   keeping: int | None = None, not_after: float | None = None) -> Minted:
        """A new token of ``kind``, and the tokens revoked to make room for it.
        Without a ``name``, the first of ``token2``, ``token3`` ... that ``user`` has
        none of. A ``session`` token past the account's ``max_sessions`` revokes the
        least recently used of them, never ``keeping`` (the token the session asking
        logged in with): a revocation like ``/token revoke``'s. It expires no later
        than ``not_after`` (see :meth:`expiry_of`), whatever ``ttl`` asks."""
        if name is not None and _NAME.fullmatch(name) is None:
            raise ChatError(Code.BAD_ARGUMENTS, f"a token's name is 1-{NAME_MAX} letters, "
                            f"digits, '.', '_' or '-', not {names.quoted(name)}.")
        secret = PREFIX + secrets.token_urlsafe(32)
        row = _Row(user, secret, ttl, scopes, kind, keeping, not_after)
        # Made under the account's lock, and counted by the database with the insert:
        # creations sent at once on several connections, through one node or several,
        # are counted one after the other.
        async with self._accounts.writing(user):
            if name is not None:
                record, revoked = await self._insert(row, name)
            else:
                record, revoked = await self._insert_fresh(row)
            self._remember(record)
            for gone in revoked:
                self._forget(gone)
        # Those revoked to make room travel with the news, as a revocation's do.
        news = {"revoked": [r.id for r in revoked]} if revoked else {}
        self._accounts.changed(user, "tokens", **news)
        return Minted(secret, record, tuple(revoked), row.capped(record.created_at))

    async def _insert_fresh(self, row: _Row) -> _Made:
        """The row of a token asked for without a name, named the first free of
        ``token2``, ``token3`` ... Chosen under the account's lock: two picked at once
        on this node would be the same name. A cluster's other nodes pick theirs
        from what they hold: a name taken there a moment ago is chosen again from
        the stored tokens, until one is free (each taken one is a token more, so
        the quota ends the search)."""
        stored: list[TokenRecord] = []
        for _ in range(MAX_TOKENS):
            name = self._fresh_name(row.user, stored)
            try:
                return await self._insert(row, name, named=False)
            except Conflict:
                stored = await self._storage.list_tokens(row.user.id)
        raise ChatError(Code.NAME_TAKEN, f'{row.user.name} already has a token named '
                        f'"{name}".', remedy=Remedy(Step.REVOKE_TOKEN))

    async def _insert(self, row: _Row, name: str, named: bool = True) -> _Made:
        """The token's row, counted by the database with the insert: creations sent at
        once on several connections, through one node or several, are counted one
        after the other; and the session tokens that made room for it. ``named``: the
        name is the user's (a Conflict is theirs to hear, ``name-taken``); else it
        raises Conflict."""
        user = row.user
        try:
            return await self._stored(row, name)
        except OverQuota:
            raise ChatError(Code.QUOTA_EXCEEDED, f"{user.name} has {MAX_TOKENS} API "
                            "tokens already; revoke one first.", quota=MAX_TOKENS) from None
        except Conflict:
            if not named:
                raise
            raise ChatError(Code.NAME_TAKEN, f'you already have a token named "{name}".',
                            remedy=Remedy(Step.REVOKE_TOKEN)) from None
        except Refused:
            # The one other rule of the row: its account exists. It was deleted
            # while the token was being made (/bot delete sent at the same time).
            raise ChatError(Code.NO_SUCH_USER, f'there is no user "{user.name}": the '
                            "account was deleted.") from None

    async def _stored(self, row: _Row, name: str) -> _Made:
        """Store the token: an ``api`` one refused past MAX_TOKENS (OverQuota), a
        ``session`` one making room among its account's by revoking the least
        recently used, in the insert's transaction (a tab that logs in must get a
        token, and its user would not know which of many made-up names to revoke)."""
        now = self._clock.time()
        user_id, hashed = row.user.id, token_hash(row.secret)
        expires = row.expiry(now)
        if row.kind == SESSION_KIND:
            # The uses this node noted go first, so the least recently used is picked
            # by them too (a cluster's other nodes write theirs every 30 seconds).
            await self.flush_use()
            return await self._storage.create_session_token(
                user_id, name, hashed, now, expires, stored(row.scopes), self.max_sessions,
                row.keeping)
        record = await self._storage.create_token(
            user_id, name, hashed, now, expires, stored(row.scopes), row.kind,
            (Quota(Measure.TOKENS, user_id, MAX_TOKENS),))
        return record, []

    async def expire_sessions(self) -> int:
        """Delete the browser tabs' tokens that have expired (housekeeping); how many
        went. The web client makes one at each log-in of a tab, under a made-up
        name: kept once expired, one serves nothing (no webhook lives by it, its
        connections were closed when it expired, its resume tokens go with it) but
        counts against the account's MAX_TOKENS, and its user would have to revoke
        each by name to make room. A script's (``api``) token is kept: its name is
        its user's, and its webhooks say why they are dead."""
        now = self._clock.time()
        gone = [r for r in self._by_id.values() if r.kind == SESSION_KIND
                and r.expires_at is not None and r.expires_at <= now]
        deleted = await self._storage.delete_expired_session_tokens(now)
        for record in gone:
            self._forget(record, revoked=False)
        # A cluster's other nodes read the accounts' tokens again (the rows are gone).
        for user_id in {r.user_id for r in gone}:
            owner = self._accounts.get(user_id)
            if owner is not None:
                self._accounts.changed(owner, "tokens")
        return deleted

    def of(self, user: User) -> list[TokenRecord]:
        """``user``'s tokens, oldest first (from memory)."""
        return sorted((r for r in self._by_id.values() if r.user_id == user.id),
                      key=lambda r: r.id)

    def last_used(self, record: TokenRecord) -> float | None:
        unwritten = self._unwritten.get(record.id)
        if unwritten is not None:
            return unwritten
        return self._by_id.get(record.id, record).last_used_at

    @staticmethod
    def scopes(record: TokenRecord) -> frozenset[Scope]:
        return loaded(record.scopes)

    async def count_valid(self, user: User) -> int:
        """How many of ``user``'s tokens can log in now (not expired)."""
        return sum(1 for r in self.of(user) if self._alive(r))

    def record(self, token_id: int) -> TokenRecord | None:
        return self._by_id.get(token_id)

    def alive(self, token_id: int) -> bool:
        """Whether the token of that id exists and has not expired."""
        record = self._by_id.get(token_id)
        return record is not None and self._alive(record)

    async def kind_of(self, user: User, token_id: int) -> str:
        """The kind of ``user``'s token ``token_id``: as held here, or, on a cluster's
        node, as stored when it was made on another node a moment ago and is not
        held yet. A token gone meanwhile (revoked) counts as an ``api`` one: what
        is made with it then dies with it, as a script's would."""
        record = await self._held_or_stored(user, token_id)
        return record.kind if record is not None else API_KIND

    async def _held_or_stored(self, user: User, token_id: int) -> TokenRecord | None:
        """``user``'s token ``token_id`` as held here, or, on a cluster's node, as
        stored when it was made on another node a moment ago and is not held yet."""
        record = self._by_id.get(token_id)
        if record is None and self.shared:
            record = next((r for r in await self._storage.list_tokens(user.id)
                           if r.id == token_id), None)
        return record

    async def expiry_of(self, user: User, token_id: int | None) -> float | None:
        """When the token a session of ``user`` logged in with (``token_id``; None: a
        password) expires: what that session makes with it may not last longer.
        None when it never expires, or there is none. On a cluster's node, a token
        made on another node a moment ago and not held here yet is read as stored."""
        if token_id is None:
            return None
        record = await self._held_or_stored(user, token_id)
        return record.expires_at if record is not None else None

    async def tying(self, user: User, token_id: int | None) -> int | None:
        """The token a webhook made now by a session of ``user`` logged in with
        ``token_id`` (None: with a password) lives as long as: that token, when it
        is a script's (``api``); None, when it is a browser tab's (``session``) or
        there is none, and the hook lives as the account."""
        if token_id is None or await self.kind_of(user, token_id) == SESSION_KIND:
            return None
        return token_id

    def _alive(self, record: TokenRecord) -> bool:
        return record.expires_at is None or record.expires_at > self._clock.time()

    def _fresh_name(self, user: User, stored: Iterable[TokenRecord] = ()) -> str:
        """``token2``, ``token3`` ...: the first name none of ``user``'s tokens has, as
        held here and as ``stored`` (read from the database) has them."""
        taken = {r.name.lower() for r in (*self.of(user), *stored)}
        return next(f"token{n}" for n in itertools.count(2) if f"token{n}" not in taken)

    def named(self, user: User, name: str) -> list[TokenRecord]:
        """``user``'s token called ``name`` (names ignore case), as held here."""
        return [r for r in self.of(user) if r.name.lower() == name.lower()]

    async def revoke(self, user: User, name: str) -> None:
        """Delete ``user``'s token ``name`` (and, with it, the resume tokens made from it)."""
        found = self.named(user, name)
        # The row decides (on a cluster's node, a token made elsewhere a moment ago
        # may not be held here yet).
        if not await self._storage.delete_token(user.id, name):
            raise ChatError(Code.NO_SUCH_TOKEN, f'you have no token named "{name}".',
                            remedy=Remedy(Step.LIST_TOKENS))
        for record in found:
            self._forget(record)
        # The ids travel with the news: another node closes the token's connections
        # from the announcement itself, not only after reading the tokens again.
        self._accounts.changed(user, "tokens", revoked=[r.id for r in found])

    async def revoke_sessions(self, user: User, keeping: int | None) -> int:
        """Delete ``user``'s browser tabs' tokens but ``keeping`` (the one the asking
        session logged in with), as :meth:`revoke` deletes one; how many went. A
        changed password ends the tabs logged in with the old one: a tab that logged
        itself in again with its token would outlive the change."""
        gone = await self._storage.delete_session_tokens(user.id, keeping)
        for record in gone:
            self._forget(record)
        if gone:
            self._accounts.changed(user, "tokens", revoked=[r.id for r in gone])
        return len(gone)

    def revoked_elsewhere(self, token_ids: list[int]) -> None:
        """Another node revoked these tokens: they stop logging in here, and their
        connections here are closed, before this node reads the account again."""
        for token_id in token_ids:
            record = self._by_id.get(token_id)
            if record is not None:
                self._forget(record)

    async def reload(self, user: User) -> None:
        """Take ``user``'s tokens as stored now: another node created or revoked one
        (a revoked token stops logging in here as soon as this node hears of it)."""
        stored = {record.id: record for record in await self._storage.list_tokens(user.id)}
        for record in self.of(user):
            if record.id not in stored:
                self._forget(record)
        for record in stored.values():
            held = self._by_id.get(record.id)
            if held is None or (held.last_used_at or 0) <= (record.last_used_at or 0):
                self._remember(record)

    async def authenticate(self, secret: str, name: str | None = None) -> Grant:
        """The token's user and scopes; ``auth-failed`` when unknown, expired or not
        ``name``'s. Asks the database nothing (a cluster's node: only for a token
        it does not hold)."""
        hashed = token_hash(secret)
        record = self._by_hash.get(hashed)
        if record is None and self.shared:
            # Made on another node a moment ago, before its announcement arrived.
            # Not kept: a revocation reloaded during the await would not remove it
            # (the announcement's reload brings it in a moment).
            record = await self._storage.find_token(hashed)
        user = self._accounts.get(record.user_id) if record else None
        if record is not None and user is None:
            self._forget(record)  # its account was deleted (the row went with it)
        if record is None or user is None or not self._alive(record) or \
                (name is not None and user.name.lower() != name.lower()):
            raise ChatError(Code.AUTH_FAILED, "wrong name or token.")
        self.note_use(record.id)
        return Grant(user, loaded(record.scopes), record.id)

    def note_use(self, token_id: int) -> None:
        """Note that the token ``token_id`` logged in now: itself, or through a resume
        token made from it (a bot that resumes daily uses its token daily). In memory;
        :meth:`flush_use` writes it."""
        now = self._clock.time()
        if now - self._use_time >= 1.0:
            self._use_time = now
        self._unwritten[token_id] = self._use_time

    async def flush_use(self) -> int:
        """Write the last uses noted since the previous flush; how many tokens."""
        batch, self._unwritten = self._unwritten, {}
        try:
            await self._storage.set_tokens_used(list(batch.items()))
        except StorageError:
            log.warning("could not record token use; will try again", exc_info=True)
            for token_id, at in batch.items():
                self._unwritten.setdefault(token_id, at)
            return 0
        for token_id, at in batch.items():
            record = self._by_id.get(token_id)
            if record is not None:  # (not revoked meanwhile)
                latest = max(at, record.last_used_at or at)
                self._remember(replace(record, last_used_at=latest))
        return len(batch)
