"""The tests' own servers stopped and started again on their port
(tests/services.py), as the fault tests use them."""

from __future__ import annotations

import pytest
import redis

from tests.backends import import_asyncpg
from tests.services import start_postgres, start_redis

asyncpg = import_asyncpg()

pytestmark = pytest.mark.cluster


def test_redis_comes_back_with_its_data_or_empty() -> None:
    server = start_redis()
    try:
        port = server.port
        redis.Redis.from_url(server.url).set("kept", "yes")
        server.restart(keep_data=True)
        assert redis.Redis.from_url(server.url).get("kept") == b"yes"
        server.restart(keep_data=False)
        assert server.port == port and server.running
        assert redis.Redis.from_url(server.url).get("kept") is None
    finally:
        server.remove()
    assert not server.running


async def test_postgres_comes_back_on_its_port_with_its_data() -> None:
    server = start_postgres()
    try:
        connection = await asyncpg.connect(server.url())
        # The tests' server commits asynchronously: this one waits for its log write,
        # so it survives an immediate shutdown.
        await connection.execute("SET synchronous_commit = on; CREATE TABLE kept (x int); "
                                 "INSERT INTO kept VALUES (7)")
        await connection.close()
        first = server.pid
        server.crash()  # immediate shutdown: recovery from the log at the next start
        assert not server.running
        server.start()
        server.restart()
        assert server.pid != first
        connection = await asyncpg.connect(server.url())
        assert await connection.fetchval("SELECT x FROM kept") == 7
        await connection.close()
    finally:
        server.remove()
