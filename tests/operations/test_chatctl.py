"""chatctl and the control socket behind it, against a live in-process daemon."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import sqlite3
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chatd import __version__
from chatd.app.app import App
from chatd.client import ChatClient
from chatd.ops.chatctl import main
from chatd.ops.control_client import ControlClient, ControlError
from tests.helpers import PASSWORD, Clients, settle
from tests.operations import (
    CHATCTL,
    ChatdProcess,
    exists,
    running_daemon,
    wait_for,
    write_config,
)

Event = dict[str, Any]




class Ctl:
    """Runs the real ``chatctl`` entry point (in a thread: it runs its own event loop)."""

    def __init__(self, path: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.path = path
        self.capsys = capsys

    async def run(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = await asyncio.to_thread(main, ["--socket", self.path, *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    async def json(self, *args: str) -> Any:
        code, out, err = await self.run("--json", *args)
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def ctl(daemon: App, capsys: pytest.CaptureFixture[str]) -> Ctl:
    return Ctl(daemon.control.path, capsys)


async def room_with(clients: Clients, owner: str, room: str, *members: str
                    ) -> list[ChatClient]:
    """``owner`` creates ``room`` and ``members`` join it; their connections."""
    first = await clients.user(owner)
    await first.command(f"/create {room}")
    joined = [first]
    for name in members:
        member = await clients.user(name)
        await member.command(f"/join {room}")
        joined.append(member)
    return joined




def room_events(received: list[Event], name: str) -> list[Event]:
    return [e for e in received if e.get("type") == "event" and e.get("event") == name]


async def test_control_socket_is_private_and_answers_status(daemon: App,
                                                            clients: Clients) -> None:
    path = daemon.control.path
    assert path == str(Path(daemon.config.control.path))
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    await room_with(clients, "alice", "lounge", "bob")

    status = await ControlClient(path).call("status")
    assert status["version"] == __version__
    assert status["connections"] == 2 and status["users_online"] == 2
    assert status["users"] == 2 and status["rooms"] == 1
    assert status["addresses"] == daemon.addresses
    # Which port speaks what, as the start-up log says it.
    assert status["listeners"] == f"line={daemon.addresses[0]}"
    assert status["uptime"] >= 0 and status["loop_lag"] >= 0
    for key in ("messages", "messages_per_second", "deliveries"):
        assert key in status
    # The writer's backlog, as /stats shows it.
    assert status["storage_pending"] >= 0 and status["storage_flush_seconds"] >= 0


async def test_control_refusals(daemon: App) -> None:
    client = ControlClient(daemon.control.path)
    with pytest.raises(ControlError, match="unknown-command"):
        await client.call("reboot")
    with pytest.raises(ControlError, match="bad-arguments"):
        await client.call("kick")  # no user, no room
    with pytest.raises(ControlError, match="nobody"):
        await client.call("promote", name="nobody")
    for count in (2**63, -1, "1e3", "٣", True):
        with pytest.raises(ControlError, match="bad-arguments"):
            await client.call("audit", n=count)
    assert await client.call("audit", n="5") == []


async def test_status_users_rooms(ctl: Ctl, clients: Clients) -> None:
    await room_with(clients, "alice", "lounge", "bob")
    status = await ctl.json("status")
    assert status["users"] == 2 and status["rooms"] == 1 and status["users_online"] == 2
    users = await ctl.json("users")
    assert [(u["name"], u["admin"], u["online"], u["rooms"]) for u in users] == [
        ("alice", False, True, ["lounge"]), ("bob", False, True, ["lounge"])]
    rooms = await ctl.json("rooms")
    assert len(rooms) == 1
    assert rooms[0]["name"] == "lounge" and rooms[0]["online"] == 2


async def test_useradd_userdel(ctl: Ctl, daemon: App, monkeypatch: pytest.MonkeyPatch,
                               clients: Clients) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("carols-pw\n"))
    assert await ctl.json("useradd", "carol", "--password-stdin") == {
        "name": "carol", "admin": False}
    carol = await clients.anonymous()
    assert (await carol.command("/login carol carols-pw")).ok

    monkeypatch.setattr("sys.stdin", io.StringIO("dave-pw\n"))
    assert (await ctl.json("useradd", "dave", "--admin", "--password-stdin"))["admin"] is True
    assert daemon.services.accounts.require("dave").is_admin

    assert await ctl.json("userdel", "carol") == {"name": "carol"}
    assert daemon.services.accounts.find("carol") is None
    code, _, err = await ctl.run("userdel", "carol")
    assert code == 1 and "carol" in err and "Traceback" not in err


async def test_useradd_refuses_a_password_no_login_could_send(
        ctl: Ctl, daemon: App, monkeypatch: pytest.MonkeyPatch) -> None:
    # A /login line's words are split at spaces and lose their control characters:
    # an account made with such a password could never log in.
    for password in ("two words", "tab\there", "ctrl\x01char", "nbsp\xa0pw", "\udcff\udcfe!!"):
        monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
        code, _, err = await ctl.run("useradd", "carol", "--password-stdin")
        assert code == 1 and "bad-arguments" in err and "no spaces" in err, (password, err)
    assert daemon.services.accounts.find("carol") is None


async def test_promote_and_demote(ctl: Ctl, daemon: App, clients: Clients) -> None:
    alice = await clients.user("alice")
    assert await ctl.json("promote", "alice") == {"name": "alice", "admin": True,
                                                  "changed": True}
    assert daemon.services.accounts.require("alice").is_admin
    # Again: nothing changes, and nothing more is audited.
    assert (await ctl.json("promote", "alice"))["changed"] is False
    audited = await daemon.services.audit.entries(20)
    assert [e.action for e in audited].count("server-admin") == 1
    # As a server admin, alice may create accounts over the chat protocol.
    assert (await alice.command(f"/useradd erin {PASSWORD}")).ok
    assert await ctl.json("demote", "alice") == {"name": "alice", "admin": False,
                                                 "changed": True}
    assert not daemon.services.accounts.require("alice").is_admin
    refused = await alice.command(f"/useradd frank {PASSWORD}", check=False)
    assert refused.final["type"] == "error"


async def test_broadcast(ctl: Ctl, clients: Clients) -> None:
    alice = await clients.user("alice")
    anonymous = await clients.anonymous()
    answer = await ctl.json("broadcast", "maintenance", "at", "noon")
    assert answer == {"sessions": 2, "other_nodes": False}
    code, _, err = await ctl.run("broadcast", "   ")
    assert code == 1 and "bad-arguments" in err and "needs some text" in err
    for client in (alice, anonymous):
        notice = await client.next_event(lambda e: e.get("broadcast") is True)
        assert notice["type"] == "notice" and notice["text"] == "[server] maintenance at noon"


async def test_console_text_with_control_characters_is_refused(
        ctl: Ctl, clients: Clients) -> None:
    # An escape sequence in a broadcast or a reason would reach every text-mode
    # reader's terminal as it is; the line protocol never lets one through either.
    alice, bob = await room_with(clients, "alice", "lounge", "bob")
    for args in (("broadcast", "red \x1b[31malert"), ("broadcast", "two\nlines"),
                 ("broadcast", "csi \x9b2J"), ("kick", "bob", "lounge", "bye\x07"),
                 ("ban", "bob", "lounge", "--duration", "1h", "spam\x1b]0;x\x07")):
        code, _, err = await ctl.run(*args)
        assert code == 1 and "bad-arguments" in err and "control characters" in err, args
    assert (await bob.command("/say lounge still here")).ok  # neither kicked nor banned
    assert await ctl.json("broadcast", "tab\there") == {"sessions": 2, "other_nodes": False}
    notice = await alice.next_event(lambda e: e.get("broadcast") is True)
    assert notice["text"] == "[server] tab here"
    assert await ctl.json("kick", "bob", "lounge", "be\tnice") == {"user": "bob",
                                                                  "room": "lounge"}


async def test_kick(ctl: Ctl, clients: Clients) -> None:
    alice, bob = await room_with(clients, "alice", "lounge", "bob")
    await settle(alice)
    await settle(bob)
    assert await ctl.json("kick", "bob", "lounge", "be nice") == {"user": "bob",
                                                                  "room": "lounge"}
    kick = await bob.next_event(lambda e: e.get("event") == "kick")
    assert kick["user"] == "bob" and kick["actor"] == "console" and kick["room"] == "lounge"
    seen = room_events(await settle(alice), "kick")
    assert [(e["user"], e["actor"]) for e in seen] == [("bob", "console")]
    assert (await bob.command("/say lounge hi", check=False)).final["type"] == "error"


async def test_ban(ctl: Ctl, clients: Clients) -> None:
    alice, bob = await room_with(clients, "alice", "lounge", "bob")
    await settle(bob)
    result = await ctl.json("ban", "--duration", "1h", "bob", "lounge", "spam")
    assert result["user"] == "bob" and result["room"] == "lounge" and result["until"]
    ban = await bob.next_event(lambda e: e.get("event") == "ban")
    assert ban["actor"] == "console" and ban["user"] == "bob"
    rejoin = await bob.command("/join lounge", check=False)
    assert rejoin.final.get("code") == "banned"
    assert room_events(await settle(alice), "ban")


async def test_ban_with_options_after_the_positionals(ctl: Ctl, clients: Clients) -> None:
    await room_with(clients, "alice", "lounge", "bob")
    result = await ctl.json("ban", "bob", "lounge", "--duration", "1h", "spam")
    assert result["user"] == "bob"


async def test_mute(ctl: Ctl, clients: Clients) -> None:
    alice, bob = await room_with(clients, "alice", "lounge", "bob")
    await settle(bob)
    result = await ctl.json("mute", "--duration", "10m", "bob", "lounge")
    assert result["user"] == "bob" and result["until"]
    mute = await bob.next_event(lambda e: e.get("event") == "mute")
    assert mute["actor"] == "console" and mute["user"] == "bob"
    said = await bob.command("/say lounge hello", check=False)
    assert said.final.get("code") == "muted"
    assert room_events(await settle(alice), "mute")


async def test_unban_and_unmute(ctl: Ctl, clients: Clients) -> None:
    _, bob = await room_with(clients, "alice", "lounge", "bob")
    await ctl.json("mute", "bob", "lounge")
    assert await ctl.json("unmute", "bob", "lounge") == {"user": "bob", "room": "lounge"}
    assert (await bob.command("/say lounge hello again")).ok
    await ctl.json("ban", "bob", "lounge", "spam")
    assert await ctl.json("unban", "bob", "lounge") == {"user": "bob", "room": "lounge"}
    assert (await bob.command("/join lounge")).ok
    code, _, err = await ctl.run("unban", "bob", "lounge")
    assert code == 1 and "bob is not banned" in err and "Traceback" not in err
    audit = [(e["action"], e["actor"], e["target"]) for e in await ctl.json("audit")]
    assert ("unban", "console", "bob") in audit and ("unmute", "console", "bob") in audit


async def test_tokens_listed_and_revoked(ctl: Ctl, clients: Clients) -> None:
    alice, bob = await clients.user("alice"), await clients.user("bob")
    created = await alice.command("/token create ci 7d")
    await bob.command("/token create deploy")
    listed = await ctl.json("tokens")
    assert [(t["user"], t["name"]) for t in listed] == [("alice", "ci"), ("bob", "deploy")]
    assert listed[0]["expires"] > listed[0]["created"] and listed[1]["expires"] is None
    assert "chatd_" not in json.dumps(listed)  # never the secrets
    assert [t["name"] for t in await ctl.json("tokens", "bob")] == ["deploy"]
    code, out, _ = await ctl.run("tokens")
    assert code == 0 and "never" in out and " UTC" in out

    assert await ctl.json("revoke-token", "alice", "ci") == {"user": "alice", "name": "ci"}
    bot = await clients.anonymous()
    refused = await bot.command(f"/login alice --token {created.final['token']}", check=False)
    assert refused.final.get("code") == "auth-failed"
    code, _, err = await ctl.run("revoke-token", "alice", "ci")
    assert code == 1 and 'alice has no token named "ci"' in err
    assert [t["name"] for t in await ctl.json("tokens")] == ["deploy"]


async def test_human_output_shows_dates_and_yes_no(ctl: Ctl, clients: Clients) -> None:
    await room_with(clients, "alice", "lounge", "bob")
    await ctl.json("promote", "alice")
    code, out, _ = await ctl.run("users")
    assert code == 0 and "yes" in out and "no" in out
    assert "True" not in out and "False" not in out
    code, out, _ = await ctl.run("ban", "--duration", "1h", "bob", "lounge")
    assert code == 0 and re.search(r"until: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", out), out
    code, out, _ = await ctl.run("mute", "alice", "lounge")
    assert code == 0 and "until: permanent" in out
    code, out, _ = await ctl.run("audit")
    assert code == 0 and " UTC" in out


async def test_json_is_accepted_after_the_command(ctl: Ctl, clients: Clients) -> None:
    await clients.user("alice")
    code, out, err = await ctl.run("users", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["online"] is True


async def test_reload(ctl: Ctl) -> None:
    # The in-process daemon has no configuration file: "file" says so.
    assert await ctl.json("reload") == {"reloaded": True, "restart_needed": [], "file": None}


async def test_reload_refused(ctl: Ctl, daemon: App, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("nonsense:\n  x: 1\n")
    daemon.config_path = str(bad)
    code, out, err = await ctl.run("reload")
    assert code == 1 and "configuration refused" in err and "nonsense" in err
    assert "Traceback" not in err + out


async def test_backup(ctl: Ctl, clients: Clients, tmp_path: Path) -> None:
    await room_with(clients, "alice", "lounge", "bob")
    target = tmp_path / "copies" / "backup.db"
    target.parent.mkdir()
    assert await ctl.json("backup", str(target)) == {
        "path": str(target), "database": "chatd.db", "blobs": "not-requested", "files": 1,
        "bytes": target.stat().st_size}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["backup.db"]
    with contextlib.closing(sqlite3.connect(target)) as db:
        names = sorted(row[0] for row in db.execute("SELECT name FROM users"))
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert names == ["alice", "bob"]
    audit = await ctl.json("audit", "-n", "5")
    assert audit[-1]["action"] == "backup" and audit[-1]["reason"] == str(target)
    assert audit[-1]["actor"] == "console"


async def test_backup_to_a_relative_path_is_relative_to_the_operator(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    daemon_cwd, operator_cwd = tmp_path / "daemon-cwd", tmp_path / "operator"
    daemon_cwd.mkdir()
    operator_cwd.mkdir()
    process = ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"))
    process.cwd = daemon_cwd
    with process:
        await process.ready()
        monkeypatch.chdir(operator_cwd)
        code = await asyncio.to_thread(main, ["--socket", process.control_path, "--json",
                                              "backup", "copy.db"])
        out, err = capsys.readouterr()
        assert code == 0, err
    assert json.loads(out)["path"] == str(operator_cwd / "copy.db")
    assert exists(operator_cwd / "copy.db")


async def test_audit(ctl: Ctl, clients: Clients) -> None:
    await room_with(clients, "alice", "lounge", "bob")
    entries = await ctl.json("audit")
    actions = [(e["action"], e["actor"], e["room"]) for e in entries]
    assert ("create", "alice", "lounge") in actions
    assert ("join", "bob", "lounge") in actions
    assert ("login", "alice", None) in actions
    # The latest n entries, oldest first.
    assert entries == sorted(entries, key=lambda e: e["id"])
    assert await ctl.json("audit", "-n", "2") == entries[-2:]
    in_room = await ctl.json("audit", "--room", "lounge")
    assert in_room and {e["room"] for e in in_room} == {"lounge"}


async def test_human_output(ctl: Ctl, clients: Clients, tmp_path: Path) -> None:
    await room_with(clients, "alice", "lounge", "bob")
    code, out, err = await ctl.run("status")
    assert code == 0 and err == ""
    assert "connections" in out and "addresses" in out and "version" in out
    for command, expected in (("users", "alice"), ("rooms", "lounge"), ("audit", "join")):
        code, out, err = await ctl.run(command)
        assert code == 0 and err == "" and expected in out, (command, out, err)
        assert "┃" in out or "|" in out  # a table
    code, out, err = await ctl.run("backup", str(tmp_path / "human.db"))
    assert code == 0 and f"backup written to {tmp_path / 'human.db'}: 1 file," in out


async def test_empty_lists_say_so(ctl: Ctl) -> None:
    code, out, _ = await ctl.run("rooms")
    assert code == 0 and out.strip() == "no rooms"
    code, out, _ = await ctl.run("tokens")
    assert code == 0 and out.strip() == "no tokens"


async def test_stopped_daemon_is_a_clear_error(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "nothing-here.sock")
    code = await asyncio.to_thread(main, ["--socket", path, "status"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.startswith("chatctl: chatd is not running") and "Traceback" not in err
    assert path in err.replace("\n", "")
    # Without --socket the path is the database's plus ".sock".
    code = await asyncio.to_thread(main, ["--db", str(tmp_path / "x.db"), "users"])
    _, err = capsys.readouterr()
    assert code == 1 and str(tmp_path / "x.db.sock") in err.replace("\n", "")


async def test_the_error_is_one_line_whatever_its_length(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    # Long enough for the message not to fit in 80 columns, short enough for AF_UNIX.
    path = str(tmp_path / ("d" * max(1, 50 - len(str(tmp_path)))) / "chatd.sock")
    code = await asyncio.to_thread(main, ["--socket", path, "status"])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.endswith("\n") and err.count("\n") == 1, err


async def test_a_too_long_socket_path_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / ("x" * 120) / "chatd.sock")
    code = await asyncio.to_thread(main, ["--socket", path, "status"])
    _, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err


async def test_after_the_daemon_stops(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    async with running_daemon(tmp_path) as daemon:
        path = daemon.control.path
        assert exists(path)
    assert not exists(path)
    code = await asyncio.to_thread(main, ["--socket", path, "--json", "status"])
    _, err = capsys.readouterr()
    assert code == 1 and "not running" in err and "Traceback" not in err


async def test_follow_streams_audit_entries(daemon: App, clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create lounge")
    bob = await clients.user("bob")
    follower = ControlClient(daemon.control.path).follow()
    async with contextlib.aclosing(follower):
        async def first_join() -> Event:
            async for item in follower:
                if item.get("event", {}).get("action") == "join":
                    return item["event"]
            raise AssertionError("the follow stream ended")

        waiting = asyncio.ensure_future(first_join())
        try:
            # The daemon listens for audit entries once it has read the request.
            await wait_for(lambda: daemon.services.audit.listeners)
            await bob.command("/join lounge")
            entry = await asyncio.wait_for(waiting, 5.0)
        finally:
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
    assert entry["actor"] == "bob" and entry["room"] == "lounge" and entry["ts"] > 0


async def test_follow_sends_the_last_entries_then_the_new_ones_each_once(
        daemon: App, clients: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """One request: the stream listens, then reads the last n entries (an entry
    noted meanwhile would be in both, and is sent once), then follows. bob's first
    log-in is noted, not yet written, when the stream starts."""
    monkeypatch.setattr("chatd.ops.control.FOLLOW_STATUS_INTERVAL", 0.3)
    alice = await clients.user("alice")
    await alice.command("/create lounge")
    await clients.user("bob")
    follower = ControlClient(daemon.control.path).follow(n=5)
    async with contextlib.aclosing(follower):
        # bob logs in again once the first past entry came: the daemon has read them
        # all by then. (It listens before it reads them: waiting for its listener let
        # a slow read find the new log-in stored, sent with the past ones.)
        events = [(await asyncio.wait_for(anext(follower), 5.0))["event"]]
        await clients.user("bob")
        # Status lines come between entries when the log-in takes longer than their
        # interval (a loaded machine): the entries until the live one, then nothing
        # more until a status line (a copy of an entry would come before it).
        async def until_a_status_after_the_live_one() -> None:
            while "id" in events[-1]:
                item = await anext(follower)
                events.extend([item["event"]] if "event" in item else [])
            item = await anext(follower)
            events.extend([item["event"]] if "event" in item else [])

        await asyncio.wait_for(until_a_status_after_the_live_one(), 10.0)
    assert [(e["actor"], e["action"]) for e in events] == [  # the last 5, then the new one
        ("alice", "account-created"), ("alice", "login"), ("alice", "create"),
        ("bob", "account-created"), ("bob", "login"), ("bob", "login")]
    assert "id" in events[-2] and "id" not in events[-1]  # stored, then live


async def test_follow_sends_status_lines(daemon: App,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("chatd.ops.control.FOLLOW_STATUS_INTERVAL", 0.05)
    follower = ControlClient(daemon.control.path).follow()
    async with contextlib.aclosing(follower):
        item = await asyncio.wait_for(anext(follower), 5.0)
    assert item["status"]["version"] == __version__


async def test_follow_names_its_room_as_audit_does(daemon: App, clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create lounge")
    with pytest.raises(ControlError, match="no-such-room"):
        async with contextlib.aclosing(ControlClient(daemon.control.path).follow("nosuch")) as f:
            await anext(f)
    follower = ControlClient(daemon.control.path).follow("#LOUNGE")
    async with contextlib.aclosing(follower):
        waiting = asyncio.ensure_future(anext(follower))
        await wait_for(lambda: daemon.services.audit.listeners)
        await alice.command("/topic lounge the new topic")
        await alice.command("/kick nobody lounge", check=False)
        bob = await clients.user("bob")
        await bob.command("/join lounge")
        entry = (await asyncio.wait_for(waiting, 5.0))["event"]
    assert entry["room"] == "lounge"


async def _following(daemon: App, capsys: pytest.CaptureFixture[str]
                     ) -> tuple[asyncio.Future[int], list[str]]:
    """``chatctl audit --follow -n 1`` in a thread, once it has printed the last entry;
    its exit status when the daemon stops, and what it printed so far (its output is
    read from here on).

    Waiting for the listener alone was not enough: the daemon listens before it reads
    the past entries, and a daemon stopped in between ends the stream without them."""
    capsys.readouterr()
    following = asyncio.ensure_future(asyncio.to_thread(
        main, ["--socket", daemon.control.path, "audit", "--follow", "-n", "1"]))
    printed: list[str] = []

    def shown() -> bool:
        printed.append(capsys.readouterr().out)
        return "\n" in "".join(printed)

    await wait_for(shown)
    return following, printed


async def test_audit_follow_shows_the_last_entries_then_says_when_chatd_stops(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with running_daemon(tmp_path) as daemon:
        clients = Clients(daemon)
        try:
            alice = await clients.user("alice")
            await alice.command("/create lounge")
            following, printed = await _following(daemon, capsys)
        finally:
            await clients.close()
    status = await asyncio.wait_for(following, 10)
    out, err = capsys.readouterr()
    out = "".join(printed) + out
    assert status == 1 and "ended the stream" in err
    assert "create" in out and out.count("\n") == 1  # -n 1: the room's creation


async def test_users_words_are_printed_as_text_never_as_markup(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A topic or a kick's reason is anyone's words: "[/]" stopped chatctl (rich could
    # not parse it as markup) and "[bold]" restyled what the operator reads.
    reason, topic = "[/] bye [bold]now[/bold]", "[/oops] [red]alert"
    async with running_daemon(tmp_path) as daemon:
        clients = Clients(daemon)
        ctl = Ctl(daemon.control.path, capsys)
        try:
            alice, _ = await room_with(clients, "alice", "lounge", "bob")
            await alice.command(f"/topic lounge {topic}")
            await alice.command(f"/kick bob lounge {reason}")
            for args, words in ((("audit",), reason), (("rooms",), topic),
                                (("audit", "--room", "lounge", "-n", "1"), reason)):
                code, out, err = await ctl.run(*args)
                # (A table may wrap the words; their first stays whole.)
                assert code == 0 and err == "" and words.split()[0] in out, (args, out, err)
            following, printed = await _following(daemon, capsys)
        finally:
            await clients.close()
    status = await asyncio.wait_for(following, 10)
    out, err = capsys.readouterr()
    out = "".join(printed) + out
    assert status == 1 and "ended the stream" in err and "Traceback" not in err
    assert f"kick           bob          #lounge  {reason}" in out


async def test_audit_follow_refuses_a_negative_count_as_audit_does(ctl: Ctl) -> None:
    # audit -n -5 was refused while audit --follow -n -5 quietly took it for 0.
    for args in (("audit", "-n", "-5"), ("audit", "--follow", "-n", "-5")):
        code, out, err = await asyncio.wait_for(ctl.run(*args), 10)
        assert code == 1 and "bad-arguments" in err and "-5" in err and out == "", args


async def test_an_edit_a_reload_would_refuse_does_not_lock_chatctl_out(
        daemon: App, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edited = tmp_path / "edited.yaml"
    edited.write_text(f"control:\n  path: {daemon.control.path}\n"
                      "limits:\n  max_connections: 0\n")
    status = await asyncio.to_thread(main, ["--config", str(edited), "--json", "status"])
    out, err = capsys.readouterr()
    assert status == 0 and json.loads(out)["version"] == __version__
    assert "limits.max_connections" in err and "reaching chatd" in err


async def test_an_answer_longer_than_16_mib_is_read(tmp_path: Path) -> None:
    """A big daemon's listing is one JSON line of tens of megabytes (some 110 bytes an
    account): chatctl read at most 16 MiB and ended in a traceback past it."""
    db = tmp_path / "chatd.db"
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as daemon:
        await daemon.ready()
    reason = "r" * 1000
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.executemany("INSERT INTO audit (ts, actor, action, reason) VALUES (?, ?, ?, ?)",
                         ((1.0, "console", "broadcast", reason) for _ in range(20_000)))
        conn.commit()
    with ChatdProcess.serve(tmp_path, write_config(tmp_path / "chatd.yaml"), db) as daemon:
        await daemon.ready()
        done = await asyncio.to_thread(
            subprocess.run, [str(CHATCTL), "--db", str(db), "audit", "-n", "20000", "--json"],
            capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    entries = json.loads(done.stdout)
    assert len(entries) == 20_000 and entries[-1]["reason"] == reason
