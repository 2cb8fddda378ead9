"""chatd-client: a terminal chat client with end-to-end encryption.

On a terminal it draws the full screen (chatd.client.tui.screen: a room
list, scrollback, a status bar and an editing input line). Otherwise, or
with ``--plain``, it is a thin line loop for scripts: read lines from stdin
without blocking the event loop, hand them to
:class:`~chatd.client.tui.session.ClientSession`, and print what it and the
server say with rich. Everything worth testing lives in the session.

In both modes a dropped connection is made again (unless ``--no-reconnect``),
logging in with the resume token of the last login, held in memory only, and
what was said meanwhile is fetched (:class:`~chatd.client.tui.catchup.Catchup`).

    chatd-client [host] [port] --user alice [--register] [--tls] [--plain]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import importlib.util
import logging
import os
import ssl
import stat
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from chatd import __version__
from chatd.client import ChatClient
from chatd.client.sdk.backoff import Backoff
from chatd.client.tui.catchup import Catchup, Record
from chatd.client.tui.keyring import Keyring, config_dir
from chatd.client.tui.lines import Line, error, notice
from chatd.client.tui.session import LOGINS, ClientSession
from chatd.client.tui.view import View
from chatd.crypto import CryptError
from chatd.crypto.envelope import AEADS
from chatd.crypto.keys import read_password_line

log = logging.getLogger(__name__)

PASSWORD_ENV = "CHATD_PASSWORD"
TOKEN_ENV = "CHATD_TOKEN"
QUIT = ("/quit", "/exit")
STDIN_LIMIT = 1 << 16  # longer lines typed or piped in are not sent
DEFAULT_MAX_LINE = 4096  # the line limit assumed when the server does not say it

Reconnect = Callable[[], Awaitable[list[Line]]]


def main(argv: list[str] | None = None) -> int:
    """Run the client; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        args.user = args.user or _ask("user: ").strip()
        token = args.token or os.environ.get(TOKEN_ENV)
        password = None if token else _password(args)
        return asyncio.run(run(args, password, token))
    except (KeyboardInterrupt, EOFError):
        return 130
    except (CryptError, NotConfirmed) as exc:
        print(f"chatd-client: {exc}", file=sys.stderr)
        return 1


def _password_file(path: Path) -> str:
    """The first line of ``path`` (read as chatd-crypt reads it); CryptError (one
    line, not a traceback) when it cannot be read or is not UTF-8."""
    try:
        return read_password_line(path).decode("utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
    except UnicodeDecodeError:
        reason = "not UTF-8 text"
    raise CryptError(f"cannot read the password from {path}: {reason}")


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        return _password_file(Path(args.password_file))
    password = os.environ.get(PASSWORD_ENV)
    if password:
        return password
    if not (sys.stdin.isatty() or _have_terminal()):
        # No terminal at all: the next line of input, as getpass would.
        return _ask(f"password for {args.user}: ")
    if not args.register:
        return getpass.getpass(f"password for {args.user}: ")
    # Typed unseen, a new password is typed twice: a slip would otherwise become
    # the password of the account, and lock its owner out of it at once.
    password = getpass.getpass(f"password for the new account {args.user}: ")
    if getpass.getpass("the same password again: ") != password:
        raise NotConfirmed("the two passwords differ: nothing was registered.")
    return password


class NotConfirmed(Exception):
    """The password of a new account was not typed the same twice."""


def _ask(prompt: str) -> str:
    """One line of stdin: input() on a terminal, else read without read-ahead.

    input() and getpass read a piped stdin through a buffer and so would take
    the lines after the answer too, out of reach of the chat loop, which reads
    the file descriptor itself.
    """
    if sys.stdin.isatty():
        return input(prompt)
    print(prompt, end="", flush=True)
    fd, answer = sys.stdin.fileno(), bytearray()
    while not answer.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            if not answer:
                raise EOFError
            break
        answer += byte
    return answer.decode("utf-8", errors="replace").rstrip("\r\n")


def _have_terminal() -> bool:
    """Whether getpass can ask on /dev/tty (it falls back to a buffered stdin)."""
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        return False
    return True


async def run(args: argparse.Namespace, password: str | None, token: str | None) -> int:
    """Connect, log in, then chat until /quit, end of input or the server leaves."""
    view = View(Console(no_color=args.no_color, highlight=False))
    full = _full_screen(args, view)
    said: list[Line] = []  # the full screen shows them once it is up
    show = said.extend if full else view.show
    directory = Path(args.config_dir) if args.config_dir else config_dir()
    try:
        # A new identity is written only once the login succeeds (the session does).
        keyring, _ = Keyring.open(directory, f"{args.host}:{args.port}", pq=not args.no_pq)
    except OSError as exc:  # a file where the directory should be, no permission...
        raise CryptError(f"cannot keep the client's keys in {directory}: "
                         f"{exc.strerror or exc}") from None
    try:
        client = await ChatClient.connect(args.host, args.port, **_tls(args))
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        view.show([*said, error(f"cannot connect to {args.host}:{args.port}: {exc}")])
        return 1
    session = ClientSession(client, keyring, args.aead, not args.no_pq,
                            args.max_line or client.max_line or DEFAULT_MAX_LINE)
    connected = True
    try:
        show([notice(client.banner.removeprefix("* "))] if client.banner else [])
        show(await session.login(args.user, password, token, args.register))
        if session.user is None:
            view.show(said if full else [])
            return 1
        reconnect = None if args.no_reconnect else _reconnector(session, args, password, token)
        if full:
            connected = await _screen_chat(session, said, args, reconnect)
        else:
            connected = await _chat(session, view, reconnect)
    finally:
        if connected:  # else no answer would come: do not wait for one
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.client.command("/quit", check=False), 2)
        await session.client.close()
    return 0


def _full_screen(args: argparse.Namespace, view: View) -> bool:
    """Whether to draw the full screen: on a terminal, unless --plain; else line mode."""
    if args.plain or not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    if importlib.util.find_spec("prompt_toolkit") is None:
        view.show([notice("the full-screen interface needs prompt_toolkit "
                          "(pip install 'chatd[client]'); using the line mode.")])
        return False
    return True


def _reconnector(session: ClientSession, args: argparse.Namespace, password: str | None,
                 token: str | None) -> Reconnect:
    async def reconnect() -> list[Line]:
        """A new connection for the session, logged in again: with the resume token of
        the last login (no password check on the server), else as at the start."""
        fresh = await ChatClient.connect(args.host, args.port, **_tls(args))
        old, session.client = session.client, fresh
        # The server may have come back with another line limit.
        session.max_line = args.max_line or fresh.max_line or DEFAULT_MAX_LINE
        await old.close()
        return await session.relogin(args.user, password, token)
    return reconnect


def reconnect_backoff() -> Backoff:
    """The waits between the line mode's reconnection attempts (as the full screen's)."""
    return Backoff()


async def _screen_chat(session: ClientSession, said: list[Line], args: argparse.Namespace,
                       reconnect: Reconnect | None) -> bool:
    """The full-screen interface; whether the connection is still up at the end."""
    from chatd.client.tui.screen import chat  # noqa: PLC0415 (prompt_toolkit is optional)

    return await chat(session, said, reconnect, color=not args.no_color, mouse=args.mouse)


class _Typed:
    """The lines of stdin, one read at a time; a read in flight outlives a reconnection."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._read: asyncio.Future[bytes | None] | None = None

    def next(self) -> asyncio.Future[bytes | None]:
        """The read in flight (started if there is none)."""
        if self._read is None:
            self._read = asyncio.ensure_future(_readline(self._reader))
        return self._read

    def take(self) -> bytes | None:
        """The line read (b"" at the end of input); the next call to next() reads on."""
        assert self._read is not None
        line, self._read = self._read.result(), None
        return line

    def ended(self) -> bool:
        read = self._read
        return read is not None and read.done() and read.result() == b""

    def cancel(self) -> None:
        if self._read is not None:
            self._read.cancel()


async def _chat(session: ClientSession, view: View, reconnect: Reconnect | None = None) -> bool:
    """Until /quit or the end of input (True), or until the server goes away and
    cannot be reached again (False)."""
    catchup = Catchup()  # where a reconnection resumes from
    with contextlib.suppress(ConnectionError, TimeoutError):  # gone: the pump sees it
        await catchup.mark_start(session.client, session.rooms_at_login)
    pump = asyncio.ensure_future(_pump(session, view, catchup))
    reader, close_stdin = await _stdin()
    typed = _Typed(reader)
    try:
        while True:
            read = typed.next()
            either: set[asyncio.Future[Any]] = {read, pump}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not read.done():  # the server went away
                if reconnect is None or not await _reconnected(session, view, reconnect, typed,
                                                               catchup):
                    return False
                pump = asyncio.ensure_future(_pump(session, view, catchup))
                continue
            line = typed.take()
            if line is None:
                view.show([error(f"a line over {STDIN_LIMIT} bytes was not sent.")])
                continue
            text = line.decode("utf-8", errors="replace").strip()
            if not line or text.lower() in QUIT:
                return True
            if text:
                await _handle(session, view, text, catchup)
    finally:
        close_stdin()
        typed.cancel()
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump


async def _reconnected(session: ClientSession, view: View, reconnect: Reconnect,
                       typed: _Typed, catchup: Catchup) -> bool:
    """Connect and log in again, waiting longer after each failure, and show what was
    said meanwhile; False when the login is refused (the password changed) or the
    input ends meanwhile."""
    backoff = reconnect_backoff()
    view.show([notice("reconnecting...")])
    while await _pause(backoff.next_delay(), typed):
        try:
            said = await reconnect()
        except (OSError, TimeoutError) as exc:  # (ConnectionError and ssl's are OSErrors)
            log.debug("reconnect failed: %s", exc)
            continue
        view.show(said, session.current_room)
        if session.user is None:
            return False
        view.show([notice("reconnected.")])
        # Lost again meanwhile: the pump sees the connection closed and comes back here.
        with contextlib.suppress(ConnectionError, TimeoutError):
            await _caught_up(session, view, catchup, said)
        return True
    return False


async def _caught_up(session: ClientSession, view: View, catchup: Catchup,
                     said: list[Line]) -> None:
    """What was said in the person's rooms and direct conversations while the client
    was away, less the direct messages the login just showed."""
    shown = {line.message_id for line in said if line.message_id is not None}

    async def show(records: list[Record]) -> None:
        for record in records:
            if record.get("id") not in shown:
                view.show(await session.show(record), session.current_room)

    # From the last id seen before: the login's messages may be newer than the gap.
    resumed = await catchup.resume(session.client, show)
    view.show([line for line in (resumed.failed, resumed.gap) if line is not None])
    catchup.note_lines(said)


async def _pause(delay: float, typed: _Typed) -> bool:
    """Wait ``delay`` seconds; False as soon as the input ends. A line typed meanwhile
    waits, unread, for the connection."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + delay
    read = typed.next()
    await asyncio.wait({read}, timeout=delay)
    if typed.ended():
        return False
    await asyncio.sleep(max(0.0, deadline - loop.time()))
    return True


async def _handle(session: ClientSession, view: View, text: str, catchup: Catchup) -> None:
    try:
        said = await session.input(text)
        view.show(said, session.current_room)
        # A login's direct messages may be newer than a gap still to resume (as on
        # the full screen): only other replies move the resume's start.
        if not (text.startswith("/") and text[1:].partition(" ")[0].lower() in LOGINS):
            catchup.note_lines(said)
    except (ConnectionError, TimeoutError) as exc:
        # str(): an exception is true even when it says nothing (a time-out).
        view.show([error(f"no answer from the server ({str(exc) or 'timed out'}).")])


async def _pump(session: ClientSession, view: View, catchup: Catchup) -> None:
    """Show what arrives unasked: messages, events, notices (not a message the replay
    after a reconnection showed already)."""
    try:
        async for event in session.client.events():
            if catchup.live(event):
                view.show(await session.show(event), session.current_room)
    except (ConnectionError, TimeoutError):
        pass  # showing an encrypted message may look up keys; the server went away meanwhile
    view.show([error("the server closed the connection.")])


async def _stdin() -> tuple[asyncio.StreamReader, Callable[[], None]]:
    """stdin as a StreamReader, so typing never blocks the event loop; and its closer.

    The pipe transport reads a duplicate of the descriptor (closing it leaves
    sys.stdin open) and makes it non-blocking, which the closer undoes: the
    terminal's file description is shared with the shell.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=STDIN_LIMIT)
    fd = sys.stdin.fileno()
    if not _pollable(fd):  # a regular file, /dev/null: read it whole, off the loop
        reader.feed_data(await asyncio.to_thread(sys.stdin.buffer.read))
        reader.feed_eof()
        return reader, lambda: None
    blocking = os.get_blocking(fd)
    # dup() and wrapping a descriptor do no I/O; the transport closes it.
    pipe = open(os.dup(fd), "rb", buffering=0)  # noqa: SIM115, ASYNC230
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), pipe)

    def close() -> None:
        transport.close()
        os.set_blocking(fd, blocking)
    return reader, close


def _pollable(fd: int) -> bool:
    """Whether the event loop can wait on ``fd``: a pipe, a socket or a terminal. A
    regular file, or a device such as /dev/null, is refused by epoll (EPERM)."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)


async def _readline(reader: asyncio.StreamReader) -> bytes | None:
    """The next line (b"" at the end of input); None for one over the reader's
    limit, skipped whole, so that no piece of it is sent as a line of its own."""
    too_long = False
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:  # the end, maybe after a last line
            line = exc.partial
        except asyncio.LimitOverrunError as exc:
            too_long = True
            await reader.readexactly(exc.consumed)
            continue
        return None if too_long else line


def _tls(args: argparse.Namespace) -> dict[str, Any]:
    if not args.tls:
        return {}
    context = ssl.create_default_context(cafile=args.cafile)
    if args.insecure:  # a self-signed test server: the user asked for it
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return {"ssl": context}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatd-client", description="Chat on a chatd server, end-to-end encrypted where "
        "rooms ask for it. Local commands: /emsg <room|@user> <text>, /trust <user>, "
        "/fingerprint [user], /secure on|off, /quit.")
    parser.add_argument("--version", action="version", version=f"chatd-client {__version__}")
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int, default=7777)
    parser.add_argument("--user", "-u", help="your user name (asked if not given)")
    parser.add_argument("--register", action="store_true", help="create the account first")
    parser.add_argument("--token", help=f"log in with an API token (or ${TOKEN_ENV})")
    parser.add_argument("--password-file", metavar="FILE",
                        help=f"first line is the password (else ${PASSWORD_ENV}, else asked)")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--cafile", help="CA certificates to verify the server with")
    parser.add_argument("--insecure", action="store_true", help="TLS without verification")
    parser.add_argument("--config-dir", help="keys and known keys (default: "
                        "$XDG_CONFIG_HOME/chatd-client or ~/.config/chatd-client)")
    parser.add_argument("--aead", choices=tuple(AEADS), default="aes-256-gcm")
    parser.add_argument("--no-pq", action="store_true",
                        help="no ML-KEM-768: smaller envelopes, X25519 only")
    parser.add_argument("--max-line", type=int, default=None,
                        help="the server's line limit (listen.max_line; default: what the "
                             f"server says, else {DEFAULT_MAX_LINE})")
    parser.add_argument("--no-color", action="store_true")
    parser.add_argument("--plain", action="store_true",
                        help="line mode even on a terminal (it is the mode without one)")
    parser.add_argument("--no-reconnect", action="store_true",
                        help="end when the connection drops, instead of connecting again")
    parser.add_argument("--mouse", action="store_true",
                        help="full screen: scroll with the wheel, click a room to show it")
    return parser


if __name__ == "__main__":
    sys.exit(main())
