"""Reloading the configuration (SIGHUP, Daemon.reload) and stopping on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

from chatd.client import ChatClient
from tests.helpers import PASSWORD
from tests.operations import (
    CHATCTL,
    CHATD,
    ChatdProcess,
    exists,
    running_daemon,
    wait_for,
    write_config,
)

FAST = {"message_rate": 10000.0, "message_burst": 10000.0}


async def test_sighup_applies_a_new_configuration(tmp_path: Path) -> None:
    config = write_config(tmp_path / "chatd.yaml", server={"motd": "first motd"}, limits=FAST)
    with ChatdProcess.serve(tmp_path, config) as daemon:
        host, port = await daemon.ready()
        alice = await ChatClient.connect(host, port)
        bob = await ChatClient.connect(host, port)
        try:
            assert "first motd" in alice.banner
            await alice.command(f"/register alice {PASSWORD}")
            await bob.command(f"/register bob {PASSWORD}")
            await alice.command("/create lounge")
            await bob.command("/join lounge")

            write_config(config, server={"motd": "second motd"},
                         limits={"message_rate": 0.01, "message_burst": 2.0})
            daemon.signal(signal.SIGHUP)
            await daemon.wait_log(r'msg="reloaded"')

            newcomer = await ChatClient.connect(host, port)
            try:
                assert "second motd" in newcomer.banner
                assert "first motd" not in newcomer.banner
            finally:
                await newcomer.close()

            # The connections from before the reload are still there, under the new limits.
            assert (await alice.command("/ping")).ok
            replies = [await alice.say(f"hello {n}") for n in range(3)]
            assert [r["type"] for r in replies[:2]] == ["message", "message"]
            assert replies[2]["type"] == "error" and replies[2]["code"] == "rate-limited"
            got = await bob.next_event(lambda e: e.get("type") == "message")
            assert got["text"] == "hello 0"
        finally:
            await alice.close()
            await bob.close()


async def test_sighup_with_a_bad_configuration_keeps_the_old_one(tmp_path: Path) -> None:
    config = write_config(tmp_path / "chatd.yaml", server={"motd": "kept motd"})
    with ChatdProcess.serve(tmp_path, config) as daemon:
        host, port = await daemon.ready()
        config.write_text(config.read_text() + "\nfrobnicate:\n  level: 11\n")
        daemon.signal(signal.SIGHUP)
        refused = await daemon.wait_log(r'msg="reload refused"')
        assert "frobnicate" in refused and "unknown key" in refused

        write_config(config, server={"motd": "kept motd"}, limits={"flood_action": "explode"})
        daemon.signal(signal.SIGHUP)
        await wait_for(lambda: daemon.log().count('msg="reload refused"') == 2)
        second = daemon.log().splitlines()
        assert any("limits.flood_action" in line and "explode" in line for line in second
                   if 'msg="reload refused"' in line)
        assert 'msg="reloaded"' not in daemon.log()

        client = await ChatClient.connect(host, port)
        try:
            assert "kept motd" in client.banner
            assert (await client.command("/ping")).ok
        finally:
            await client.close()


async def test_sigterm_tells_clients_and_exits_zero(tmp_path: Path) -> None:
    config = write_config(tmp_path / "chatd.yaml")
    with ChatdProcess.serve(tmp_path, config) as daemon:
        host, port = await daemon.ready()
        clients = [await ChatClient.connect(host, port) for _ in range(2)]
        try:
            await clients[0].command(f"/register alice {PASSWORD}")
            daemon.signal(signal.SIGTERM)
            started = time.monotonic()
            assert await daemon.wait(5.0) == 0
            assert time.monotonic() - started < 5.0
            for client in clients:
                notice = await client.next_event(lambda e: e.get("shutdown") is True, 2.0)
                assert notice["type"] == "notice" and "shutting down" in notice["text"]
                assert (await client.next_event(timeout=2.0))["type"] == "closed"
        finally:
            for client in clients:
                await client.close()
        assert 'msg="stopped"' in daemon.log()
        assert not exists(daemon.control_path)


async def test_reload_in_process_returns_the_problem(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        bad = tmp_path / "bad.yaml"
        bad.write_text("server:\n  motd: x\n  colour: blue\n")
        daemon.config_path = str(bad)
        problem = daemon.reload()
        assert problem is not None and "server.colour" in problem and "unknown key" in problem
        assert daemon.config.server.motd == ""

        daemon.config_path = str(tmp_path / "missing.yaml")
        problem = daemon.reload()
        assert problem is not None and "missing.yaml" in problem

        good = write_config(tmp_path / "good.yaml", server={"motd": "reloaded motd"},
                            limits={"flood_threshold": 3})
        daemon.config_path = str(good)
        assert daemon.reload() is None
        assert daemon.config.server.motd == "reloaded motd"
        assert daemon.config.limits.flood_threshold == 3
        # What a reload cannot change stays: the database and the bound address.
        assert daemon.config.storage.path == str(tmp_path / "chatd.db")
        assert daemon.config.listen.port == 0


async def test_a_changed_restart_only_key_is_kept_and_named(tmp_path: Path) -> None:
    db = tmp_path / "chatd.db"
    config = write_config(tmp_path / "chatd.yaml", server={"motd": "first motd"},
                          control={"path": str(tmp_path / "ctl.sock")})
    # listen.port comes from the file here (no --port), so the file can change it.
    daemon = ChatdProcess([str(CHATD), "serve", "--config", str(config), "--db", str(db)],
                          tmp_path / "chatd.log")
    daemon.control_path = str(tmp_path / "ctl.sock")
    with daemon:
        host, port = await daemon.ready()
        write_config(config, server={"motd": "second motd"},
                     listen={"port": 1 if port != 1 else 2},
                     control={"path": str(tmp_path / "ctl.sock")})
        daemon.signal(signal.SIGHUP)
        warned = await daemon.wait_log(r'msg="changed keys wait for a restart')
        assert "level=warning" in warned and "keys=listen.port" in warned
        await daemon.wait_log(r'msg="reloaded"')
        # The rest is applied; the old port stays in force.
        client = await ChatClient.connect(host, port)
        try:
            assert "second motd" in client.banner
        finally:
            await client.close()

        reloaded = await asyncio.to_thread(
            subprocess.run, [str(CHATCTL), "--socket", str(tmp_path / "ctl.sock"), "reload"],
            capture_output=True, text=True, timeout=30, check=False)
        assert reloaded.returncode == 0, reloaded.stderr
        assert reloaded.stdout.strip() == "reloaded; not applied until a restart: listen.port"

        # Back to the running value: nothing waits for a restart any more.
        write_config(config, server={"motd": "third motd"},
                     control={"path": str(tmp_path / "ctl.sock")})
        reloaded = await asyncio.to_thread(
            subprocess.run, [str(CHATCTL), "--socket", str(tmp_path / "ctl.sock"), "reload"],
            capture_output=True, text=True, timeout=30, check=False)
        assert reloaded.stdout.strip() == "reloaded"


async def test_a_reload_without_a_configuration_file_says_nothing_was_read(
        tmp_path: Path) -> None:
    """Started without --config (as scripts/serve does), a reload reads no file: an
    operator who edited one is told so, not just "reloaded"."""
    db = tmp_path / "chatd.db"
    with ChatdProcess.serve(tmp_path, None, db) as daemon:
        await daemon.ready()
        reloaded = await asyncio.to_thread(
            subprocess.run, [str(CHATCTL), "--db", str(db), "reload"],
            capture_output=True, text=True, timeout=30, check=False)
        assert reloaded.returncode == 0, reloaded.stderr
        assert reloaded.stdout.strip() == (
            "reloaded, from no file: chatd was started without --config, so only its "
            "built-in defaults and command-line options apply")
        warned = await daemon.wait_log(r"started without --config")
        assert "level=warning" in warned
        answer = await asyncio.to_thread(
            subprocess.run, [str(CHATCTL), "--db", str(db), "reload", "--json"],
            capture_output=True, text=True, timeout=30, check=False)
        assert '"file": null' in answer.stdout
    config = write_config(tmp_path / "chatd.yaml")
    with ChatdProcess.serve(tmp_path, config, db) as daemon:
        await daemon.ready()
        answer = await asyncio.to_thread(
            subprocess.run, [str(CHATCTL), "--db", str(db), "reload", "--json"],
            capture_output=True, text=True, timeout=30, check=False)
        assert f'"file": "{config}"' in answer.stdout


async def test_a_reload_refuses_a_section_given_twice(tmp_path: Path) -> None:
    """Appending a second "server:" would silently reset the first one's keys: the
    reload is refused, naming the line, and chatctl still reaches the daemon."""
    db = tmp_path / "chatd.db"
    config = write_config(tmp_path / "chatd.yaml", server={"motd": "first motd"},
                          storage={"path": str(db)})
    with ChatdProcess.serve(tmp_path, config, db) as daemon:
        await daemon.ready()
        lines = config.read_text().count("\n")
        with config.open("a") as appended:
            appended.write("server:\n  name: renamed\n")
        reloaded = await asyncio.to_thread(
            subprocess.run, [str(CHATCTL), "--config", str(config), "reload"],
            capture_output=True, text=True, timeout=30, check=False)
        assert reloaded.returncode == 1, reloaded.stdout
        assert f"line {lines + 1}: 'server' is given twice" in reloaded.stderr
        assert "configuration refused" in reloaded.stderr
        status = await asyncio.to_thread(
            subprocess.run, [str(CHATCTL), "--config", str(config), "status"],
            capture_output=True, text=True, timeout=30, check=False)
        assert status.returncode == 0, status.stderr


async def test_usr1_and_usr2_are_ignored_not_fatal(tmp_path: Path) -> None:
    """Their default action ends the process at once, unwritten messages with it (a
    log rotation's postrotate "kill -USR1" is common): said and ignored."""
    config = write_config(tmp_path / "chatd.yaml")
    with ChatdProcess.serve(tmp_path, config) as daemon:
        host, port = await daemon.ready()
        for sig in (signal.SIGUSR1, signal.SIGUSR2):
            daemon.signal(sig)
            warned = await daemon.wait_log(rf"signal ignored.*signal={sig.name}")
            assert "level=warning" in warned
        client = await ChatClient.connect(host, port)
        try:
            assert (await client.command("/ping")).ok
        finally:
            await client.close()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
