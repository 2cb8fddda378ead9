"""SQL for uploaded files and end-to-end public keys on PostgreSQL (mixed into
PostgresStorage)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from storage.api import BlobWrite
from storage.postgres.host import PgHost, hold_blob, refuse_over
from storage.quotas import Quota
from storage.records import FileRecord, KeyRecord

if TYPE_CHECKING:
    from storage.postgres.host import PgConnection

_FILE = ("id, room_id, COALESCE(uploader_id, 0), uploader_name, name, size, mime, sha256, "
         "blob_key, preview, created_at")
_KEY = "user_id, x25519, mlkem, fingerprint, updated_at"


async def _drop_if_unused(conn: PgConnection, key: str, drop: BlobWrite) -> bool:
    """Drop the blob ``key`` when no row uses it, in the transaction on ``conn``
    holding the blob's lock; True when it was dropped."""
    if await conn.fetchval("SELECT 1 FROM files WHERE blob_key = $1 LIMIT 1", key) is not None:
        return False
    await drop(key)
    return True


class PgContentQueries:
    """Files and keys, as a mixin of PostgresStorage."""

    async def add_file(self: PgHost, record: FileRecord, quotas: Sequence[Quota] = (),
                       ensure: BlobWrite | None = None) -> FileRecord:
        """Store a file's record; the id in ``record`` is ignored and assigned here.
        The blob was put before; ``ensure``, once the quotas passed, makes sure it is
        still there. The blob's lock, taken first, keeps a deletion of the blob
        through any node from coming between that and the row's commit."""
        async with self._transaction() as conn:
            await hold_blob(conn, record.blob_key)
            await refuse_over(conn, quotas)
            if ensure is not None:
                await ensure(record.blob_key)
            file_id = await conn.fetchval(
                "INSERT INTO files (room_id, uploader_id, uploader_name, name, size, mime, "
                "sha256, blob_key, preview, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                record.room_id, record.uploader_id or None, record.uploader_name,
                record.name, record.size, record.mime, record.sha256, record.blob_key,
                record.preview, record.created_at)
        return dataclasses.replace(record, id=int(file_id))

    async def get_file(self: PgHost, file_id: int) -> FileRecord | None:
        row = await self._fetch_one(f"SELECT {_FILE} FROM files WHERE id = $1", file_id)
        return None if row is None else FileRecord(*row)

    async def list_files(self: PgHost, room_id: int) -> list[FileRecord]:
        rows = await self._fetch(f"SELECT {_FILE} FROM files WHERE room_id = $1 ORDER BY id",
                                 room_id)
        return [FileRecord(*row) for row in rows]

    async def delete_file(self: PgHost, file_id: int) -> str | None:
        """Delete a file's record; the blob key it used (its blob is dropped after,
        by ``drop_unused_blob``, under the blob's lock), None when there was no such
        record (or another node deleted it first)."""
        key = await self._fetch_value("DELETE FROM files WHERE id = $1 RETURNING blob_key",
                                      file_id)
        return None if key is None else str(key)

    async def drop_unused_blob(self: PgHost, key: str, drop: BlobWrite) -> bool:
        """Drop the blob ``key`` of an upload refused after its put, unless a row uses
        it: under its lock, as a deletion does."""
        async with self._transaction() as conn:
            await hold_blob(conn, key)
            return await _drop_if_unused(conn, key, drop)

    async def used_blobs(self: PgHost, keys: Sequence[str]) -> set[str]:
        rows = await self._fetch("SELECT DISTINCT blob_key FROM files "
                                 "WHERE blob_key = ANY($1::text[])", list(keys))
        return {str(row[0]) for row in rows}

    async def user_file_usage(self: PgHost, user_id: int) -> tuple[int, int]:
        row = await self._fetch_one(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM files WHERE uploader_id = $1", user_id)
        assert row is not None
        return int(row[0]), int(row[1])

    async def user_files(self: PgHost, user_id: int) -> list[FileRecord]:
        """What ``user_file_usage`` counts, the oldest first (/myfiles)."""
        rows = await self._fetch(
            f"SELECT {_FILE} FROM files WHERE uploader_id = $1 ORDER BY id", user_id)
        return [FileRecord(*row) for row in rows]

    async def files_of_terminated_rooms(self: PgHost, before: float) -> list[FileRecord]:
        rows = await self._fetch(
            f"SELECT {_FILE} FROM files WHERE room_id IN (SELECT id FROM rooms WHERE "
            "terminated_at IS NOT NULL AND terminated_at < $1) ORDER BY id", before)
        return [FileRecord(*row) for row in rows]

    async def put_user_key(self: PgHost, record: KeyRecord) -> None:
        await self._execute(
            f"INSERT INTO user_keys ({_KEY}) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (user_id) DO UPDATE SET x25519 = excluded.x25519, "
            "mlkem = excluded.mlkem, fingerprint = excluded.fingerprint, "
            "updated_at = excluded.updated_at",
            record.user_id, record.x25519, record.mlkem, record.fingerprint, record.updated_at)

    async def get_user_keys(self: PgHost, user_ids: Sequence[int]) -> list[KeyRecord]:
        if not user_ids:
            return []
        rows = await self._fetch(f"SELECT {_KEY} FROM user_keys WHERE user_id = ANY($1::bigint[]) "
                                 "ORDER BY user_id", list(user_ids))
        return [KeyRecord(*row) for row in rows]
