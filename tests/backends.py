"""Running tests on both storage backends, and the PostgreSQL databases they use.

A module runs every test on SQLite and on PostgreSQL by replacing the
``backend`` fixture::

    backend = both

(a directory's conftest.py may do the same for all its modules); a single test
does with the mark :data:`on_both`. Tests that start servers themselves pass
``**storage_overrides`` to ``start_server``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from tests.services import PostgresServer, import_needed, unavailable

BACKENDS = ("sqlite", "postgres")
SHARED = "chatd_test"
_T = TypeVar("_T")


@pytest.fixture(params=BACKENDS)
def both(request: pytest.FixtureRequest) -> str:
    """The ``backend`` fixture of a module that runs on both backends."""
    return str(request.param)


# A test's own ``backend``, in a module that otherwise keeps the default: the
# parameter takes the fixture's place, for the test and the fixtures it uses.
on_both = pytest.mark.parametrize("backend", BACKENDS)


def import_asyncpg() -> Any:
    """The asyncpg module, for a test module that needs it at import: skipped
    without it (the cluster extra), except in CI, where it must be installed."""
    return import_needed("asyncpg", "asyncpg (chatd's cluster extra)")


def run_apart(work: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``work`` on an event loop of its own, in a thread of its own, and wait.

    Sync fixtures use it: one may be set up while the test's loop runs (through
    getfixturevalue), and a loop can be neither nested nor replaced in its thread.
    """
    result: list[_T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(work()))  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="postgres-fixture")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


class PostgresDatabases:
    """Databases of one server for the tests.

    ``fresh()`` hands every test the same migrated database, emptied first
    (rows deleted, identities restarted, sessions a failed test left behind
    ended): tenfold cheaper than creating a database per test, and the same
    to the test, which finds no row and ids starting at 1.
    """

    def __init__(self, server: PostgresServer) -> None:
        try:
            import asyncpg  # noqa: F401 - the optional cluster extra
        except ImportError:
            unavailable("the asyncpg package (chatd's cluster extra)")
        self.server = server
        self._numbers = itertools.count(1)
        self._ready = False

    @contextlib.contextmanager
    def fresh(self) -> Iterator[str]:
        """The URL of the tests' migrated database, holding no row."""
        if not self._ready:
            run_apart(self._create)
            self._ready = True
        run_apart(self._empty)
        yield self.server.url(SHARED)

    def empty(self) -> str:
        """The URL of a new database without any table (dropped with the server)."""
        name = f"chatd_empty_{next(self._numbers)}"
        run_apart(lambda: self._admin(f"CREATE DATABASE {name}"))
        return self.server.url(name)

    async def _admin(self, sql: str) -> Any:
        import asyncpg

        conn = await asyncpg.connect(self.server.url())
        try:
            return await conn.execute(sql)
        finally:
            await conn.close()

    async def _create(self) -> None:
        from storage.postgres import PostgresStorage

        await self._admin(f"CREATE DATABASE {SHARED}")
        storage = PostgresStorage(self.server.url(SHARED))
        await storage.open()
        await storage.close()

    async def _empty(self) -> None:
        import asyncpg

        from storage.postgres.copy import TABLES

        conn = await asyncpg.connect(self.server.url(SHARED))
        try:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            deletes = [f"DELETE FROM {table.name};" for table in reversed(TABLES)]
            restarts = [f"SELECT setval(pg_get_serial_sequence('{table.name}', "
                        f"'{table.identity}'), 1, false);"
                        for table in TABLES if table.identity is not None]
            await conn.execute(" ".join([*deletes, "DELETE FROM chatd_meta;", *restarts]))
        finally:
            await conn.close()
