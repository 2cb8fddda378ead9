"""The control socket behind ``chatctl``: a Unix socket, mode 0600.

One JSON object per line each way. A request names a ``cmd`` and its
arguments; the answer is ``{"ok": true, "result": ...}`` or ``{"ok": false,
"code": ..., "error": ...}`` (a missing field, or one of the wrong type, is
``bad-arguments``). ``follow`` turns the connection into a stream of
``{"event": ...}`` lines (audit entries as they happen, and a status line
every second) until the client goes away; ``backup`` follows its answer with
the frames of a consistent copy (see chatd.ops.backups) and closes. Only the
socket's owner can connect: what it grants is full administration.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from chatd import __version__
from chatd.content.blobs import files_dir
from chatd.domain.names import MAX_NUMBER, is_number, parse_duration
from chatd.domain.scopes import DEFAULT_SCOPES, listed, parse_scopes
from chatd.errors import ChatError, Code
from chatd.ops.backups import (
    BLOBS,
    DATABASE_NAME,
    private_copy,
    remove_leftovers,
    send_end,
    send_files,
    state_directory,
)
from chatd.ops.nodes import flagged, named_addresses, status_scope
from chatd.protocol.codec import one_line
from chatd.protocol.dispatch import database_busy
from storage.api import StorageError, Unavailable

if TYPE_CHECKING:
    from chatd.config import Config
    from chatd.domain.accounts import User
    from chatd.domain.room import Room
    from chatd.ops.admin import Admin
    from chatd.protocol.services import Services
    from storage.records import AuditRecord

log = logging.getLogger(__name__)
Handler = Callable[["ControlServer", dict[str, Any]], Awaitable[Any]]
# What a request names, looked up (an account, a room).
T = TypeVar("T")
HANDLERS: dict[str, Handler] = {}
FOLLOW_STATUS_INTERVAL = 1.0
# The longest request line (a broadcast, a reason: text an operator typed).
REQUEST_LIMIT = 1 << 16


SOCKET_SUFFIX = ".sock"


# Where scripts/serve keeps the database of a development daemon (relative to
# the working directory).
DEVELOPMENT_DATABASE = "var/chatd.db"


def found_database(configured: str, named: bool) -> str:
    """The database the tools (chatctl, ``chatd useradd``) act on.

    ``configured`` is the configuration's; ``named`` tells whether the user
    chose it (a configuration file or a database on the command line). Only
    when nothing was named and the built-in default does not exist do they
    turn to the development daemon's database, so that after scripts/serve a
    plain ``chatctl status`` or ``chatd useradd`` reaches it.
    """
    if named or os.path.exists(configured) or not os.path.exists(DEVELOPMENT_DATABASE):
        return configured
    return DEVELOPMENT_DATABASE


def control_path(database: str, configured: str) -> str:
    """The socket's path: as configured, or the database's path plus ".sock".

    Named after the database, so two daemons whose databases share a
    directory get a socket each. The daemon and chatctl both ask this.
    """
    if configured:
        return configured
    return str(Path(database).resolve()) + SOCKET_SUFFIX


async def answers(path: str) -> bool:
    """Whether a live daemon accepts connections on the control socket ``path``."""
    try:
        _, writer = await asyncio.open_unix_connection(path)
    except OSError:  # no file, a stale socket nobody listens on, or no access
        return False
    writer.close()
    return True


# The longest path a Unix socket may be bound at (Linux's sun_path, less its NUL).
MAX_SOCKET_PATH = 107


def refuse_unusable_path(path: str, named_by: str | None) -> None:
    """Raise OSError, naming the path and the way out, when no socket can be made at
    ``path``: the kernel would only say "AF_UNIX path too long" or "No such file or
    directory", and only once the database and the listeners were open.

    A database deep in the file system gives a socket path longer than the kernel
    takes; the key ``named_by`` (control.path, or a cluster node's storage.path,
    which names no database to open) may name a directory that does not exist.
    """
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH:
        raise OSError(f"the control socket {path} would be {size} bytes long, more than "
                      f"the {MAX_SOCKET_PATH} a Unix socket's path may have: set "
                      "control.path to a shorter path")
    directory = os.path.dirname(os.path.abspath(path))
    # Beside an SQLite database (named_by None), opening the database names a
    # missing directory itself.
    if named_by is not None and not os.path.isdir(directory):
        raise OSError(f"the control socket {path} cannot be made: the directory "
                      f"{directory} does not exist (create it, or change {named_by})")


def refuse_other_file(path: str) -> None:
    """Raise OSError when something other than a socket is at ``path``.

    The socket file is replaced at start (a daemon killed outright leaves its
    socket behind); a control.path naming the database, a configuration file
    or any other file by mistake must stop the start instead of deleting it.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "a file that is not a socket"
        raise OSError(f"control.path {path} is {what}: chatd replaces only a socket left "
                      "there by an earlier daemon; name a path of its own (such as "
                      "chatd.db.sock), or leave control.path empty")


def remove_stale_socket(path: str) -> None:
    """Remove the socket a daemon that did not stop cleanly left at ``path``
    (and nothing else: see refuse_other_file)."""
    refuse_other_file(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def handler(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn
    return register


class ControlServer:
    """Serves chatctl requests against the live daemon (through its :class:`Admin` facade)."""

    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self._server: asyncio.AbstractServer | None = None
        self._streams: set[asyncio.StreamWriter] = set()
        self.path = ""

    @property
    def services(self) -> Services:
        return self.admin.services

    async def start(self) -> None:
        config = self.admin.config
        if not config.control.enabled:
            return
        self.path = control_path(config.storage.path, config.control.path)
        await self.refuse_if_taken()
        remove_stale_socket(self.path)
        await asyncio.to_thread(remove_leftovers, state_directory(config.storage.path),
                                config.storage.path)
        old_umask = os.umask(0o177)  # created 0600: no window where others could connect
        try:
            self._server = await asyncio.start_unix_server(self._serve, self.path,
                                                           limit=REQUEST_LIMIT)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        log.info("control socket", extra={"fields": {"path": self.path}})

    async def refuse_if_taken(self) -> None:
        """Raise OSError when another daemon answers on our control socket.

        Replacing its socket would leave that daemon unreachable and send its
        operator's chatctl commands here.
        """
        config = self.admin.config
        if not config.control.enabled:
            return
        path = control_path(config.storage.path, config.control.path)
        refuse_unusable_path(path, _socket_named_by(config))
        if await answers(path):
            raise OSError(f"another chatd answers on the control socket {path}"
                          f"{_taken_hint(config)}")
        refuse_other_file(path)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._streams):  # follow streams end with the daemon
            writer.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 1.0)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._streams.add(writer)
        try:
            while line := await reader.readline():
                request = _decode(line)
                if request.get("cmd") == "follow":
                    await self._follow(request, writer)
                    return
                if request.get("cmd") == "backup":
                    await self._backup(request, writer)
                    return
                writer.write(json.dumps(await self.answer(request)).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except ValueError:  # asyncio's word for a line past the reader's limit
            # Answered, never a traceback in the log: a broadcast or a reason
            # pasted whole is the operator's slip.
            writer.write(_refusal(Code.BAD_ARGUMENTS, f"the request is longer than "
                                  f"{REQUEST_LIMIT} bytes: shorten its text"))
        finally:
            self._streams.discard(writer)
            writer.close()

    async def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply to one request (never raises)."""
        fn = HANDLERS.get(str(request.get("cmd")))
        if fn is None:
            return {"ok": False, "code": Code.UNKNOWN_COMMAND.value,
                    "error": f"unknown control command {request.get('cmd')!r}"}
        try:
            return {"ok": True, "result": await fn(self, request)}
        except ChatError as exc:
            return {"ok": False, "code": exc.code.value, "error": exc.message}
        except (KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "code": Code.BAD_ARGUMENTS.value, "error": f"bad request: {exc}"}
        except Unavailable as exc:
            # A cluster's PostgreSQL away: busy, as the line protocol answers it.
            log.warning("control command refused: the database does not answer (%s)", exc,
                        extra={"fields": {"cmd": request.get("cmd")}})
            refusal = database_busy()
            return {"ok": False, "code": refusal.code.value, "error": refusal.message}
        except Exception:
            log.exception("control command failed", extra={"fields": {"cmd": request.get("cmd")}})
            return {"ok": False, "code": Code.INTERNAL_ERROR.value, "error": "internal error"}

    async def _backup(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        """Answer, then stream a consistent copy (and the local blobs, with ``files``).

        The copy is made in a private directory inside the daemon's own state
        directory (beside the database), so chatctl can write the backup
        wherever its operator may, whatever sandbox the daemon runs in.
        """
        config, services = self.admin.config, self.services
        refusal = _backup_refusal(config, str(request.get("to") or ""))
        if refusal is not None:
            writer.write(refusal)
            return
        with_files = bool(request.get("files"))
        blobs = files_dir(config.files, config.storage.path) / BLOBS \
            if with_files and config.files.backend == "local" else None
        answered = False
        try:
            # Everything acknowledged so far goes into the copy: write pending messages
            # (and noted audit entries) first.
            await services.writer.flush()
            await services.audit.flush()
            async with private_copy(services.storage, state_directory(config.storage.path),
                                    config.storage.path) as copy:
                result = {"database": DATABASE_NAME,
                          "blobs": _blobs_note(with_files, config.files.backend)}
                writer.write(json.dumps({"ok": True, "result": result}).encode() + b"\n")
                answered = True
                totals = await send_files(writer, copy, blobs)
            await services.audit.record("backup", "console",
                                        reason=str(request.get("to") or "stream"))
            await send_end(writer, totals)
        except (ConnectionError, RuntimeError) as exc:
            if not writer.is_closing():
                raise
            # chatctl went away mid-stream (its pipe closed, Ctrl-C): no failure of the
            # daemon's. (uvloop raises RuntimeError on a write to a closed socket, as
            # _follow knows; asyncio's drain a ConnectionError.)
            log.info("backup cut short: chatctl went away", extra={"fields": {
                "error": str(exc)}})
            return
        except (StorageError, OSError) as exc:
            log.error("backup failed", extra={"fields": {"error": str(exc)}})
            if not answered:  # mid-stream, closing the connection tells chatctl
                writer.write(_refusal(Code.INTERNAL_ERROR, f"backup failed: {exc}"))
            return
        log.info("backup sent", extra={"fields": totals})

    async def _follow(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        """Stream the last ``n`` audit entries (optionally of one room), then each new
        one and a status line a second; a room that does not exist, or a bad ``n``,
        is refused first, as ``audit`` refuses them.

        It listens before it reads the past entries: an entry made while they are
        read is then in both, and sent once, rather than in neither."""
        try:
            room = _found(request, "room", self.services.rooms.require)
            count = _count(request.get("n", 0))
        except ChatError as exc:
            writer.write(_refusal(exc.code, exc.message))
            return
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10_000)

        def on_audit(entry: dict[str, Any]) -> None:
            if (room is None or entry.get("room") == room.name) and not queue.full():
                queue.put_nowait({"event": entry})

        self.services.audit.listeners.add(on_audit)
        try:
            past = await self.services.audit.entries(count, room) if count else []
            sent = {_entry_key(entry) for entry in _entry_rows(past)}
            for entry in _entry_rows(past):
                writer.write(json.dumps({"event": entry}).encode() + b"\n")
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), FOLLOW_STATUS_INTERVAL)
                except TimeoutError:
                    item = {"status": status(self)}
                if "event" in item and _entry_key(item["event"]) in sent:
                    continue  # read with the past entries already
                writer.write(json.dumps(item).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, RuntimeError):
            return  # the follower went, or the daemon is stopping: the stream ends
        finally:
            self.services.audit.listeners.discard(on_audit)


def _entry_rows(entries: list[AuditRecord]) -> list[dict[str, Any]]:
    """Audit records as the console shows them."""
    return [{"id": e.id, "ts": e.ts, "actor": e.actor, "action": e.action, "target": e.target,
             "room": e.room, "reason": e.reason} for e in entries]


def _entry_key(entry: dict[str, Any]) -> tuple[Any, ...]:
    """What tells one entry from another, stored or live (a live one has no id)."""
    return (entry.get("ts"), entry.get("action"), entry.get("actor"), entry.get("target"),
            entry.get("room"))


def _refusal(code: Code, message: str) -> bytes:
    """The answer line of a stream's request that is refused (chatctl says ``code:
    message``), as :meth:`ControlServer.answer` answers any other request."""
    return json.dumps({"ok": False, "code": code.value, "error": message}).encode() + b"\n"


def _backup_refusal(config: Config, target: str) -> bytes | None:
    """Why the backup chatctl will write at ``target`` is refused; None when it is not."""
    if config.cluster.enabled:
        # A refusal, not a failure: the cluster's database is PostgreSQL's to back up.
        return _refusal(Code.NOT_PERMITTED, "in cluster mode the database is "
                        "PostgreSQL's: back it up with pg_dump or continuous "
                        "archiving (docs/CLUSTER.md, \"Backups\")")
    served = _served_file(config, target)
    if served is not None:
        # chatctl renames the copy into place: over the live database (or its
        # write-ahead log) everything written from then on would be lost.
        return _refusal(Code.BAD_ARGUMENTS, f"cannot write the backup over {served}: "
                        "chatd serves that file; write the backup elsewhere")
    return None


# The database's own files beside it (SQLite's write-ahead log, its index, a journal).
DATABASE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def _served_file(config: Config, target: str) -> str | None:
    """Which file of the running daemon (its database and the files beside it, its
    control socket) ``target`` is, by name or as the same file; None for another."""
    if not os.path.isabs(target):
        return None  # "standard output"
    database = os.path.abspath(config.storage.path)
    own = [database + suffix for suffix in DATABASE_COMPANIONS]
    own.append(control_path(config.storage.path, config.control.path))
    for path in own:
        if os.path.realpath(target) == os.path.realpath(path) or _same_file(target, path):
            return path
    return None


def _same_file(one: str, other: str) -> bool:
    try:
        return os.path.samefile(one, other)
    except OSError:  # either does not exist (yet)
        return False


def _blobs_note(with_files: bool, backend: str) -> str:
    """What the backup holds of the uploaded files."""
    if not with_files:
        return "not-requested"
    return "included" if backend == "local" else f"in-{backend}-not-included"


def _decode(line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    """A request's count of entries: a whole number storage can take (as a word too)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_NUMBER:
        return value
    if isinstance(value, str) and is_number(value):
        return int(value)
    raise ChatError(Code.BAD_ARGUMENTS, f"n must be a whole number from 0, not {value!r}.")


def status(ctl: ControlServer) -> dict[str, Any]:
    services, server = ctl.services, ctl.admin
    stats = services.stats
    return {"version": __version__, "uptime": services.clock.time() - services.started_at,
            "connections": server.connection_count, "users_online": services.presence.users_online,
            "users": services.accounts.count, "rooms": services.rooms.count,
            "messages": stats.messages, "messages_per_second": stats.messages_per_second,
            "deliveries": stats.deliveries, "loop_lag": stats.loop_lag,
            # As /stats has them: a backlog of unwritten messages shows here first.
            "storage_pending": stats.storage_pending,
            "storage_flush_seconds": stats.flush_seconds,
            "addresses": server.addresses, "listeners": named_addresses(server),
            **status_scope(server)}


@handler("status")
async def _status(ctl: ControlServer, req: dict[str, Any]) -> Any:
    return status(ctl)


@handler("nodes")
async def _nodes(ctl: ControlServer, req: dict[str, Any]) -> Any:
    """Every node serving chatd; those whose version or shared configuration
    differs from most nodes' are flagged with a sentence saying so."""
    this = ctl.admin.nodes.node_id
    rows, warnings = flagged(await ctl.admin.nodes.nodes(), this)
    return {"this": this, "nodes": rows, "warnings": warnings}


@handler("users")
async def _users(ctl: ControlServer, req: dict[str, Any]) -> Any:
    rooms = ctl.services.rooms
    return [{"name": u.name, "admin": u.is_admin, "bot": u.is_bot, "online": u.online,
             "connections": u.connections, "rooms": [r.name for r in rooms.of_user(u)]}
            for u in sorted(ctl.services.accounts.all(), key=lambda u: u.name.lower())]


@handler("rooms")
async def _rooms(ctl: ControlServer, req: dict[str, Any]) -> Any:
    rooms = ctl.services.rooms
    cluster = ctl.admin.config.cluster
    shared = cluster.enabled and bool(cluster.redis)
    return [rooms.summary(r) | {"online": rooms.online_in(r)}
            | ({"elsewhere": _online_elsewhere(ctl, r)} if shared else {})
            for r in rooms.listed_for(None) + rooms.hidden_rooms()]


def _online_elsewhere(ctl: ControlServer, room: Room) -> int:
    """The members of ``room`` online on other nodes of the cluster only. ``online``
    counts this node's connections in the room: on a cluster node, alone, it would
    show a room whose members are all on other nodes as empty."""
    accounts = ctl.services.accounts
    members = (accounts.get(user_id) for user_id in room.members)
    return sum(1 for user in members
               if user is not None and user.connections == 0 and user.elsewhere > 0)


def _text(req: dict[str, Any], key: str) -> str:
    """The request's ``key``, which must be text. chatctl sends text; a request
    written by hand with a number, a list or null there is refused with
    ``bad-arguments``, rather than failing deeper in or being shown as its repr."""
    return _as_text(req[key], key)


def _as_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ChatError(Code.BAD_ARGUMENTS, f"{what} must be text, not "
                        f"{json.dumps(value)[:40]}.")
    return value


def _user_in(ctl: ControlServer, req: dict[str, Any]) -> tuple[User, Room]:
    """The account and the room a moderation request names (``user``, ``room``);
    a malformed request is refused before anything is looked up."""
    services = ctl.services
    user, room = _text(req, "user"), _text(req, "room")
    return services.accounts.require(user), services.rooms.require(room)


def _one_line(value: Any, what: str) -> str:
    """An operator's text that reaches users (a broadcast, a reason): one line of
    printable text, as the line protocol lets through, TAB as a space. Anything
    else is refused rather than sent: an escape sequence would reach every
    text-mode reader's terminal, and a line end would start a line of its own."""
    return one_line(_as_text(value, what), what)


@handler("kick")
async def _kick(ctl: ControlServer, req: dict[str, Any]) -> Any:
    services = ctl.services
    reason = _one_line(req.get("reason", ""), "the reason")
    user, room = _user_in(ctl, req)
    await services.moderation.kick(None, room, user, reason)
    return {"user": user.name, "room": room.name}


def _named(req: dict[str, Any], key: str) -> str | None:
    """The request's ``key`` (an owner, scopes, a user or a room to narrow to); None
    when it names none. An empty one is refused, not taken for none: an unset shell
    variable in ``--owner "$O"`` must not make a bot nobody's, nor ``--scopes "$S"``
    give the default scopes, nor ``tokens "$U"`` list everyone's."""
    value = req.get(key)
    if value is None:
        return None
    text = _as_text(value, key)
    if not text.strip():
        raise ChatError(Code.BAD_ARGUMENTS, f"{key} is empty: name one, or leave it out.")
    return text


def _found(req: dict[str, Any], key: str, require: Callable[[str], T]) -> T | None:
    """What the request's ``key`` names (:func:`_named`), looked up by ``require``
    (an account or a room: ``no-such-...`` when there is none); None when it names
    none."""
    named = _named(req, key)
    return require(named) if named is not None else None


def _duration_of(req: dict[str, Any], key: str = "duration") -> float | None:
    """The request's duration (``key``) in seconds; None when it names none (for
    good). An empty one is refused, not taken for none: an unset shell variable
    in ``--duration "$D"`` must not make a ban permanent, nor a token eternal."""
    duration = req.get(key)
    if duration is None:
        return None
    return parse_duration(str(duration))


@handler("ban")
async def _ban(ctl: ControlServer, req: dict[str, Any]) -> Any:
    services = ctl.services
    duration = _duration_of(req)
    reason = _one_line(req.get("reason", ""), "the reason")
    user, room = _user_in(ctl, req)
    ban = await services.moderation.ban(None, room, user, duration, reason)
    return {"user": ban.name, "room": room.name, "until": ban.record.until}


@handler("mute")
async def _mute(ctl: ControlServer, req: dict[str, Any]) -> Any:
    services = ctl.services
    duration = _duration_of(req)
    user, room = _user_in(ctl, req)
    record = await services.moderation.mute(None, room, user, duration)
    return {"user": user.name, "room": room.name, "until": record.until}


@handler("unban")
async def _unban(ctl: ControlServer, req: dict[str, Any]) -> Any:
    services = ctl.services
    user, room = _user_in(ctl, req)
    await services.moderation.unban(None, room, user)
    return {"user": user.name, "room": room.name}


@handler("unmute")
async def _unmute(ctl: ControlServer, req: dict[str, Any]) -> Any:
    services = ctl.services
    user, room = _user_in(ctl, req)
    await services.moderation.unmute(None, room, user)
    return {"user": user.name, "room": room.name}


@handler("tokens")
async def _tokens(ctl: ControlServer, req: dict[str, Any]) -> Any:
    """The API tokens of one user (``user``) or of everyone: never the secrets."""
    accounts = ctl.services.accounts
    user = _named(req, "user")
    users = [accounts.require(user)] if user is not None else \
        sorted(accounts.all(), key=lambda u: u.name.lower())
    tokens = ctl.services.tokens
    return [{"user": user.name, "name": record.name, "kind": record.kind,
             "scopes": listed(tokens.scopes(record)),
             "created": record.created_at, "expires": record.expires_at,
             "last_used": tokens.last_used(record)}
            for user in users for record in tokens.of(user)]


@handler("revoke-token")
async def _revoke_token(ctl: ControlServer, req: dict[str, Any]) -> Any:
    services = ctl.services
    user, name = services.accounts.require(_text(req, "user")), _text(req, "name")
    try:
        await services.tokens.revoke(user, name)
    except ChatError as exc:  # its words speak to the owner: say whose token it is
        raise ChatError(exc.code, f'{user.name} has no token named "{name}".') from None
    await services.audit.record("token-revoked", "console", user.name, reason=name)
    return {"user": user.name, "name": name}


@handler("bots")
async def _bots(ctl: ControlServer, req: dict[str, Any]) -> Any:
    """Every bot account, with its owner and its tokens' count."""
    accounts, tokens = ctl.services.accounts, ctl.services.tokens
    owner = _found(req, "owner", accounts.require)
    return [{"name": bot.name, "owner": _owner_name(ctl, bot), "online": bot.online,
             "created": bot.created_at, "tokens": len(tokens.of(bot))}
            for bot in accounts.bots_of(owner)]


def _owner_name(ctl: ControlServer, bot: User) -> str | None:
    found = ctl.services.accounts.get(bot.owner_id) if bot.owner_id is not None else None
    return found.name if found is not None else None


@handler("bot-create")
async def _bot_create(ctl: ControlServer, req: dict[str, Any]) -> Any:
    """A bot owned by ``owner`` (or by nobody), and its first token (shown only here)."""
    services = ctl.services
    owner = _found(req, "owner", services.accounts.require)
    scopes = _named(req, "scopes")
    grant = parse_scopes(scopes) if scopes is not None else DEFAULT_SCOPES
    ttl = _duration_of(req, "ttl")  # none: a token that never expires
    bot = await services.accounts.create_bot(_text(req, "name"), owner, actor="console")
    secret, record = await services.tokens.create(bot, "default", ttl, grant)
    return {"name": bot.name, "owner": owner.name if owner else None, "token": secret,
            "scopes": listed(grant), "expires": record.expires_at}


@handler("bot-delete")
async def _bot_delete(ctl: ControlServer, req: dict[str, Any]) -> Any:
    services = ctl.services
    bot = services.accounts.require(_text(req, "name"))
    if not bot.is_bot:
        raise ChatError(Code.NOT_PERMITTED, f"{bot.name} is not a bot; chatctl userdel "
                                            "deletes people's accounts.")
    await services.presence.delete_account(bot, actor="console")
    return {"name": bot.name}


@handler("useradd")
async def _useradd(ctl: ControlServer, req: dict[str, Any]) -> Any:
    services = ctl.services
    user = await services.accounts.create(_text(req, "name"), _text(req, "password"),
                                          is_admin=bool(req.get("admin")), actor="console")
    return {"name": user.name, "admin": user.is_admin}


@handler("userdel")
async def _userdel(ctl: ControlServer, req: dict[str, Any]) -> Any:
    services = ctl.services
    user = services.accounts.require(_text(req, "name"))
    await services.presence.delete_account(user, actor="console")
    return {"name": user.name}


@handler("promote")
async def _promote(ctl: ControlServer, req: dict[str, Any]) -> Any:
    return await _set_admin(ctl, _text(req, "name"), True)


@handler("demote")
async def _demote(ctl: ControlServer, req: dict[str, Any]) -> Any:
    return await _set_admin(ctl, _text(req, "name"), False)


async def _set_admin(ctl: ControlServer, name: str, flag: bool) -> Any:
    services = ctl.services
    user = services.accounts.require(name)
    if user.is_admin == flag:  # nothing to change, nor to audit
        return {"name": user.name, "admin": flag, "changed": False}
    await services.accounts.set_admin(user, flag)
    await services.audit.record("server-admin" if flag else "server-admin-removed", "console",
                                user.name)
    return {"name": user.name, "admin": user.is_admin, "changed": True}


@handler("broadcast")
async def _broadcast(ctl: ControlServer, req: dict[str, Any]) -> Any:
    text = _one_line(req["text"], "a broadcast").strip()
    if not text:
        raise ChatError(Code.BAD_ARGUMENTS, "a broadcast needs some text.")
    sent = ctl.services.presence.broadcast(text)
    await ctl.services.audit.record("broadcast", "console", reason=text)
    # On a cluster, the count is this node's: the other nodes send it to their own.
    cluster = ctl.admin.config.cluster
    return {"sessions": sent, "other_nodes": bool(cluster.enabled and cluster.redis)}


@handler("reload")
async def _reload(ctl: ControlServer, req: dict[str, Any]) -> Any:
    problem = ctl.admin.reload()
    if problem:
        raise ChatError(Code.BAD_ARGUMENTS, f"configuration refused: {problem}")
    # Changed keys only a restart applies (their running values stay in force); the
    # file re-read, null when there is none (an edit of any file then changes nothing).
    return {"reloaded": True, "restart_needed": ctl.admin.restart_needed,
            "file": _absolute(ctl.admin.config_path)}


def _absolute(path: str | None) -> str | None:
    """An absolute path (no file system access: the working directory's name alone)."""
    return os.path.abspath(path) if path is not None else None


@handler("audit")
async def _audit(ctl: ControlServer, req: dict[str, Any]) -> Any:
    room = _found(req, "room", ctl.services.rooms.require)
    return _entry_rows(await ctl.services.audit.entries(_count(req.get("n", 50)), room))


def _socket_named_by(config: Config) -> str | None:
    """The key that places the control socket in a directory nothing else opens
    first: control.path, or a cluster node's storage.path (its database is
    PostgreSQL's: no SQLite file there to name a missing directory)."""
    if config.control.path:
        return "control.path"
    return "storage.path" if config.cluster.enabled else None


def _taken_hint(config: Config) -> str:
    """What to change when the socket is taken. A cluster node's storage.path names
    no database it alone serves, only where its socket is: two nodes whose files
    leave it at its default (chatd.db beside each file, in one directory) collide."""
    if not config.cluster.enabled:
        return ""
    return ("; each node of a cluster needs its own storage.path (its control socket is "
            "beside it) or control.path")
