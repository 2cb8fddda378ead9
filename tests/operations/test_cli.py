"""The ``chatd`` command line: useradd, configuration errors, --version."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

from chatd import __version__
from chatd.control import control_path
from tests.helpers import PASSWORD, Clients, start_server
from tests.operations import CHATD, ChatdProcess, running_daemon, write_config

TIMEOUT = 30


def chatd(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHATD), *args], input=stdin, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


async def test_useradd_creates_an_admin(tmp_path: Path) -> None:
    db = tmp_path / "chatd.db"
    config = write_config(tmp_path / "chatd.yaml")
    made = await asyncio.to_thread(chatd, "useradd", "root", "--admin", "--password-stdin",
                                   "--config", str(config), "--db", str(db),
                                   stdin=f"{PASSWORD}\n")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "created admin account root"

    again = await asyncio.to_thread(chatd, "useradd", "root", "--password-stdin",
                                    "--config", str(config), "--db", str(db), stdin="other\n")
    assert again.returncode == 1 and "root" in again.stderr and "Traceback" not in again.stderr

    server = await start_server(db)
    clients = Clients(server)
    try:
        root = await clients.anonymous()
        welcome = await root.command(f"/login root {PASSWORD}")
        assert welcome.ok
        assert server.services.accounts.require("root").is_admin
        assert (await root.command(f"/useradd dave {PASSWORD}")).ok
        dave = await clients.anonymous()
        assert (await dave.command(f"/login dave {PASSWORD}")).ok
        entries = await server.services.audit.entries(10)
        assert ("account-created", "root", "admin") in [
            (e.action, e.target, e.reason) for e in entries]
    finally:
        await clients.close()
        await server.stop()


async def test_useradd_hands_the_account_to_a_running_daemon(tmp_path: Path) -> None:
    config = write_config(tmp_path / "chatd.yaml", control={"path": str(tmp_path / "ctl.sock")})
    async with running_daemon(tmp_path) as daemon:
        made = await asyncio.to_thread(chatd, "useradd", "late", "--admin", "--config",
                                       str(config), "--db", str(tmp_path / "chatd.db"),
                                       stdin=f"{PASSWORD}\n")
        assert made.returncode == 0, made.stderr
        assert made.stdout.strip() == "created admin account late (through the running daemon)"
        # The daemon has it at once: no restart needed.
        assert daemon.server.services.accounts.require("late").is_admin
        clients = Clients(daemon.server)
        try:
            late = await clients.anonymous()
            assert (await late.command(f"/login late {PASSWORD}")).ok
        finally:
            await clients.close()
        taken = await asyncio.to_thread(chatd, "useradd", "late", "--config", str(config),
                                        "--db", str(tmp_path / "chatd.db"), stdin="other\n")
        assert taken.returncode == 1 and "name-taken" in taken.stderr
        assert "Traceback" not in taken.stderr
    alone = await asyncio.to_thread(chatd, "useradd", "later", "--password-stdin",
                                    "--config", str(config), "--db",
                                    str(tmp_path / "chatd.db"), stdin=f"{PASSWORD}\n")
    assert alone.returncode == 0 and alone.stdout.strip() == "created account later"


def test_useradd_reads_a_piped_password_without_the_option(tmp_path: Path) -> None:
    config = write_config(tmp_path / "chatd.yaml")
    made = chatd("useradd", "admin", "--admin", "--config", str(config),
                 "--db", str(tmp_path / "chatd.db"), stdin="piped-pw\n")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "created admin account admin"


def test_useradd_without_a_password_is_one_clear_line(tmp_path: Path) -> None:
    config = write_config(tmp_path / "chatd.yaml")
    for stdin in ("", "\n"):
        made = chatd("useradd", "dave", "--config", str(config),
                     "--db", str(tmp_path / "chatd.db"), stdin=stdin)
        assert made.returncode == 1 and made.stdout == ""
        assert made.stderr == "chatd: no password given (an empty password is refused)\n"
    assert "standard input" in chatd("useradd", "--help").stdout


def test_useradd_without_admin(tmp_path: Path) -> None:
    config = write_config(tmp_path / "chatd.yaml")
    made = chatd("useradd", "plain", "--password-stdin", "--config", str(config),
                 "--db", str(tmp_path / "chatd.db"), stdin="pw-of-plain\n")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "created account plain"


def test_a_bad_configuration_file_exits_2_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("listen:\n  port: 7777\n  colour: blue\n")
    for args in (["serve", "--config", str(bad), "--port", "0"],
                 ["--config", str(bad)],
                 ["--config", str(bad), "serve", "--port", "0"],  # before the sub-command
                 ["useradd", "x", "--password-stdin", "--config", str(bad)]):
        result = chatd(*args, "--db", str(tmp_path / "chatd.db"), stdin="pw\n")
        assert result.returncode == 2, (args, result.stderr)
        assert "listen.colour" in result.stderr and "unknown key" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "chatd.db").exists()


def test_bad_values_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("limits:\n  flood_window: soon\n")
    result = chatd("--config", str(bad), "--db", str(tmp_path / "chatd.db"))
    assert result.returncode == 2 and "limits.flood_window" in result.stderr
    result = chatd("--config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and "missing.yaml" in result.stderr
    bad.write_text("- just\n- a list\n")
    result = chatd("--config", str(bad))
    assert result.returncode == 2 and "mapping" in result.stderr


def test_version() -> None:
    for command in ([str(CHATD), "--version"], [sys.executable, "-m", "chatd", "--version"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT,
                                check=False)
        assert result.returncode == 0
        assert result.stdout.strip() == f"chatd {__version__}"


async def test_a_port_in_use_exits_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"),
                                port=port) as daemon:
            assert await daemon.wait(TIMEOUT) == 1
        assert 'msg="cannot start"' in daemon.log()


async def test_serve_is_the_default_command(tmp_path: Path) -> None:
    config = write_config(tmp_path / "chatd.yaml", server={"name": "defaulted"})
    daemon = ChatdProcess([str(CHATD), "--config", str(config), "--db",
                           str(tmp_path / "chatd.db"), "--port", "0", "--log-format", "json"],
                          tmp_path / "chatd.log")
    daemon.control_path = control_path(str(tmp_path / "chatd.db"), "")
    with daemon:
        await daemon.ready()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait(TIMEOUT) == 0
    assert '"msg": "stopped"' in daemon.log()
