"""chatd-client's terminal loop (chatd/client/tui/app.py) against a real server.

Most tests run ``main()`` in a thread of this process (so coverage sees it),
with stdin a pipe the test types into and stdout a buffer it reads: sys.stdin
and sys.stdout are process-wide, so one such client runs at a time. The
console script itself runs as a subprocess where a second terminal client,
or a stdin with no terminal behind it, is needed.
"""

from __future__ import annotations

import asyncio
import gc
import getpass
import io
import json
import os
import shutil
import socket
import stat
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from chatd.client import ChatClient
from chatd.client.tui import app
from chatd.client.tui.keyring import Keyring
from chatd.client.tui.session import ClientSession
from chatd.crypto.envelope import b64
from chatd.crypto.keys import read_private
from tests.helpers import PASSWORD, ChatServer, Clients, settle, start_server
from tests.operations.test_tls import self_signed, tls_port
from tests.relay import Relay

WAIT = 8.0  # seconds for anything to show up; the whole file takes a few
SECRET = "the vault code is 7-4-1-9 zebra"
REPLY = "copy that, bringing the zebra"
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
LOCK = "\N{LOCK}"


def argv(server: ChatServer | int, user: str | None, *more: str) -> list[str]:
    port = server if isinstance(server, int) else server.port
    return ["127.0.0.1", str(port), *(["--user", user] if user else []), "--no-color", *more]


class Terminal:
    """``chatd.client.tui.app.main(argv)`` in a thread: type into its stdin, read its stdout."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, args: list[str],
                 script: Path | None = None) -> None:
        self._typing = -1
        if script is None:  # a pipe, like a terminal or `producer | chatd-client`
            read_end, self._typing = os.pipe()
        # The other end of the pipe, or a regular file as `chatd-client < script`.
        self.stdin = open(script or read_end, encoding="utf-8")  # noqa: SIM115 (see close)
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()
        monkeypatch.setattr(sys, "stdin", self.stdin)
        monkeypatch.setattr(sys, "stdout", self.stdout)
        monkeypatch.setattr(sys, "stderr", self.stderr)
        monkeypatch.delenv("FORCE_COLOR", raising=False)
        monkeypatch.setenv("COLUMNS", "200")
        self._status: list[int | BaseException] = []
        self._thread = threading.Thread(target=self._main, args=(args,), daemon=True)
        self._thread.start()

    def _main(self, args: list[str]) -> None:
        try:
            self._status.append(app.main(args))
        except BaseException as exc:  # reported by exit_status()
            self._status.append(exc)

    @property
    def out(self) -> str:
        return self.stdout.getvalue()

    async def type(self, *lines: str | bytes) -> None:
        data = b"".join(line if isinstance(line, bytes) else f"{line}\n".encode()
                        for line in lines)
        while data:  # off the loop: a full pipe must not stop the server
            data = data[await asyncio.to_thread(os.write, self._typing, data):]

    def end_input(self) -> None:
        if self._typing >= 0:
            os.close(self._typing)
            self._typing = -1

    async def shows(self, text: str) -> str:
        """Wait until ``text`` is on the screen; the screen."""
        await until(lambda: text in self.out,
                    lambda: f"{text!r} on screen:\n{self.out}{self.stderr.getvalue()}")
        return self.out

    async def exit_status(self) -> int:
        await until(lambda: not self._thread.is_alive(),
                    lambda: f"the client to exit; screen:\n{self.out}{self.stderr.getvalue()}")
        (status,) = self._status
        if isinstance(status, BaseException):
            raise status
        return status

    async def close(self) -> None:
        """End the input (the client then quits), wait for it, release stdin."""
        self.end_input()
        await until(lambda: not self._thread.is_alive(), lambda: "the client to exit")
        self.stdin.close()


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may make keys in the real home, whatever it forgets to pass."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home/.config"))


@pytest.fixture
async def terminal(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def start(args: list[str], script: Path | None = None) -> Terminal:
        assert all(t.stdin.closed for t in opened), "one in-process client at a time"
        opened.append(Terminal(monkeypatch, args, script))
        return opened[-1]

    yield start
    for term in opened:  # (the server still runs: a client quitting gets its answer)
        await term.close()
    # An unclosed stdin transport would warn when collected: make it happen here.
    gc.collect()


async def until(condition: Callable[[], bool], what: Callable[[], str],
                timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what()}")
        await asyncio.sleep(0.02)


def console_script() -> list[str]:
    script = shutil.which("chatd-client", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "chatd.client.tui.app"]


class Spawned:
    """The real ``chatd-client`` console script, in its own session (no terminal)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._raw = b""

    @property
    def out(self) -> str:
        return self._raw.decode(errors="replace")  # (a read may end inside a character)

    @classmethod
    async def start(cls, args: list[str], home: Path, **env: str) -> Spawned:
        environ = {k: v for k, v in os.environ.items()
                   if k not in ("XDG_CONFIG_HOME", "CHATD_PASSWORD", "CHATD_TOKEN",
                                "FORCE_COLOR")}
        proc = await asyncio.create_subprocess_exec(
            *console_script(), *args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # no controlling terminal: /dev/tty cannot be opened
            env={**environ, "HOME": str(home), "COLUMNS": "200", "PYTHONIOENCODING": "utf-8",
                 "PYTHONPATH": PROJECT_ROOT, **env})
        return cls(proc)

    async def type(self, *lines: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("".join(f"{line}\n" for line in lines).encode())
        await self.proc.stdin.drain()

    async def shows(self, text: str) -> str:
        assert self.proc.stdout is not None
        async with asyncio.timeout(WAIT):
            while text not in self.out:
                chunk = await self.proc.stdout.read(65536)
                if not chunk:
                    raise AssertionError(f"{text!r} never shown:\n{self.out}")
                self._raw += chunk
        return self.out

    async def finish(self) -> tuple[int, str, str]:
        """Close stdin, wait for the exit; (status, all of stdout, stderr)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        assert self.proc.stderr is not None
        self.proc.stdin.close()
        async with asyncio.timeout(WAIT):
            rest, err = await asyncio.gather(self.proc.stdout.read(), self.proc.stderr.read())
            status = await self.proc.wait()
        self._raw += rest
        return status, self.out, err.decode()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def spawned() -> AsyncIterator[Callable[..., Awaitable[Spawned]]]:
    running: list[Spawned] = []

    async def spawn(args: list[str], home: Path, **env: str) -> Spawned:
        running.append(await Spawned.start(args, home, **env))
        return running[-1]

    yield spawn
    for proc in running:
        await proc.kill()


StartTerminal = Callable[..., Terminal]
Spawn = Callable[..., Awaitable[Spawned]]


# -- logging in, a plain room, quitting ---------------------------------------------------


async def test_registers_chats_in_a_plain_room_and_quits(
        server: ChatServer, clients: Clients, terminal: StartTerminal, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv("CHATD_PASSWORD", PASSWORD)
    bob = await clients.user("bob")
    await bob.command("/create lobby")
    await settle(bob)

    zed = terminal(argv(server, "zed", "--register"))
    await zed.shows("published your key")
    await zed.type("/join lobby", "hello bob, [bold]this is not bold[/bold]")
    got = await bob.next_event(lambda e: e.get("type") == "message")
    assert (got["from"], got["room"], got["text"]) == \
        ("zed", "lobby", "hello bob, [bold]this is not bold[/bold]")
    await bob.command("/say lobby hi zed, [link=https://evil.example]click[/link]")
    screen = await zed.shows("<bob> hi zed, [link=https://evil.example]click[/link]")
    assert "<zed> hello bob, [bold]this is not bold[/bold]" in screen  # its own echo
    assert "made your end-to-end identity in" in screen
    assert "You joined #lobby" in screen

    await zed.type("   ", "/QUIT", "never sent")  # blank lines are skipped; /quit in any case
    assert await zed.exit_status() == 0
    await bob.command("/ping")
    assert not [e for e in bob.pending_events() if e.get("text") == "never sent"]
    # Keys went to $XDG_CONFIG_HOME/chatd-client, private; the caller's stdin is
    # neither closed nor left non-blocking.
    home = config / "chatd-client"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "identity.key").stat().st_mode) == 0o600
    assert not zed.stdin.closed and os.get_blocking(zed.stdin.fileno())


async def test_a_password_file_a_token_and_the_end_of_input(
        server: ChatServer, clients: Clients, terminal: StartTerminal, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    zed = await clients.user("zed")
    await zed.command("/create lobby")
    secret = (await zed.command("/token create bot"))["token"]
    monkeypatch.delenv("CHATD_PASSWORD", raising=False)
    monkeypatch.setattr(getpass, "getpass", pytest.fail)  # never asked

    password_file = tmp_path / "pw"
    password_file.write_text(f"{PASSWORD}\nthe first line only\n")
    term = terminal(argv(server, "zed", "--password-file", str(password_file),
                         "--config-dir", str(tmp_path / "keys")))
    await term.shows("Welcome back, zed")
    await term.type("/whoami")
    await term.shows("zed")
    term.end_input()  # end of input: a clean exit
    assert await term.exit_status() == 0
    await term.close()

    monkeypatch.setenv("CHATD_TOKEN", secret)
    term = terminal(argv(server, "zed", "--config-dir", str(tmp_path / "keys")))
    screen = await term.shows("Welcome back, zed")
    assert "Your rooms: #lobby" in screen
    assert "made your end-to-end identity" not in screen  # the same keys as before
    await term.type("/exit")
    assert await term.exit_status() == 0


@pytest.mark.parametrize("problem", ["missing", "directory", "not UTF-8"])
async def test_an_unreadable_password_file_is_one_clear_line(server: ChatServer, tmp_path: Path,
                                                             problem: str) -> None:
    # The real console script: one line naming the file, never a traceback.
    path = {"missing": tmp_path / "nope", "directory": tmp_path,
            "not UTF-8": tmp_path / "latin1"}[problem]
    if problem == "not UTF-8":
        path.write_bytes(b"caf\xe9\n")
    spawned = await Spawned.start(argv(server, "zed", "--password-file", str(path),
                                       "--config-dir", str(tmp_path / "keys")), tmp_path)
    async with asyncio.timeout(WAIT):
        _, err = await spawned.proc.communicate()
    assert spawned.proc.returncode == 1
    lines = err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chatd-client: cannot read the password "
                                                   f"from {path}"), err.decode()


async def test_a_config_dir_that_cannot_be_made_is_one_clear_line(server: ChatServer,
                                                                  tmp_path: Path) -> None:
    # --config-dir naming a file (or under one): one line naming it, never a traceback.
    afile = tmp_path / "afile"
    afile.write_text("not a directory\n")
    for directory in (afile, afile / "keys"):
        spawned = await Spawned.start(argv(server, "zed", "--config-dir", str(directory)),
                                      tmp_path, CHATD_PASSWORD=PASSWORD)
        async with asyncio.timeout(WAIT):
            _, err = await spawned.proc.communicate()
        assert spawned.proc.returncode == 1
        lines = err.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"chatd-client: cannot keep the client's keys in {directory}: "), err.decode()


async def test_stdin_from_dev_null_is_the_end_of_input(server: ChatServer, clients: Clients,
                                                      tmp_path: Path) -> None:
    # `chatd-client ... < /dev/null` (cron, a script that only logs in): a character
    # device epoll refuses, which left the client waiting for ever after a traceback.
    await clients.user("zed")
    environ = {k: v for k, v in os.environ.items() if k not in ("CHATD_TOKEN", "FORCE_COLOR")}
    proc = await asyncio.create_subprocess_exec(
        *console_script(), *argv(server, "zed", "--config-dir", str(tmp_path / "keys")),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True,
        env={**environ, "HOME": str(tmp_path), "CHATD_PASSWORD": PASSWORD,
             "PYTHONPATH": PROJECT_ROOT})
    try:
        async with asyncio.timeout(WAIT):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert "Welcome back, zed" in out.decode() and err == b"", err.decode()


@pytest.mark.parametrize("typed", ["/format text", "/set format text",
                                   "/quote format text", "/SET FORMAT json"])
async def test_the_format_is_not_changed_from_the_client(
        server: ChatServer, clients: Clients, terminal: StartTerminal, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, typed: str) -> None:
    # The client reads JSON: sent, the line switched the connection to text it cannot
    # read, and the session ended ("no answer from the server").
    await clients.user("zed")
    monkeypatch.setenv("CHATD_PASSWORD", PASSWORD)
    term = terminal(argv(server, "zed", "--config-dir", str(tmp_path / "keys")))
    await term.shows("Welcome back, zed")
    await term.type(typed, "/whoami")
    await term.shows("You are zed")
    assert "the format cannot change here" in term.out
    assert "no answer from the server" not in term.out
    term.end_input()
    assert await term.exit_status() == 0


async def test_an_upload_through_quote_is_refused_too(
        server: ChatServer, clients: Clients, terminal: StartTerminal, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # /quote runs its words as the command: /quote upload put the connection in upload
    # mode, and every later line (a message, a command) was taken for file data.
    zed = await clients.user("zed")
    await zed.command("/create lobby")
    monkeypatch.setenv("CHATD_PASSWORD", PASSWORD)
    term = terminal(argv(server, "zed", "--config-dir", str(tmp_path / "keys")))
    await term.shows("Welcome back, zed")
    await term.type("/quote upload notes.txt 3 lobby", "/quote /UPLOAD notes.txt 3 lobby",
                    "/whoami")
    await term.shows("You are zed")
    assert term.out.count("/upload is not sent from chatd-client") == 2
    term.end_input()
    assert await term.exit_status() == 0


async def test_a_bad_password_is_a_clear_error(
        server: ChatServer, clients: Clients, terminal: StartTerminal, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    await clients.user("zed")
    monkeypatch.delenv("CHATD_PASSWORD", raising=False)
    monkeypatch.delenv("CHATD_TOKEN", raising=False)
    keys = str(tmp_path / "keys")
    # No --user and no terminal: the name and the password are lines of stdin.
    monkeypatch.setattr(app, "_have_terminal", lambda: False)
    term = terminal(argv(server, None, "--config-dir", keys))
    await term.type("zed", "not-the-password", "/join lobby")
    assert await term.exit_status() == 1
    assert term.out.startswith("user: password for zed: ")
    assert "! auth-failed: wrong name or password." in term.out
    assert "published" not in term.out and "not-the-password" not in term.out
    await term.close()

    # With a terminal the password is asked there (getpass), never read from stdin.
    asked: list[str] = []

    def ask_password(prompt: str) -> str:
        asked.append(prompt)
        return PASSWORD

    monkeypatch.setattr(getpass, "getpass", ask_password)
    monkeypatch.setattr(app, "_have_terminal", lambda: True)
    term = terminal(argv(server, None, "--config-dir", keys))
    await term.type("zed", "/whoami")
    await term.shows("You are zed")
    term.end_input()
    assert await term.exit_status() == 0
    assert asked == ["password for zed: "]


async def test_the_identity_is_written_only_once_the_login_succeeds(
        server: ChatServer, clients: Clients, terminal: StartTerminal, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    zed = await clients.user("zed")
    keys = tmp_path / "keys"
    identity = keys / "identity.key"
    with socket.socket() as sock:  # a mistyped port: nobody listens there
        sock.bind(("127.0.0.1", 0))
        nowhere = sock.getsockname()[1]
    monkeypatch.setenv("CHATD_PASSWORD", PASSWORD)
    term = terminal(argv(nowhere, "zed", "--config-dir", str(keys)))
    assert await term.exit_status() == 1
    assert "cannot connect" in term.out and not identity.exists()
    await term.close()

    monkeypatch.setenv("CHATD_PASSWORD", "not-the-password")  # a refused login
    term = terminal(argv(server, "zed", "--config-dir", str(keys)))
    assert await term.exit_status() == 1
    assert "auth-failed" in term.out and not identity.exists()
    assert "made your end-to-end identity" not in term.out
    await term.close()

    monkeypatch.setenv("CHATD_PASSWORD", PASSWORD)
    term = terminal(argv(server, "zed", "--config-dir", str(keys)))
    screen = await term.shows("published your key")
    assert f"made your end-to-end identity in {keys}" in screen
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600
    # The key the server holds is the one on disk.
    published = (await zed.command("/keys get zed"))["keys"][0]["key"]
    assert published == b64(read_private(identity).x25519_public)
    await term.close()


def test_connection_refused_and_unreadable_keys(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATD_PASSWORD", PASSWORD)
    monkeypatch.setenv("COLUMNS", "200")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert app.main(argv(port, "zed", "--config-dir", str(tmp_path / "keys"))) == 1
    assert f"! cannot connect to 127.0.0.1:{port}" in capsys.readouterr().out

    broken = tmp_path / "broken"
    broken.mkdir(mode=0o700)
    (broken / "identity.key").write_text("not a key\n")
    (broken / "identity.key").chmod(0o600)
    assert app.main(argv(port, "zed", "--config-dir", str(broken))) == 1
    assert capsys.readouterr().err.startswith("chatd-client: ")

    for typed in (b"", b"zed"):  # the end of input before a name; a name without "\n"
        read_end, write_end = os.pipe()
        os.write(write_end, typed)
        os.close(write_end)
        with open(read_end, encoding="utf-8") as stdin:
            monkeypatch.setattr(sys, "stdin", stdin)
            assert app.main(argv(port, None, "--config-dir", str(tmp_path / "keys"))) != 0
    assert capsys.readouterr().out.startswith(f"user: user: ! cannot connect to 127.0.0.1:{port}")


# -- end-to-end rooms -----------------------------------------------------------------------


async def test_an_e2e_room_between_two_terminal_clients(
        server: ChatServer, clients: Clients, terminal: StartTerminal, spawned: Spawn,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    carl = await clients.user("carl")  # a plain client: no keys
    await carl.command("/create vault")
    await carl.command("/e2e on vault")
    # Amy runs the console script, her keys under $HOME/.config.
    amy = await spawned(argv(server, "amy", "--register"), tmp_path / "amy-home",
                        CHATD_PASSWORD=PASSWORD)
    await amy.shows("published your key")
    await amy.type("/join vault")
    await amy.shows("You joined #vault")
    monkeypatch.setenv("CHATD_PASSWORD", PASSWORD)
    zed = terminal(argv(server, "zed", "--register", "--config-dir", str(tmp_path / "zed")))
    await zed.type("/join vault")
    await zed.shows("You joined #vault")
    await settle(carl)

    await zed.type(SECRET)
    screen = await zed.shows(f"<zed> {SECRET}")
    assert f"{LOCK} \N{CHECK MARK} <zed> {SECRET}" in screen
    assert "first key seen for amy" in screen
    assert "! carl has no key yet and cannot read this message." in screen
    # Amy's terminal decrypts it, and pins and verifies Zed's key.
    assert f"{LOCK} \N{CHECK MARK} <zed> {SECRET}" in await amy.shows(SECRET)
    # Carl, in the room without keys, gets an envelope and nothing else.
    relayed = await carl.next_event(lambda e: e.get("type") == "message")
    assert relayed["from"] == "zed" and relayed["e2e"] and relayed["envelope"]
    assert "text" not in relayed and "zebra" not in json.dumps(relayed)

    await amy.type(REPLY)
    screen = await zed.shows(f"<amy> {REPLY}")  # arrived unasked, through the pump
    assert f"{LOCK} \N{CHECK MARK} <amy> {REPLY}" in screen
    await zed.type("/quit")
    assert await zed.exit_status() == 0
    status, out, err = await amy.finish()  # her stdin ends: she quits too
    assert status == 0, err
    assert out.count(SECRET) == 1 and REPLY in out
    assert stat.S_IMODE((tmp_path / "amy-home/.config/chatd-client/identity.key")
                        .stat().st_mode) == 0o600


async def test_control_characters_from_the_network_are_shown_safely(
        server: ChatServer, clients: Clients, terminal: StartTerminal, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATD_PASSWORD", PASSWORD)
    zed = terminal(argv(server, "zed", "--register", "--config-dir", str(tmp_path / "zed")))
    await zed.type("/create vault", "/e2e on")
    await zed.shows("#vault is now end-to-end encrypted only.")
    # Mallory's client is the library session: it seals whatever it is given,
    # and the server cannot clean what it cannot read.
    keyring, _ = Keyring.open(tmp_path / "mallory", f"127.0.0.1:{server.port}")
    mallory = ClientSession(await ChatClient.connect("127.0.0.1", server.port), keyring)
    try:
        await mallory.login("mallory", PASSWORD, register=True)
        await mallory.input("/join vault")
        nasty = ("\x1b[2J\x1b[31mred\x07 \x9b6n back\x08\x08 cr\r"
                 "\x1b]8;;https://evil.example\x1b\\link [bold]markup[/bold]"
                 "\n[08:00] <zed> a forged second line")
        await mallory.input(nasty)
        screen = await zed.shows("<mallory> ")
        await zed.shows("a forged second line")
    finally:
        await mallory.client.close()
    for control in ("\x1b", "\x07", "\x08", "\x9b", "\r"):
        assert control not in screen
    shown = screen[screen.index("<mallory> "):]
    assert shown.startswith("<mallory> \ufffd[2J\ufffd[31mred\ufffd \ufffd6n back\ufffd\ufffd cr"
                            "\ufffd\ufffd]8;;https://evil.example\ufffd\\link [bold]markup"
                            "[/bold]\n    [08:00] <zed> a forged second line")
    # What the server says about others is shown as text too, never as markup.
    carl = await clients.user("carl")
    await carl.command("/create lobby")
    await zed.type("/join lobby")
    await zed.shows("You joined #lobby")
    await carl.command("/topic lobby [red]not red[/red] [link=https://evil.example]x[/link]")
    await zed.shows("[red]not red[/red] [link=https://evil.example]x[/link]")
    await zed.type("/quit")
    assert await zed.exit_status() == 0


# -- stdin as scripts give it -----------------------------------------------------------------


async def test_a_script_on_stdin_without_a_terminal(server: ChatServer, clients: Clients,
                                                    spawned: Spawn, tmp_path: Path) -> None:
    """`printf 'zed\\npw\\n...' | chatd-client`: with no terminal to ask on, the name and
    the password are lines of stdin, and the lines after them are still the script."""
    bob = await clients.user("bob")
    await bob.command("/create lobby")
    await clients.user("zed")
    await settle(bob)
    script = await spawned(argv(server, None), tmp_path / "home")
    await script.type("zed", PASSWORD, "/join lobby", "hello from a script")
    got = await bob.next_event(lambda e: e.get("type") == "message")
    assert (got["from"], got["text"]) == ("zed", "hello from a script")
    status, out, err = await script.finish()
    assert status == 0, err
    assert out.startswith("user: password for zed: ")
    assert PASSWORD not in out and "<zed> hello from a script" in out


async def test_a_file_on_stdin_and_lines_too_long_to_send(
        server: ChatServer, clients: Clients, terminal: StartTerminal, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATD_PASSWORD", PASSWORD)
    bob = await clients.user("bob")
    await bob.command("/create lobby")
    await clients.user("zed")
    await settle(bob)
    long_line = "x" * (app.STDIN_LIMIT + 10)
    script = tmp_path / "script.txt"  # a regular file: read whole, then run line by line
    script.write_text(f"/join lobby\n{long_line}\nfirst\n{long_line}")  # no final newline
    term = terminal(argv(server, "zed", "--config-dir", str(tmp_path / "keys")), script)
    assert await term.exit_status() == 0
    await term.close()
    assert term.out.count(f"! a line over {app.STDIN_LIMIT} bytes was not sent.") == 2
    await bob.command("/ping")
    said = [e["text"] for e in bob.pending_events() if e.get("type") == "message"]
    assert said == ["first"]

    # From a pipe the long line arrives in pieces; none of them is sent.
    term = terminal(argv(server, "zed", "--config-dir", str(tmp_path / "keys")))
    await term.shows("Your rooms: #lobby")  # where plain lines go
    for _ in range(4):
        await term.type(b"y" * (app.STDIN_LIMIT // 3))
        await asyncio.sleep(0.05)
    await term.type(b"y" * 100 + b"\n", "second", b"last line, no newline")
    await term.shows("<zed> second")
    term.end_input()
    assert await term.exit_status() == 0
    assert term.out.count("was not sent") == 1
    await bob.command("/ping")
    said = [e["text"] for e in bob.pending_events() if e.get("type") == "message"]
    assert said == ["second", "last line, no newline"]


async def test_the_server_going_away_ends_the_client(
        db_path: Path, terminal: StartTerminal, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = await start_server(db_path)
    try:
        monkeypatch.setenv("CHATD_PASSWORD", PASSWORD)
        term = terminal(argv(server, "zed", "--register", "--config-dir", str(tmp_path),
                             "--no-reconnect"))
        await term.shows("published your key")
    finally:
        await server.stop()
    assert await term.exit_status() == 0  # nothing typed: stdin still open
    assert "the server is shutting down" in term.out
    assert term.out.rstrip().endswith("! the server closed the connection.")


async def test_tls(tmp_path: Path, terminal: StartTerminal,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed(tmp_path)
    server = await start_server(tmp_path / "chatd.db", tls__enabled=True, tls__port=0,
                                tls__cert=str(cert), tls__key=str(key))
    monkeypatch.setenv("CHATD_PASSWORD", PASSWORD)
    keys = str(tmp_path / "keys")
    try:
        port = tls_port(server)
        term = terminal(argv(port, "zed", "--register", "--tls", "--config-dir", keys))
        assert await term.exit_status() == 1  # a certificate nobody vouches for
        assert f"! cannot connect to 127.0.0.1:{port}" in term.out
        assert "CERTIFICATE_VERIFY_FAILED" in term.out
        await term.close()

        term = terminal(argv(port, "zed", "--register", "--tls", "--cafile", str(cert),
                             "--config-dir", keys))
        await term.shows("Welcome, zed")
        term.end_input()
        assert await term.exit_status() == 0
        await term.close()

        term = terminal(argv(port, "zed", "--tls", "--insecure", "--config-dir", keys))
        await term.shows("Welcome back, zed")
        await term.type("/quit")
        assert await term.exit_status() == 0
    finally:
        await server.stop()


async def test_the_connection_dropping_during_a_command(
        server: ChatServer, clients: Clients, terminal: StartTerminal, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATD_PASSWORD", PASSWORD)
    await clients.user("zed")
    async with Relay(server.port, cut_at=b"/rooms") as proxy:
        term = terminal(argv(proxy.port, "zed", "--config-dir", str(tmp_path / "keys"),
                             "--no-reconnect"))
        await term.shows("Welcome back, zed")
        started = time.monotonic()
        await term.type("/rooms")
        assert await term.exit_status() == 0
        assert time.monotonic() - started < 1.5  # no waiting for a /quit nobody answers
    screen = term.out
    assert "! no answer from the server (connection closed)." in screen
    assert "! the server closed the connection." in screen
