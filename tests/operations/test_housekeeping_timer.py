"""Housekeeping's timer: a reload that shortens housekeeping.interval takes effect at
once, not after the old interval ran out."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.operations import running_daemon, wait_for

pytestmark = pytest.mark.asyncio


async def test_a_shorter_interval_applies_at_the_reload(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with running_daemon(tmp_path, housekeeping__interval=3600) as daemon:
        config = tmp_path / "chatd.yaml"
        config.write_text("housekeeping:\n  interval: 0.05\n")
        daemon.config_path = str(config)
        daemon.overrides.pop("housekeeping.interval")
        with caplog.at_level(logging.INFO, logger="chatd.ops.housekeeping"):
            passes = len([r for r in caplog.records if r.getMessage() == "housekeeping"])
            assert daemon.reload() is None
            await wait_for(lambda: len([r for r in caplog.records
                                        if r.getMessage() == "housekeeping"]) >= passes + 2)
