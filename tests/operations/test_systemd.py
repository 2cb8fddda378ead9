"""systemd integration: sd_notify, the watchdog, socket activation and the unit files."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatd import __version__
from chatd.app.compose import build_app
from chatd.client import ChatClient
from chatd.config import load_config
from chatd.ops import systemd
from tests.helpers import test_config as make_config
from tests.operations import (
    BIN,
    CHATD,
    ChatdProcess,
    exists,
    restored_logging,
    running_daemon,
    wait_for,
    write_config,
)
from tests.services import unavailable

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 5.0


@contextlib.contextmanager
def notify_socket(monkeypatch: pytest.MonkeyPatch, address: str) -> Iterator[socket.socket]:
    """A datagram socket the daemon notifies, bound at ``address`` ("@name": abstract)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind("\0" + address[1:] if address.startswith("@") else address)
        sock.settimeout(TIMEOUT)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        yield sock
    finally:
        sock.close()


async def receive(sock: socket.socket) -> dict[str, str]:
    """The next notification, as its ``KEY=value`` lines (blocking read in a thread)."""
    data = await asyncio.to_thread(sock.recv, 4096)
    return dict(line.split("=", 1) for line in data.decode().splitlines())


def probe_when_ready(sock: socket.socket, db_path: Path) -> dict[str, object]:
    """Block until READY=1 and check, right then, that the daemon can be used.

    It runs in a thread while the event loop is still inside ``App.start``,
    so it sees the state at the moment of the notification.
    """
    fields = dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())
    address = fields.get("STATUS", "").rsplit(" ", 1)[-1]
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT):
        connected = True
    uri = f"file:{db_path}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    return {"fields": fields, "connected": connected, "tables": tables}


async def test_ready_reloading_stopping_are_notified(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_path = tmp_path / "chatd.db"
    with notify_socket(monkeypatch, str(tmp_path / "notify.sock")) as sock, restored_logging():
        config = make_config(db_path, control__path=str(tmp_path / "ctl.sock"))
        daemon = build_app(config, process=True, overrides={"accounts.bcrypt_cost": 4})
        probe = asyncio.ensure_future(asyncio.to_thread(probe_when_ready, sock, db_path))
        await daemon.start()
        try:
            ready = await asyncio.wait_for(probe, TIMEOUT)
            assert ready["fields"]["READY"] == "1"
            assert ready["fields"]["STATUS"] == \
                f"serving on {' '.join(daemon.addresses)}"
            assert ready["connected"] is True
            assert {"users", "rooms"} <= ready["tables"]  # type: ignore[operator]

            assert daemon.reload() is None
            reloading = await receive(sock)
            assert reloading["RELOADING"] == "1"
            now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            assert now - 5_000_000 < int(reloading["MONOTONIC_USEC"]) <= now
            assert await receive(sock) == {"READY": "1"}
        finally:
            await daemon.stop()
        assert await receive(sock) == {"STOPPING": "1"}


async def test_ready_is_sent_once_signals_are_handled(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at_ready: dict[str, object] = {}
    real_notify = systemd.notify

    def spy(*lines: str, env: dict[str, str] | None = None) -> bool:
        if "READY=1" in lines and not at_ready:
            at_ready.update(hup=signal.getsignal(signal.SIGHUP),
                            term=signal.getsignal(signal.SIGTERM))
        return real_notify(*lines, env=env)

    monkeypatch.setattr(systemd, "notify", spy)
    config = make_config(tmp_path / "chatd.db", control__path=str(tmp_path / "ctl.sock"))
    with restored_logging():
        daemon = build_app(config, process=True)
        running = asyncio.ensure_future(daemon.run())
        try:
            await wait_for(lambda: at_ready or running.done())
        finally:
            daemon.request_stop()
            assert await asyncio.wait_for(running, 10) == 0
    assert at_ready["hup"] not in (signal.SIG_DFL, signal.SIG_IGN, None)
    assert at_ready["term"] not in (signal.SIG_DFL, signal.SIG_IGN, None)


async def test_run_serves_until_asked_to_stop(tmp_path: Path) -> None:
    config = make_config(tmp_path / "chatd.db", control__path=str(tmp_path / "ctl.sock"))
    with restored_logging():
        daemon = build_app(config, process=True)
        running = asyncio.ensure_future(daemon.run())
        try:
            await wait_for(lambda: exists(tmp_path / "ctl.sock") or running.done())
            assert not running.done()
            client = await ChatClient.connect("127.0.0.1", daemon.port)
            try:
                assert (await client.command("/ping")).ok
                daemon.request_stop()
                assert await asyncio.wait_for(running, 10) == 0
                notice = await client.next_event(lambda e: e.get("shutdown") is True)
                assert notice["type"] == "notice"
            finally:
                await client.close()
        finally:
            if not daemon._stopping.is_set():  # a second request_stop would os._exit
                daemon.request_stop()
            await asyncio.wait_for(running, 10)
    assert not exists(tmp_path / "ctl.sock")


async def test_a_refused_reload_still_ends_with_ready(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("limits:\n  no_such_key: 1\n")
    with notify_socket(monkeypatch, str(tmp_path / "notify.sock")) as sock:
        async with running_daemon(tmp_path) as daemon:
            assert (await receive(sock))["READY"] == "1"
            daemon.config_path = str(bad)
            assert daemon.reload() is not None
            assert (await receive(sock))["RELOADING"] == "1"
            assert await receive(sock) == {"READY": "1"}


async def test_watchdog_pings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    with notify_socket(monkeypatch, str(tmp_path / "notify.sock")) as sock:
        async with running_daemon(tmp_path):
            seen = []
            for _ in range(4):  # the first ping, READY=1, then ping again 0.1 s later
                seen.append(await asyncio.wait_for(receive(sock), TIMEOUT))
            assert sum(1 for n in seen if n.get("WATCHDOG") == "1") >= 2
            assert any(n.get("READY") == "1" for n in seen)


async def test_no_watchdog_without_watchdog_usec(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    with notify_socket(monkeypatch, str(tmp_path / "notify.sock")) as sock:
        async with running_daemon(tmp_path) as daemon:
            assert (await receive(sock))["READY"] == "1"
            assert daemon._watchdog is None


async def test_abstract_namespace_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"@chatd-test-{uuid.uuid4().hex}"
    with notify_socket(monkeypatch, name) as sock:
        assert systemd.notify("STATUS=hello", "READY=1") is True
        assert await receive(sock) == {"STATUS": "hello", "READY": "1"}
        async with running_daemon(tmp_path):
            assert (await receive(sock))["READY"] == "1"
        assert await receive(sock) == {"STOPPING": "1"}


def test_notify_outside_systemd_does_nothing(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    assert systemd.notify("READY=1", env={}) is False
    # A socket that is not there is not an error for the daemon.
    assert systemd.notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


def test_listen_sockets_ignores_other_processes_fds() -> None:
    other = str(os.getpid() + 1)
    assert systemd.listen_sockets({"LISTEN_FDS": "1", "LISTEN_PID": other}) == []
    assert systemd.listen_sockets({}) == []
    assert systemd.listen_sockets({"LISTEN_PID": str(os.getpid())}) == []
    assert systemd.listen_sockets({"LISTEN_FDS": "0", "LISTEN_PID": str(os.getpid())}) == []


async def test_a_listen_fds_without_listen_pid_is_not_taken(tmp_path: Path) -> None:
    """A LISTEN_FDS left in an environment without LISTEN_PID passes no sockets (as
    sd_listen_fds says): chatd listens where its configuration says, instead of
    failing on whatever descriptor 3 is (here: none)."""
    env = {**os.environ, "LISTEN_FDS": "1"}
    env.pop("LISTEN_PID", None)
    db = tmp_path / "chatd.db"
    with ChatdProcess([str(CHATD), "serve", "--config", str(write_config(tmp_path / "chatd.yaml")),
                       "--db", str(db), "--port", "0"], tmp_path / "chatd.log",
                      env=env) as daemon:
        host, port = await daemon.started()
        reader, writer = await asyncio.open_connection(host, port)
        assert (await reader.readline()).startswith(b"* chatd ")
        writer.close()
    assert "service manager passed" not in daemon.log()


def test_watchdog_interval() -> None:
    assert systemd.watchdog_interval({}) is None
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "200000",
                                      "WATCHDOG_PID": str(os.getpid())}) == 0.1
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "200000",
                                      "WATCHDOG_PID": str(os.getpid() + 1)}) is None


# The launcher does what systemd does before exec'ing the service: the socket
# becomes fd 3 and LISTEN_FDS/LISTEN_PID describe it.
LAUNCHER = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


async def test_socket_activation(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        args = [sys.executable, "-c", LAUNCHER, str(listener.fileno()), str(CHATD), "serve",
                "--db", str(tmp_path / "chatd.db"), "--port", "0"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "LISTEN_FDS", "LISTEN_PID"):
            env.pop(key, None)
        daemon = ChatdProcess(args, tmp_path / "chatd.log", env=env,
                              pass_fds=(listener.fileno(),))
        with daemon:
            listener.close()  # only the daemon holds it now
            assert await daemon.started() == ("127.0.0.1", port)
            client = await ChatClient.connect("127.0.0.1", port)
            try:
                assert f"chatd {__version__}" in client.banner
                assert (await client.command("/ping")).ok
            finally:
                await client.close()
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait() == 0
    finally:
        listener.close()


def install_service(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """scripts/install-service with every location below ``root`` and chatd already there.

    PREFIX holds links to this interpreter's console scripts (PIP_INSTALL=no),
    so nothing is downloaded, no real system path is written and systemctl is
    never called (the units do not go where systemd reads them).
    """
    prefix = root / "opt" / "chatd"
    (prefix / "bin").mkdir(parents=True, exist_ok=True)
    for name in ("chatd", "chatctl"):
        link = prefix / "bin" / name
        if not link.exists():
            link.symlink_to(os.path.realpath(BIN / name))
    # The group that may read the configuration: this process's own, which exists (the
    # installed default, chatd, would be created on this machine).
    overrides = {"GROUP": grp.getgrgid(os.getgid()).gr_name,
                 "PREFIX": str(prefix), "ETC": str(root / "etc" / "chatd"),
                 "UNITS": str(root / "etc" / "systemd" / "system"),
                 "BINDIR": str(root / "usr" / "local" / "bin"),
                 "DOCDIR": str(root / "usr" / "share" / "doc" / "chatd"), "PIP_INSTALL": "no"}
    return subprocess.run([str(ROOT / "scripts" / "install-service"), *args],
                          env={**os.environ, **overrides, **env}, capture_output=True,
                          text=True, timeout=60, check=False)


def test_install_service_honours_every_location(tmp_path: Path) -> None:
    done = install_service(tmp_path)
    assert done.returncode == 0, done.stderr
    units = tmp_path / "etc" / "systemd" / "system"
    service = (units / "chatd.service").read_text()
    prefix, etc = tmp_path / "opt" / "chatd", tmp_path / "etc" / "chatd"
    assert re.search(rf"^ExecStart={prefix}/bin/chatd serve --config {etc}/chatd.yaml$",
                     service, re.MULTILINE), service
    assert f"Documentation=file://{tmp_path}/usr/share/doc/chatd/README.md" in service
    for default in ("/opt/chatd/", "/etc/chatd/", "/usr/share/doc/chatd/"):
        assert service.count(default) == service.count(f"{tmp_path}{default}"), default
    assert "--db" not in service.split("ExecStart=")[1].splitlines()[0]
    assert (units / "chatd.socket").read_text() == (ROOT / "scripts" / "chatd.socket").read_text()
    assert os.readlink(tmp_path / "usr" / "local" / "bin" / "chatctl") == str(
        prefix / "bin" / "chatctl")
    assert (tmp_path / "usr" / "share" / "doc" / "chatd" / "README.md").exists()
    # The configuration it installs puts the database in the unit's state directory.
    config = load_config(etc / "chatd.yaml")
    assert config.storage.path == "/var/lib/chatd/chatd.db"
    assert config == load_config(None, {"storage.path": "/var/lib/chatd/chatd.db"})
    assert f"{tmp_path}/usr/local/bin/chatctl --config {etc}/chatd.yaml useradd" in done.stdout


def test_install_service_keeps_an_existing_configuration(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "chatd"
    etc.mkdir(parents=True)
    (etc / "chatd.yaml").write_text("server:\n  name: mine\n")
    done = install_service(tmp_path)
    assert done.returncode == 0, done.stderr
    assert (etc / "chatd.yaml").read_text() == "server:\n  name: mine\n"
    assert "storage.path" in done.stdout


def test_install_service_without_chatd_in_prefix_is_a_clear_error(tmp_path: Path) -> None:
    done = install_service(tmp_path, PREFIX=str(tmp_path / "empty"))
    assert done.returncode == 1 and "chatd is missing" in done.stderr
    assert not (tmp_path / "etc").exists()


def test_installed_units_verify(tmp_path: Path) -> None:
    """systemd-analyze verify on the units install-service writes (systemd's own check)."""
    if shutil.which("systemd-analyze") is None:
        unavailable("systemd-analyze (Debian package: systemd)")
    done = install_service(tmp_path)
    assert done.returncode == 0, done.stderr
    units = tmp_path / "etc" / "systemd" / "system"
    result = subprocess.run(
        ["systemd-analyze", "verify", str(units / "chatd.service"), str(units / "chatd.socket")],
        capture_output=True, text=True, timeout=60, check=False)
    output = (result.stdout + result.stderr).splitlines()
    about_units = [line for line in output if "chatd.service" in line or "chatd.socket" in line]
    assert about_units == [], output
    if result.returncode != 0:
        # Complaints about the environment (no systemd running...) are not the units' fault.
        assert output, f"systemd-analyze failed silently ({result.returncode})"


def test_unit_files_say_what_chatd_does() -> None:
    service = (ROOT / "scripts" / "chatd.service").read_text()
    assert re.search(r"^Type=notify$", service, re.MULTILINE)
    # The reload waits for chatd's answer (a refusal fails it), not a bare SIGHUP.
    assert re.search(r"^ExecReload=/opt/chatd/bin/chatctl --config /etc/chatd/chatd.yaml "
                     r"--timeout \d+ reload --strict --pid \$MAINPID$", service, re.MULTILINE)
    # chatd exits 2 for a configuration error: no restart loop over it.
    for unit in (service, (ROOT / "scripts" / "chatd@.service").read_text()):
        assert re.search(r"^RestartPreventExitStatus=2$", unit, re.MULTILINE)
    assert re.search(r"^WatchdogSec=\d+", service, re.MULTILINE)
    socket_unit = (ROOT / "scripts" / "chatd.socket").read_text()
    assert re.search(r"^ListenStream=127\.0\.0\.1:7777$", socket_unit, re.MULTILINE)
