"""SQL for the tokens an account logs in with, on PostgreSQL (mixed into PostgresStorage).

API tokens (bots, scripts) and resume tokens (logging in again after a restart
without a password check): only SHA-256 hashes of their secrets. Rotating a
resume token is one ``DELETE ... RETURNING`` and one insert in a transaction, so
of two nodes rotating the same token at once only one gets a new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from storage.postgres.host import PgHost, hold_quotas, refuse_over
from storage.quotas import Measure, Quota
from storage.records import (
    ALL_SCOPES,
    API_TOKEN_KIND,
    SESSION_TOKEN_KIND,
    SESSION_TOKENS_KEPT_FIRST,
    ResumeRecord,
    Rotation,
    TokenRecord,
)

if TYPE_CHECKING:
    from storage.postgres.host import PgConnection

_TOKEN = ("id, user_id, name, token_hash, created_at, expires_at, scopes, last_used_at, "
          "kind")
_RESUME = "id, user_id, token_hash, created_at, expires_at, api_token_id, scopes"
_INSERT_RESUME = ("INSERT INTO resume_tokens (user_id, token_hash, created_at, expires_at, "
                  "api_token_id, scopes) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")


class PgTokenQueries:
    """The ``api_tokens`` and ``resume_tokens`` tables, as a mixin of PostgresStorage."""

    # -- API tokens --------------------------------------------------------

    async def create_token(self: PgHost, user_id: int, name: str, token_hash: str,
                           created_at: float, expires_at: float | None,
                           scopes: str = ALL_SCOPES,
                           kind: str = API_TOKEN_KIND,
                           quotas: Sequence[Quota] = ()) -> TokenRecord:
        """Store a token; Conflict if the user has one of that name (ignoring case)."""
        async with self._transaction() as conn:
            await refuse_over(conn, quotas)
            token_id = await conn.fetchval(
                "INSERT INTO api_tokens (user_id, name, token_hash, created_at, expires_at, "
                "scopes, kind) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                user_id, name, token_hash, created_at, expires_at, scopes, kind)
        return TokenRecord(int(token_id), user_id, name, token_hash, created_at, expires_at,
                           scopes, kind=kind)

    async def create_session_token(self: PgHost, user_id: int, name: str,
                                   token_hash: str, created_at: float,
                                   expires_at: float | None, scopes: str, most: int,
                                   keeping: int | None = None
                                   ) -> tuple[TokenRecord, list[TokenRecord]]:
        """A browser tab's token, the account's least recently used ones past ``most``
        deleted first (Storage.create_session_token). The transaction first takes the
        account's advisory lock, as a quota's count does: two made at once, through
        one node or several, pick what to delete one after the other."""
        async with self._transaction() as conn:
            await hold_quotas(conn, (Quota(Measure.SESSION_TOKENS, user_id, most),))
            # (Their resume tokens go with them: ON DELETE CASCADE.)
            rows = await conn.fetch(
                f"DELETE FROM api_tokens WHERE id IN (SELECT id FROM api_tokens "
                f"WHERE user_id = $1 AND kind = $2 "
                f"ORDER BY {SESSION_TOKENS_KEPT_FIRST.format(keeping='$3')} OFFSET $4) "
                f"RETURNING {_TOKEN}",
                user_id, SESSION_TOKEN_KIND, keeping, max(most - 1, 0))
            token_id = await conn.fetchval(
                "INSERT INTO api_tokens (user_id, name, token_hash, created_at, expires_at, "
                "scopes, kind) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                user_id, name, token_hash, created_at, expires_at, scopes, SESSION_TOKEN_KIND)
        made = TokenRecord(int(token_id), user_id, name, token_hash, created_at, expires_at,
                           scopes, kind=SESSION_TOKEN_KIND)
        return made, [TokenRecord(*row) for row in rows]

    async def delete_session_tokens(self: PgHost, user_id: int,
                                    keeping: int | None = None) -> list[TokenRecord]:
        """The account's tabs' tokens deleted, but ``keeping`` (and, by cascade, the
        resume tokens made from them)."""
        async with self._transaction() as conn:
            rows = await conn.fetch(
                f"DELETE FROM api_tokens WHERE user_id = $1 AND kind = $2 "
                f"AND id IS DISTINCT FROM $3 RETURNING {_TOKEN}",
                user_id, SESSION_TOKEN_KIND, keeping)
        return [TokenRecord(*row) for row in rows]

    async def find_token(self: PgHost, token_hash: str) -> TokenRecord | None:
        row = await self._fetch_one(f"SELECT {_TOKEN} FROM api_tokens WHERE token_hash = $1",
                                    token_hash)
        return None if row is None else TokenRecord(*row)

    async def list_tokens(self: PgHost, user_id: int) -> list[TokenRecord]:
        rows = await self._fetch(f"SELECT {_TOKEN} FROM api_tokens WHERE user_id = $1 "
                                 "ORDER BY id", user_id)
        return [TokenRecord(*row) for row in rows]

    async def load_tokens(self: PgHost) -> list[TokenRecord]:
        """Every API token (read once at start: a login then needs no query)."""
        rows = await self._fetch(f"SELECT {_TOKEN} FROM api_tokens ORDER BY id")
        return [TokenRecord(*row) for row in rows]

    async def delete_token(self: PgHost, user_id: int, name: str) -> bool:
        """Delete a token, and the resume tokens made from it (by cascade)."""
        return await self._execute(
            "DELETE FROM api_tokens WHERE user_id = $1 AND chatd_fold(name) = chatd_fold($2)",
            user_id, name) > 0

    async def set_tokens_used(self: PgHost, used: Sequence[tuple[int, float]]) -> None:
        """Record when tokens were last used: (token id, time) pairs, in one statement.
        An older time never replaces a newer one (batches may arrive late)."""
        if not used:
            return
        await self._execute(
            "UPDATE api_tokens t SET last_used_at = GREATEST(COALESCE(t.last_used_at, 0), u.at) "
            "FROM (SELECT id, max(at) AS at FROM unnest($1::bigint[], $2::float8[]) "
            "AS v (id, at) GROUP BY id) u WHERE t.id = u.id",
            [token_id for token_id, _ in used], [at for _, at in used])

    # -- resume tokens -----------------------------------------------------

    async def create_resume_token(self: PgHost, user_id: int, token_hash: str,
                                  created_at: float, expires_at: float,
                                  api_token_id: int | None, scopes: str) -> ResumeRecord:
        token_id = await self._fetch_value(_INSERT_RESUME, user_id, token_hash, created_at,
                                           expires_at, api_token_id, scopes)
        return ResumeRecord(int(token_id), user_id, token_hash, created_at, expires_at,
                            api_token_id, scopes)

    async def rotate_resume_token(self: PgHost, old_id: int, token_hash: str,
                                  created_at: float, expires_at: float) -> ResumeRecord | None:
        """Replace a resume token by a new one of the same account and scopes, in one
        transaction; None when the old one is gone (revoked or rotated meanwhile)."""
        async with self._transaction() as conn:
            (rotated,) = await _rotate(conn, [(old_id, token_hash, created_at, expires_at)])
        return rotated

    async def rotate_resume_tokens(self: PgHost, rotations: Sequence[Rotation]
                                   ) -> list[ResumeRecord | None]:
        """Several rotations (old id, new hash, created, expires) in one transaction,
        each decided by its own ``DELETE ... RETURNING``; results in order."""
        async with self._transaction() as conn:
            return await _rotate(conn, rotations)

    async def load_resume_tokens(self: PgHost, now: float) -> list[ResumeRecord]:
        """The resume tokens that have not expired, oldest first."""
        rows = await self._fetch(f"SELECT {_RESUME} FROM resume_tokens WHERE expires_at > $1 "
                                 "ORDER BY id", now)
        return [ResumeRecord(*row) for row in rows]

    async def find_resume_token(self: PgHost, token_hash: str) -> ResumeRecord | None:
        row = await self._fetch_one(f"SELECT {_RESUME} FROM resume_tokens WHERE token_hash = $1",
                                    token_hash)
        return None if row is None else ResumeRecord(*row)

    async def delete_user_resume_tokens(self: PgHost, user_id: int) -> int:
        return await self._execute("DELETE FROM resume_tokens WHERE user_id = $1", user_id)

    async def delete_resume_tokens(self: PgHost, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        return await self._execute("DELETE FROM resume_tokens WHERE id = ANY($1::bigint[])",
                                   list(ids))

    async def delete_expired_resume_tokens(self: PgHost, now: float) -> int:
        return await self._execute("DELETE FROM resume_tokens WHERE expires_at <= $1", now)

    async def delete_expired_session_tokens(self: PgHost, now: float) -> int:
        # (Their resume tokens go with them: ON DELETE CASCADE.)
        return await self._execute("DELETE FROM api_tokens WHERE kind = $1 AND expires_at <= $2",
                                   SESSION_TOKEN_KIND, now)


async def _rotate(conn: PgConnection, rotations: Sequence[Rotation]) -> list[ResumeRecord | None]:
    """Each rotation: the old token deleted (None if it was gone), the new one inserted."""
    rotated: list[ResumeRecord | None] = []
    for old_id, token_hash, created_at, expires_at in rotations:
        row = await conn.fetchrow(
            f"DELETE FROM resume_tokens WHERE id = $1 RETURNING {_RESUME}", old_id)
        if row is None:
            rotated.append(None)
            continue
        old = ResumeRecord(*row)
        token_id = await conn.fetchval(_INSERT_RESUME, old.user_id, token_hash,
                                       created_at, expires_at, old.api_token_id,
                                       old.scopes)
        rotated.append(ResumeRecord(int(token_id), old.user_id, token_hash, created_at,
                                    expires_at, old.api_token_id, old.scopes))
    return rotated
