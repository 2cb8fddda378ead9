"""The process around the chat server: signals, reload, systemd, control socket.

    start:  storage open, state loaded, listeners bound (ChatServer.start),
            control socket and scheduled jobs up, then READY=1 to systemd.
    reload: SIGHUP or ``chatctl reload``: RELOADING=1, read and validate the
            configuration file, apply it (or keep the old one and log why), READY=1.
            Keys bound at start-up keep their running value; a change to one is
            logged as a warning naming it (see config.RELOAD_POLICY).
    stop:   SIGTERM/SIGINT: STOPPING=1, control socket closed, then the
            server's ordered shutdown. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
from typing import TYPE_CHECKING, Any

from chatd.app.compose import build_server
from chatd.config import ConfigError, held_for_restart, load_config
from chatd.ops import systemd
from chatd.ops.backups import Backups
from chatd.ops.control import ControlServer
from chatd.ops.logfmt import configure_logging
from chatd.ops.metrics import MetricsUnavailable, start_metrics
from storage.api import StorageError

if TYPE_CHECKING:
    from chatd.config import Config
    from chatd.domain.clock import Clock
    from chatd.protocol.services import Services

log = logging.getLogger("chatd.daemon")


class Daemon:
    """One chatd process: a server plus what an operator needs around it."""

    def __init__(self, config: Config, config_path: str | None = None,
                 overrides: dict[str, Any] | None = None, clock: Clock | None = None) -> None:
        self.config_path = config_path
        self.overrides = overrides or {}
        self.server = build_server(config, clock=clock)
        self.control = ControlServer(self)
        self.backups = Backups(self.server.storage, config.backup, config.storage.path)
        self._metrics: Any = None
        self._stopping = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        # Keys whose change in the file the last reload could not apply: they
        # take effect at the next start.
        self.restart_needed: list[str] = []

    # -- the Admin facade the control socket sees --------------------------------

    @property
    def config(self) -> Config:
        return self.server.config

    @property
    def services(self) -> Services:
        return self.server.services

    @property
    def connection_count(self) -> int:
        return self.server.connection_count

    @property
    def addresses(self) -> list[str]:
        return self.server.addresses

    async def start(self) -> None:
        _raise_open_files_limit()
        await self.control.refuse_if_taken()  # before the database is touched
        await self.server.start(systemd.listen_sockets() or None)
        await self.control.start()
        self.backups.start()
        metrics = self.server.config.metrics
        if metrics.enabled:
            self._metrics = start_metrics(self.server, metrics.host, metrics.port)
        interval = systemd.watchdog_interval()
        if interval:
            self._watchdog = asyncio.ensure_future(systemd.watchdog(interval))
        systemd.notify("READY=1", f"STATUS=serving on {' '.join(self.server.addresses)}")

    def reload(self) -> str | None:
        """Re-read the configuration; returns the problem when it is refused."""
        systemd.reloading()
        try:
            loaded = load_config(self.config_path, self.overrides)
            configure_logging(loaded.logging.level, loaded.logging.format)
        except (ConfigError, ValueError) as exc:
            log.error("reload refused", extra={"fields": {"error": str(exc)}})
            return str(exc)
        finally:
            systemd.notify("READY=1")
        config, self.restart_needed = held_for_restart(self.server.config, loaded)
        if self.restart_needed:
            log.warning("changed keys wait for a restart; their old values stay in force",
                        extra={"fields": {"keys": ",".join(self.restart_needed)}})
        self.server.reload(config)
        self.backups.reconfigure(config.backup)
        return None

    def request_stop(self) -> None:
        if self._stopping.is_set():
            os._exit(1)  # a second signal: the operator wants out now
        self._stopping.set()

    async def run(self) -> int:
        """Serve until asked to stop; the exit status of the process."""
        # Handlers first: systemd may reload or stop the moment READY=1 is sent.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        database = self.server.config.storage.path
        existed = await asyncio.to_thread(os.path.lexists, database)
        try:
            await self.start()
        except (OSError, ConfigError, MetricsUnavailable, StorageError) as exc:
            log.error("cannot start", extra={"fields": {"error": str(exc)}})
            await self.server.stop()
            if not existed:
                await asyncio.to_thread(_remove_database, database)
            return 1
        await self._stopping.wait()
        await self.stop()
        return 0

    async def stop(self) -> None:
        systemd.notify("STOPPING=1")
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await self.control.stop()
        self.backups.stop()
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()
        await self.server.stop()


def _raise_open_files_limit() -> None:
    """Every connection is a file descriptor: allow as many as the hard limit does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _remove_database(path: str) -> None:
    """Delete the database a failed start created, so none is left empty behind."""
    if path == ":memory:":
        return
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
