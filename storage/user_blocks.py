"""SQL for users who block another user's direct messages (mixed into SqliteStorage).

Blocks of users, unlike ``storage.blocks`` (blocks of stored message text).
"""

from __future__ import annotations

from collections.abc import Sequence

from storage.host import SqliteHost, refuse_over
from storage.quotas import Quota
from storage.records import UserBlockRecord


class UserBlockQueries:
    """The ``user_blocks`` table, as a mixin of SqliteStorage."""

    async def put_user_block(self: SqliteHost, record: UserBlockRecord,
                             quotas: Sequence[Quota] = ()) -> bool:
        """Store a block; False when it exists already (it keeps its time), which is
        no write and so passes no quota, even one full by then. One write
        transaction at a time (BEGIN IMMEDIATE): what is read here stands."""
        async with self._transaction() as conn:
            found = await conn.execute_fetchall(
                "SELECT 1 FROM user_blocks WHERE user_id = ? AND blocked_id = ?",
                (record.user_id, record.blocked_id))
            if list(found):
                return False
            await refuse_over(conn, quotas)
            cursor = await conn.execute(
                "INSERT INTO user_blocks (user_id, blocked_id, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id, blocked_id) DO NOTHING",
                (record.user_id, record.blocked_id, record.created_at))
            return cursor.rowcount > 0

    async def delete_user_block(self: SqliteHost, user_id: int, blocked_id: int) -> bool:
        return await self._write("DELETE FROM user_blocks WHERE user_id = ? AND blocked_id = ?",
                                 (user_id, blocked_id)) > 0

    async def list_user_blocks(self: SqliteHost, user_id: int) -> list[UserBlockRecord]:
        """The blocks ``user_id`` made."""
        rows = await self._fetch("SELECT user_id, blocked_id, created_at FROM user_blocks "
                                 "WHERE user_id = ? ORDER BY created_at, blocked_id", (user_id,))
        return [UserBlockRecord(*row) for row in rows]

    async def load_user_blocks(self: SqliteHost) -> list[UserBlockRecord]:
        rows = await self._fetch("SELECT user_id, blocked_id, created_at FROM user_blocks "
                                 "ORDER BY user_id, created_at, blocked_id")
        return [UserBlockRecord(*row) for row in rows]
