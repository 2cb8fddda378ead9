"""The one lifecycle object: :class:`App` starts, serves, reloads and stops chatd.

    start:  storage open (migrated), state loaded (accounts, rooms,
            sanctions, the message counter), the batched writer started,
            listeners bound, the timeout sweep and housekeeping scheduled.
            As the process (``chatd serve``) it first refuses to start while
            another daemon answers on its control socket, and after binding
            opens the control socket, schedules backups, serves metrics,
            pings the watchdog and sends READY=1 to systemd.
    serve:  :meth:`App.run` waits for SIGTERM or SIGINT; SIGHUP reloads.
    reload: SIGHUP or ``chatctl reload``: RELOADING=1, read and validate the
            configuration file, hand it to every registered Reconfigurable
            (see :mod:`chatd.app.reloads`), READY=1. A refused file leaves
            the old configuration in force. Keys bound at start keep their
            running value; a change to one is logged naming it
            (config.RELOAD_POLICY).
    stop:   the same steps backwards, within a time limit (see :meth:`App.stop`).
            A second signal exits at once.

The parts are built and wired by :mod:`chatd.app.compose`; this module only
orders them in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import stat
from typing import TYPE_CHECKING, Any, Protocol

from chatd import __version__
from chatd.app.migration import warn_if_files_elsewhere
from chatd.config import ConfigError, held_for_restart, load_config, secrets_held
from chatd.content.blobs import files_dir, warn_unshared
from chatd.net.listener import check_certificate
from chatd.ops import systemd
from chatd.ops.dblock import DatabaseLock
from chatd.ops.metrics import MetricsUnavailable, start_metrics
from chatd.ops.nodes import SoleNode
from storage.api import StorageError

if TYPE_CHECKING:
    import socket
    from collections.abc import Awaitable, Callable

    from chatd.app.reloads import Reloads
    from chatd.config import Config
    from chatd.domain.clock import Clock
    from chatd.irc.listener import IrcListener
    from chatd.net.listener import Listeners
    from chatd.ops.admin import NodeList
    from chatd.ops.backups import Backups
    from chatd.ops.control import ControlServer
    from chatd.ops.housekeeping import Housekeeping
    from chatd.protocol.services import Services
    from chatd.web.server import WebServer
    from storage.api import Storage

log = logging.getLogger(__name__)
# Seconds between writes of the API tokens' last use (and one more at stop).
TOKEN_USE_FLUSH = 30.0
# Seconds between checks that the database file is still the one being served.
DATABASE_CHECK = 2.0
# Seconds the stop waits for what the last commands left running aside (login
# charges given back, flood sanctions): a cluster's give-back is answered or given
# up within the shared store's 0.5 s, once a batch ahead of it was.
CONSEQUENCES_WAIT = 1.0


class Part(Protocol):
    """A part with a life of its own beside the services (a cluster node)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class App:
    """One chatd: its services, listeners and, as a process, what an operator needs."""

    def __init__(self, config: Config, services: Services, listeners: Listeners,
                 housekeeping: Housekeeping, reloads: Reloads,
                 control: Callable[[App], ControlServer], backups: Backups, *,
                 irc: IrcListener | None = None, web: WebServer | None = None,
                 process: bool = False, nodes: NodeList | None = None,
                 cluster: Part | None = None,
                 config_path: str | None = None,
                 overrides: dict[str, Any] | None = None) -> None:
        self.config = config
        self.services = services
        # A cluster node's share (its reader, persister, heartbeat...): started once
        # the counter is joined, stopped once everything acknowledged is handed on.
        self._cluster = cluster
        self.storage: Storage = services.storage
        self.clock: Clock = services.clock
        self.listeners = listeners
        self.housekeeping = housekeeping
        self.reloads = reloads
        self.control = control(self)  # it sees this App as its Admin facade
        # The nodes serving chatd: a cluster's, or this process alone.
        self.nodes: NodeList = nodes if nodes is not None else SoleNode(self)
        self.backups = backups
        # The IRC listener when irc.enabled (its sockets are among the listeners').
        self.irc = irc
        # The web listener when web.enabled (its socket too is among the listeners').
        self.web = web
        # The whole process (chatd serve): control socket, backups, metrics, systemd.
        self.process = process
        self.config_path = config_path
        self.overrides = overrides or {}
        # Keys whose change in the file the last reload could not apply: they
        # take effect at the next start.
        self.restart_needed: list[str] = []
        self._metrics: Any = None
        # Held by the serving process of an embedded database (see chatd.ops.dblock),
        # which checks every DATABASE_CHECK seconds that the file is still there.
        self._database_lock = DatabaseLock(config.storage.path)
        self._database_watch: asyncio.Task[None] | None = None
        self._database_missing = False
        self._watchdog: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        # Something the stop had to write was lost: the process then exits 1, so
        # the service manager shows a failed stop rather than a clean one.
        self.lost_at_stop = False
        # Writes when API tokens were last used, in batches (see chatd.domain.tokens).
        self._token_use: asyncio.Task[None] | None = None

    # -- start -----------------------------------------------------------------------

    async def start(self, sockets: list[socket.socket] | None = None) -> None:
        """Open storage, load state, then listen (on ``sockets`` if given; as the
        process, on those systemd passed)."""
        # A certificate that cannot be loaded is named before anything is opened.
        check_certificate(self.config)
        if self.process:
            _warn_if_secrets_exposed(self.config_path, self.config)
            _warn_if_cluster_off(self.config)
            _refuse_files_dir_not_a_directory(self.config)
            _raise_open_files_limit()
            await self.control.refuse_if_taken()  # before the database is touched
            if self._cluster is None:
                self._database_lock.acquire()
            sockets = sockets or systemd.listen_sockets() or None
            if sockets:
                listen = self.config.listen
                # Said, since the file's listen.host and listen.port then do nothing.
                log.info("listening on the sockets the service manager passed (the socket "
                         "unit's ListenStream=); listen.host and listen.port are not used",
                         extra={"fields": {"sockets": len(sockets),
                                           "configured": f"{listen.host}:{listen.port}"}})
        services = self.services
        if self._cluster is not None:
            # Said by a node starting, not by a command that only builds the parts
            # to write the database (chatd useradd).
            warn_unshared(self.config.files, self.config.storage.path)
        await self.storage.open()
        if self.config.cluster.enabled:
            await warn_if_files_elsewhere(self.config, self.storage)
        await services.accounts.load()
        await services.tokens.load()
        await services.notifier.load()
        await services.resume.load()
        await services.rooms.load()
        await services.moderation.load()
        await services.sequencer.load()
        if self._cluster is not None:
            await self._cluster.start()
        await services.messaging.load()
        await services.writer.start()
        await self.listeners.listen(sockets)
        self.housekeeping.start()
        self._token_use = asyncio.ensure_future(_every(TOKEN_USE_FLUSH, services.tokens.flush_use))
        # Each listener named (line=... irc=... web=...): with --port 0, which is which.
        log.info("started", extra={"fields": {
            "version": __version__, **self.listeners.addresses_by_kind,
            "users": services.accounts.count, "rooms": services.rooms.count,
            **self._database_named()}})
        if self.process:
            await self._start_operations()

    def _database_named(self) -> dict[str, str]:
        """The embedded database's file, for the started line: which file a daemon
        serves is what an operator asks first (--db and the file can disagree). A
        cluster node names itself and its PostgreSQL database (server and name,
        never the URL's credentials): nodes pointed at different ones do not meet."""
        cluster = self.config.cluster
        if cluster.enabled:
            from storage.postgres.host import where  # noqa: PLC0415 - the cluster extra's

            return {"node": cluster.node_id, "database": f"postgresql://{where(cluster.postgres)}"}
        path = self.config.storage.path
        in_memory = path == ":memory:" or path.startswith("file:")  # (tests)
        return {"database": path if in_memory else os.path.abspath(path)}

    async def _start_operations(self) -> None:
        await self.control.start()
        self.backups.start()
        metrics = self.config.metrics
        if metrics.enabled:
            try:
                self._metrics = start_metrics(self, metrics.host, metrics.port)
            except OSError as exc:  # said with the address, as the listeners' are
                raise OSError(exc.errno, f"metrics on {metrics.host}:{metrics.port}: "
                                         f"{exc.strerror or exc}") from exc
            # Its own line, with the port bound (metrics.port 0: any free one).
            host, port = self._metrics.server_address[:2]
            log.info("metrics", extra={"fields": {
                "url": f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"}})
        if self._cluster is None:
            self._database_watch = asyncio.ensure_future(
                _every(DATABASE_CHECK, self._check_database))
        interval = systemd.watchdog_interval()
        if interval:
            self._watchdog = asyncio.ensure_future(systemd.watchdog(interval))
        systemd.notify("READY=1", f"STATUS=serving on {' '.join(self.addresses)}")

    # -- serve -----------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until asked to stop; the exit status of the process."""
        # Handlers first: systemd may reload or stop the moment READY=1 is sent.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        # Their default action ends the process on the spot, acknowledged messages not
        # yet written with it: a log rotation's "kill -USR1" must not do that.
        for sig in (signal.SIGUSR1, signal.SIGUSR2):
            loop.add_signal_handler(sig, _ignored, sig)
        database = self.config.storage.path
        existed = await asyncio.to_thread(os.path.lexists, database)
        try:
            await self.start()
        except (OSError, ConfigError, MetricsUnavailable, StorageError) as exc:
            log.error("cannot start", extra={"fields": {"error": str(exc)}})
            await self.stop()
            if not existed:
                await asyncio.to_thread(_remove_database, database)
            return 1
        await self._stopping.wait()
        await self.stop()
        return 1 if self.lost_at_stop else 0

    def request_stop(self) -> None:
        """A signal handler only sets a flag; a second signal means: out, now."""
        if self._stopping.is_set():
            os._exit(1)
        self._stopping.set()

    # -- reload ----------------------------------------------------------------------

    def reload(self) -> str | None:
        """Re-read the configuration file and apply it; the problem when it is refused."""
        systemd.reloading()
        if self.config_path is None:
            # Said: an operator who edits some file and reloads expects it read.
            log.warning("reload: chatd was started without --config, so no file is read; "
                        "the built-in defaults and command-line options stay in force")
        try:
            loaded = load_config(self.config_path, self.overrides)
            check_certificate(loaded)
        except (ConfigError, ValueError) as exc:
            log.error("reload refused", extra={"fields": {"error": str(exc)}})
            return str(exc)
        finally:
            systemd.notify("READY=1")
        _warn_if_secrets_exposed(self.config_path, loaded)
        config, self.restart_needed = held_for_restart(self.config, loaded)
        if self.restart_needed:
            log.warning("changed keys wait for a restart; their old values stay in force",
                        extra={"fields": {"keys": ",".join(self.restart_needed)}})
        self.apply(config)
        return None

    def apply(self, config: Config) -> None:
        """Hand a new, already validated configuration to every Reconfigurable."""
        self.config = config
        self.reloads.apply(config)
        log.info("reloaded")

    # -- stop ------------------------------------------------------------------------

    async def stop(self, timeout: float = 5.0) -> None:
        """Shut down in order, within ``timeout`` seconds.

        1. STOPPING=1; the watchdog, the control socket, scheduled backups and
           metrics end (as the process); 2. stop accepting connections (and
           close plain HTTP ones) and the periodic jobs; 3. tell every
           client and close its connection after its queued output; 4. let
           commands already running finish (bounded by part of ``timeout``);
           5. write every acknowledged message to storage; 6. close storage.
        """
        if self._stopped.is_set():
            return
        if self.process:
            await self._stop_operations()
        log.info("stopping", extra={"fields": {"connections": self.connection_count}})
        self.listeners.stop_accepting()
        if self.web is not None:
            self.web.close()
        await self.housekeeping.stop()
        if self._token_use is not None:
            self._token_use.cancel()
        await self.listeners.close_connections(timeout * 0.6)
        await self._settle_consequences()
        try:
            # Bounded: a database or a cluster service that stopped answering must
            # not hold the process (what is left unwritten is said in the log).
            async with asyncio.timeout(timeout):
                await self._write_out()
        except TimeoutError:
            self.lost_at_stop = True
            log.error("stopping: writing out did not finish within %.1f s; what was not "
                      "written is lost", timeout)
        finally:
            await self._stop_cluster(timeout)
            closed = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.storage.close()
                    closed = True
            if closed:  # (SQLite's own locks go with the lock's descriptor)
                self._database_lock.release()
            self._stopped.set()
        log.info("stopped")

    async def _settle_consequences(self) -> None:
        """What the connections' last commands left running aside (a login charge
        given back to the cluster's shared store, a flood's sanction) ends before
        the stores it goes to are closed; bounded, since such a store may not
        answer (a give-back gives up after the store's own wait)."""
        try:
            async with asyncio.timeout(CONSEQUENCES_WAIT):
                await self.services.protection.settled()
        except TimeoutError:
            log.warning("stopping: a login charge or a flood's sanction did not end within "
                        "%.1f s and is dropped", CONSEQUENCES_WAIT)

    async def _write_out(self) -> None:
        """Every acknowledged message, audit entry and token use to storage, each
        tried whatever became of the others (a full disk is said in one line per
        loss); the counter is told the stop was clean only when every message was
        written. (Then a cluster node stops reading and publishing: _stop_cluster.)"""
        services = self.services
        written = await _written(lambda: f"{services.writer.pending} acknowledged "
                                 "messages are lost", services.writer.close)
        if written:
            written = await _written(lambda: "the clean stop is not recorded (the next "
                                     "start numbers messages as after a crash)",
                                     services.sequencer.stopped)
        audit = await _written(lambda: "audit entries are lost", services.audit.close)
        uses = await _written(lambda: "token uses are not recorded", services.tokens.flush_use)
        self.lost_at_stop = self.lost_at_stop or not (written and audit and uses)

    async def _stop_cluster(self, timeout: float) -> None:
        """A cluster node stops reading and publishing, once its messages are written
        out, within a ``timeout`` of its own: a write-out that took all of its time
        must not cut the node's stop short, which would leave its connections to
        Redis and PostgreSQL open."""
        if self._cluster is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._cluster.stop()
        except TimeoutError:
            log.error("stopping: the cluster node did not stop within %.1f s", timeout)

    async def _check_database(self) -> None:
        """Say, once, that the database file was deleted or replaced under the
        running daemon (an operator's rm, a restore over it)."""
        problem = self._database_lock.missing()
        if problem is not None and not self._database_missing:
            log.error("the database file %s %s while chatd serves it: what is written from "
                      "now on is lost when chatd stops; put the file back (or restore a "
                      "backup) and restart", self._database_lock.path, problem)
        self._database_missing = problem is not None

    async def _stop_operations(self) -> None:
        systemd.notify("STOPPING=1")
        if self._database_watch is not None:
            self._database_watch.cancel()
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await self.control.stop()
        self.backups.stop()
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # -- what the operations and tests read (the Admin facade) -----------------------------

    @property
    def addresses(self) -> list[str]:
        return self.listeners.addresses

    @property
    def addresses_by_kind(self) -> dict[str, str]:
        return self.listeners.addresses_by_kind

    @property
    def port(self) -> int:
        """The first bound port of the line protocol (useful when configured as 0)."""
        return self.listeners.port

    @property
    def connection_count(self) -> int:
        return self.listeners.connection_count

    def sweep_once(self) -> None:
        """One pass of the timeout sweep (tests move a manual clock, then call it)."""
        self.listeners.sweep_once()


async def _written(what: Callable[[], str], write: Callable[[], Awaitable[object]]) -> bool:
    """Run one of the stop's writes; whether it succeeded (a failure is logged)."""
    try:
        await write()
    except StorageError as exc:
        log.error("stopping: a write failed, %s: %s", what(), exc)
        return False
    return True


def _warn_if_secrets_exposed(path: str | None, config: Config) -> None:
    """Warn when the configuration file holds a secret (secrets_held) and every user of
    the machine may read it. Named by key, never by value; chatd runs on regardless
    (scripts/install-service makes the file 0640 root:chatd, the unit's group)."""
    held = secrets_held(config)
    if path is None or not held:
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:  # read a moment ago; gone meanwhile says nothing about its mode
        return
    if mode & stat.S_IROTH:
        log.warning("the configuration file holds secrets and every user may read it: "
                    "chmod o-r it (the service reads it through its group)",
                    extra={"fields": {"file": os.path.abspath(path),
                                      "mode": f"{stat.S_IMODE(mode):04o}",
                                      "keys": ",".join(held)}})


def _warn_if_cluster_off(config: Config) -> None:
    """Warn when the cluster section names a node, Redis or PostgreSQL while
    cluster.enabled is false: the daemon then serves its own SQLite file, alone,
    which a file meant for a node (enabled: true forgotten) would not show."""
    cluster = config.cluster
    named = [f"cluster.{key}" for key, value in (("node_id", cluster.node_id),
                                                 ("redis", cluster.redis),
                                                 ("postgres", cluster.postgres)) if value]
    if cluster.enabled or not named:
        return
    log.warning("cluster.enabled is false: the cluster section's other keys are not used, and "
                "this daemon serves its own SQLite database alone; set cluster.enabled: true "
                "to run it as a cluster node",
                extra={"fields": {"keys": ",".join(named),
                                  "database": os.path.abspath(config.storage.path)}})


def _refuse_files_dir_not_a_directory(config: Config) -> None:
    """Raise OSError when the local files directory is a file: every upload would
    fail (an internal-error, a traceback in the log), and the start said nothing."""
    if config.files.backend != "local":
        return
    directory = files_dir(config.files, config.storage.path)
    if directory.exists() and not directory.is_dir():
        raise OSError(f"files.dir {directory} is not a directory: uploads could not be "
                      "stored there")


def _ignored(sig: signal.Signals) -> None:
    log.warning("signal ignored: chatd logs to standard error alone (nothing to reopen); "
                "SIGHUP reloads the configuration, SIGTERM stops",
                extra={"fields": {"signal": sig.name}})


async def _every(interval: float, job: Callable[[], Awaitable[object]]) -> None:
    """Run ``job`` every ``interval`` seconds until cancelled; a failure is logged."""
    while True:
        await asyncio.sleep(interval)
        try:
            await job()
        except Exception:
            log.exception("periodic job failed")


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
