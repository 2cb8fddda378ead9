"""SQL for the incoming webhooks of rooms (mixed into SqliteStorage)."""

from __future__ import annotations

from storage.host import SqliteHost, rowid
from storage.records import WebhookRecord

_WEBHOOK = "id, room_id, name, secret_hash, creator_id, created_at"


class WebhookQueries:
    """The ``webhooks`` table, as a mixin of SqliteStorage."""

    async def create_webhook(self: SqliteHost, room_id: int, name: str, secret_hash: str,
                             creator_id: int, created_at: float) -> WebhookRecord:
        """Store a hook; Conflict if the room has one of that name (case-insensitive)."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO webhooks (room_id, name, secret_hash, creator_id, created_at) "
                "VALUES (?, ?, ?, ?, ?)", (room_id, name, secret_hash, creator_id, created_at))
            webhook_id = rowid(cursor)
        return WebhookRecord(webhook_id, room_id, name, secret_hash, creator_id, created_at)

    async def get_webhook(self: SqliteHost, webhook_id: int) -> WebhookRecord | None:
        row = await self._fetch_one(f"SELECT {_WEBHOOK} FROM webhooks WHERE id = ?",
                                    (webhook_id,))
        return None if row is None else WebhookRecord(*row)

    async def list_webhooks(self: SqliteHost, room_id: int) -> list[WebhookRecord]:
        rows = await self._fetch(f"SELECT {_WEBHOOK} FROM webhooks WHERE room_id = ? "
                                 "ORDER BY id", (room_id,))
        return [WebhookRecord(*row) for row in rows]

    async def delete_webhook(self: SqliteHost, room_id: int, webhook_id: int) -> bool:
        return await self._write("DELETE FROM webhooks WHERE room_id = ? AND id = ?",
                                 (room_id, webhook_id)) > 0
