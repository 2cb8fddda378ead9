"""chatd-client: a terminal chat client with end-to-end encryption.

A thin loop: read lines from stdin without blocking the event loop, hand
them to :class:`~chatd.tui.session.ClientSession`, and print what it and the
server say with rich. Everything worth testing lives in the session.

    chatd-client [host] [port] --user alice [--register] [--tls]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import ssl
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from chatd.client import ChatClient
from chatd.crypt import CryptError
from chatd.envelope import AEADS
from chatd.tui.keyring import Keyring, config_dir
from chatd.tui.lines import error, notice
from chatd.tui.session import ClientSession
from chatd.tui.view import View

PASSWORD_ENV = "CHATD_PASSWORD"
TOKEN_ENV = "CHATD_TOKEN"
QUIT = ("/quit", "/exit")


def main(argv: list[str] | None = None) -> int:
    """Run the client; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        args.user = args.user or input("user: ").strip()
        token = args.token or os.environ.get(TOKEN_ENV)
        password = None if token else _password(args)
        return asyncio.run(run(args, password, token))
    except (KeyboardInterrupt, EOFError):
        return 130
    except CryptError as exc:
        print(f"chatd-client: {exc}", file=sys.stderr)
        return 1


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        return Path(args.password_file).read_text(encoding="utf-8").split("\n", 1)[0]
    return os.environ.get(PASSWORD_ENV) or getpass.getpass(f"password for {args.user}: ")


async def run(args: argparse.Namespace, password: str | None, token: str | None) -> int:
    """Connect, log in, then chat until /quit, end of input or the server leaves."""
    view = View(Console(no_color=args.no_color, highlight=False))
    directory = Path(args.config_dir) if args.config_dir else config_dir()
    keyring, new = Keyring.open(directory, f"{args.host}:{args.port}", pq=not args.no_pq)
    if new:
        view.show([notice(f"made your end-to-end identity in {directory}")])
    try:
        client = await ChatClient.connect(args.host, args.port, **_tls(args))
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        view.show([error(f"cannot connect to {args.host}:{args.port}: {exc}")])
        return 1
    session = ClientSession(client, keyring, args.aead, not args.no_pq, args.max_line)
    try:
        view.show([notice(client.banner.removeprefix("* "))] if client.banner else [])
        view.show(await session.login(args.user, password, token, args.register))
        if session.user is None:
            return 1
        await _chat(session, view)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.command("/quit", check=False), 2)
        await client.close()
    return 0


async def _chat(session: ClientSession, view: View) -> None:
    pump = asyncio.ensure_future(_pump(session, view))
    reader = await _stdin()
    try:
        while True:
            read = asyncio.ensure_future(reader.readline())
            await asyncio.wait({read, pump}, return_when=asyncio.FIRST_COMPLETED)
            if not read.done():  # the server went away
                read.cancel()
                return
            text = read.result().decode("utf-8", errors="replace").strip()
            if not read.result() or text.lower() in QUIT:
                return
            if text:
                await _handle(session, view, text)
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump


async def _handle(session: ClientSession, view: View, text: str) -> None:
    try:
        view.show(await session.input(text), session.current_room)
    except (ConnectionError, TimeoutError) as exc:
        view.show([error(f"no answer from the server ({exc or 'timed out'}).")])


async def _pump(session: ClientSession, view: View) -> None:
    """Show what arrives unasked: messages, events, notices."""
    async for event in session.client.events():
        view.show(await session.show(event), session.current_room)
    view.show([error("the server closed the connection.")])


async def _stdin() -> asyncio.StreamReader:
    """stdin as a StreamReader, so typing never blocks the event loop."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except ValueError:  # a regular file: read it whole, off the loop
        reader.feed_data(await asyncio.to_thread(sys.stdin.buffer.read))
        reader.feed_eof()
    return reader


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
    parser.add_argument("--max-line", type=int, default=4096,
                        help="the server's line limit (listen.max_line)")
    parser.add_argument("--no-color", action="store_true")
    return parser


if __name__ == "__main__":
    sys.exit(main())
