"""What the scenarios share: options, plan, database and the daemons they start."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import log
from .daemon import Daemon, bench_config
from .plan import Plan


class Context:
    """What the scenarios share: options, plan, database and the main daemon."""

    def __init__(self, args: argparse.Namespace, plan: Plan, workdir: Path, db: Path) -> None:
        self.args, self.plan, self.workdir, self.db = args, plan, workdir, db
        self._daemons: dict[str, Daemon] = {}
        self._all: list[Any] = []
        # Daemons a scenario starts and stops itself (--cluster's nodes): their
        # logs are checked with the others'.
        self._watched: list[Any] = []

    def fresh_daemon(self, name: str, storage: dict[str, Any] | None = None,
                     web: bool = False) -> Daemon:
        # One daemon at a time on the database: each numbers messages from the
        # largest stored id it found at start-up.
        self.stop_all()
        daemon = Daemon(self.workdir, self.db, name, bench_config(self.workdir, name, storage, web))
        self._all.append(daemon)
        daemon.start()
        log(f"chatd {name}: pid {daemon.pid}, port {daemon.port}")
        return daemon

    def extra_daemon(self, daemon: Daemon) -> Daemon:
        """A daemon a scenario configures itself (its own database): stopped with the
        others, its log checked with theirs. The scenario starts it."""
        self.stop_all()
        self._all.append(daemon)
        return daemon

    def track(self, server: Any) -> None:
        """A server a scenario starts itself (--compare): stopped with the others,
        its log checked with theirs."""
        self._all.append(server)

    def watch(self, daemon: Any) -> None:
        """A daemon the scenario stops itself; its log is checked with the others'."""
        self._watched.append(daemon)

    def daemon(self, name: str) -> Daemon:
        if name not in self._daemons or self._daemons[name].proc is None:
            self._daemons[name] = self.fresh_daemon(name)
        return self._daemons[name]

    def stop_all(self) -> None:
        for daemon in self._all:
            daemon.stop()

    def daemon_logs(self) -> dict[str, Any]:
        return {d.name: d.log_problems() for d in [*self._all, *self._watched]}
