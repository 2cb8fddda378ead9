"""``chatctl``: administer a running chatd through its control socket.

    chatctl [--socket PATH | --db PATH] [--json] COMMAND ...

Human output is rich tables; ``--json`` prints the raw answer for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from rich.console import Console
from rich.table import Table

from chatd.control import control_path


class ControlError(Exception):
    """The daemon refused a request, or could not be reached."""


class ControlClient:
    """Talks JSON lines to the control socket."""

    def __init__(self, path: str) -> None:
        self.path = path

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_unix_connection(self.path, limit=1 << 24)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ControlError(f"chatd is not running (no control socket at {self.path})") \
                from exc
        except PermissionError as exc:
            raise ControlError(f"permission denied on {self.path}: run as the daemon's user") \
                from exc
        except OSError as exc:  # e.g. a path longer than a Unix socket address allows
            raise ControlError(f"cannot reach the control socket {self.path}: {exc.strerror}") \
                from exc

    async def call(self, cmd: str, **args: Any) -> Any:
        reader, writer = await self._open()
        try:
            writer.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            line = await reader.readline()
        finally:
            writer.close()
        if not line:
            raise ControlError("chatd closed the control connection")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise ControlError(f"{answer.get('code')}: {answer.get('error')}")
        return answer["result"]

    async def follow(self, room: str | None = None) -> AsyncIterator[dict[str, Any]]:
        reader, writer = await self._open()
        try:
            writer.write(json.dumps({"cmd": "follow", "room": room}).encode() + b"\n")
            while line := await reader.readline():
                yield json.loads(line)
        finally:
            writer.close()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    console = Console()
    path = args.socket or control_path(args.db, "")
    client = ControlClient(path)
    try:
        return asyncio.run(_dispatch(client, args, console))
    except ControlError as exc:
        print(f"chatctl: {exc}", file=sys.stderr)  # one line, never wrapped
        return 1
    except KeyboardInterrupt:
        return 130


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse, letting a reason follow options: "ban bob general --duration 1h spam"."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "reason", None) is not None:
        args.reason = " ".join([args.reason, *extra]).strip()
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatctl", description="Administer a running chatd.")
    parser.add_argument("--socket", help="control socket (default: chatd.sock beside --db)")
    parser.add_argument("--db", default="chatd.db", help="the daemon's database path")
    parser.add_argument("--json", action="store_true", help="print JSON, for scripts")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("status", "users", "rooms", "reload", "top"):
        sub.add_parser(name)
    for name in ("kick", "ban", "mute"):
        cmd = sub.add_parser(name)
        cmd.add_argument("user")
        cmd.add_argument("room")
        if name != "kick":
            cmd.add_argument("--duration", help="like 30m or 7d (default: permanent)")
        if name != "mute":
            cmd.add_argument("reason", nargs="?", default="")
    add = sub.add_parser("useradd")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true")
    add.add_argument("--password-stdin", action="store_true")
    for name in ("userdel", "promote", "demote"):
        sub.add_parser(name).add_argument("name")
    sub.add_parser("broadcast").add_argument("text", nargs="+")
    sub.add_parser("backup").add_argument("path")
    audit = sub.add_parser("audit")
    audit.add_argument("--follow", action="store_true")
    audit.add_argument("--room")
    audit.add_argument("-n", type=int, default=50)
    return parser


async def _dispatch(client: ControlClient, args: argparse.Namespace, console: Console) -> int:
    if args.command == "top":
        from chatd.top import run_top  # noqa: PLC0415 - only the live screen needs it

        await run_top(client, console)
        return 0
    if args.command == "audit" and args.follow:
        await _follow_audit(client, args, console)
        return 0
    result = await client.call(args.command, **_request(args))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _show(args.command, result, console)
    return 0


def _request(args: argparse.Namespace) -> dict[str, Any]:
    fields = {k: v for k, v in vars(args).items()
              if k not in ("command", "socket", "db", "json", "follow", "password_stdin")
              and v is not None}
    if args.command == "broadcast":
        fields["text"] = " ".join(args.text)
    if args.command == "backup":
        fields["path"] = os.path.abspath(args.path)  # the operator's directory, not the daemon's
    if args.command == "useradd":
        fields["password"] = (sys.stdin.readline().rstrip("\n") if args.password_stdin
                              else getpass.getpass(f"password for {args.name}: "))
    return fields


def _show(command: str, result: Any, console: Console) -> None:
    if command == "status":
        table = Table(show_header=False, box=None)
        for key, value in result.items():
            table.add_row(key, _fmt(key, value))
        console.print(table)
    elif command == "reload":
        waiting = result.get("restart_needed") or []
        console.print("reloaded" + (f"; not applied until a restart: {', '.join(waiting)}"
                                    if waiting else ""), highlight=False)
    elif isinstance(result, list):
        console.print(_table(result))
    else:
        console.print(", ".join(f"{k}: {v}" for k, v in result.items()))


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table()
    if not rows:
        table.add_column("(none)")
        return table
    for key in rows[0]:
        table.add_column(key)
    for row in rows:
        table.add_row(*(_fmt(k, v) for k, v in row.items()))
    return table


def _fmt(key: str, value: Any) -> str:
    if key == "ts" and isinstance(value, int | float):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value))
    if key == "uptime" and isinstance(value, int | float):
        return f"{int(value) // 3600}h {int(value) % 3600 // 60}m {int(value) % 60}s"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


async def _follow_audit(client: ControlClient, args: argparse.Namespace,
                        console: Console) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        async for item in client.follow(args.room):
            if "event" not in item:
                continue
            if args.json:
                print(json.dumps(item["event"]), flush=True)
            else:
                entry = item["event"]
                console.print(f"{_fmt('ts', entry['ts'])}  {entry.get('actor') or '-':12} "
                              f"{entry['action']:14} {entry.get('target') or '':12} "
                              f"{('#' + entry['room']) if entry.get('room') else ''}")


if __name__ == "__main__":
    raise SystemExit(main())
