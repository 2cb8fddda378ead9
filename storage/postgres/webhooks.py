"""SQL for the incoming webhooks of rooms, on PostgreSQL (mixed into PostgresStorage)."""

from __future__ import annotations

from collections.abc import Sequence

from storage.postgres.host import PgHost, refuse_over
from storage.quotas import Quota
from storage.records import WebhookRecord
from storage.webhooks import select_webhooks, webhook_of

_WEBHOOK = select_webhooks()
# The hook just stored, read as the others are (with its token as it is now).
_INSERT = ("WITH made AS (INSERT INTO webhooks (room_id, name, secret_hash, creator_id, "
           "created_at, token_id) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *) "
           + select_webhooks("made"))


class PgWebhookQueries:
    """The ``webhooks`` table, as a mixin of PostgresStorage."""

    async def create_webhook(self: PgHost, room_id: int, name: str, secret_hash: str,
                             creator_id: int, created_at: float,
                             token_id: int | None = None,
                             quotas: Sequence[Quota] = ()) -> WebhookRecord:
        """Store a hook (made with the API token ``token_id``, or None); Conflict if the
        room has one of that name (ignoring case)."""
        async with self._transaction() as conn:
            await refuse_over(conn, quotas)
            row = await conn.fetchrow(_INSERT, room_id, name, secret_hash, creator_id,
                                      created_at, token_id)
        assert row is not None  # an INSERT ... RETURNING returns its row
        return webhook_of(row)

    async def get_webhook(self: PgHost, webhook_id: int) -> WebhookRecord | None:
        row = await self._fetch_one(f"{_WEBHOOK} WHERE w.id = $1", webhook_id)
        return None if row is None else webhook_of(row)

    async def list_webhooks(self: PgHost, room_id: int) -> list[WebhookRecord]:
        rows = await self._fetch(f"{_WEBHOOK} WHERE w.room_id = $1 ORDER BY w.id", room_id)
        return [webhook_of(row) for row in rows]

    async def delete_webhook(self: PgHost, room_id: int, webhook_id: int) -> bool:
        return await self._execute("DELETE FROM webhooks WHERE room_id = $1 AND id = $2",
                                   room_id, webhook_id) > 0
