"""``systemctl reload chatd``: the installed units' ExecReload waits for the daemon's
verdict, so a reload chatd refuses fails instead of reporting success.

The commands are those install-service writes into the units, run as systemd would
run them (without systemd): ExecStart starts the daemon, ExecReload asks it to reload.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import signal
import subprocess
from pathlib import Path

from chatd.client import ChatClient
from chatd.ops.control import control_path
from tests.operations import ChatdProcess, wait_for, write_config
from tests.operations.test_systemd import install_service


def unit_command(unit: str, key: str) -> list[str]:
    """The unit's ``key=`` command line (ExecStart, ExecReload) as argv."""
    match = re.search(rf"^{key}=(.*)$", unit, re.MULTILINE)
    assert match is not None, unit
    return shlex.split(match.group(1))


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def as_systemd_runs(argv: list[str], daemon: ChatdProcess) -> list[str]:
    """``argv`` with ``$MAINPID`` replaced by the daemon's process id, as systemd does."""
    assert daemon.proc is not None
    return [str(daemon.proc.pid) if word == "$MAINPID" else word for word in argv]


async def banner(host: str, port: int) -> str:
    client = await ChatClient.connect(host, port)
    try:
        return client.banner
    finally:
        await client.close()


async def test_the_units_reload_fails_when_chatd_refuses_and_succeeds_when_applied(
        tmp_path: Path) -> None:
    done = install_service(tmp_path)
    assert done.returncode == 0, done.stderr
    unit = (tmp_path / "etc" / "systemd" / "system" / "chatd.service").read_text()
    start, reload = unit_command(unit, "ExecStart"), unit_command(unit, "ExecReload")
    assert reload[0].endswith("/chatctl") and reload[-2:] == ["--pid", "$MAINPID"]
    # The installed configuration, pointed at a database of this test's.
    config = tmp_path / "etc" / "chatd" / "chatd.yaml"
    db = tmp_path / "chatd.db"
    settings = {"storage": {"path": str(db)}, "control": {"path": ""}}

    def configure(motd: str, **more: dict[str, object]) -> None:
        write_config(config, server={"motd": motd}, **settings, **more)  # type: ignore[arg-type]

    configure("first motd")
    daemon = ChatdProcess(start, tmp_path / "chatd.log")
    daemon.control_path = control_path(str(db), "")
    with daemon:
        host, port = await daemon.ready()
        reload = as_systemd_runs(reload, daemon)

        configure("second motd")  # a good change: applied, exit status 0
        good = await asyncio.to_thread(run, reload)
        assert good.returncode == 0, good.stderr
        assert good.stdout.strip() == "reloaded"
        assert "second motd" in await banner(host, port)

        config.write_text(config.read_text() + "server: [\n")  # YAML that does not parse
        broken = await asyncio.to_thread(run, reload)
        # chatctl cannot even read where the socket is: it says so, and never asks.
        assert broken.returncode == 2, broken.stdout
        assert "configuration error" in broken.stderr and str(config) in broken.stderr

        configure("third motd", limits={"no_such_key": 1})  # a key chatd refuses
        refused = await asyncio.to_thread(run, reload)
        assert refused.returncode == 1, refused.stdout
        assert "configuration refused" in refused.stderr
        assert "limits.no_such_key" in refused.stderr and "unknown key" in refused.stderr
        assert "second motd" in await banner(host, port)  # the old configuration serves

        # A change that needs a restart: the rest is applied, the reload still fails.
        configure("fourth motd", listen={"port": 1 if port != 1 else 2})
        waiting = await asyncio.to_thread(run, reload)
        assert waiting.returncode == 3, waiting.stdout
        assert "wait for a restart" in waiting.stderr and "listen.port" in waiting.stderr
        assert "fourth motd" in await banner(host, port)

        # SIGHUP by hand still reloads.
        configure("fifth motd")
        daemon.signal(signal.SIGHUP)
        await wait_for(lambda: daemon.log().count('msg="reloaded"') >= 3)
        assert "fifth motd" in await banner(host, port)
        assert daemon.proc is not None and daemon.proc.poll() is None


def test_the_cluster_template_reloads_through_chatctl_too(tmp_path: Path) -> None:
    done = install_service(tmp_path, "--cluster", "n1")
    assert done.returncode == 0, done.stderr
    unit = (tmp_path / "etc" / "systemd" / "system" / "chatd@.service").read_text()
    prefix, etc = tmp_path / "opt" / "chatd", tmp_path / "etc" / "chatd"
    assert unit_command(unit, "ExecReload") == [
        f"{prefix}/bin/chatctl", "--config", f"{etc}/%i.yaml", "--timeout", "30", "reload",
        "--strict", "--pid", "$MAINPID"]


async def test_the_units_reload_reaches_chatd_after_its_socket_s_place_changed_in_the_file(
        tmp_path: Path) -> None:
    """control.path (and storage.path, which names the socket) are bound at start: a
    changed one waits for a restart while the rest of the file is applied, as SIGHUP
    does. The unit's reload must still reach the running chatd (at the socket it
    opened, not the one the edited file names) and fail with status 3, not with 1
    having reloaded nothing."""
    done = install_service(tmp_path)
    assert done.returncode == 0, done.stderr
    unit = (tmp_path / "etc" / "systemd" / "system" / "chatd.service").read_text()
    start, reload = unit_command(unit, "ExecStart"), unit_command(unit, "ExecReload")
    config = tmp_path / "etc" / "chatd" / "chatd.yaml"
    db = tmp_path / "chatd.db"
    write_config(config, server={"motd": "first motd"}, storage={"path": str(db)},
                 control={"path": ""})
    daemon = ChatdProcess(start, tmp_path / "chatd.log")
    daemon.control_path = control_path(str(db), "")
    with daemon:
        host, port = await daemon.ready()
        reload = as_systemd_runs(reload, daemon)
        write_config(config, server={"motd": "second motd"}, storage={"path": str(db)},
                     control={"path": str(tmp_path / "elsewhere.sock")})
        moved = await asyncio.to_thread(run, reload)
        assert moved.returncode == 3, (moved.stdout, moved.stderr)
        assert "SIGHUP" in moved.stderr and "control.path" in moved.stderr
        await wait_for(lambda: daemon.log().count('msg="reloaded"') >= 1)
        assert "second motd" in await banner(host, port)
        assert "control.path" in daemon.log()  # the running one kept, until a restart
