"""SQL for the incoming webhooks of rooms, on PostgreSQL (mixed into PostgresStorage)."""

from __future__ import annotations

from storage.postgres.host import PgHost
from storage.records import WebhookRecord

_WEBHOOK = "id, room_id, name, secret_hash, creator_id, created_at"


class PgWebhookQueries:
    """The ``webhooks`` table, as a mixin of PostgresStorage."""

    async def create_webhook(self: PgHost, room_id: int, name: str, secret_hash: str,
                             creator_id: int, created_at: float) -> WebhookRecord:
        """Store a hook; Conflict if the room has one of that name (ignoring case)."""
        webhook_id = await self._fetch_value(
            "INSERT INTO webhooks (room_id, name, secret_hash, creator_id, created_at) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id",
            room_id, name, secret_hash, creator_id, created_at)
        return WebhookRecord(int(webhook_id), room_id, name, secret_hash, creator_id,
                             created_at)

    async def get_webhook(self: PgHost, webhook_id: int) -> WebhookRecord | None:
        row = await self._fetch_one(f"SELECT {_WEBHOOK} FROM webhooks WHERE id = $1",
                                    webhook_id)
        return None if row is None else WebhookRecord(*row)

    async def list_webhooks(self: PgHost, room_id: int) -> list[WebhookRecord]:
        rows = await self._fetch(f"SELECT {_WEBHOOK} FROM webhooks WHERE room_id = $1 "
                                 "ORDER BY id", room_id)
        return [WebhookRecord(*row) for row in rows]

    async def delete_webhook(self: PgHost, room_id: int, webhook_id: int) -> bool:
        return await self._execute("DELETE FROM webhooks WHERE room_id = $1 AND id = $2",
                                   room_id, webhook_id) > 0
