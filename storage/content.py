"""SQL for uploaded files and end-to-end public keys (mixed into SqliteStorage)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from storage.api import BlobWrite
from storage.host import SqliteHost, refuse_over
from storage.quotas import Quota
from storage.records import FileRecord, KeyRecord

if TYPE_CHECKING:
    import aiosqlite

_FILE = ("id, room_id, COALESCE(uploader_id, 0), uploader_name, name, size, mime, sha256, "
         "blob_key, preview, created_at")
_KEY = "user_id, x25519, mlkem, fingerprint, updated_at"
_KEYS_AT_ONCE = 500


async def _drop_if_unused(conn: aiosqlite.Connection, key: str, drop: BlobWrite) -> bool:
    """Drop the blob ``key`` when no row uses it, in the write transaction on
    ``conn``; True when it was dropped."""
    used = list(await conn.execute_fetchall(
        "SELECT 1 FROM files WHERE blob_key = ? LIMIT 1", (key,)))
    if used:
        return False
    await drop(key)
    return True


class ContentQueries:
    """Files and keys, as a mixin of SqliteStorage."""

    # -- files ---------------------------------------------------------------

    async def add_file(self: SqliteHost, record: FileRecord, quotas: Sequence[Quota] = (),
                       ensure: BlobWrite | None = None) -> FileRecord:
        """Store a file's record; the id in ``record`` is ignored and assigned here.
        The blob was put before; ``ensure``, once the quotas passed, makes sure it is
        still there. SQLite runs one write transaction at a time: no deletion of the
        blob comes between that and the row's commit."""
        async with self._transaction() as conn:
            await refuse_over(conn, quotas)
            if ensure is not None:
                await ensure(record.blob_key)
            cursor = await conn.execute(
                "INSERT INTO files (room_id, uploader_id, uploader_name, name, size, mime, "
                "sha256, blob_key, preview, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.room_id, record.uploader_id or None, record.uploader_name, record.name,
                 record.size, record.mime, record.sha256, record.blob_key, record.preview,
                 record.created_at))
            file_id = int(cursor.lastrowid or 0)
        return dataclasses.replace(record, id=file_id)

    async def get_file(self: SqliteHost, file_id: int) -> FileRecord | None:
        rows = await self._fetch(f"SELECT {_FILE} FROM files WHERE id = ?", (file_id,))
        return FileRecord(*rows[0]) if rows else None

    async def list_files(self: SqliteHost, room_id: int) -> list[FileRecord]:
        rows = await self._fetch(f"SELECT {_FILE} FROM files WHERE room_id = ? ORDER BY id",
                                 (room_id,))
        return [FileRecord(*row) for row in rows]

    async def delete_file(self: SqliteHost, file_id: int) -> str | None:
        """Delete a file's record; the blob key it used (its blob is dropped after,
        by ``drop_unused_blob``), None when there was no such record."""
        async with self._transaction() as conn:
            rows = list(await conn.execute_fetchall(
                "DELETE FROM files WHERE id = ? RETURNING blob_key", (file_id,)))
        return str(rows[0][0]) if rows else None

    async def drop_unused_blob(self: SqliteHost, key: str, drop: BlobWrite) -> bool:
        """Drop the blob ``key`` of an upload refused after its put, unless a row uses
        it: in a write transaction, one at a time with the files' own."""
        async with self._transaction() as conn:
            return await _drop_if_unused(conn, key, drop)

    async def used_blobs(self: SqliteHost, keys: Sequence[str]) -> set[str]:
        used: set[str] = set()
        # A few hundred at a time: below any build's limit of bound parameters.
        for start in range(0, len(keys), _KEYS_AT_ONCE):
            some = keys[start:start + _KEYS_AT_ONCE]
            marks = ",".join("?" * len(some))
            rows = await self._fetch(
                f"SELECT DISTINCT blob_key FROM files WHERE blob_key IN ({marks})", list(some))
            used.update(str(row[0]) for row in rows)
        return used

    async def user_file_usage(self: SqliteHost, user_id: int) -> tuple[int, int]:
        rows = await self._fetch("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM files "
                                 "WHERE uploader_id = ?", (user_id,))
        return int(rows[0][0]), int(rows[0][1])

    async def user_files(self: SqliteHost, user_id: int) -> list[FileRecord]:
        """What ``user_file_usage`` counts, the oldest first (/myfiles)."""
        rows = await self._fetch(f"SELECT {_FILE} FROM files WHERE uploader_id = ? ORDER BY id",
                                 (user_id,))
        return [FileRecord(*row) for row in rows]

    async def files_of_terminated_rooms(self: SqliteHost, before: float) -> list[FileRecord]:
        rows = await self._fetch(
            f"SELECT {_FILE} FROM files WHERE room_id IN (SELECT id FROM rooms WHERE "
            "terminated_at IS NOT NULL AND terminated_at < ?) ORDER BY id", (before,))
        return [FileRecord(*row) for row in rows]

    # -- keys ------------------------------------------------------------------

    async def put_user_key(self: SqliteHost, record: KeyRecord) -> None:
        await self._write(
            "INSERT INTO user_keys (user_id, x25519, mlkem, fingerprint, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET x25519 = excluded.x25519, "
            "mlkem = excluded.mlkem, fingerprint = excluded.fingerprint, "
            "updated_at = excluded.updated_at",
            (record.user_id, record.x25519, record.mlkem, record.fingerprint, record.updated_at))

    async def get_user_keys(self: SqliteHost, user_ids: Sequence[int]) -> list[KeyRecord]:
        if not user_ids:
            return []
        marks = ",".join("?" * len(user_ids))
        rows = await self._fetch(
            f"SELECT {_KEY} FROM user_keys WHERE user_id IN ({marks}) ORDER BY user_id",
            list(user_ids))
        return [KeyRecord(*row) for row in rows]
