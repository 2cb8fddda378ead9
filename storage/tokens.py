"""SQL for the tokens an account logs in with (mixed into SqliteStorage).

API tokens (bots, scripts) and resume tokens (logging in again after a
restart without a password check): only SHA-256 hashes of their secrets.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite

from storage.host import SqliteHost, refuse_over, rowid
from storage.quotas import Quota
from storage.records import (
    ALL_SCOPES,
    API_TOKEN_KIND,
    SESSION_TOKEN_KIND,
    SESSION_TOKENS_KEPT_FIRST,
    ResumeRecord,
    Rotation,
    TokenRecord,
)

_TOKEN = ("id, user_id, name, token_hash, created_at, expires_at, scopes, last_used_at, "
          "kind")
_RESUME = "id, user_id, token_hash, created_at, expires_at, api_token_id, scopes"
_INSERT_RESUME = ("INSERT INTO resume_tokens (user_id, token_hash, created_at, expires_at, "
                  "api_token_id, scopes) VALUES (?, ?, ?, ?, ?, ?)")


class TokenQueries:
    """The ``api_tokens`` and ``resume_tokens`` tables, as a mixin of SqliteStorage."""

    # -- API tokens --------------------------------------------------------

    async def create_token(self: SqliteHost, user_id: int, name: str, token_hash: str,
                           created_at: float, expires_at: float | None,
                           scopes: str = ALL_SCOPES,
                           kind: str = API_TOKEN_KIND,
                           quotas: Sequence[Quota] = ()) -> TokenRecord:
        """Store a token; Conflict if the user has one of that name (case-insensitive)."""
        async with self._transaction() as conn:
            await refuse_over(conn, quotas)
            cursor = await conn.execute(
                "INSERT INTO api_tokens (user_id, name, token_hash, created_at, expires_at, "
                "scopes, kind) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (user_id, name, token_hash, created_at, expires_at, scopes, kind))
            token_id = rowid(cursor)
        return TokenRecord(token_id, user_id, name, token_hash, created_at, expires_at, scopes,
                           kind=kind)

    async def create_session_token(self: SqliteHost, user_id: int, name: str,
                                   token_hash: str, created_at: float,
                                   expires_at: float | None, scopes: str, most: int,
                                   keeping: int | None = None
                                   ) -> tuple[TokenRecord, list[TokenRecord]]:
        """A browser tab's token, the account's least recently used ones past ``most``
        deleted first (Storage.create_session_token). One write transaction: SQLite
        runs them one at a time, so what it picks stands until the insert."""
        async with self._transaction() as conn:
            rows = list(await conn.execute_fetchall(
                f"SELECT {_TOKEN} FROM api_tokens WHERE user_id = ? AND kind = ? "
                f"ORDER BY {SESSION_TOKENS_KEPT_FIRST.format(keeping='?')} LIMIT -1 OFFSET ?",
                (user_id, SESSION_TOKEN_KIND, keeping, max(most - 1, 0))))
            gone = [TokenRecord(*row) for row in rows]
            # (Their resume tokens go with them: ON DELETE CASCADE.)
            await conn.executemany("DELETE FROM api_tokens WHERE id = ?",
                                   [(record.id,) for record in gone])
            cursor = await conn.execute(
                "INSERT INTO api_tokens (user_id, name, token_hash, created_at, expires_at, "
                "scopes, kind) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (user_id, name, token_hash, created_at, expires_at, scopes,
                 SESSION_TOKEN_KIND))
            made = TokenRecord(rowid(cursor), user_id, name, token_hash, created_at,
                               expires_at, scopes, kind=SESSION_TOKEN_KIND)
        return made, gone

    async def delete_session_tokens(self: SqliteHost, user_id: int,
                                    keeping: int | None = None) -> list[TokenRecord]:
        """The account's tabs' tokens deleted, but ``keeping`` (and, by cascade, the
        resume tokens made from them)."""
        async with self._transaction() as conn:
            rows = await conn.execute_fetchall(
                f"DELETE FROM api_tokens WHERE user_id = ? AND kind = ? AND id IS NOT ? "
                f"RETURNING {_TOKEN}", (user_id, SESSION_TOKEN_KIND, keeping))
        return [TokenRecord(*row) for row in rows]

    async def find_token(self: SqliteHost, token_hash: str) -> TokenRecord | None:
        row = await self._fetch_one(f"SELECT {_TOKEN} FROM api_tokens WHERE token_hash = ?",
                                    (token_hash,))
        return None if row is None else TokenRecord(*row)

    async def list_tokens(self: SqliteHost, user_id: int) -> list[TokenRecord]:
        rows = await self._fetch(f"SELECT {_TOKEN} FROM api_tokens WHERE user_id = ? "
                                 "ORDER BY id", (user_id,))
        return [TokenRecord(*row) for row in rows]

    async def load_tokens(self: SqliteHost) -> list[TokenRecord]:
        """Every API token (read once at start: a login then needs no query)."""
        rows = await self._fetch(f"SELECT {_TOKEN} FROM api_tokens ORDER BY id")
        return [TokenRecord(*row) for row in rows]

    async def delete_token(self: SqliteHost, user_id: int, name: str) -> bool:
        """Delete a token, and the resume tokens made from it (by cascade)."""
        count = await self._write("DELETE FROM api_tokens WHERE user_id = ? AND name = ?",
                                  (user_id, name))
        return count > 0

    async def set_tokens_used(self: SqliteHost, used: Sequence[tuple[int, float]]) -> None:
        """Record when tokens were last used: (token id, time) pairs, in one transaction."""
        if not used:
            return
        async with self._transaction() as conn:
            await conn.executemany(
                "UPDATE api_tokens SET last_used_at = max(coalesce(last_used_at, 0), ?) "
                "WHERE id = ?", [(at, token_id) for token_id, at in used])

    # -- resume tokens -----------------------------------------------------

    async def create_resume_token(self: SqliteHost, user_id: int, token_hash: str,
                                  created_at: float, expires_at: float,
                                  api_token_id: int | None, scopes: str) -> ResumeRecord:
        async with self._transaction() as conn:
            cursor = await conn.execute(_INSERT_RESUME, (user_id, token_hash, created_at,
                                                         expires_at, api_token_id, scopes))
            token_id = rowid(cursor)
        return ResumeRecord(token_id, user_id, token_hash, created_at, expires_at,
                            api_token_id, scopes)

    async def rotate_resume_token(self: SqliteHost, old_id: int, token_hash: str,
                                  created_at: float, expires_at: float) -> ResumeRecord | None:
        """Replace a resume token by a new one of the same account and scopes, in one
        transaction; None when the old one is gone (revoked meanwhile)."""
        async with self._transaction() as conn:
            (rotated,) = await _rotate(conn, [(old_id, token_hash, created_at, expires_at)])
        return rotated

    async def rotate_resume_tokens(self: SqliteHost, rotations: Sequence[Rotation]
                                   ) -> list[ResumeRecord | None]:
        """Several rotations (old id, new hash, created, expires) in one transaction:
        a wave of log-ins after a restart commits once, not once per log-in. Each
        result as :meth:`rotate_resume_token`'s, in order."""
        async with self._transaction() as conn:
            return await _rotate(conn, rotations)

    async def load_resume_tokens(self: SqliteHost, now: float) -> list[ResumeRecord]:
        """The resume tokens that have not expired, oldest first."""
        rows = await self._fetch(f"SELECT {_RESUME} FROM resume_tokens WHERE expires_at > ? "
                                 "ORDER BY id", (now,))
        return [ResumeRecord(*row) for row in rows]

    async def find_resume_token(self: SqliteHost, token_hash: str) -> ResumeRecord | None:
        row = await self._fetch_one(f"SELECT {_RESUME} FROM resume_tokens WHERE token_hash = ?",
                                    (token_hash,))
        return None if row is None else ResumeRecord(*row)

    async def delete_user_resume_tokens(self: SqliteHost, user_id: int) -> int:
        return await self._write("DELETE FROM resume_tokens WHERE user_id = ?", (user_id,))

    async def delete_resume_tokens(self: SqliteHost, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        async with self._transaction() as conn:
            cursor = await conn.executemany("DELETE FROM resume_tokens WHERE id = ?",
                                            [(i,) for i in ids])
            return cursor.rowcount

    async def delete_expired_resume_tokens(self: SqliteHost, now: float) -> int:
        return await self._write("DELETE FROM resume_tokens WHERE expires_at <= ?", (now,))

    async def delete_expired_session_tokens(self: SqliteHost, now: float) -> int:
        # (Their resume tokens go with them: ON DELETE CASCADE.)
        return await self._write("DELETE FROM api_tokens WHERE kind = ? AND expires_at <= ?",
                                 (SESSION_TOKEN_KIND, now))


async def _rotate(conn: aiosqlite.Connection,
                  rotations: Sequence[Rotation]) -> list[ResumeRecord | None]:
    """Each rotation: the old token deleted (None if it was gone), the new one inserted."""
    rotated: list[ResumeRecord | None] = []
    for old_id, token_hash, created_at, expires_at in rotations:
        rows = list(await conn.execute_fetchall(
            f"SELECT {_RESUME} FROM resume_tokens WHERE id = ?", (old_id,)))
        if not rows:
            rotated.append(None)
            continue
        old = ResumeRecord(*rows[0])
        await conn.execute("DELETE FROM resume_tokens WHERE id = ?", (old_id,))
        cursor = await conn.execute(_INSERT_RESUME, (old.user_id, token_hash,
                                                     created_at, expires_at,
                                                     old.api_token_id, old.scopes))
        rotated.append(ResumeRecord(rowid(cursor), old.user_id, token_hash, created_at,
                                    expires_at, old.api_token_id, old.scopes))
    return rotated
