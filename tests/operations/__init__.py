"""Operations: the daemon around the chat server (systemd, reload, chatctl, top,
backups, metrics, TLS, the command line). Helpers shared by those tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import yaml

from chatd.app.app import App
from chatd.app.compose import build_app
from chatd.ops.control import control_path
from chatd.ops.control_client import ControlClient, ControlError
from tests.helpers import TEST_OVERRIDES, test_config

# The console scripts of the interpreter running the tests (the project's venv).
BIN = Path(sys.executable).parent
CHATD = BIN / "chatd"
CHATCTL = BIN / "chatctl"

PROCESS_TIMEOUT = 10.0
# The "started" log line's line-protocol addresses, in the kv and in the json log format.
_STARTED = re.compile(r'msg="started".*\bline=("[^"]*"|\S+)'
                      r'|"msg": "started".*"line": ("[^"]*")')


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """A umask for this process and those it starts inside (they inherit it)."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def dotted(overrides: dict[str, Any]) -> dict[str, Any]:
    """``section__key`` keyword overrides as the ``section.key`` ones the config wants."""
    return {key.replace("__", "."): value for key, value in overrides.items()}


@contextlib.contextmanager
def restored_logging() -> Iterator[None]:
    """Undo what ``configure_logging`` (called by a reload) does to the root logger."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


@contextlib.asynccontextmanager
async def running_daemon(tmp_path: Path, **overrides: Any) -> AsyncIterator[App]:
    """An in-process App on 127.0.0.1 port 0 with a control socket in ``tmp_path``.

    A reload re-reads no file (config_path None): the test overrides are passed
    as the daemon's command-line overrides so a reload keeps them.
    """
    overrides.setdefault("control__path", str(tmp_path / "ctl.sock"))
    config = test_config(tmp_path / "chatd.db", **overrides)
    with restored_logging():
        daemon = build_app(config, process=True, overrides={**TEST_OVERRIDES,
                                           "storage.path": config.storage.path,
                                           **dotted(overrides)})
        await daemon.start()
        try:
            yield daemon
        finally:
            await daemon.stop()


async def wait_for(predicate: Any, timeout: float = 5.0, step: float = 0.01) -> Any:
    """Poll ``predicate`` (sync) until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        await asyncio.sleep(step)


def write_config(path: Path, **sections: dict[str, Any]) -> Path:
    """A YAML configuration file: the fast test settings plus ``sections``."""
    data: dict[str, Any] = {}
    for key, value in TEST_OVERRIDES.items():
        section, _, name = key.partition(".")
        data.setdefault(section, {})[name] = value
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


class ChatdProcess:
    """``chatd serve`` as a child process, its stderr (the log) in a file.

    Always use it as a context manager: the process is terminated (then
    killed) and reaped however the test ends.
    """

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None,
                 pass_fds: tuple[int, ...] = (), cwd: Path | None = None) -> None:
        self.args = args
        self.cwd = cwd
        self.log_path = log_path
        self.env = env
        self.pass_fds = pass_fds
        self.proc: subprocess.Popen[bytes] | None = None
        self.address: tuple[str, int] | None = None
        # Where ``chatd serve --db D`` puts it by default.
        self.control_path = ""

    @classmethod
    def serve(cls, tmp_path: Path, config: Path | None = None, db: Path | None = None,
              *extra: str, port: int = 0) -> ChatdProcess:
        args = [str(CHATD), "serve", "--db", str(db or tmp_path / "chatd.db"),
                "--port", str(port)]
        if config is not None:
            args += ["--config", str(config)]
        process = cls(args + list(extra), tmp_path / "chatd.log")
        process.control_path = control_path(str(db or tmp_path / "chatd.db"), "")
        return process

    def __enter__(self) -> ChatdProcess:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log, env=self.env,
                                         pass_fds=self.pass_fds, cwd=self.cwd)
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(PROCESS_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(PROCESS_TIMEOUT)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def started(self, timeout: float = PROCESS_TIMEOUT) -> tuple[str, int]:
        """Wait for the ``started`` log line; the first line-protocol address it lists."""
        def address() -> tuple[str, int] | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"chatd exited with {self.proc.returncode}:\n{self.log()}")
            match = _STARTED.search(self.log())
            if match is None:
                return None
            first = (match.group(1) or match.group(2)).strip('"').split()[0]
            host, _, port = first.rpartition(":")
            return host.strip("[]"), int(port)

        self.address = await wait_for(address, timeout)
        return self.address

    async def ready(self, timeout: float = PROCESS_TIMEOUT) -> tuple[str, int]:
        """Started, and answering on its control socket.

        The control socket answers only once ``App.run`` has installed its
        signal handlers (nothing in between yields to the event loop), so
        signals sent after this are handled rather than fatal.
        """
        address = await self.started(timeout)
        control = ControlClient(self.control_path)

        async def answers() -> bool:
            with contextlib.suppress(ControlError, OSError):
                await control.call("status")
                return True
            return False

        deadline = time.monotonic() + timeout
        while not await answers():
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer on {self.control_path}:\n{self.log()}")
            await asyncio.sleep(0.01)
        return address

    async def wait_log(self, pattern: str, timeout: float = 5.0) -> str:
        """Wait for a log line matching the regular expression; that line."""
        regex = re.compile(pattern)

        def line() -> str | None:
            return next((ln for ln in self.log().splitlines() if regex.search(ln)), None)

        found: str = await wait_for(line, timeout)
        return found

    def signal(self, signum: signal.Signals) -> None:
        os.kill(self.pid, signum)

    async def wait(self, timeout: float = PROCESS_TIMEOUT) -> int:
        """The exit status (raises subprocess.TimeoutExpired after ``timeout``)."""
        assert self.proc is not None
        return await asyncio.to_thread(self.proc.wait, timeout)


def exists(path: str | Path) -> bool:
    """Whether ``path`` exists (a sync helper: a local stat is instant)."""
    return os.path.exists(path)
