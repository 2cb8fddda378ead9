"""The ``chatd`` command: run the daemon, or manage accounts offline.

    chatd [serve] [--config FILE] [--host H] [--port P] [--db PATH] [--default-db PATH]
                  [--log-level LEVEL] [--log-format kv|json]
    chatd useradd NAME [--admin] [--config FILE] [--db PATH]
    chatd migrate --to postgresql://... [--force] [--config FILE] [--db PATH]

``useradd`` hands the account to the daemon running on that database, when
one answers on its control socket (it keeps accounts in memory), and writes
the database directly otherwise: the SQLite file, or in cluster mode
(``cluster.enabled``) the PostgreSQL database. ``migrate`` copies the
embedded database into a PostgreSQL one (see docs/CLUSTER.md).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

from chatd import __version__
from chatd.app.compose import build_app
from chatd.app.migration import migrate_to_postgres
from chatd.config import Config, ConfigError, check_hosts, load_config, where_control
from chatd.errors import ChatError
from chatd.ops import collector
from chatd.ops.chatctl import PasswordError, read_password
from chatd.ops.control import answers, control_path, found_database
from chatd.ops.control_client import ControlClient, ControlError
from chatd.ops.logfmt import configure_logging
from storage.api import StorageError

log = logging.getLogger("chatd")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config_path: str | None = getattr(args, "config", None)
    try:
        config = load_config(config_path, _overrides(args))
        if args.command == "serve" and _uses_default_db(args, config_path):
            # (Made when it is used: a checkout's var/ should not appear otherwise.)
            Path(args.default_db).parent.mkdir(parents=True, exist_ok=True)
        if args.command == "serve":
            check_hosts(config)
        if args.command == "migrate":
            _check_target(args.to)
    except ConfigError as exc:
        print(f"chatd: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(_log_level(args.command, config.logging.level), config.logging.format)
    if args.command in ("useradd", "migrate"):
        named = config_path is not None or hasattr(args, "db")
        database = found_database(config.storage.path, named)
        config = dataclasses.replace(
            config, storage=dataclasses.replace(config.storage, path=database))
    try:
        if args.command == "useradd":
            return _run(_useradd(config, args.name, args.admin, args.password_stdin))
        if args.command == "migrate":
            return _run(migrate_to_postgres(config, args.to, args.force))
        return _run(serve(config, config_path, _overrides(args)))
    except ConfigError as exc:  # found when the daemon is built (a missing driver)
        print(f"chatd: configuration error: {exc}", file=sys.stderr)
        return 2


def _log_level(command: str, configured: str) -> str:
    """The daemon logs at the configured level. A one-shot command (useradd, migrate)
    says itself what it did: of its log only what went wrong is worth showing, not
    the info lines of the daemon's parts it builds (a schema migrated, stickers
    loaded, the audit entry of the account it made)."""
    if command == "serve" or configured in ("warning", "error"):
        return configured
    return "warning"


def _check_target(url: str) -> None:
    """The target of ``migrate`` is checked as ``cluster.postgres`` would be, and a
    fault named as the option that gave it."""
    try:
        load_config(None, {"cluster.postgres": url})
    except ConfigError as exc:
        raise ConfigError(f"--to: {str(exc).removeprefix('cluster.postgres: ')}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatd", description="A chat daemon for telnet and nc.")
    parser.add_argument("--version", action="version", version=f"chatd {__version__}")
    # SUPPRESS: an option left out after the sub-command must not undo the
    # same option given before it ("chatd --config F serve").
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--config", help="YAML configuration file (default: built-in)")
    common.add_argument("--db", help="SQLite database file (storage.path)")
    common.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    common.add_argument("--log-format", choices=["kv", "json"])
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("serve", parents=[common], help="run the daemon (the default)",
                         argument_default=argparse.SUPPRESS)
    run.add_argument("--host", help="address to listen on (listen.host)")
    run.add_argument("--port", type=int, help="port to listen on (listen.port)")
    run.add_argument("--default-db", metavar="PATH",
                     help="the database file when neither --db nor the configuration file's "
                          "storage.path names one (its directory is made if missing)")
    add = sub.add_parser(
        "useradd", parents=[common], help="create an account",
        description="Create an account: through the daemon running on the database when one "
                    "answers on its control socket (it sees the account at once), else "
                    "directly in the database.")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="make it a server admin")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input (the default when it is "
                          "not a terminal; one trailing newline is dropped)")
    move = sub.add_parser(
        "migrate", parents=[common], help="copy the embedded database into PostgreSQL",
        description="Copy the embedded SQLite database (everything, with uploaded files' "
                    "metadata and where their bytes are) into a PostgreSQL database for "
                    "cluster mode. Stop the daemon first.")
    move.add_argument("--to", required=True, metavar="URL",
                      help="the target database: postgresql://user[:password]@host[:port]/db")
    move.add_argument("--force", action="store_true", default=False,
                      help="replace what the target holds (refused otherwise)")
    # Without a sub-command, chatd serves: accept serve's options at the top level too.
    for action in run._actions:
        if action.option_strings and action.dest != "help":
            parser._add_action(action)
    parser.set_defaults(command="serve")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    pairs = {"listen.host": "host", "listen.port": "port", "storage.path": "db",
             "logging.level": "log_level", "logging.format": "log_format"}
    found = {key: getattr(args, name) for key, name in pairs.items() if hasattr(args, name)}
    if _uses_default_db(args, getattr(args, "config", None)):
        found["storage.path"] = args.default_db
    return found


def _uses_default_db(args: argparse.Namespace, config_path: str | None) -> bool:
    """Whether ``--default-db`` names the database: given, and neither ``--db`` nor the
    configuration file names one. (A development script passes its own default so that
    a file's storage.path, when it has one, is not overridden by a --db of its making.)"""
    if not hasattr(args, "default_db") or hasattr(args, "db"):
        return False
    return config_path is None or "storage.path" not in where_control(config_path)


def _run(coro: Any) -> int:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up; plain asyncio works the same

        return int(uvloop.run(coro))
    except ImportError:
        return int(asyncio.run(coro))


async def serve(config: Config, config_path: str | None, overrides: dict[str, Any]) -> int:
    """Run the daemon until SIGTERM or SIGINT; SIGHUP reloads ``config_path``."""
    collector.tune()  # the process's own collector, so not in build_app (tests host apps)
    app = build_app(config, process=True, config_path=config_path, overrides=overrides)
    return await app.run()


async def _useradd(config: Config, name: str, admin: bool, from_stdin: bool) -> int:
    try:
        password = read_password(name, from_stdin)
    except PasswordError as exc:
        print(f"chatd: {exc}", file=sys.stderr)
        return 1
    socket_path = control_path(config.storage.path, config.control.path)
    if config.control.enabled and await answers(socket_path):
        return await _useradd_online(socket_path, name, password, admin)
    return await _useradd_offline(config, name, password, admin)


async def _useradd_online(socket_path: str, name: str, password: str, admin: bool) -> int:
    """Through the running daemon: written to the database by it, in its memory at once."""
    try:
        user = await ControlClient(socket_path).call("useradd", name=name, password=password,
                                                     admin=admin)
    except ControlError as exc:
        print(f"chatd: {exc}", file=sys.stderr)
        return 1
    print(f"created {'admin ' if user['admin'] else ''}account {user['name']} "
          "(through the running daemon)")
    return 0


async def _useradd_offline(config: Config, name: str, password: str, admin: bool) -> int:
    """Straight into the database: the SQLite file, or the cluster's PostgreSQL."""
    server = build_app(config)
    try:
        await server.storage.open()
        await server.services.accounts.load()
        user = await server.services.accounts.create(name, password, is_admin=admin)
    except ChatError as exc:
        print(f"chatd: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except StorageError as exc:
        print(f"chatd: {exc}", file=sys.stderr)
        return 1
    finally:
        await server.storage.close()
    print(f"created {'admin ' if admin else ''}account {user.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
