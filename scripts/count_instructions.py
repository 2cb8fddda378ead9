#!/usr/bin/env python3
"""Count the daemon's CPU instructions per message, under callgrind.

CPU seconds move with the machine's load and the load generator's pace;
instruction counts do not. This starts ``chatd serve`` under
``valgrind --tool=callgrind`` (Debian's valgrind), logs CLIENTS users into one
room, and has one of them post messages one at a time: each is sent only when
the previous one reached another member, so every message has a turn of the
event loop to itself, as light real traffic does. It runs twice, with FEW and
with MANY messages; the difference of the two totals, divided by the
difference in messages, is what one message costs the daemon with its
deliveries to the room (start-up and log-ins cancel out).

    scripts/count-instructions [--checkout DIR] [--clients 10] [--few 200] [--many 1200]
                               [--irc [--caps "server-time message-tags"]]
                               [--logins token|resume] [--dm]

``--irc`` does the same over the IRC listener: the accounts and the room are
made over the line protocol, then every client connects over IRC (``PASS``
with its password, ``NICK``, ``USER``, the capabilities of ``--caps`` if
any), joins the channel, and the first posts with ``PRIVMSG``.

``--dm`` sends direct messages to the second client instead (``/msg u1`` or
``PRIVMSG u1``); the others only wait, so use ``--clients 2``.

``--logins`` counts log-ins instead of messages: one account with an API
token; FEW (then MANY) connections log in with ``/auth <token>`` (``token``)
or with ``/login --resume <secret>`` (``resume``: MANY resume tokens are
issued first, in both runs, by connections that then close), in waves of
``--clients`` at once, and stay connected; the difference of the two totals
divided by MANY - FEW is one log-in (connect, log-in, reply).

``--checkout`` points at another checkout of chatd (for example the code
before a change, from ``git worktree add``), so two versions are compared
on the same machine. Prints one JSON line. Expect a spread of about 1-2%
between runs (the loop's wake-ups differ); compare the median of several.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK = b"COUNTED"
# The resume tokens an account keeps (chatd.domain.resume.MAX_PER_USER).
MAX_PER_USER = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_daemon(checkout: Path, work: Path, out: Path,
                 irc_port: int | None) -> tuple[subprocess.Popen[bytes], int]:
    """``chatd serve`` under callgrind on a free loopback port; its process and port."""
    config = work / "chatd.yaml"
    irc = {"irc": {"enabled": True, "port": irc_port}} if irc_port else {}
    config.write_text(json.dumps({**irc,
        "accounts": {"bcrypt_cost": 4},
        "limits": {"message_rate": 1e7, "message_burst": 1e7, "command_rate": 1e7,
                   "command_burst": 1e7, "login_timeout": 600,
                   "max_connections_per_ip": 100_000,
                   # Every account of a run registers from one address.
                   "registrations": 0, "room_creations": 0},
        "control": {"path": str(work / "chatd.sock")}}))
    log = work / "chatd.log"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
           "-m", "chatd", "serve", "--config", str(config), "--db", str(work / "chatd.db"),
           "--port", "0"]
    env = dict(os.environ, PYTHONPATH=str(checkout), PYTHONHASHSEED="0")
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=stderr, cwd=checkout, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        found = re.search(r"started.*?:(\d+)", log.read_text(errors="replace"))
        if found:
            return proc, int(found.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"chatd did not start:\n{log.read_text(errors='replace')[-2000:]}")


async def converse(port: int, clients: int, messages: int, dm: bool = False) -> None:
    """Log ``clients`` users into one room; the first posts ``messages``, one per turn."""
    conns = []
    for i in range(clients):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        verb = "create" if i == 0 else "join"
        writer.write(f"/register u{i} password{i}x\n/{verb} #counted\n/format json\n"
                     "/ping\n".encode())
        while b"pong" not in await asyncio.wait_for(reader.readline(), 300):
            pass
        conns.append((reader, writer))
    await listen_and_send(conns, messages, b"/msg u1 " if dm else b"", b"\n")


async def converse_irc(port: int, irc_port: int, clients: int, messages: int,
                       caps: str, dm: bool = False) -> None:
    """As :func:`converse`, over IRC: accounts and room made over the line protocol."""
    for i in range(clients):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        verb = "create" if i == 0 else "join"
        writer.write(f"/register u{i} password{i}x\n/{verb} #counted\n/ping\n".encode())
        while b"pong" not in await asyncio.wait_for(reader.readline(), 300):
            pass
        writer.close()
    conns = []
    for i in range(clients):
        reader, writer = await asyncio.open_connection("127.0.0.1", irc_port)
        cap = f"CAP REQ :{caps}\r\nCAP END\r\n" if caps else ""
        writer.write(f"{cap}PASS u{i}:password{i}x\r\nNICK u{i}\r\nUSER u{i} 0 * :u{i}\r\n"
                     "JOIN #counted\r\n".encode())
        while b" 366 " not in await asyncio.wait_for(reader.readline(), 300):
            pass
        conns.append((reader, writer))
    await listen_and_send(conns, messages, b"PRIVMSG u1 :" if dm else b"PRIVMSG #counted :",
                          b"\r\n")


async def listen_and_send(conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
                          messages: int, verb: bytes, end: bytes) -> None:
    """The first connection posts ``messages``, each once the previous one reached the
    second; returns once every other connection heard them all."""
    clients = len(conns)
    heard = [0] * clients
    first_heard = asyncio.Event()

    async def listen(i: int) -> None:
        reader = conns[i][0]
        while heard[i] < messages:
            line = await asyncio.wait_for(reader.readline(), 300)
            if not line:
                raise SystemExit("the daemon closed a connection")
            if MARK in line:
                heard[i] += 1
                if i == 1:
                    first_heard.set()

    listeners = [asyncio.create_task(listen(i)) for i in range(1, clients)]
    sender = conns[0][1]
    for k in range(messages):
        sender.write(verb + MARK + f" {k} hello there everyone".encode() + end)
        while heard[1] <= k:
            first_heard.clear()
            await first_heard.wait()
    await asyncio.gather(*listeners)


async def json_reply(reader: asyncio.StreamReader, command: str) -> dict[str, object]:
    """The final reply (``ok`` or ``error``) to ``command``, from the JSON format."""
    while True:
        line = await asyncio.wait_for(reader.readline(), 300)
        if not line:
            raise SystemExit("the daemon closed a connection")
        if line.startswith(b"{"):
            record = json.loads(line)
            if record.get("command") == command and record.get("type") in ("ok", "error"):
                if record["type"] == "error":
                    raise SystemExit(f"/{command} failed: {record}")
                return dict(record)


async def log_ins(port: int, kind: str, wave: int, logins: int, issued: int) -> None:
    """``logins`` connections log in (``/auth`` or ``/login --resume``), ``wave`` at a
    time, and stay; ``issued`` resume tokens are made first whatever ``logins`` is."""
    # An account keeps its newest MAX_PER_USER resume tokens: enough accounts for all.
    held, api_tokens = [], []
    for i in range(1 + (issued - 1) // MAX_PER_USER if kind == "resume" else 1):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"/format json\n/register u{i} password{i}x\n/token create counted\n"
                     .encode())
        api_tokens.append(str((await json_reply(reader, "token"))["token"]))
        held.append((reader, writer))
    api_token = api_tokens[0]
    secrets: list[str] = []
    if kind == "resume":
        for start in range(0, issued, wave):
            batch = await asyncio.gather(*(
                one_login(port, f"/auth {api_tokens[i // MAX_PER_USER]} --resume", "auth",
                          keep=False)
                for i in range(start, min(issued, start + wave))))
            secrets += [str(record["resume"]) for record, _ in batch]
    for start in range(0, logins, wave):
        lines = [f"/login --resume {secrets[i]}" if kind == "resume" else f"/auth {api_token}"
                 for i in range(start, min(logins, start + wave))]
        command = "login" if kind == "resume" else "auth"
        batch = await asyncio.gather(*(one_login(port, line, command, keep=True)
                                       for line in lines))
        held += [conn for _, conn in batch if conn is not None]
    for _, held_writer in held:
        held_writer.close()


async def one_login(port: int, line: str, command: str, keep: bool) -> tuple[
        dict[str, object], tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]:
    """Connect, send ``line`` in the JSON format; its ``ok`` and the connection (if kept)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"/format json\n{line}\n".encode())
    record = await json_reply(reader, command)
    if keep:
        return record, (reader, writer)
    writer.close()
    return record, None


def count(checkout: Path, clients: int, messages: int, irc: bool, caps: str,
          logins: str | None = None, issued: int = 0, dm: bool = False) -> int:
    """The daemon's total instructions for a run with ``messages`` messages."""
    with tempfile.TemporaryDirectory(prefix="chatd-count-") as tmp:
        work = Path(tmp)
        out = work / "callgrind.out"
        irc_port = free_port() if irc else None
        proc, port = start_daemon(checkout, work, out, irc_port)
        try:
            if logins:
                asyncio.run(log_ins(port, logins, clients, messages, issued))
            elif irc_port:
                asyncio.run(converse_irc(port, irc_port, clients, messages, caps, dm))
            else:
                asyncio.run(converse(port, clients, messages, dm))
        finally:
            proc.terminate()
            proc.wait(300)
        totals = re.search(r"^totals: (\d+)", out.read_text(errors="replace"), re.M)
        if totals is None:
            raise SystemExit("callgrind wrote no totals")
        return int(totals.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=Path, default=ROOT)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--few", type=int, default=200)
    parser.add_argument("--many", type=int, default=1200)
    parser.add_argument("--irc", action="store_true",
                        help="clients over the IRC listener (PRIVMSG to a channel)")
    parser.add_argument("--caps", default="",
                        help="with --irc: the capabilities every client asks for")
    parser.add_argument("--dm", action="store_true",
                        help="direct messages to the second client instead of a room")
    parser.add_argument("--logins", choices=("token", "resume"),
                        help="count log-ins (/auth <token>, /login --resume) instead")
    args = parser.parse_args()
    if args.clients < 2 or args.many <= args.few:
        parser.error("need at least 2 clients and --many above --few")
    if args.logins:
        print_logins(args)
        return
    few = count(args.checkout, args.clients, args.few, args.irc, args.caps, dm=args.dm)
    many = count(args.checkout, args.clients, args.many, args.irc, args.caps, dm=args.dm)
    per_message = (many - few) / (args.many - args.few)
    print(json.dumps({"checkout": str(args.checkout), "clients": args.clients,
                      "messages": [args.few, args.many], "instructions": [few, many],
                      "per_message": round(per_message),
                      "per_delivery": round(per_message / (args.clients - 1), 1),
                      "load": ("direct messages, " if args.dm else "")
                      + ("one message per turn, one room, over IRC"
                               + (f" (caps: {args.caps})" if args.caps else "")
                               if args.irc else
                               "one message per turn, one room, text mode off (JSON)")}))


def print_logins(args: argparse.Namespace) -> None:
    """The instructions of one log-in, as one JSON line."""
    few = count(args.checkout, args.clients, args.few, False, "", args.logins, args.many)
    many = count(args.checkout, args.clients, args.many, False, "", args.logins, args.many)
    print(json.dumps({"checkout": str(args.checkout), "wave": args.clients,
                      "logins": [args.few, args.many], "instructions": [few, many],
                      "per_login": round((many - few) / (args.many - args.few)),
                      "load": f"{args.logins} log-ins over the line protocol, "
                              f"{args.clients} at a time, connections held"}))


if __name__ == "__main__":
    main()
