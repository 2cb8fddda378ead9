"""API tokens, so a bot logs in without storing a password.

A token is 32 random bytes shown once at creation; only its SHA-256 is
stored. Tokens carry an optional expiry and are revoked by name.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from chatd.errors import ChatError, Code, Remedy, Step
from storage.api import Conflict

if TYPE_CHECKING:
    from chatd.domain.accounts import Accounts, User
    from chatd.domain.clock import Clock
    from storage.api import Storage
    from storage.records import TokenRecord

PREFIX = "chatd_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    """Issues, lists, revokes and checks API tokens."""

    def __init__(self, storage: Storage, accounts: Accounts, clock: Clock) -> None:
        self._storage = storage
        self._accounts = accounts
        self._clock = clock

    async def create(self, user: User, name: str, ttl: float | None) -> tuple[str, TokenRecord]:
        """A new token: the secret (to show once) and its stored record."""
        secret = PREFIX + secrets.token_urlsafe(32)
        now = self._clock.time()
        try:
            record = await self._storage.create_token(user.id, name, token_hash(secret), now,
                                                      now + ttl if ttl else None)
        except Conflict:
            raise ChatError(Code.NAME_TAKEN, f'you already have a token named "{name}".',
                            remedy=Remedy(Step.REVOKE_TOKEN)) from None
        return secret, record

    async def list(self, user: User) -> list[TokenRecord]:
        return await self._storage.list_tokens(user.id)

    async def count_valid(self, user: User) -> int:
        """How many of ``user``'s tokens can log in now (not expired)."""
        now = self._clock.time()
        return sum(1 for r in await self._storage.list_tokens(user.id)
                   if r.expires_at is None or r.expires_at > now)

    async def revoke(self, user: User, name: str) -> None:
        if not await self._storage.delete_token(user.id, name):
            raise ChatError(Code.NO_SUCH_TOKEN, f'you have no token named "{name}".')

    async def authenticate(self, secret: str, name: str | None = None) -> User:
        """The token's user; ``auth-failed`` when unknown, expired or not ``name``'s."""
        record = await self._storage.find_token(token_hash(secret))
        user = self._accounts.get(record.user_id) if record else None
        expired = record is not None and record.expires_at is not None and \
            record.expires_at <= self._clock.time()
        if user is None or expired or (name is not None and user.name.lower() != name.lower()):
            raise ChatError(Code.AUTH_FAILED, "wrong name or token.")
        return user
