"""The leader seam: singleton jobs (scheduled backups, housekeeping) run only
while this process leads."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from chatd.config import BackupConfig
from chatd.ops.backups import Backups
from chatd.ops.housekeeping import Housekeeping
from chatd.ops.leader import SoleLeader
from tests.helpers import start_server
from tests.operations import wait_for


class Follower:
    """Another node holds the lead: every run is declined, and counted."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def is_leader(self) -> bool:
        return False

    @contextlib.asynccontextmanager
    async def lead(self, job: str) -> AsyncIterator[bool]:
        self.asked.append(job)
        yield False


async def test_the_sole_process_always_leads() -> None:
    leader = SoleLeader()
    assert leader.is_leader()
    async with leader.lead("housekeeping") as leading:
        assert leading


async def test_a_follower_takes_no_scheduled_backup(tmp_path: Path) -> None:
    server = await start_server(tmp_path / "chatd.db")
    follower = Follower()
    directory = tmp_path / "scheduled"
    backups = Backups(server.storage, BackupConfig(interval=0.01, dir=str(directory), keep=1),
                      str(tmp_path / "chatd.db"), follower)
    try:
        backups.start()
        await wait_for(lambda: len(follower.asked) >= 3)
        assert set(follower.asked) == {"backup"}
        assert not directory.exists()
    finally:
        backups.stop()
        await server.stop()


async def test_a_follower_skips_housekeeping(tmp_path: Path) -> None:
    server = await start_server(tmp_path / "chatd.db", housekeeping__interval=0.01)
    await server.housekeeping.stop()  # the server's own (leading) loop
    follower = Follower()
    housekeeping = Housekeeping(server.services, follower)
    ran: list[object] = []

    async def counted() -> dict[str, int]:
        ran.append(None)
        return {}

    housekeeping.run_once = counted  # type: ignore[method-assign]
    try:
        housekeeping.start()
        await wait_for(lambda: len(follower.asked) >= 3)
        assert not ran
    finally:
        await housekeeping.stop()
        await server.stop()
