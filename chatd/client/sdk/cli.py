"""The command line every example bot shares: where to connect and as whom.

    python examples/bots/echo.py --user echobot --room general [--host H --port P]

The token comes from ``--token-file`` or ``$CHATD_TOKEN``, a password from
``$CHATD_PASSWORD`` (never from the command line, where ``ps`` shows it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chatd.client.sdk.bot import Bot, FileResumeTokens, LoginRefused

TOKEN_ENV, PASSWORD_ENV = "CHATD_TOKEN", "CHATD_PASSWORD"


def parser(description: str) -> argparse.ArgumentParser:
    """The shared options; a bot adds its own before parsing."""
    # Raw: the description is a module docstring, whose example command lines and
    # lists would be run together into one paragraph.
    made = argparse.ArgumentParser(description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    made.add_argument("--host", default="127.0.0.1")
    made.add_argument("--port", type=int, default=7777)
    made.add_argument("--user", required=True, help="the bot's account")
    made.add_argument("--token-file", help=f"its API token (else ${TOKEN_ENV})")
    made.add_argument("--room", action="append", default=[], help="a room to join (repeat)")
    made.add_argument("--tls", action="store_true", help="connect with TLS")
    made.add_argument("--resume-file", help="keep the resume token in this file (mode 0600), "
                      "so that a restarted bot logs in without a password check; "
                      "else it is kept in memory only")
    return made


def bot_from(args: argparse.Namespace, environ: dict[str, str] | None = None,
             **options: Any) -> Bot:
    """A :class:`Bot` for parsed arguments; SystemExit when no credential is given."""
    env = os.environ if environ is None else environ
    # An empty token (an empty file, CHATD_TOKEN="") is none: sent, the server would
    # answer "missing <token>", and beside a password the Bot would refuse both.
    token = (_token_file(args.token_file) if args.token_file else env.get(TOKEN_ENV)) or None
    password = None if token else env.get(PASSWORD_ENV) or None
    if token is None and password is None:
        raise SystemExit(f"give the bot a token (--token-file, ${TOKEN_ENV}) "
                         f"or a password (${PASSWORD_ENV}).")
    tls: dict[str, Any] = {"ssl": ssl.create_default_context()} if args.tls else {}
    if args.resume_file:
        options.setdefault("resume_tokens", FileResumeTokens(args.resume_file))
    return Bot(args.host, args.port, user=args.user, token=token, password=password,
               rooms=args.room, **tls, **options)


def _token_file(path: str) -> str:
    """The token in ``path``; SystemExit saying why when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SystemExit(f"cannot read the token file {path}: {reason}") from None


def parse(made: argparse.ArgumentParser, argv: Sequence[str] | None = None
          ) -> argparse.Namespace:
    return made.parse_args(argv)


def run(bot: Bot, level: int = logging.INFO) -> None:
    """Run ``bot`` until it stops, logging to stderr (its logins, drops, retries and
    handlers' failures would otherwise go nowhere); a refused login ends the
    process with its reason rather than a traceback."""
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(bot.run())
    except LoginRefused as exc:
        raise SystemExit(f"login refused: {exc}") from None
