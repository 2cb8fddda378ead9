"""What SqliteStorage's query mixins need from it: transactions and queries."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

import aiosqlite

from storage.api import OverQuota, StorageError
from storage.quotas import Quota

T = TypeVar("T")


class SqliteHost(Protocol):
    """The transaction and query plumbing SqliteStorage provides to its mixins."""

    def _transaction(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
    async def _in_one_step(self, work: Callable[[sqlite3.Connection], T]) -> T: ...
    def _reading(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
    async def _write(self, sql: str, params: Sequence[Any] = ()) -> int: ...
    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]: ...
    async def _fetch_one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None: ...


async def refuse_over(conn: aiosqlite.Connection, quotas: Sequence[Quota]) -> None:
    """Refuse the write of the transaction on ``conn`` that would pass one of
    ``quotas`` (``OverQuota``). SQLite runs one write transaction at a time from
    its ``BEGIN IMMEDIATE``: what is counted here stands until the insert."""
    for quota in quotas:
        rows = list(await conn.execute_fetchall(quota.measure.counting("?1", "?2"),
                                                quota.arguments))
        held = int(rows[0][0])
        if quota.passed_by(held):
            raise OverQuota(quota, held)


def rowid(cursor: aiosqlite.Cursor) -> int:
    """The id of the row an INSERT just made."""
    value = cursor.lastrowid
    if value is None:  # pragma: no cover - an INSERT always sets it
        raise StorageError("INSERT did not report a row id")
    return value


def dumps_object(value: dict[str, Any]) -> str:
    """A JSON object as stored in a TEXT column."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def loads_object(text: str | None) -> dict[str, Any]:
    """A JSON object read back from a TEXT column (empty when NULL or empty)."""
    value = json.loads(text) if text else {}
    if not isinstance(value, dict):
        raise StorageError(f"expected a JSON object in the database, found {text!r:.60}")
    return value
