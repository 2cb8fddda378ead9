"""Resume tokens: logging in again without a password check.

After a restart every client reconnects at once; with bcrypt at cost 12 a
password check takes about 0.2 s of CPU, so a thousand of them take minutes.
A login may ask for a resume token instead: 32 random bytes, shown to that
client only, stored as a SHA-256 hash, bound to the account (and, after a
token login, to that API token and its scopes), expiring after
``accounts.resume_ttl``. Presenting it logs in at the cost of a hash and one
write, and replaces it by a new one (rotation): each token works once, so a
copy that leaked is worth nothing once its owner has used it.

Every live resume token is held in memory (loaded at start), so checking
one asks the database nothing (a cluster's node looks up a token it does not
hold: another node issued it, and a client that lost its node comes back with
it); the rotation is one transaction. Which of two presentations of one token
logs in is decided in memory, before any await (the token is taken out of the
map; across nodes, by the rotation's delete); the rotations of the log-ins of a moment
are then written together, in one transaction, and each log-in is answered
only once its own rotation is stored (see :class:`_Rotations`). ``/logout``
revokes the session's token, ``/passwd`` all of the account's, revoking the
API token all made from it (the database cascades; memory checks the token).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatd.domain.scopes import loaded, stored
from chatd.domain.tokens import Grant, Tokens, token_hash
from chatd.errors import ChatError, Code

if TYPE_CHECKING:
    from chatd.config import Config
    from chatd.domain.accounts import Accounts, User
    from chatd.domain.clock import Clock
    from storage.api import Storage
    from storage.records import ResumeRecord, Rotation

PREFIX = "chatdr_"
# The most resume tokens an account keeps (one per device or bot process that
# asked); making one more drops the oldest.
MAX_PER_USER = 20


@dataclass(frozen=True, slots=True)
class Issued:
    """A resume token to hand to the client: the secret, when it expires, its id."""

    secret: str
    expires_at: float
    id: int


class ResumeTokens:
    """Issues, redeems (rotating) and revokes resume tokens, all held in memory."""

    def __init__(self, storage: Storage, accounts: Accounts, tokens: Tokens, clock: Clock,
                 config: Config) -> None:
        self._storage = storage
        self._accounts = accounts
        self._tokens = tokens
        self._clock = clock
        self._ttl = config.accounts.resume_ttl
        self._by_hash: dict[str, ResumeRecord] = {}
        # True on a cluster's node: a token this node does not hold may be another's.
        self.shared = False
        self._rotations = _Rotations(storage)
        # A deleted account's resume tokens went with its rows: forgotten here too.
        accounts.on_forgotten.append(self._forget_account)

    def _forget_account(self, user: User) -> None:
        for record in self._of(user):
            self._by_hash.pop(record.token_hash, None)

    def reconfigure(self, config: Config) -> None:
        self._ttl = config.accounts.resume_ttl

    async def load(self) -> None:
        for record in await self._storage.load_resume_tokens(self._clock.time()):
            self._by_hash[record.token_hash] = record

    def count(self, user: User) -> int:
        return len(self._of(user))

    def _of(self, user: User) -> list[ResumeRecord]:
        return sorted((r for r in self._by_hash.values() if r.user_id == user.id),
                      key=lambda r: r.id)

    async def issue(self, grant: Grant) -> Issued:
        """A new resume token for ``grant`` (its account, scopes and API token)."""
        secret = PREFIX + secrets.token_urlsafe(32)
        now = self._clock.time()
        record = await self._storage.create_resume_token(
            grant.user.id, token_hash(secret), now, self._expiry(now, grant.token_id),
            grant.token_id, stored(grant.scopes))
        self._by_hash[record.token_hash] = record
        surplus = self._of(grant.user)[:-MAX_PER_USER]
        if surplus:
            await self._drop(surplus)
        return Issued(secret, record.expires_at, record.id)

    def _expiry(self, now: float, token_id: int | None) -> float:
        """``accounts.resume_ttl`` from now, and never after the API token's own expiry."""
        expires = now + self._ttl
        record = self._tokens.record(token_id) if token_id is not None else None
        if record is not None and record.expires_at is not None:
            expires = min(expires, record.expires_at)
        return expires

    async def redeem(self, secret: str) -> tuple[Grant, Issued]:
        """Log in with a resume token: its grant and the token that replaces it.
        ``auth-failed`` when unknown, used, revoked or expired."""
        # Taken out at once: the same token presented twice at the same time works once.
        hashed = token_hash(secret)
        record = self._by_hash.pop(hashed, None)
        if record is None and self.shared:
            # Issued or rotated by another node of the cluster: its row says. Two
            # presentations of it both find it, and the rotation's delete picks one.
            record = await self._storage.find_resume_token(hashed)
        user = self._accounts.get(record.user_id) if record else None
        if record is None or user is None or not self._valid(record):
            raise _refused()
        now = self._clock.time()
        fresh = PREFIX + secrets.token_urlsafe(32)
        rotated = await self._rotations.rotate(
            (record.id, token_hash(fresh), now, self._expiry(now, record.api_token_id)))
        if rotated is None:  # revoked while it was being rotated
            raise _refused()
        self._by_hash[rotated.token_hash] = rotated
        if record.api_token_id is not None:
            # The API token this one descends from is in use: its last use says so.
            self._tokens.note_use(record.api_token_id)
        grant = Grant(user, loaded(record.scopes), record.api_token_id)
        return grant, Issued(fresh, rotated.expires_at, rotated.id)

    def _valid(self, record: ResumeRecord) -> bool:
        if record.expires_at <= self._clock.time():
            return False
        return record.api_token_id is None or self._tokens.alive(record.api_token_id)

    async def revoke(self, token_id: int) -> bool:
        """Revoke one resume token by its id (a session's, at /logout)."""
        found = [r for r in self._by_hash.values() if r.id == token_id]
        await self._drop(found)
        return bool(found)

    async def revoke_user(self, user: User) -> int:
        """Revoke every resume token of ``user``, wherever it was issued (another
        node of a cluster included: the rows go by account); how many there were."""
        self.forget_user(user)
        return await self._storage.delete_user_resume_tokens(user.id)

    def forget_user(self, user: User) -> None:
        """Drop ``user``'s resume tokens from memory (revoked here or on another node)."""
        for record in self._of(user):
            del self._by_hash[record.token_hash]

    async def _drop(self, records: list[ResumeRecord]) -> None:
        for record in records:
            self._by_hash.pop(record.token_hash, None)
        await self._storage.delete_resume_tokens([r.id for r in records])

    async def expire(self) -> int:
        """Forget the expired ones, in memory and stored; how many rows went."""
        now = self._clock.time()
        for key in [k for k, r in self._by_hash.items() if r.expires_at <= now]:
            del self._by_hash[key]
        return await self._storage.delete_expired_resume_tokens(now)


class _Rotations:
    """Writes the rotations asked for meanwhile in one transaction, one batch at a time.

    The first rotation of a moment starts a writer task; rotations asked for
    while a batch is being written wait for the next one. After a restart every
    client presents its token at once: their rotations take a few commits, not
    one each. A batch that fails fails each of its log-ins (as one rotation's
    failure failed its log-in)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._pending: list[tuple[Rotation, asyncio.Future[ResumeRecord | None]]] = []
        self._writer: asyncio.Task[None] | None = None

    def rotate(self, rotation: Rotation) -> asyncio.Future[ResumeRecord | None]:
        """The stored new token once ``rotation`` is written; None if the old one had gone."""
        done = asyncio.get_running_loop().create_future()
        self._pending.append((rotation, done))
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write())
        return done

    async def _write(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._write_batch(batch)
        finally:
            self._writer = None

    async def _write_batch(self, batch: list[tuple[Rotation, asyncio.Future[ResumeRecord | None]]]
                           ) -> None:
        try:
            rotated = await self._storage.rotate_resume_tokens([r for r, _ in batch])
        except Exception as exc:
            # Each log-in of the batch fails with the storage's error, as its own
            # rotation's failure failed it before.
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        except BaseException:
            for _, done in batch:
                done.cancel()
            raise
        for (_, done), record in zip(batch, rotated, strict=True):
            if not done.done():
                done.set_result(record)


def _refused() -> ChatError:
    return ChatError(Code.AUTH_FAILED, "that resume token is unknown, used, revoked or "
                                       "expired; log in with your password or API token.")
