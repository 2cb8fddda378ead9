"""Storage tests: real SQLite files in temporary directories."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from storage import SqliteStorage


@contextlib.asynccontextmanager
async def open_storage(path: str) -> AsyncIterator[SqliteStorage]:
    """A SqliteStorage opened on ``path``, closed on the way out."""
    storage = SqliteStorage(path)
    await storage.open()
    try:
        yield storage
    finally:
        await storage.close()
