"""The bot SDK: an asyncio bot that logs in, joins its rooms, reacts, and comes back.

    bot = Bot("127.0.0.1", 7777, user="pingbot", token=os.environ["CHATD_TOKEN"],
              rooms=["general"])

    @bot.command("ping")
    async def ping(message: Message, args: str) -> None:
        await bot.reply(message, "pong")

    asyncio.run(bot.run())

:meth:`Bot.run` connects, logs in (API token or password), joins the rooms,
then hands every event to the handlers registered with the decorators, one
event at a time, in the order the server sent them. When the connection
drops it waits (exponential back-off with jitter), connects again, logs in
again, joins the rooms again, and asks the server for the messages it missed
when the server offers ``/resume``. Requests (:meth:`Bot.request`) are
labelled, so many may be awaited at once and each gets its own reply.

Resume tokens: every login asks the server for one (``--resume``) and keeps
the one its ``ok`` carries in a :class:`ResumeTokens` store (memory by
default, :class:`FileResumeTokens` to survive the bot's own restarts). The
next login presents it (``/login --resume <token>``: no password check on
the server, and a new token in the ``ok``, since each works once) and falls
back to the API token or password when it is refused. A server that issues
no resume tokens leaves the store empty, and nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from chatd.client.api import DEFAULT_TIMEOUT, ChatClient, ClientError, Reply, as_kept
from chatd.client.logins import (
    password_login,
    resume_login,
    resume_token_of,
    token_login,
)
from chatd.client.sdk import events
from chatd.client.sdk.backoff import Backoff
from chatd.client.sdk.events import Event, Invite, Join, Leave, Message, Notice, RoomEvent

log = logging.getLogger(__name__)

E = TypeVar("E")
Handler = Callable[[E], Awaitable[None]]
CommandHandler = Callable[[Message, str], Awaitable[None]]
# Login errors no retry can cure: the bot stops instead of hammering the server.
FATAL_LOGIN = frozenset({"auth-failed", "bad-arguments", "no-such-user"})
# A rejoin refused with these is not tried again: the room ended, or the bot is banned.
GONE = frozenset({"no-such-room", "banned"})
# The room events, about the bot itself, and the notifications that say it is out.
REMOVALS = frozenset({"kick", "ban", "terminated"})
REMOVAL_NOTICES = frozenset({"kicked", "banned", "terminated"})
# How long a ping may take, after a handler's request went unanswered or a
# keepalive, before the connection is taken for dead (Bot.alive_timeout).
ALIVE_TIMEOUT = 5.0
# After how many seconds with nothing received the bot pings the server (Bot.keepalive):
# a peer gone without a word (a NAT that forgot the connection) sends no FIN or RST,
# and the server's idle time-out is off by default, so only a ping notices.
KEEPALIVE = 60.0
# What reading a record the bot cannot read raises: a field of another type (an id
# that is "seven", null, a list, or 1e999, which JSON reads as infinity), or, inside
# a reply's list, an item that is no object.
ODD_RECORD = (TypeError, ValueError, OverflowError, AttributeError)


class LoginRefused(Exception):
    """The server refused the bot's credentials; :meth:`Bot.run` gives up."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(f"{reply.get('code')}: {reply.get('message')}")
        self.reply = reply


class ResumeTokens(Protocol):
    """Where a bot keeps the resume token of its last login (memory, a file ...)."""

    def get(self) -> str | None: ...

    def put(self, token: str | None) -> None: ...


class MemoryResumeTokens:
    """Resume tokens kept for the life of the process."""

    def __init__(self) -> None:
        self.token: str | None = None

    def get(self) -> str | None:
        return self.token

    def put(self, token: str | None) -> None:
        self.token = token


class FileResumeTokens:
    """The resume token kept in a file that only its owner may read (mode 0600).

    A bot restarted as a process then logs in without its password's bcrypt
    cost on the server. The file holds a bearer secret: keep it where the
    bot's own token is kept.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def get(self) -> str | None:
        try:
            token = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return token or None

    def put(self, token: str | None) -> None:
        if token is None:
            self.path.unlink(missing_ok=True)
            return
        # Written beside it, then renamed: a crash never leaves half a token.
        partial = self.path.with_name(self.path.name + ".new")
        partial.unlink(missing_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(token + "\n")
        os.replace(partial, self.path)


class Bot:
    """A chatd bot: credentials, rooms, handlers, and a connection kept alive."""

    def __init__(self, host: str = "127.0.0.1", port: int = 7777, *, user: str,
                 token: str | None = None, password: str | None = None,
                 rooms: Iterable[str] = (), prefix: str = "!", backoff: Backoff | None = None,
                 resume: bool = True, resume_tokens: ResumeTokens | None = None,
                 timeout: float = DEFAULT_TIMEOUT, keepalive: float | None = KEEPALIVE,
                 answer_bots: bool = False, **tls: Any) -> None:
        if (token is None) == (password is None):
            raise ValueError("give the bot a token or a password (one of them)")
        self.host, self.port, self.user = host, port, user
        self.rooms: set[str] = {room.lstrip("#").lower() for room in rooms}
        self.prefix = prefix
        self.backoff = backoff or Backoff()
        # Where the resume token of the last login is kept; None: ask for none.
        self.resume_tokens: ResumeTokens | None = (
            (resume_tokens or MemoryResumeTokens()) if resume else None)
        # How long a connection, and each request (the login's, the rejoins', the
        # resume's and the handlers'), may wait for the server before it gives up.
        self.timeout = timeout
        self.alive_timeout = ALIVE_TIMEOUT
        # Seconds of silence before a ping; None or 0: never.
        self.keepalive = keepalive
        # Whether command and mention handlers see other bots' messages: off, since
        # two bots answering each other would talk until flood control stopped them.
        self.answer_bots = answer_bots
        self.client: ChatClient | None = None
        self.connected = asyncio.Event()
        self.last_id = 0  # the highest message id seen: where a resume starts
        self._started = False  # logged in once: the next login resumes from last_id
        self.connections = 0  # successful logins so far
        self._token, self._password, self._tls = token, password, tls
        self._handlers: dict[type[Any], list[Handler[Any]]] = {}
        self._mention_handlers: list[Handler[Message]] = []
        self._commands: dict[str, CommandHandler] = {}
        self._on_connect: list[Callable[[], Awaitable[None]]] = []
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- handlers ------------------------------------------------------------------------

    def on(self, kind: type[E]) -> Callable[[Handler[E]], Handler[E]]:
        """Decorate a handler of one event type (``Message``, ``Join``, ``RoomEvent`` ...)."""
        def register(handler: Handler[E]) -> Handler[E]:
            self._handlers.setdefault(kind, []).append(handler)
            return handler
        return register

    def on_message(self, handler: Handler[Message]) -> Handler[Message]:
        """Every message from someone else (room or direct), bots' too (``message.bot``)."""
        return self.on(Message)(handler)

    def on_mention(self, handler: Handler[Message]) -> Handler[Message]:
        """Messages from someone else that name the bot as a word (``@bot``, ``bot:``),
        and direct ones; never one a command handler took, nor a notice, nor (unless
        ``answer_bots``) a bot's."""
        self._mention_handlers.append(handler)
        return handler

    def on_join(self, handler: Handler[Join]) -> Handler[Join]:
        return self.on(Join)(handler)

    def on_leave(self, handler: Handler[Leave]) -> Handler[Leave]:
        return self.on(Leave)(handler)

    def on_invite(self, handler: Handler[Invite]) -> Handler[Invite]:
        return self.on(Invite)(handler)

    def on_connect(self, handler: Callable[[], Awaitable[None]]
                   ) -> Callable[[], Awaitable[None]]:
        """After every login (the first and each reconnection), rooms joined."""
        self._on_connect.append(handler)
        return handler

    def command(self, name: str) -> Callable[[CommandHandler], CommandHandler]:
        """A ``!name args`` command in a message; the handler gets the message and ``args``.
        Never a notice, nor (unless ``answer_bots``) a bot's message."""
        def register(handler: CommandHandler) -> CommandHandler:
            self._commands[name.lower()] = handler
            return handler
        return register

    # -- requests --------------------------------------------------------------------------

    async def request(self, line: str, check: bool = True,
                      timeout: float | None = None) -> Reply:
        """Send a command with a fresh label; its final reply (ClientError on error).

        ValueError, before anything is sent, for a line the bot could not read
        the answer of (see :func:`unreadable`)."""
        refusal = unreadable(line)
        if refusal is not None:
            raise ValueError(refusal)
        return await self._client().command(line, check, timeout or self.timeout)

    async def members(self, room: str) -> list[dict[str, Any]]:
        """Every member of ``room``: ``user``, ``role`` (``owner``, ``admin``, ``voice``,
        ``member``), ``online``, and ``bot: True`` on bots (``/who``, every page)."""
        return await self._client().members(room, self.timeout)

    def _client(self) -> ChatClient:
        """The connection requests go on; ConnectionError when there is none."""
        client = self.client
        if client is None or not self.connected.is_set():
            raise ConnectionError("the bot is not connected")
        return client

    async def say(self, room: str, text: str) -> int:
        """Post ``text`` to ``room``; the message id."""
        reply = await self.request(f"/say {room} {_one_line(text)}")
        return int(reply.get("id", 0))

    async def direct(self, user: str, text: str) -> int:
        """Send ``user`` a direct message; the message id."""
        reply = await self.request(f"/msg {user} {_one_line(text)}")
        return int(reply.get("id", 0))

    async def reply(self, to: Message, text: str) -> int:
        """Answer a message where it was said: in its room, or to its sender."""
        if to.room is not None:
            return await self.say(to.room, text)
        return await self.direct(to.sender, text)

    async def join(self, room: str) -> Reply:
        """Join ``room``, and join it again after every reconnection."""
        reply = await self.request(f"/join {room}")
        self.rooms.add(str(reply.get("room", room)).lower())
        return reply

    async def leave(self, room: str) -> Reply:
        """Leave ``room``, and join it no more after a reconnection. A refused leave
        (``rate-limited``: a leave takes a message token) leaves the bot in the room,
        and in ``bot.rooms``; one refused because the bot is not in it forgets it."""
        name = room.lstrip("#").lower()
        try:
            reply = await self.request(f"/leave {room}")
        except ClientError as exc:
            if exc.code in ("not-in-room", "no-such-room"):
                self.rooms.discard(name)
            raise
        self.rooms.discard(name)
        return reply

    def spawn(self, work: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run slow work (an HTTP call) beside the event loop of the bot; errors are logged."""
        task: asyncio.Task[Any] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("bot task failed", exc_info=task.exception())

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until :meth:`stop`: connect, log in, dispatch, reconnect when dropped.

        Raises :class:`LoginRefused` when the credentials are refused.
        """
        self._stopping = False
        try:
            while not self._stopping:
                try:
                    await self._serve_once()
                except TimeoutError:
                    # Its str() is empty: say what it means.
                    log.info("connection lost: the server did not answer within %gs",
                             self.timeout)
                except (OSError, ConnectionError) as exc:
                    log.info("connection lost: %s", exc)
                finally:
                    self.connected.clear()
                if not self._stopping:
                    await asyncio.sleep(self.backoff.next_delay())
        finally:
            await self._close()

    async def stop(self) -> None:
        """End :meth:`run` after the event being handled."""
        self._stopping = True
        if self.client is not None:
            await self.client.close()

    async def _serve_once(self) -> None:
        client = await ChatClient.connect(self.host, self.port, self.timeout, **self._tls)
        self.client = client
        # Where the resume starts (None: the first login, nothing to resume yet);
        # the welcome's direct messages raise last_id.
        resume_from = self.last_id if self._started else None
        try:
            welcome = await self._login(client)
            joined = await self._rejoin(client, welcome)
            if resume_from is None:
                # Before the bot counts as connected: a connection lost from then
                # on must find where to resume from (what is said meanwhile is
                # replayed at the next login).
                await self._mark_start(client, welcome)
            self.connections += 1
            self.backoff.reset()
            self.connected.set()
            # The rooms joined, not those asked for: one refused (a token without
            # post, say) was logged as such and must not be named as one it is in.
            log.info("logged in as %s to %s:%d (login %d), in %s", self.user, self.host,
                     self.port, self.connections,
                     ", ".join(f"#{room}" for room in joined) or "no room")
            seen: set[int] = set()
            if resume_from:
                # It replays the direct messages the login showed too, in id order
                # among the rooms' messages.
                await self._resume(client, resume_from, seen)
            else:
                await self._older_direct(client, welcome, seen)
            # The direct messages kept while the bot was away (the login's reply
            # lines), those the resume did not show.
            await self._replay(welcome.lines, seen)
            for handler in self._on_connect:
                await self._guarded(handler())
            await self._dispatch_until_closed(client)
        finally:
            await client.close()

    async def _dispatch_until_closed(self, client: ChatClient) -> None:
        """Hand every event to the handlers until the connection ends, while the
        keepalive checks, beside them, that a silent connection still answers."""
        watchdog = asyncio.ensure_future(self._keep_alive(client))
        try:
            async for record in client.events():
                await self.dispatch(record)
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        if not self._stopping:
            log.info("the connection ended; reconnecting")

    async def _keep_alive(self, client: ChatClient) -> None:
        """Ping when nothing was received for ``keepalive`` seconds; a ping left
        unanswered for ``alive_timeout`` closes the connection, which ends its
        events and makes the bot reconnect (and resume)."""
        interval = self.keepalive
        if not interval:
            return
        while True:
            silent = time.monotonic() - client.last_received
            if silent < interval:
                await asyncio.sleep(interval - silent)
                continue
            if not await self._answers(client):
                log.warning("no answer to a keepalive ping within %gs after %gs of "
                            "silence; reconnecting", self.alive_timeout, interval)
                await client.close()
                return

    async def _login(self, client: ChatClient) -> Reply:
        reply = await self._resumed(client)
        if reply is None:
            reply = await self._credential_login(client)
        if not reply.ok:
            if reply.final.get("code") in FATAL_LOGIN:
                self._stopping = True
                raise LoginRefused(reply.final)
            raise ConnectionError(f"login failed: {reply.final.get('message')}")
        self.user = str(reply.get("user", self.user))
        if self.resume_tokens is not None:
            # The one presented is used up: keep the one this ok carries (or none).
            self._keep(resume_token_of(reply.final))
        return reply

    def _keep(self, token: str | None) -> None:
        """Store ``token``. A store that cannot (a FileResumeTokens in a directory that
        is missing or not writable) is said, and the bot goes on without it: the
        login succeeded, and treating the failure as a lost connection would log in
        again and again, each time failing the same way."""
        assert self.resume_tokens is not None
        try:
            self.resume_tokens.put(token)
        except OSError as exc:
            log.warning("could not keep the resume token (%s); the next connection logs "
                        "in with the %s", exc, self._credential)

    def _stored(self) -> str | None:
        """The stored resume token; None when there is none or it cannot be read."""
        assert self.resume_tokens is not None
        try:
            return self.resume_tokens.get()
        except OSError as exc:
            log.warning("could not read the resume token (%s); logging in with the %s",
                        exc, self._credential)
            return None

    @property
    def _credential(self) -> str:
        return "token" if self._token is not None else "password"

    async def _resumed(self, client: ChatClient) -> Reply | None:
        """A login with the stored resume token, if there is one and it is still good."""
        store = self.resume_tokens
        secret = self._stored() if store is not None else None
        if store is None or secret is None:
            return None
        reply = await client.command(resume_login(secret), check=False, timeout=self.timeout)
        if reply.ok:
            return reply
        # Used, revoked, expired, or the server's database was replaced: forget it.
        log.info("resume token refused (%s); logging in with the %s", reply.final.get("code"),
                 self._credential)
        self._keep(None)
        return None

    async def _credential_login(self, client: ChatClient) -> Reply:
        """A login with the API token or the password, asking for a resume token."""
        resume = self.resume_tokens is not None
        line = (token_login(self.user, self._token, resume) if self._token is not None
                else password_login(self.user, str(self._password), resume))
        return await client.command(line, check=False, timeout=self.timeout)

    async def _rejoin(self, client: ChatClient, welcome: Reply) -> list[str]:
        """Join the bot's rooms; those it is in now. A room the login says its account
        is in already is not joined again: a /join would change nothing there, and a
        token without post (a bot that only reads) would see it refused, its room
        logged as one it could not join though its messages come."""
        listed = welcome.get("rooms")
        member_of = {str(name).lower() for name in listed} if isinstance(listed, list) else set()
        joined = sorted(self.rooms & member_of)
        for room in sorted(self.rooms - member_of):
            reply = await client.command(f"/join {room}", check=False, timeout=self.timeout)
            if reply.ok:
                joined.append(room)
                continue
            if reply.final.get("code") in GONE:
                # Ended, or the bot was banned, while it was away: trying again at
                # every reconnection would only repeat the refusal.
                self._forget(room, str(reply.final.get("message")))
            else:
                log.warning("could not join #%s: %s", room, reply.final.get("message"))
        return joined

    def _forget(self, room: str, why: str) -> None:
        """Drop ``room`` from the rooms joined after every login."""
        if room in self.rooms:
            self.rooms.discard(room)
            log.info("no longer joining #%s: %s", room, why)

    def _note_removal(self, event: Event) -> None:
        """Forget a room the bot learns it was removed from (kicked, banned, the
        room terminated, its account's leave) so that no reconnection joins it again
        behind the moderator's back; ``bot.join`` asks again."""
        if isinstance(event, RoomEvent | Leave) and event.user is not None \
                and event.user.casefold() == self.user.casefold():
            if isinstance(event, Leave) or event.event in REMOVALS:
                name = "leave" if isinstance(event, Leave) else event.event
                self._forget(event.room.lower(), f"{name} (by {event.actor or 'the server'})")
        elif isinstance(event, Notice) and event.kind in REMOVAL_NOTICES:
            room = event.raw.get("notification", {}).get("room")
            if room:
                self._forget(str(room).lower(), event.text)

    async def _older_direct(self, client: ChatClient, welcome: Reply, seen: set[int]) -> None:
        """At a first login, the direct messages kept while the bot was away that the
        login left out (the server replays only the newest, rooms.offline_replay_max,
        and marks the others delivered too): resumed from just before them, direct
        messages only (the rooms' are history, which a first login hands over none of)."""
        if not welcome.get("direct_messages_skipped"):
            return
        after = _id_of(welcome.final, "direct_messages_skipped_after", -1)
        if after is None or after < 0:
            return
        await self._resume(client, after, seen,
                           keep=lambda r: r.get("type") == "message" and r.get("room") is None)

    async def _resume(self, client: ChatClient, after_id: int, seen: set[int],
                      keep: Callable[[dict[str, Any]], bool] | None = None) -> None:
        """After a reconnection, the messages missed meanwhile (when the server
        offers ``/resume``), none of ``seen`` (shown already), page after page
        while the server says there are ``more``. Live messages that came since
        the login wait in the client and are dispatched after, those replayed
        left out. ``keep``: which records to dispatch (all when None)."""
        while True:
            reply = await client.command(f"/resume {after_id}", check=False,
                                         timeout=self.timeout)
            if not reply.ok:
                if reply.final.get("code") != "unknown-command":
                    log.info("resume refused: %s", reply.final.get("message"))
                return
            await self._replay([r for r in reply.lines if keep is None or keep(r)], seen)
            last = _id_of(reply.final, "last_id", after_id)
            if reply.final.get("recovered") is False and not reply.final.get("more"):
                log.warning("resume: the gap may be incomplete: %s", reply.final.get("reasons"))
                if last is not None and last < after_id:
                    # The server never issued after_id (its database is older than
                    # what the bot saw): its ids go on from its latest, and so does
                    # the next resume.
                    self.last_id = last
            if not reply.final.get("more"):
                break
            if last is None:
                break  # a page the bot cannot follow: the rest is not asked for
            after_id = last
        self._skip_replayed(client, seen)

    async def _replay(self, records: list[dict[str, Any]], seen: set[int]) -> None:
        """Dispatch ``records`` (messages replayed), none of ``seen``, adding them to
        it; a record without an id always, one whose id is no number never (said)."""
        for record in records:
            if "id" not in record:
                await self.dispatch(record, replayed=True)
                continue
            number = _id_of(record)
            if number is not None and number not in seen:
                seen.add(number)
                await self.dispatch(record, replayed=True)

    async def _mark_start(self, client: ChatClient, welcome: Reply) -> None:
        """At the first login, where a later resume starts: the newest message of
        the bot's rooms (those it joins, and those its account is in), or what it
        saw since, so that what is said while it is away is replayed even if it had
        seen no message yet. (Nothing at all known: no resume, rather than
        ``/resume 0``, which would replay every message of the account.)"""
        rooms = self.rooms | {str(name).lower() for name in welcome.get("rooms", [])}
        for room in sorted(rooms):
            reply = await client.command(f"/history {room} 1", check=False, timeout=self.timeout)
            found = reply.get("messages") if reply.ok else None
            # An odd record (an id that is no number) is skipped, as dispatch skips one:
            # it must not end run() before the bot has even started.
            for record in found if isinstance(found, list) else ():
                number = _id_of(record)
                if number is not None:
                    self.last_id = max(self.last_id, number)
        self._started = True

    @staticmethod
    def _skip_replayed(client: ChatClient, seen: set[int]) -> None:
        """Drop from the client's waiting events the live messages the replay showed."""
        client.discard_events(lambda record: record.get("type") == "message"
                              and record.get("id") in seen)

    async def _close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    # -- dispatching ---------------------------------------------------------------------------

    async def dispatch(self, record: dict[str, Any], replayed: bool = False) -> None:
        """Hand one server record to the handlers registered for its event.

        A record the bot cannot read (a message whose id is no number, say: a
        server of another version, or a broken one) is logged and skipped: it must
        not end :meth:`run`, nor the connection, whose other events are good."""
        try:
            event = events.parse(record, replayed)
        except ODD_RECORD as exc:
            _skipped(record, exc)
            return
        if event is None:
            return
        self._note_removal(event)
        if isinstance(event, Message):
            self.last_id = max(self.last_id, event.id)
            if event.sender.casefold() == self.user.casefold():
                return  # the bot's own echo
            await self._message(event)
            return
        await self._call(self._handlers.get(type(event), []), event)

    async def _message(self, message: Message) -> None:
        await self._call(self._handlers.get(Message, []), message)
        if message.notice:
            return  # never answered automatically: two bots would answer each other
        if message.bot and not self.answer_bots:
            return  # likewise, unless the bot's author chose to talk with bots
        # A line a command handler takes is not a mention too: a direct "!ping"
        # would otherwise be answered twice.
        if await self._command(message):
            return
        if message.is_direct or message.mentions(self.user):
            await self._call(self._mention_handlers, message)

    async def _command(self, message: Message) -> bool:
        """Run the command handler the message names (``!name args``), if any."""
        if not message.text.startswith(self.prefix):
            return False
        name, _, args = message.text[len(self.prefix):].partition(" ")
        handler = self._commands.get(name.lower())
        if handler is None:
            return False
        await self._guarded(handler(message, args.strip()))
        return True

    async def _call(self, handlers: list[Handler[Any]], event: Event) -> None:
        for handler in handlers:
            await self._guarded(handler(event))

    async def _guarded(self, work: Awaitable[None]) -> None:
        """A failing handler is logged; the bot goes on with the next event. (A
        connection that really dropped ends the stream of events, and the bot
        reconnects then: a handler's own timeout or refused request must not.)"""
        try:
            await work
        except ClientError as exc:
            log.warning("a request of a handler failed: %s", exc)
        except (ConnectionError, TimeoutError) as exc:
            log.warning("a handler's request got no answer: %s", exc or type(exc).__name__)
            await self._check_alive()
        except Exception:
            log.exception("a handler failed")

    async def _check_alive(self) -> None:
        """After a request went unanswered: a connection that no longer answers a
        ping is closed, which ends its events and makes the bot reconnect (a peer
        gone without a word would otherwise leave it waiting for ever)."""
        client = self.client
        if client is None or not self.connected.is_set():
            return
        if not await self._answers(client):
            log.warning("the connection does not answer; reconnecting")
            await client.close()

    async def _answers(self, client: ChatClient) -> bool:
        """Whether the server answers a ``/ping`` within ``alive_timeout``."""
        try:
            await client.command("/ping", check=False, timeout=self.alive_timeout)
        except (ConnectionError, TimeoutError, OSError):
            return False
        return True


def unreadable(line: str) -> str | None:
    """Why the bot could not read the answer to ``line``, or None when it can.

    The bot reads JSON: ``/format text`` (or ``/set format ...``) would switch the
    connection to lines it cannot parse, its reading would stop, and every later
    request would time out. ``/upload`` is answered only after the file's data
    lines, which a request cannot send: the server would wait for them and take
    the bot's next requests for the file's data. ``/quote`` runs its words as a
    command, so it is looked through. A line that is not a command gets no
    labelled answer at all. Nor does the part after a line break: the server reads
    it as a line of its own (a command run unasked, ``/format text`` even).
    The rest is read as the server will read it, its control characters removed
    (``/form\\x00at text`` is ``/format text`` there).
    """
    if "\n" in line or "\r" in line:
        return (f"a request is one line; {line!r} holds a line break, and the server "
                "would run what follows it as a command of its own (bot.say and "
                "bot.direct make a message's text one line)")
    line = as_kept(line)
    words = line.split()
    if not line.startswith("/") or line.startswith("//"):
        return (f"a request is a command starting with /, not {line!r}: "
                "post text with bot.say or bot.direct")
    name = words[0][1:].lower() if words else ""
    while name == "quote" and len(words) > 1:
        words = words[1:]
        name = words[0].lstrip("/").lower()
    if name == "format" or (name == "set" and len(words) > 1
                            and words[1].lower() == "format"):
        return ("the bot reads JSON and keeps its connection in that format: "
                f"{line!r} would change it")
    if name == "upload":
        return ("bot.request cannot upload: the file's data lines follow /upload, and the "
                "server would read the bot's next requests as that data. Upload with the "
                "HTTP API instead (POST /api/v1/rooms/{room}/files?name=FILE with the bot's token "
                "and the file as the body; docs/WEB.md)")
    return None


def _id_of(record: Any, field: str = "id", default: int = 0) -> int | None:
    """``record``'s message id (its ``field``, ``default`` when absent), as
    events.parse reads one; None, said in the log, when the bot cannot read it."""
    try:
        return int(record.get(field, default))
    except ODD_RECORD as exc:
        _skipped(record, exc)
        return None


def _skipped(record: Any, exc: Exception) -> None:
    log.warning("skipped a record the bot cannot read (%s): %.200s", exc, record)


def _one_line(text: str) -> str:
    """A message is one protocol line: newlines become spaces."""
    return " ".join(text.splitlines()) if "\n" in text or "\r" in text else text
