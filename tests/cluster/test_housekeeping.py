"""The leader's housekeeping while PostgreSQL is away: every job is tried and each
failure logged (a failing job does not stop the pass at the first), and the next
pass, once PostgreSQL is back, does the work."""

from __future__ import annotations

import logging

import pytest

from chatd.domain.clock import ManualClock
from tests.cluster.conftest import StartNode, login, register
from tests.cluster.test_faults import own_postgres  # noqa: F401 - stopped and started here
from tests.services import PostgresServer

pytestmark = pytest.mark.asyncio

JOBS = 12


@pytest.fixture
def postgres_url(own_postgres: PostgresServer) -> str:  # noqa: F811
    """The nodes' database is this test's own."""
    return own_postgres.url()


async def test_every_job_is_tried_while_postgres_is_away(
        start_node: StartNode, own_postgres: PostgresServer,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    node = await start_node(1)
    await register(node, "ann", "bob")
    ann, bob = await login(node, "ann"), await login(node, "bob")
    await ann.command("/create hall")
    await bob.command("/join hall")
    await ann.command("/mute bob hall 30s")
    clock = node.clock
    assert isinstance(clock, ManualClock)
    clock.advance(30)
    own_postgres.stop()
    try:
        with caplog.at_level(logging.ERROR, logger="chatd.ops.housekeeping"):
            done = await node.housekeeping.run_once()
    finally:
        own_postgres.start()
    failed = [r.fields["job"] for r in caplog.records  # type: ignore[attr-defined]
              if r.getMessage() == "housekeeping job failed"]
    assert "sanctions_expired" in failed and "sanctions_expired" not in done
    assert len(failed) + len(done) == JOBS and not set(failed) & set(done), (failed, done)
    assert (await node.housekeeping.run_once())["sanctions_expired"] == 1
    assert (await bob.command("/say hall back"))["id"] > 0
    for client in (ann, bob):
        await client.close()
