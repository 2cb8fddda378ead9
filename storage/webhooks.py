"""SQL for the incoming webhooks of rooms (mixed into SqliteStorage)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from storage.host import SqliteHost, refuse_over, rowid
from storage.quotas import Quota
from storage.records import WebhookRecord


def select_webhooks(source: str = "webhooks") -> str:
    """The SELECT of hooks (rows of ``source``, as ``w``) with the API token that
    made each, as that token is now: its expiry, and whether it is gone (revoked:
    the column holds no foreign key, and token ids are never handed out again).
    The same SQL on both backends; :func:`webhook_of` reads its rows."""
    return ("SELECT w.id, w.room_id, w.name, w.secret_hash, w.creator_id, w.created_at, "
            "w.token_id, t.expires_at, w.token_id IS NOT NULL AND t.id IS NULL "
            f"FROM {source} w LEFT JOIN api_tokens t ON t.id = w.token_id")


def webhook_of(row: Iterable[Any]) -> WebhookRecord:
    """The record of a row of :func:`select_webhooks` (SQLite's flag is 0 or 1)."""
    (hook_id, room_id, name, secret, creator_id, created_at, token_id, expires_at,
     gone) = row
    return WebhookRecord(hook_id, room_id, name, secret, creator_id, created_at, token_id,
                         expires_at, bool(gone))


_WEBHOOK = select_webhooks()


class WebhookQueries:
    """The ``webhooks`` table, as a mixin of SqliteStorage."""

    async def create_webhook(self: SqliteHost, room_id: int, name: str, secret_hash: str,
                             creator_id: int, created_at: float,
                             token_id: int | None = None,
                             quotas: Sequence[Quota] = ()) -> WebhookRecord:
        """Store a hook (made with the API token ``token_id``, or None); Conflict if the
        room has one of that name (case-insensitive)."""
        async with self._transaction() as conn:
            await refuse_over(conn, quotas)
            cursor = await conn.execute(
                "INSERT INTO webhooks (room_id, name, secret_hash, creator_id, created_at, "
                "token_id) VALUES (?, ?, ?, ?, ?, ?)",
                (room_id, name, secret_hash, creator_id, created_at, token_id))
            rows = list(await conn.execute_fetchall(f"{_WEBHOOK} WHERE w.id = ?",
                                                    (rowid(cursor),)))
        return webhook_of(rows[0])

    async def get_webhook(self: SqliteHost, webhook_id: int) -> WebhookRecord | None:
        row = await self._fetch_one(f"{_WEBHOOK} WHERE w.id = ?", (webhook_id,))
        return None if row is None else webhook_of(row)

    async def list_webhooks(self: SqliteHost, room_id: int) -> list[WebhookRecord]:
        rows = await self._fetch(f"{_WEBHOOK} WHERE w.room_id = ? ORDER BY w.id", (room_id,))
        return [webhook_of(row) for row in rows]

    async def delete_webhook(self: SqliteHost, room_id: int, webhook_id: int) -> bool:
        return await self._write("DELETE FROM webhooks WHERE room_id = ? AND id = ?",
                                 (room_id, webhook_id)) > 0
