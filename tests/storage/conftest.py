"""The storage under test: of the module's backend (``backend = both`` runs a
module's tests on SQLite and on PostgreSQL), on one database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from storage import SqliteStorage, Storage


@pytest.fixture
def unopened(request: pytest.FixtureRequest, backend: str,
             db_path: Path | str) -> Callable[[], Storage]:
    """Makes storage objects of the test's backend, on one database, not opened yet."""
    if backend == "sqlite":
        path = str(db_path)
        return lambda: SqliteStorage(path)
    from storage.postgres import PostgresStorage

    url = request.getfixturevalue("postgres_url")
    return lambda: PostgresStorage(url)


@pytest.fixture
async def storage(unopened: Callable[[], Storage]) -> AsyncIterator[Storage]:
    store = unopened()
    await store.open()
    yield store
    await store.close()
