"""``chatctl``: administer a running chatd through its control socket.

    chatctl [--config FILE | --db PATH | --socket PATH] [--json] COMMAND ...

chatctl finds the socket the way the daemon placed it: from the same
configuration file and defaults (``control_path``). Human output is rich
tables with dates (UTC) and yes/no; ``--json``, anywhere on the line, prints
the raw answer with machine values for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from chatd import __version__
from chatd.config import ConfigError, load_config, where_control
from chatd.ops.control import control_path, found_database
from chatd.ops.control_client import ANSWER_TIMEOUT, ControlClient, ControlError, Unreachable

# Options of chatctl itself, never sent to the daemon.
LOCAL_OPTIONS = frozenset({"command", "socket", "db", "config", "json", "follow",
                           "password_stdin", "timeout", "strict", "pid"})
# chatctl reload --strict: the reload was done, but not all of the file is in force.
NOT_ALL_APPLIED = 3
# What an empty listing says ("no users"), where the command's name does not.
EMPTY = {"audit": "audit entries"}
TIME_KEYS = frozenset({"ts", "until", "created", "expires", "last_used"})
# What a missing time means where it is a limit (or, for a token's last use, a fact).
UNLIMITED = {"until": "permanent", "expires": "never", "last_used": "never"}
# The options taking a duration. argparse reads a word starting with "-" after one as
# the next option ("--duration -5m": "expected one argument"): such a word is given
# to the option, whose check then says what is wrong with it.
DURATION_OPTIONS = ("--duration", "--ttl")
_DASHED_VALUE = re.compile(r"-[^-]")
_DASHED_NUMBER = re.compile(r"-[0-9.]")


class PasswordError(Exception):
    """No usable password was given."""


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    # What the daemon sends is data, never markup: an audit entry's reason or a
    # room's topic (anyone's words) like "[/]" would stop rich, or restyle the line.
    console = Console(markup=False)
    try:
        path, switched_off = socket_path(getattr(args, "socket", None),
                                         getattr(args, "config", None), getattr(args, "db", None))
    except ConfigError as exc:
        print(f"chatctl: configuration error: {exc}", file=sys.stderr)
        return 2
    wrong_output = _wrong_output(args)
    if wrong_output is not None:
        print(f"chatctl: {wrong_output}", file=sys.stderr)
        return 1
    client = ControlClient(path, getattr(args, "timeout", ANSWER_TIMEOUT) or None,
                           switched_off=switched_off)
    try:
        if args.command == "backup" and args.path != "-":
            args.path = _backup_target(args.path)  # before asking the daemon anything
        return asyncio.run(_dispatch(client, args, console))
    except (ControlError, PasswordError) as exc:
        print(f"chatctl: {exc}", file=sys.stderr)  # one line, never wrapped
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went (| head): nothing more to say, and no traceback at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _wrong_output(args: argparse.Namespace) -> str | None:
    """Why the command cannot write to this standard output; None when it can."""
    terminal = sys.stdout.isatty()
    if args.command == "top" and not terminal:
        # The live screen draws on a terminal alone: piped or redirected it would
        # run until killed and leave nothing readable.
        return ("top needs a terminal (it redraws the screen in place); for scripts: "
                "chatctl status --json, or chatctl audit --follow")
    if args.command == "backup" and args.path == "-" and terminal:
        # Megabytes of binary would scramble the terminal (and be no backup).
        return ("backup - writes the database to standard output, which is a terminal: "
                "redirect it (> FILE, | ssh HOST 'cat > FILE'), or give a file name")
    return None


def socket_path(socket: str | None, config: str | None, database: str | None
                ) -> tuple[str, bool]:
    """The control socket: given, or where the daemon of that configuration put it;
    and whether that configuration turns it off (control.enabled: false).

    Without any option: the built-in configuration's (the working directory's
    chatd.db), else the development daemon's (var/chatd.db, scripts/serve).
    """
    if socket:
        return socket, False
    given = {"storage.path": database} if database else {}
    try:
        loaded = load_config(config, given or None)
    except ConfigError as exc:
        if config is None:
            raise
        # An edit a reload will refuse must not lock the operator out: the daemon is
        # reached by the file's storage.path and control.path alone (and logs the
        # refusal when asked to reload).
        print(f"chatctl: configuration error: {exc} (reaching chatd by the file's "
              "storage.path and control.path)", file=sys.stderr)
        loaded = load_config(None, {**where_control(config), **given})
    path = control_path(found_database(loaded.storage.path, bool(config or database)),
                        loaded.control.path)
    return path, not loaded.control.enabled


def read_password(name: str, from_stdin: bool = False) -> str:
    """The new account's password: prompted twice on a terminal, else one line of stdin.

    A password read from standard input loses one trailing newline; an empty
    one is refused.
    """
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        try:
            password = getpass.getpass(f"password for {name}: ")
            if password and getpass.getpass("again: ") != password:
                raise PasswordError("the passwords differ")
        except EOFError:
            password = ""
    if not password:
        raise PasswordError("no password given (an empty password is refused)")
    return password


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse, letting a reason follow options: "ban bob general --duration 1h spam"."""
    parser = _parser()
    args, extra = parser.parse_known_args(
        _dashed_durations(sys.argv[1:] if argv is None else argv))
    if extra and getattr(args, "reason", None) is not None:
        args.reason = " ".join([args.reason, *extra]).strip()
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _dashed_durations(argv: list[str]) -> list[str]:
    """``--duration -5m`` as ``--duration=-5m`` (and so for ``--ttl``, and for their
    abbreviations, which argparse takes too): the value's check refuses it then,
    saying why, where argparse alone would take it for an option."""
    out: list[str] = []
    words = iter(argv)
    for word in words:
        if word == "--":  # the rest are positionals, as typed
            out.append(word)
            out.extend(words)
            break
        if (len(word) > 2 and "=" not in word
                and any(option.startswith(word) for option in DURATION_OPTIONS)):
            value = next(words, None)
            if value is not None and _DASHED_VALUE.match(value):
                out.append(f"{word}={value}")
                continue
            out.append(word)
            if value is not None:
                out.append(value)
            continue
        out.append(word)
    return out


def _duration(option: str, without: str) -> Callable[[str], str]:
    """The check of a duration option's value, which goes to the daemon as given (the
    daemon parses it). A negative or empty one is refused here: argparse then
    names the option, and the daemon would only call it an invalid duration."""
    def check(value: str) -> str:
        if not value.strip():
            raise argparse.ArgumentTypeError(
                f"it is empty: a duration says how long, like 30m or 7d (leave {option} out "
                f"for {without})")
        if value.strip().startswith("-"):
            what = "is negative" if _DASHED_NUMBER.match(value.strip()) else 'starts with "-"'
            raise argparse.ArgumentTypeError(
                f'"{value}" {what}: a duration says how long, like 30m or 7d (leave '
                f"{option} out for {without})")
        return value
    return check


def _seconds(value: str) -> float:
    """A --timeout: seconds, 0 or more (0: wait for ever)."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f'"{value}" is not a number of seconds (0: wait '
                                         "for ever)")
    return seconds


def _common() -> argparse.ArgumentParser:
    """The options accepted before and after the command ("chatctl users --json").

    SUPPRESS: an option left out after the command must not undo the same
    option given before it.
    """
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--config", help="the daemon's configuration file: its storage.path "
                        "and control.path say where the socket is (as for chatd serve)")
    common.add_argument("--db", help="the daemon's database (storage.path): the socket is "
                        "DB.sock beside it")
    common.add_argument("--socket", help="the control socket itself")
    common.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                        help=f"how long to wait for the daemon's answer (default "
                             f"{ANSWER_TIMEOUT:g}; 0: for ever; not for backup, audit "
                             "--follow and top, which last as long as they stream)")
    common.add_argument("--json", action="store_true",
                        help="print JSON with machine values (epoch seconds, true/false)")
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="chatctl", parents=[common], description="Administer a running chatd.",
        epilog="Without --config, --db or --socket: the socket of chatd.db in the working "
               "directory (chatd's built-in default), else of var/chatd.db (scripts/serve). "
               "Dates are shown in UTC.")
    parser.add_argument("--version", action="version", version=f"chatctl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=text, description=text)

    for name, text in (("status", "version, uptime, connections, users, rooms, rates"),
                       ("users", "every account"), ("rooms", "every room"),
                       ("nodes", "every node: version, addresses, connections, stream lag, "
                                 "age; differing versions and configurations flagged"),
                       ("top", "a live screen; q or Ctrl-C quits")):
        command(name, text)
    reload = command("reload", "re-read the configuration file (exit status 1 when chatd "
                     "refuses it, which keeps the old configuration)")
    reload.add_argument("--strict", action="store_true",
                        help=f"exit status {NOT_ALL_APPLIED} also when the file is not all in "
                             "force: changed keys wait for a restart, or chatd was started "
                             "without a file (what the systemd unit's reload runs)")
    reload.add_argument("--pid", type=int, metavar="PID",
                        help="chatd's process id (the unit passes $MAINPID): when no daemon "
                             "answers at the socket the configuration names (control.enabled "
                             "is false, or storage.path or control.path changed since chatd "
                             "started), send it SIGHUP instead, which reloads unanswered "
                             "(with --strict, exit status "
                             f"{NOT_ALL_APPLIED}: nobody said what was applied)")
    _moderation(command)
    add = command("useradd", "create an account the daemon sees at once")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="make it a server admin")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input (the default when it is "
                          "not a terminal; one trailing newline is dropped)")
    for name, text in (("userdel", "delete an account"), ("promote", "make a server admin"),
                       ("demote", "remove the server admin flag")):
        command(name, text).add_argument("name")
    command("tokens", "list API tokens: scopes, dates and last use (never secrets)"
            ).add_argument("user", nargs="?", help="only this user's tokens")
    revoke = command("revoke-token", "revoke a user's API token by name")
    revoke.add_argument("user")
    revoke.add_argument("name")
    _bots(command)
    command("broadcast", "a notice to every session").add_argument("text", nargs="+")
    backup = command("backup", "a consistent copy of the database, written by chatctl (0600)")
    backup.add_argument("path", help="the file to write; - for standard output")
    backup.add_argument("--with-files", action="store_true",
                        help="a tar of the database (chatd.db) and the uploaded files "
                             "(blobs/) of the local backend")
    audit = command("audit", "the audit log, oldest first")
    audit.add_argument("--follow", action="store_true",
                       help="print the last -n entries, then stream new ones")
    audit.add_argument("--room")
    audit.add_argument("-n", type=int, default=50, help="how many entries (default 50)")
    return parser


def _bots(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    command("bots", "list bot accounts").add_argument("--owner", help="only this user's bots")
    create = command("bot-create", "create a bot account and print its first token")
    create.add_argument("name")
    create.add_argument("--owner", help="the user who owns it (default: nobody)")
    create.add_argument("--scopes", help="what its token may do: read,post,moderate,admin or "
                                         "all (default read,post)")
    create.add_argument("--ttl", type=_duration("--ttl", "a token that never expires"),
                        help="the token's lifetime, like 30d (default: no expiry)")
    command("bot-delete", "delete a bot account").add_argument("name")


def _moderation(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    for name, text in (("kick", "remove a user from a room"),
                       ("ban", "ban a user from a room"), ("unban", "lift a ban"),
                       ("mute", "mute a user in a room"), ("unmute", "lift a mute")):
        cmd = command(name, text)
        cmd.add_argument("user")
        cmd.add_argument("room")
        if name in ("ban", "mute"):
            cmd.add_argument("--duration", type=_duration("--duration", f"a permanent {name}"),
                             help="like 30m or 7d (default: permanent)")
        if name in ("kick", "ban"):
            cmd.add_argument("reason", nargs="?", default="")


async def _dispatch(client: ControlClient, args: argparse.Namespace, console: Console) -> int:
    if args.command == "top":
        from chatd.ops.top import run_top  # noqa: PLC0415 - only the live screen needs it

        await run_top(client, console)
        return 0
    if args.command == "backup":
        return await _backup(client, args, console)
    if args.command == "audit" and args.follow:
        await _follow_audit(client, args, console)
        return 0
    try:
        result = await client.call(args.command, **_request(args))
    except Unreachable as exc:
        if args.command != "reload" or getattr(args, "pid", None) is None:
            raise
        return _hang_up(args.pid, exc, args.strict)
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2))
    else:
        _show(args.command, result, console)
    if args.command == "reload" and args.strict:
        return _not_all_applied(result)
    return 0


def _hang_up(pid: int, unreachable: Unreachable, strict: bool) -> int:
    """``reload --pid``: no daemon answers at the socket the file names (control.path
    or storage.path changed since chatd started, which a restart applies, or the
    socket is off): reload by SIGHUP, as before the socket was asked; its log alone
    says what was applied, so --strict still fails, saying why."""
    try:
        os.kill(pid, signal.SIGHUP)
    except (ProcessLookupError, PermissionError) as exc:
        raise ControlError(f"{unreachable}; and SIGHUP to process {pid} failed: "
                           f"{exc.strerror}") from exc
    print(f"chatctl: reload sent as SIGHUP to chatd (process {pid}), which answers nobody: "
          f"{unreachable}. A changed storage.path or control.path waits for a restart; "
          "chatd's log says what the reload applied", file=sys.stderr)
    return NOT_ALL_APPLIED if strict else 0


def _not_all_applied(result: dict[str, Any]) -> int:
    """``reload --strict``: 0 when the whole file is in force; else NOT_ALL_APPLIED, the
    reason on standard error (a service manager's reload then fails, saying why)."""
    waiting = result.get("restart_needed") or []
    if waiting:
        print(f"chatctl: reload incomplete: changed keys wait for a restart, their old values "
              f"stay in force: {', '.join(waiting)} (the rest was applied)", file=sys.stderr)
        return NOT_ALL_APPLIED
    if "file" in result and result["file"] is None:
        print("chatctl: reload incomplete: chatd was started without --config, so no file "
              "was read", file=sys.stderr)
        return NOT_ALL_APPLIED
    return 0


def _request(args: argparse.Namespace) -> dict[str, Any]:
    fields = {k: v for k, v in vars(args).items() if k not in LOCAL_OPTIONS and v is not None}
    if args.command == "broadcast":
        fields["text"] = " ".join(args.text)
    if args.command == "useradd":
        fields["password"] = read_password(args.name, args.password_stdin)
    return fields


async def _backup(client: ControlClient, args: argparse.Namespace, console: Console) -> int:
    """Write the daemon's copy: to standard output, or to a 0600 file renamed into place."""
    if args.path == "-":
        result = await client.backup(sys.stdout.buffer, args.with_files, "standard output")
        _warn_about_blobs(result)
        return 0
    path = args.path
    directory = os.path.dirname(path)
    try:
        fd, partial = tempfile.mkstemp(prefix=".chatctl-backup-", dir=directory)  # 0600
    except OSError as exc:
        raise ControlError(f"cannot write the backup in {directory}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            result = await client.backup(out, args.with_files, path)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
    _warn_about_blobs(result)
    result = {"path": path, **result}
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2))
    else:
        console.print(f"backup written to {path}: {result['files']} file"
                      f"{'s' * (result['files'] != 1)}, {result['bytes']} bytes", soft_wrap=True)
    return 0


def _backup_target(given: str) -> str:
    """The absolute path to write, in the operator's directory; ControlError if unwritable."""
    if not given.strip():
        # abspath("") is the working directory: refused as "a directory" otherwise.
        raise ControlError("cannot write the backup: no path given (- writes to standard "
                           "output)")
    path = os.path.abspath(given)
    directory = os.path.dirname(path)
    if os.path.isdir(path):
        raise ControlError(f"cannot write the backup: {path} is a directory")
    # The copy is renamed into place, which would put a regular file where a FIFO or
    # a device (/dev/null, run as root) was: those are refused, "-" streams instead.
    if os.path.lexists(path) and not os.path.isfile(path):
        raise ControlError(f"cannot write the backup: {path} is not a regular file "
                           "(- writes to standard output)")
    if not os.path.isdir(directory):
        raise ControlError(f"cannot write the backup: no directory {directory}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ControlError(f"cannot write the backup: permission denied on {directory}")
    return path


def _reloaded(result: dict[str, Any]) -> str:
    """What a reload did: the keys waiting for a restart, or that no file was read."""
    waiting = result.get("restart_needed") or []
    if "file" in result and result["file"] is None:
        return ("reloaded, from no file: chatd was started without --config, so only its "
                "built-in defaults and command-line options apply")
    return "reloaded" + (f"; not applied until a restart: {', '.join(waiting)}"
                         if waiting else "")


def _warn_about_blobs(result: dict[str, Any]) -> None:
    if str(result.get("blobs", "")).startswith("in-"):
        print("chatctl: the uploaded files live in the object store (files.backend: s3) "
              "and are not in this backup", file=sys.stderr)


def _show(command: str, result: Any, console: Console) -> None:
    if command == "status":
        console.print(_status_table(result))
    elif command == "nodes":
        _show_nodes(result, console)
    elif command == "reload":
        console.print(_reloaded(result), highlight=False, soft_wrap=True)
    elif isinstance(result, list) and not result:
        console.print(f"no {EMPTY.get(command, command)}", highlight=False)
    elif isinstance(result, list):
        console.print(_table(result))
    else:
        # One line, wrapped by the terminal alone: a secret (bot-create's token) must
        # never be broken across lines where it is copied from.
        console.print(", ".join(f"{k}: {_fmt(k, v)}" for k, v in result.items()),
                      soft_wrap=True)


def _status_table(result: dict[str, Any]) -> Table:
    """A row per figure. A cluster node's answer names the node first, and each
    count says whose it is: this node's alone, or the whole cluster's."""
    if "node" not in result:
        table = Table(show_header=False, box=None)
        for key, value in result.items():
            table.add_row(key, _fmt(key, value))
        return table
    whose = (dict.fromkeys(result.get("node_figures", []), "this node")
             | dict.fromkeys(result.get("cluster_figures", []), "whole cluster"))
    table = Table(show_header=False, box=None)
    table.add_row("node", str(result["node"]), "")
    for key, value in result.items():
        if key not in ("node", "node_figures", "cluster_figures"):
            table.add_row(key, _fmt(key, value), whose.get(key, ""))
    return table


def _show_nodes(result: dict[str, Any], console: Console) -> None:
    """A row per node (this one marked *), then a sentence per difference found.
    Narrow enough for 80 columns; --json has every field (the last beat's age too)."""
    table = Table(box=None, pad_edge=False)
    for name in ("", "node", "version", "addresses", "conns", "lag", "age", "config"):
        table.add_column(name, no_wrap=name in ("node", "version", "config"))
    for row in result["nodes"]:
        this = " *" if row["node"] == result["this"] else ""
        lag = f"{row['lag_ms']} ms" if row["lag_ms"] is not None else ""
        table.add_row(row["flag"], row["node"] + this, _fmt("version", row["version"]),
                      _fmt("addresses", row["addresses"]), _fmt("conns", row["connections"]),
                      lag, _fmt("age", row["age"]), _fmt("config", row["config"]))
    console.print(table)
    for warning in result["warnings"]:
        console.print(f"! {warning}", highlight=False, soft_wrap=True)


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table()
    for key in rows[0]:
        table.add_column(key)
    for row in rows:
        table.add_row(*(_fmt(k, v) for k, v in row.items()))
    return table


def _fmt(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in TIME_KEYS:
        return _date(value) if isinstance(value, int | float) else UNLIMITED.get(key, "")
    if key in ("uptime", "age") and isinstance(value, int | float):
        return f"{int(value) // 3600}h {int(value) % 3600 // 60}m {int(value) % 60}s"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    # "-" for none (a bot's owner deleted, or never named): blank read as "owner: ,".
    return "-" if value is None else str(value)


def _date(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


async def _follow_audit(client: ControlClient, args: argparse.Namespace,
                        console: Console) -> None:
    """The last ``-n`` entries, then each new one as it comes (ControlError when the
    daemon ends the stream)."""
    with contextlib.suppress(asyncio.CancelledError):
        # -n as given: a negative one is refused by the daemon, as audit refuses it,
        # rather than taken for 0.
        async for item in client.follow(args.room, args.n):
            if "event" in item:
                _print_entry(item["event"], args, console)


def _print_entry(entry: dict[str, Any], args: argparse.Namespace, console: Console) -> None:
    if getattr(args, "json", False):
        print(json.dumps(entry), flush=True)
        return
    console.print(f"{_fmt('ts', entry['ts'])}  {entry.get('actor') or '-':12} "
                  f"{entry['action']:14} {entry.get('target') or '':12} "
                  f"{('#' + entry['room']) if entry.get('room') else ''}"
                  f"{'  ' + entry['reason'] if entry.get('reason') else ''}",
                  highlight=False, soft_wrap=True)


if __name__ == "__main__":
    raise SystemExit(main())
