"""Private PostgreSQL and Redis servers for the tests, as child processes.

Each runs on a free loopback port with its files in a temporary directory of
its own, and is stopped by its process id when the test session ends. Neither
is started by systemd or left behind: the child gets a parent-death signal, so
a test run killed outright takes its servers with it.

PostgreSQL refuses to run as root. When the tests run as root (in CI they do),
the data directory is given to the ``postgres`` account that Debian's package
creates and the server runs under it.

A missing server program skips the tests that need it on a developer's
machine, and fails them in CI (``CI=true``), where scripts/test installs the
Debian packages ``postgresql`` and ``redis-server``.

The server classes do not need pytest (only :func:`unavailable` imports it):
``scripts/bench --cluster`` starts its servers with them.
The fault tests (tests/cluster/test_faults.py) stop and start them again on
the same port: Redis with its data (``SHUTDOWN SAVE``, then the saved file is
loaded) or without (``SHUTDOWN NOSAVE``, its files removed), PostgreSQL with
its data directory (a fast or an immediate shutdown, then ``postgres`` again).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from pytest import MarkDecorator

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# The account initdb makes superuser: the role chatd connects as.
PG_USER = "chatd"
# Debian keeps the server programs out of PATH, one directory per major version.
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
_PR_SET_PDEATHSIG = 1


def required_in_ci() -> bool:
    """True in CI, where a missing service fails instead of skipping."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(what: str) -> NoReturn:
    """Skip the test for lack of ``what``, or fail it in CI."""
    # Imported here: the server classes serve scripts/bench too, which runs without pytest.
    import pytest

    message = f"{what} (scripts/test installs it)"
    if required_in_ci():
        pytest.fail(f"CI needs {message}", pytrace=False)
    pytest.skip(f"needs {message}")


def needed(available: bool, what: str) -> MarkDecorator:
    """A mark that skips a test without ``what``; in CI the test runs, and fails
    where ``what`` is missing, as a missing service does."""
    import pytest

    return pytest.mark.skipif(not available and not required_in_ci(), reason=f"needs {what}")


def import_needed(module: str, what: str) -> Any:
    """``module`` imported for a test module: its tests are skipped without it,
    except in CI, where the import error fails them."""
    import importlib

    import pytest

    try:
        return importlib.import_module(module)
    except ImportError:
        if required_in_ci():
            raise
        pytest.skip(f"needs {what}", allow_module_level=True)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_programs() -> Path | None:
    """The directory holding initdb and postgres (the newest version), if installed."""
    found = shutil.which("initdb")
    if found is not None:
        return Path(os.path.realpath(found)).parent
    candidates = [Path(d) for d in glob.glob(PG_BIN_GLOB) if Path(d, "initdb").exists()]
    return max(candidates, key=_major_version, default=None)


def _major_version(directory: Path) -> int:
    name = directory.parent.name
    return int(name) if name.isdigit() else 0


def _die_with_parent() -> None:
    """In the child before exec: end when the test process ends (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ChildServer:
    """A server process of the tests: started, waited for, stopped by its pid."""

    name = "server"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = directory / f"{self.name}.log"

    def _spawn(self, argv: list[str], **kwargs: Any) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent, **kwargs)  # noqa: PLW1509 - no threads yet

    def _wait_until(self, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start in {START_TIMEOUT}s:\n"
                                   f"{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Ask the server to stop (``sig``), then kill it if it lingers; wait for it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, sig)
        _reap(process)

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _reap(process: subprocess.Popen[bytes]) -> None:
    """Wait for a stopping child; kill it if it lingers past ``STOP_TIMEOUT``."""
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


class PostgresServer(ChildServer):
    """``initdb`` into a temporary directory, then ``postgres`` on a loopback port.

    Durability is traded for speed (no fsync): the data is a test's, thrown away.
    """

    name = "postgres"

    def __init__(self, directory: Path, programs: Path) -> None:
        super().__init__(directory)
        self.programs = programs
        self.data = directory / "data"
        # The socket directory sits in the temporary directory too, so the
        # server never needs the system's /var/run/postgresql.
        self.sockets = directory

    def start(self) -> PostgresServer:
        """Make the data directory the first time, then run the server on it
        (again on the same port and data after :meth:`stop`)."""
        owner = self._owner()
        if not (self.data / "PG_VERSION").exists():
            self._give_to(owner)
            self._run_as(owner, [str(self.programs / "initdb"), "-D", str(self.data), "-A",
                                 "trust", "-U", PG_USER, "-E", "UTF8", "--locale=C",
                                 "--no-sync"])
        settings = {"listen_addresses": "127.0.0.1", "unix_socket_directories": str(self.sockets),
                    "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                    "max_connections": "200", "shared_buffers": "32MB"}
        argv = [str(self.programs / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        self._spawn(argv, **self._user_kwargs(owner))
        self._wait_until(self._ready)
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def stop(self, sig: signal.Signals = signal.SIGINT) -> None:
        """SIGINT is PostgreSQL's fast shutdown: sessions are ended, no wait for them."""
        super().stop(sig)

    def crash(self) -> None:
        """Immediate shutdown (SIGQUIT), as ``pg_ctl stop -m immediate``: no
        checkpoint; the next start recovers from the write-ahead log. Commits of
        the last fraction of a second may be lost (``synchronous_commit`` is off)."""
        self.stop(signal.SIGQUIT)

    def restart(self) -> PostgresServer:
        """Fast shutdown, then the server again on the same port and data."""
        self.stop()
        return self.start()

    def _ready(self) -> bool:
        """The postmaster writes "ready" into its pid file once it accepts connections
        (the file of this very process: an earlier run's could be left behind)."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        ours = self.process is not None and lines[:1] == [str(self.process.pid)]
        return ours and len(lines) >= 8 and lines[7].strip() == "ready"

    @staticmethod
    def _owner() -> pwd.struct_passwd | None:
        """The account to run as: ``postgres`` when we are root, else ourselves."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            unavailable("the postgres account (Debian package postgresql) to run "
                        "PostgreSQL, which refuses root")

    def _give_to(self, owner: pwd.struct_passwd | None) -> None:
        """Hand the directory to the server's account (its parents must let it in:
        the fixtures make it under the system's temporary directory)."""
        if owner is not None:
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)

    @staticmethod
    def _user_kwargs(owner: pwd.struct_passwd | None) -> dict[str, Any]:
        if owner is None:
            return {}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": owner.pw_dir,
               "LANG": "C", "LC_ALL": "C"}
        return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": [], "env": env}

    def _run_as(self, owner: pwd.struct_passwd | None, argv: list[str]) -> None:
        done = subprocess.run(argv, capture_output=True, timeout=START_TIMEOUT,
                              check=False, **self._user_kwargs(owner))
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed:\n{done.stdout.decode(errors='replace')}"
                               f"{done.stderr.decode(errors='replace')}")


class RedisServer(ChildServer):
    """``redis-server`` on a loopback port, its files in a temporary directory.

    No persistence unless asked: ``appendonly`` turns the append-only file on,
    for tests that restart Redis and expect their data back.
    """

    name = "redis"

    def __init__(self, directory: Path, program: str, appendonly: bool = False) -> None:
        super().__init__(directory)
        self.program = program
        self.appendonly = appendonly

    def start(self) -> RedisServer:
        self._spawn([self.program, "--port", str(self.port), "--bind", "127.0.0.1",
                     "--dir", str(self.directory), "--save", "",
                     "--appendonly", "yes" if self.appendonly else "no",
                     "--daemonize", "no", "--protected-mode", "yes"])
        self._wait_until(self.ping)
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        """True when the server answers PING (RESP spoken by hand: no client needed)."""
        return self._ask(b"PING").startswith(b"+PONG")

    def _ask(self, command: bytes) -> bytes:
        """One inline command's answer (empty when the server is unreachable or closed
        the connection, as SHUTDOWN does)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(command + b"\r\n")
                return conn.recv(64)
        except OSError:
            return b""

    def shutdown(self, keep_data: bool) -> None:
        """Stop the server as an operator would: ``SHUTDOWN SAVE`` writes its data
        to disk first (loaded at the next start); ``SHUTDOWN NOSAVE`` does not, and
        whatever it wrote before is removed, so it comes back empty. Then wait
        for the process by its pid (killed if it lingers)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        self._ask(b"SHUTDOWN SAVE" if keep_data else b"SHUTDOWN NOSAVE")
        _reap(process)
        if not keep_data:
            self._forget()

    def restart(self, keep_data: bool) -> RedisServer:
        """Shut down (see :meth:`shutdown`), then start again on the same port."""
        self.shutdown(keep_data)
        return self.start()

    def _forget(self) -> None:
        for path in [*self.directory.glob("*.rdb"), *self.directory.glob("*.aof")]:
            path.unlink()
        shutil.rmtree(self.directory / "appendonlydir", ignore_errors=True)


def start_postgres() -> PostgresServer:
    """A running private PostgreSQL, or a skip (a failure in CI) when it is not installed."""
    programs = postgres_programs()
    if programs is None:
        unavailable("PostgreSQL's initdb (Debian package postgresql)")
    return PostgresServer(_scratch("pg"), programs).start()


def start_redis(appendonly: bool = False) -> RedisServer:
    """A running private Redis, or a skip (a failure in CI) when it is not installed."""
    program = shutil.which("redis-server")
    if program is None:
        unavailable("redis-server (Debian package redis-server)")
    return RedisServer(_scratch("redis"), program, appendonly).start()


def _scratch(name: str) -> Path:
    """A new directory of the system's temporary directory, which any account can
    reach (pytest's own are private to us, so the postgres account could not)."""
    return Path(tempfile.mkdtemp(prefix=f"chatd-test-{name}-"))
