"""What SqliteStorage's query mixins need from it: transactions and queries."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import aiosqlite

from storage.api import StorageError


class SqliteHost(Protocol):
    """The transaction and query plumbing SqliteStorage provides to its mixins."""

    def _transaction(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
    async def _write(self, sql: str, params: Sequence[Any] = ()) -> int: ...
    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]: ...
    async def _fetch_one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None: ...


def rowid(cursor: aiosqlite.Cursor) -> int:
    """The id of the row an INSERT just made."""
    value = cursor.lastrowid
    if value is None:  # pragma: no cover - an INSERT always sets it
        raise StorageError("INSERT did not report a row id")
    return value
