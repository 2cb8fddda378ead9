"""The ``chatd`` command line: useradd, configuration errors, --version."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from chatd import __version__
from chatd.ops.control import control_path
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
        assert daemon.services.accounts.require("late").is_admin
        clients = Clients(daemon)
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


def test_values_out_of_range_are_refused_by_name(tmp_path: Path) -> None:
    db = tmp_path / "chatd.db"
    result = chatd("serve", "--port", "77777", "--db", str(db))
    assert result.returncode == 2, result.stderr
    assert result.stderr == ("chatd: configuration error: listen.port: 77777 is not a port "
                             "(0 to 65535)\n")
    cases = {"irc:\n  port: 77777\n": "irc.port",
             "metrics:\n  port: -1\n": "metrics.port",
             "limits:\n  max_connections: 0\n": "limits.max_connections",
             "limits:\n  message_rate: -5\n": "limits.message_rate",
             "listen:\n  host: no-such-host.invalid\n": "listen.host"}
    bad = tmp_path / "bad.yaml"
    for text, key in cases.items():
        bad.write_text(text)
        result = chatd("--config", str(bad), "--db", str(db), "--port", "0")
        assert result.returncode == 2, (key, result.stderr)
        assert result.stderr.startswith(f"chatd: configuration error: {key}: "), result.stderr
        assert result.stderr.count("\n") == 1
    assert not db.exists()


def test_values_the_daemon_cannot_run_with_are_refused_at_start(tmp_path: Path) -> None:
    """A zero that would crash the writer or make every login an internal error, and
    an empty database path (an unset variable), are configuration errors (exit 2)."""
    db = tmp_path / "chatd.db"
    bad = tmp_path / "bad.yaml"
    cases = {"storage:\n  flush_interval: 0\n": "storage.flush_interval",
             "limits:\n  auth_window: 0s\n": "limits.auth_window",
             "storage:\n  path: ''\n": "storage.path"}
    for text, key in cases.items():
        bad.write_text(text)
        db_option = [] if key == "storage.path" else ["--db", str(db)]
        result = subprocess.run([str(CHATD), "--config", str(bad), *db_option, "--port", "0"],
                                capture_output=True, text=True, timeout=10, check=False)
        assert result.returncode == 2, (key, result.stderr)
        assert result.stderr.startswith(f"chatd: configuration error: {key}: "), result.stderr
        assert result.stderr.count("\n") == 1
    result = chatd("serve", "--port", "0", "--db", "")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("chatd: configuration error: storage.path: "), result.stderr
    assert not db.exists()


def test_a_section_given_twice_is_refused_not_half_forgotten(tmp_path: Path) -> None:
    """YAML keeps the last of two equal keys: a "listen:" appended to change the host
    would put the port back to its default without a word."""
    config = tmp_path / "chatd.yaml"
    config.write_text("listen:\n  port: 0\nserver:\n  name: x\n  name: y\n")
    result = chatd("--config", str(config), "--db", str(tmp_path / "chatd.db"))
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"chatd: configuration error: {config}: line 5: 'name' is given "
                             "twice (first at line 4); merge the two into one\n")
    config.write_text("listen:\n  port: 0\nstorage:\n  path: chatd.db\nlisten:\n"
                      "  host: 127.0.0.1\n")
    result = chatd("--config", str(config), "--port", "0")
    assert result.returncode == 2, result.stderr
    assert "line 5: 'listen' is given twice (first at line 1)" in result.stderr
    assert not (tmp_path / "chatd.db").exists()


def test_an_empty_listening_address_is_refused_not_every_interface(tmp_path: Path) -> None:
    """An empty host (an unset variable: --host "$HOST") would bind every interface."""
    db = tmp_path / "chatd.db"
    result = subprocess.run([str(CHATD), "serve", "--host", "", "--port", "0", "--db", str(db)],
                            capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr == ("chatd: configuration error: listen.host: is empty: name an "
                             "address (0.0.0.0 or :: to listen on every interface)\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("metrics:\n  enabled: true\n  host: ''\n")
    result = subprocess.run([str(CHATD), "--config", str(bad), "--port", "0", "--db", str(db)],
                            capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("chatd: configuration error: metrics.host: is empty")
    assert not db.exists()


def test_two_listeners_on_one_port_are_refused_by_name(tmp_path: Path) -> None:
    """The second would fail to bind, "address already in use", and send the operator
    looking for another program: named as the configuration error it is."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = tmp_path / "chatd.db"
    bad = tmp_path / "bad.yaml"
    cases = {f"irc:\n  enabled: true\n  port: {port}\n":
             f"irc.port: {port} is listen.port too",
             f"metrics:\n  enabled: true\n  host: 0.0.0.0\n  port: {port}\n":
             f"metrics.port: {port} is listen.port too"}
    for text, said in cases.items():
        bad.write_text(text)
        result = chatd("--config", str(bad), "--db", str(db), "--port", str(port))
        assert result.returncode == 2, result.stderr
        assert result.stderr == (f"chatd: configuration error: {said}: each listener needs a "
                                 "port of its own (0: any free one)\n")
    assert not db.exists()


async def test_a_files_directory_that_is_a_file_stops_the_start(tmp_path: Path) -> None:
    """Every upload would fail with internal-error, and nothing said so until one did."""
    db = tmp_path / "chatd.db"
    not_a_directory = tmp_path / "files"
    not_a_directory.write_text("a file\n")
    config = write_config(tmp_path / "chatd.yaml", files={"dir": str(not_a_directory)})
    with ChatdProcess.serve(tmp_path, config, db) as daemon:
        assert await daemon.wait(TIMEOUT) == 1
    errors = [line for line in daemon.log().splitlines() if "level=error" in line]
    assert len(errors) == 1 and 'msg="cannot start"' in errors[0], daemon.log()
    assert f"files.dir {not_a_directory} is not a directory" in errors[0]
    assert not db.exists()


def test_a_missing_database_directory_is_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "dir" / "chatd.db"
    result = chatd("serve", "--port", "0", "--db", str(missing))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "level=error" in line]
    assert len(errors) == 1 and 'msg="cannot start"' in errors[0]
    assert f"the directory {missing.parent} does not exist" in errors[0]
    assert not missing.parent.exists()


async def test_a_failed_start_leaves_no_new_database_behind(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        config = write_config(tmp_path / "chatd.yaml")
        with ChatdProcess.serve(tmp_path, config, port=port) as daemon:
            assert await daemon.wait(TIMEOUT) == 1
        assert 'msg="cannot start"' in daemon.log()
        left = await asyncio.to_thread(os.listdir, tmp_path)
        assert sorted(left) == ["chatd.log", "chatd.yaml"]

        # A database that was there before the failed start is kept.
        made = await asyncio.to_thread(chatd, "useradd", "kept", "--password-stdin",
                                       "--config", str(config), "--db",
                                       str(tmp_path / "chatd.db"), stdin=f"{PASSWORD}\n")
        assert made.returncode == 0, made.stderr
        with ChatdProcess.serve(tmp_path, config, port=port) as daemon:
            assert await daemon.wait(TIMEOUT) == 1
        assert (await asyncio.to_thread(os.stat, tmp_path / "chatd.db")).st_size > 0


async def test_log_lines_start_with_a_timestamp_unless_stderr_is_the_journal(
        tmp_path: Path) -> None:
    config = write_config(tmp_path / "chatd.yaml")
    log_path = tmp_path / "chatd.log"
    plain = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    daemon = ChatdProcess([str(CHATD), "--config", str(config), "--db",
                           str(tmp_path / "chatd.db"), "--port", "0"], log_path, env=plain)
    daemon.control_path = str(tmp_path / "chatd.db.sock")
    with daemon:
        await daemon.ready()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait(TIMEOUT) == 0
    lines = daemon.log().splitlines()
    stamp = re.compile(r"^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=")
    assert lines and all(stamp.match(line) for line in lines), lines

    # Under systemd, JOURNAL_STREAM names stderr's device and inode: no timestamps.
    await asyncio.to_thread(log_path.write_bytes, b"")
    status = await asyncio.to_thread(os.stat, log_path)
    journal = {**plain, "JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}
    daemon = ChatdProcess(daemon.args, log_path, env=journal)
    daemon.control_path = str(tmp_path / "chatd.db.sock")
    with daemon:
        await daemon.ready()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait(TIMEOUT) == 0
    lines = daemon.log().splitlines()
    assert lines and all(line.startswith("level=") for line in lines), lines


async def test_relative_paths_follow_the_configuration_file_and_db_the_working_directory(
        tmp_path: Path) -> None:
    etc, elsewhere = tmp_path / "etc", tmp_path / "elsewhere"
    for folder in (etc / "data", elsewhere):
        await asyncio.to_thread(folder.mkdir, parents=True)
    config = write_config(etc / "chatd.yaml", storage={"path": "data/chatd.db"},
                          control={"path": "data/ctl.sock"})
    daemon = ChatdProcess([str(CHATD), "--config", str(config), "--port", "0"],
                          tmp_path / "chatd.log", cwd=elsewhere)
    daemon.control_path = str(etc / "data" / "ctl.sock")
    with daemon:
        await daemon.ready()
        assert await asyncio.to_thread(os.path.exists, etc / "data" / "chatd.db")
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait(TIMEOUT) == 0
    assert await asyncio.to_thread(os.listdir, elsewhere) == []

    # --db on the command line is relative to the working directory, as usual.
    made = await asyncio.to_thread(
        subprocess.run, [str(CHATD), "useradd", "here", "--password-stdin", "--config",
                         str(config), "--db", "here.db"],
        input=f"{PASSWORD}\n", capture_output=True, text=True, timeout=TIMEOUT,
        check=False, cwd=elsewhere)
    assert made.returncode == 0, made.stderr
    assert await asyncio.to_thread(os.path.exists, elsewhere / "here.db")


async def test_the_started_line_names_each_listener(tmp_path: Path) -> None:
    config = write_config(tmp_path / "chatd.yaml", irc={"enabled": True, "port": 0},
                          web={"enabled": True, "port": 0})
    with ChatdProcess.serve(tmp_path, config) as daemon:
        await daemon.ready()
        started = next(line for line in daemon.log().splitlines() if 'msg="started"' in line)
        ports = {kind: int(port) for kind, port in
                 re.findall(r"\b(line|irc|web)=127\.0\.0\.1:(\d+)(?=\s)", started)}
        assert set(ports) == {"line", "irc", "web"}, started
        assert "addresses=" not in started
        # And the database it serves (--db and a file's storage.path can disagree).
        assert started.endswith(f" database={tmp_path / 'chatd.db'}"), started
        # Each port speaks what its name says.
        reader, writer = await asyncio.open_connection("127.0.0.1", ports["line"])
        assert (await reader.readline()).startswith(b"* chatd ")
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", ports["irc"])
        writer.write(b"PING probe\r\n")
        assert b"PONG" in await reader.readline()
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", ports["web"])
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait(TIMEOUT) == 0
