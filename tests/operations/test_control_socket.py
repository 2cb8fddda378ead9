"""Which daemon chatctl reaches: one control socket per database, found like the daemon does.

Real ``chatd serve`` processes and the real ``chatctl`` console script.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chatd.ops.control import control_path
from tests.operations import CHATCTL, CHATD, ChatdProcess, exists, write_config

TIMEOUT = 30


def chatctl(*args: str, cwd: Path | None = None, stdin: str = ""
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHATCTL), *args], input=stdin, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False, cwd=cwd)


async def users_of(*args: str, cwd: Path | None = None) -> list[str]:
    done = await asyncio.to_thread(chatctl, *args, "users", "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    return [user["name"] for user in json.loads(done.stdout)]


async def test_two_databases_in_one_directory_have_a_socket_each(tmp_path: Path) -> None:
    config = write_config(tmp_path / "chatd.yaml")
    a_db, b_db = tmp_path / "a.db", tmp_path / "b.db"
    with ChatdProcess.serve(tmp_path, config, a_db) as a, \
            ChatdProcess([str(CHATD), "serve", "--config", str(config), "--db", str(b_db),
                          "--port", "0"], tmp_path / "b.log") as b:
        b.control_path = control_path(str(b_db), "")
        await a.ready()
        await b.ready()
        assert a.control_path == f"{a_db}.sock" and b.control_path == f"{b_db}.sock"
        made = await asyncio.to_thread(chatctl, "--db", str(a_db), "useradd", "only-in-a",
                                       stdin="pw-of-a\n")
        assert made.returncode == 0, made.stderr
        assert await users_of("--db", str(a_db)) == ["only-in-a"]
        assert await users_of("--db", str(b_db)) == []


async def test_a_second_daemon_on_a_live_socket_refuses_to_start(tmp_path: Path) -> None:
    config = write_config(tmp_path / "chatd.yaml")
    with ChatdProcess.serve(tmp_path, config) as first:
        await first.ready()
        second = ChatdProcess([str(CHATD), "serve", "--config", str(config), "--db",
                               str(tmp_path / "chatd.db"), "--port", "0"],
                              tmp_path / "second.log")
        with second:
            assert await second.wait(TIMEOUT) == 1
        assert "another chatd answers on the control socket" in second.log()
        assert "Traceback" not in second.log()
        # The first daemon keeps its socket and still answers.
        done = await asyncio.to_thread(chatctl, "--db", str(tmp_path / "chatd.db"), "status")
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("control", [{"enabled": False}, {"path": "elsewhere.sock"}])
async def test_a_second_daemon_on_a_served_database_refuses_to_start(
        tmp_path: Path, control: dict[str, Any]) -> None:
    """Not only through the control socket: with its own socket, or none, a second
    daemon would number messages from the same largest id as the first."""
    db = tmp_path / "chatd.db"
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as first:
        await first.ready()
        if "path" in control:
            control = {"path": str(tmp_path / control["path"])}
        other = write_config(tmp_path / "other.yaml", control=control)
        second = ChatdProcess([str(CHATD), "serve", "--config", str(other), "--db", str(db),
                               "--port", "0"], tmp_path / "second.log")
        with second:
            assert await second.wait(TIMEOUT) == 1
        assert f"another chatd serves the database {db}" in second.log()
        assert "Traceback" not in second.log()
        done = await asyncio.to_thread(chatctl, "--db", str(db), "status")
        assert done.returncode == 0, done.stderr
    # The lock ends with its process, however it ends: the next daemon starts.
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as again:
        await again.ready()


async def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    db = tmp_path / "chatd.db"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(control_path(str(db), ""))  # bound, never listening: nobody answers
    stale.close()
    assert exists(control_path(str(db), ""))
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as daemon:
        await daemon.ready()


async def test_chatctl_finds_the_daemon_of_a_configuration_file(tmp_path: Path) -> None:
    db = tmp_path / "state" / "site.db"
    db.parent.mkdir()
    config = write_config(tmp_path / "chatd.yaml", storage={"path": str(db)})
    with ChatdProcess([str(CHATD), "serve", "--config", str(config), "--port", "0"],
                      tmp_path / "chatd.log") as daemon:
        daemon.control_path = control_path(str(db), "")
        await daemon.ready()
        assert await users_of("--config", str(config)) == []
        assert await users_of("--json", "--config", str(config)) == []


async def test_chatctl_without_options_finds_the_built_in_default(tmp_path: Path) -> None:
    config = write_config(tmp_path / "chatd.yaml")  # no storage.path: chatd.db in the cwd
    with ChatdProcess([str(CHATD), "serve", "--config", str(config), "--port", "0"],
                      tmp_path / "chatd.log", cwd=tmp_path) as daemon:
        daemon.control_path = control_path(str(tmp_path / "chatd.db"), "")
        await daemon.ready()
        done = await asyncio.to_thread(chatctl, "status", cwd=tmp_path)
        assert done.returncode == 0 and "version" in done.stdout, done.stderr


async def test_chatctl_without_options_finds_the_development_daemon(tmp_path: Path) -> None:
    """The database of scripts/serve: var/chatd.db below the working directory."""
    db = tmp_path / "var" / "chatd.db"
    db.parent.mkdir()
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as daemon:
        await daemon.ready()
        done = await asyncio.to_thread(chatctl, "status", cwd=tmp_path)
        assert done.returncode == 0 and "version" in done.stdout, done.stderr
        assert await users_of(cwd=tmp_path) == []


async def test_chatd_useradd_without_options_reaches_the_development_daemon(
        tmp_path: Path) -> None:
    """Like chatctl: after scripts/serve, a plain ``chatd useradd`` adds to var/chatd.db."""
    db = tmp_path / "var" / "chatd.db"
    db.parent.mkdir()
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as daemon:
        await daemon.ready()
        made = await asyncio.to_thread(
            subprocess.run, [str(CHATD), "useradd", "dave"], input="pw-of-dave\n",
            capture_output=True, text=True, timeout=TIMEOUT, check=False, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        assert made.stdout.strip() == "created account dave (through the running daemon)"
        assert await users_of(cwd=tmp_path) == ["dave"]
    assert not (tmp_path / "chatd.db").exists()


@pytest.mark.parametrize("target", ["database", "notes"])
async def test_a_control_path_naming_another_file_is_never_deleted(
        tmp_path: Path, target: str) -> None:
    """Only a socket is replaced at start: a control.path naming the database (with
    its accounts) or any other file stops the start, and the file stays as it was."""
    db = tmp_path / "chatd.db"
    config = write_config(tmp_path / "chatd.yaml")
    with ChatdProcess.serve(tmp_path, config, db) as first:
        await first.ready()
        made = await asyncio.to_thread(chatctl, "--db", str(db), "useradd", "keeper",
                                       stdin="pw-of-keeper\n")
        assert made.returncode == 0, made.stderr
    named = db if target == "database" else tmp_path / "notes.txt"
    if target == "notes":
        named.write_text("precious\n")
    before = named.read_bytes()
    wrong = write_config(tmp_path / "wrong.yaml", control={"path": str(named)})
    with ChatdProcess.serve(tmp_path, wrong, db) as daemon:
        assert await daemon.wait(TIMEOUT) == 1
    assert f"control.path {named} is a file that is not a socket" in daemon.log()
    assert "Traceback" not in daemon.log()
    assert named.read_bytes() == before
    with ChatdProcess.serve(tmp_path, config, db) as again:
        await again.ready()
        assert await users_of("--db", str(db)) == ["keeper"]


async def test_a_socket_path_too_long_for_the_kernel_is_named_before_anything_opens(
        tmp_path: Path) -> None:
    """A database deep in the file system: its socket path would pass the kernel's
    limit. Said with the path and the way out, before the database or a listener."""
    deep = tmp_path / ("d" * 110)
    deep.mkdir()
    db = deep / "chatd.db"
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as daemon:
        assert await daemon.wait(TIMEOUT) == 1
    log = daemon.log()
    assert f"the control socket {db}.sock would be" in log
    assert "set control.path to a shorter path" in log
    assert 'msg="started"' not in log and "Traceback" not in log
    assert not db.exists()


async def test_a_stuck_daemon_is_said_to_be_stuck_not_waited_for_ever(tmp_path: Path) -> None:
    """A daemon whose event loop does not run (stopped here) still has its socket
    accept connections: chatctl gives up after --timeout and says why."""
    db = tmp_path / "chatd.db"
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as daemon:
        await daemon.ready()
        daemon.signal(signal.SIGSTOP)
        try:
            done = await asyncio.to_thread(
                subprocess.run, [str(CHATCTL), "--db", str(db), "status", "--timeout", "0.5"],
                capture_output=True, text=True, timeout=10, check=False)
        finally:
            daemon.signal(signal.SIGCONT)
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr == (f"chatctl: chatd did not answer on {db}.sock within 0.5 s (its "
                               "event loop may be stuck: see its log; chatctl --timeout waits "
                               "longer)\n")
        again = await asyncio.to_thread(chatctl, "--db", str(db), "status", "--timeout", "0")
        assert again.returncode == 0, again.stderr


async def test_a_control_path_in_a_missing_directory_is_named_before_anything_opens(
        tmp_path: Path) -> None:
    db = tmp_path / "chatd.db"
    missing = tmp_path / "run" / "chatd.sock"
    config = write_config(tmp_path / "chatd.yaml", control={"path": str(missing)})
    with ChatdProcess.serve(tmp_path, config, db) as daemon:
        assert await daemon.wait(TIMEOUT) == 1
    log = daemon.log()
    assert (f"the control socket {missing} cannot be made: the directory {missing.parent} "
            "does not exist (create it, or change control.path)") in log
    assert 'msg="started"' not in log and "Traceback" not in log
    assert not db.exists()


async def test_a_request_too_long_is_refused_not_a_traceback(tmp_path: Path) -> None:
    """A broadcast pasted whole, past the daemon's line limit: a refusal, and nothing
    unhandled in the daemon's log."""
    db = tmp_path / "chatd.db"
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as daemon:
        await daemon.ready()
        done = await asyncio.to_thread(chatctl, "--db", str(db), "broadcast", "x" * 100_000)
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr == ("chatctl: bad-arguments: the request is longer than 65536 "
                               "bytes: shorten its text\n")
        status = await asyncio.to_thread(chatctl, "--db", str(db), "status")
        assert status.returncode == 0, status.stderr
    assert "Unhandled exception" not in daemon.log() and "level=error" not in daemon.log()


async def test_a_control_socket_switched_off_is_not_taken_for_a_stopped_daemon(
        tmp_path: Path) -> None:
    db = tmp_path / "chatd.db"
    config = write_config(tmp_path / "chatd.yaml", storage={"path": str(db)},
                          control={"enabled": False})
    with ChatdProcess([str(CHATD), "serve", "--config", str(config), "--port", "0"],
                      tmp_path / "chatd.log") as daemon:
        await daemon.started()
        done = await asyncio.to_thread(chatctl, "--config", str(config), "status")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == ("chatctl: the configuration turns chatd's control socket off "
                           "(control.enabled: false): chatctl cannot reach the daemon; set "
                           "it to true and restart chatd\n")


def test_nothing_running_is_one_clear_line(tmp_path: Path) -> None:
    done = chatctl("status", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"chatctl: chatd is not running (no control socket at "
                                  f"{tmp_path / 'chatd.db'}.sock;")
    assert done.stderr.count("\n") == 1


def test_a_socket_option_naming_a_plain_file_says_so(tmp_path: Path) -> None:
    """--socket given the database (for --db) is not taken for a killed daemon's socket."""
    db = tmp_path / "chatd.db"
    db.write_bytes(b"")
    done = chatctl("--socket", str(db), "status")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (f"chatctl: {db} is not a socket: give the control socket "
                           "(--socket, such as chatd.db.sock) or the database (--db)\n")


async def test_top_without_a_terminal_says_so_instead_of_running_unseen(
        tmp_path: Path) -> None:
    """Piped (| less, > file, ssh without -t), the live screen would run until
    killed and show nothing: refused at once, pointing to what scripts use."""
    db = tmp_path / "chatd.db"
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as daemon:
        await daemon.ready()
        done = await asyncio.to_thread(subprocess.run, [str(CHATCTL), "--db", str(db), "top"],
                                       stdin=subprocess.DEVNULL, capture_output=True,
                                       text=True, timeout=10, check=False)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == ("chatctl: top needs a terminal (it redraws the screen in place); "
                           "for scripts: chatctl status --json, or chatctl audit --follow\n")


def test_a_bad_configuration_file_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("nonsense: {x: 1}\n")
    done = chatctl("--config", str(bad), "status")
    # Said, and the daemon is still looked for by the file's paths (none runs here).
    assert done.returncode == 1 and done.stderr.startswith("chatctl: configuration error")
    assert "nonsense" in done.stderr and "Traceback" not in done.stderr
    assert "chatd is not running" in done.stderr
    missing = chatctl("--config", str(tmp_path / "none.yaml"), "status")
    assert missing.returncode == 2 and "cannot read" in missing.stderr


async def test_chatctl_useradd_without_a_terminal(tmp_path: Path) -> None:
    db = tmp_path / "chatd.db"
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as daemon:
        await daemon.ready()
        empty = await asyncio.to_thread(chatctl, "--db", str(db), "useradd", "dave")
        assert empty.returncode == 1
        assert empty.stderr == "chatctl: no password given (an empty password is refused)\n"
        piped = await asyncio.to_thread(chatctl, "--db", str(db), "useradd", "dave",
                                        stdin="pw-of-dave\n")
        assert piped.returncode == 0, piped.stderr
        assert await users_of("--db", str(db)) == ["dave"]


async def test_a_request_with_values_of_the_wrong_type_is_bad_arguments(
        tmp_path: Path) -> None:
    """chatctl sends text; a request written by hand with a number, null or a list
    where text belongs is refused, never an internal error, nor shown as its repr."""
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml")) as daemon:
        await daemon.ready()
        reader, writer = await asyncio.open_unix_connection(daemon.control_path)
        requests: list[dict[str, Any]] = [
            {"cmd": "kick", "user": 5, "room": "general"},
            {"cmd": "ban", "user": "alice", "room": ["general"]},
            {"cmd": "broadcast", "text": None},
            {"cmd": "broadcast", "text": ["a"]},
            {"cmd": "kick", "user": "alice", "room": "general", "reason": 7},
            {"cmd": "useradd", "name": "carol", "password": 12345678},
            {"cmd": "userdel", "name": {"x": 1}},
            {"cmd": "promote", "name": 1},
            {"cmd": "tokens", "user": 7},
            {"cmd": "bot-create", "name": "helper", "owner": False},
        ]
        for request in requests:
            writer.write(json.dumps(request).encode() + b"\n")
            answer = json.loads(await asyncio.wait_for(reader.readline(), TIMEOUT))
            assert answer["ok"] is False and answer["code"] == "bad-arguments", request
        writer.close()
        assert await users_of("--db", str(tmp_path / "chatd.db")) == []
        assert "Traceback" not in daemon.log() and "level=error" not in daemon.log()
