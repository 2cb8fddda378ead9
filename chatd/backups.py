"""Scheduled online backups with retention.

Each backup is a consistent copy made through SQLite's online backup API
while the daemon keeps running; files are named by time, and only the newest
``backup.keep`` are kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd.config import BackupConfig
    from storage.api import Storage

log = logging.getLogger(__name__)
PREFIX = "chatd-"
SUFFIX = ".db"


class Backups:
    """Takes a backup every ``interval`` seconds into ``directory``."""

    def __init__(self, storage: Storage, config: BackupConfig, database: str) -> None:
        self._storage = storage
        self._database = database
        self._task: asyncio.Task[None] | None = None
        self.config = config
        self._directory = self._folder(config)

    def _folder(self, config: BackupConfig) -> Path:
        return Path(config.dir or Path(self._database).resolve().parent / "backups")

    def start(self) -> None:
        if self.config.interval > 0 and self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def reconfigure(self, config: BackupConfig) -> None:
        """Apply a reloaded configuration: new directory, interval or retention."""
        self.stop()
        self.config = config
        self._directory = self._folder(config)
        self.start()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.interval)
            try:
                await self.take()
            except Exception:  # logged; the next interval tries again
                log.exception("scheduled backup failed")

    async def take(self, now: float | None = None) -> Path:
        """Make one backup now and prune old ones; returns its path."""
        await asyncio.to_thread(self._directory.mkdir, parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now or time.time()))
        path = self._directory / f"{PREFIX}{stamp}{SUFFIX}"
        await self._storage.backup(str(path))
        removed = await asyncio.to_thread(self._prune)
        log.info("backup", extra={"fields": {"path": str(path), "pruned": removed}})
        return path

    def _prune(self) -> int:
        backups = sorted(self._directory.glob(f"{PREFIX}*{SUFFIX}"))
        stale = backups[:-self.config.keep] if self.config.keep > 0 else []
        for old in stale:
            os.unlink(old)
        return len(stale)
