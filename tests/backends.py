"""Running tests on both storage backends, and the PostgreSQL databases they use.

A module runs every test on SQLite and on PostgreSQL by replacing the
``backend`` fixture::

    backend = both

(a directory's conftest.py may do the same for all its modules). Tests that
start servers themselves pass ``**storage_overrides`` to ``start_server``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from tests.services import PostgresServer, unavailable

BACKENDS = ("sqlite", "postgres")
TEMPLATE = "chatd_template"
_T = TypeVar("_T")


@pytest.fixture(params=BACKENDS)
def both(request: pytest.FixtureRequest) -> str:
    """The ``backend`` fixture of a module that runs on both backends."""
    return str(request.param)


def run_apart(work: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``work`` on an event loop of its own, in a thread of its own, and wait.

    Sync fixtures use it: the test's loop is not running when they are set
    up, and must not be replaced by another in this thread.
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
    """Fresh databases of one server: each a copy of a template migrated once."""

    def __init__(self, server: PostgresServer) -> None:
        try:
            import asyncpg  # noqa: F401 - the optional cluster extra
        except ImportError:
            unavailable("the asyncpg package (chatd's cluster extra)")
        self.server = server
        self._numbers = itertools.count(1)
        self._template_ready = False

    @contextlib.contextmanager
    def fresh(self) -> Iterator[str]:
        """The URL of a new, migrated database, dropped on the way out."""
        if not self._template_ready:
            run_apart(self._make_template)
            self._template_ready = True
        name = f"chatd_test_{next(self._numbers)}"
        run_apart(lambda: self._admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE} "
                                      "STRATEGY FILE_COPY"))
        try:
            yield self.server.url(name)
        finally:
            run_apart(lambda: self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

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

    async def _make_template(self) -> None:
        from storage.postgres import PostgresStorage

        await self._admin(f"CREATE DATABASE {TEMPLATE}")
        storage = PostgresStorage(self.server.url(TEMPLATE))
        await storage.open()
        await storage.close()
