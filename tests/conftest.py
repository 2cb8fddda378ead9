"""Fixtures: a real chatd server per test, on loopback, with its own database.

The storage backend is the ``backend`` fixture's: SQLite unless a module (or a
directory's conftest) replaces it with :func:`tests.backends.both`, which runs
each of its tests on SQLite and on PostgreSQL. A PostgreSQL backend is a database
of the session's private server (see :mod:`tests.services`), emptied for each test.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatd.domain.clock import ManualClock
from tests.backends import PostgresDatabases
from tests.helpers import ChatServer, Clients, start_server
from tests.services import PostgresServer, RedisServer, start_postgres, start_redis

# Times on screens are local: the tests read them on UTC's clock, whatever the
# machine's zone (a test of another zone sets its own and restores this one).
os.environ["TZ"] = "UTC"
time.tzset()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "chatd.db"


@pytest.fixture
def backend() -> str:
    """The storage backend of the test's servers: "sqlite" or "postgres"."""
    return "sqlite"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's private PostgreSQL (started on first use, stopped by pid at the end)."""
    server = start_postgres()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def postgres_databases(postgres_server: PostgresServer) -> PostgresDatabases:
    return PostgresDatabases(postgres_server)


@pytest.fixture
def postgres_url(postgres_databases: PostgresDatabases) -> Iterator[str]:
    """The tests' PostgreSQL database, migrated and emptied for this test."""
    with postgres_databases.fresh() as url:
        yield url


@pytest.fixture(scope="session")
def redis_process() -> Iterator[RedisServer]:
    """The session's private Redis (no persistence), stopped by pid at the end."""
    server = start_redis()
    yield server
    server.remove()


@pytest.fixture
def redis_server(redis_process: RedisServer) -> RedisServer:
    """The session's Redis, emptied for this test, as its PostgreSQL database is:
    nodes refuse a Redis that holds another database's state, and every test's
    database is another one (postgres_url)."""
    import redis  # the cluster extra: imported by the tests that use it

    redis.Redis.from_url(redis_process.url).flushall()
    return redis_process


@pytest.fixture
def storage_overrides(request: pytest.FixtureRequest, backend: str) -> dict[str, Any]:
    """The configuration that puts a server on the test's backend (for start_server)."""
    if backend == "sqlite":
        return {}
    url = request.getfixturevalue("postgres_url")
    return {"cluster__enabled": True, "cluster__node_id": "test", "cluster__postgres": url}


@pytest.fixture
async def server(db_path: Path, clock: ManualClock,
                 storage_overrides: dict[str, Any]) -> AsyncIterator[ChatServer]:
    srv = await start_server(db_path, clock=clock, **storage_overrides)
    yield srv
    await srv.stop()


@pytest.fixture
async def paged(tmp_path: Path) -> AsyncIterator[Clients]:
    """Clients of a server that lists two rows to a page (rooms.page_size): the
    paged lists' tests (/who, /files, /myfiles, /requests, ChatClient.members)."""
    server = await start_server(tmp_path / "paged.db", rooms__page_size=2)
    opened = Clients(server)
    yield opened
    await opened.close()
    await server.stop()


@pytest.fixture
async def clients(server: ChatServer) -> AsyncIterator[Clients]:
    opened = Clients(server)
    yield opened
    await opened.close()
