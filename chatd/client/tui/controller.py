"""The full-screen client's behaviour, apart from drawing: what typing and scrolling do.

:class:`Controller` sits between a :class:`~chatd.client.tui.session.ClientSession`
(which speaks to the server and handles end-to-end encryption) and the
:class:`~chatd.client.tui.state.ChatState` the screen draws. It sends what the
person types to the conversation on screen, files what the server sends into
conversations, fetches older history when the person scrolls to the top,
sends typing notices, keeps the completion vocabulary up to date, and
reconnects (logging in again) when the connection drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from chatd.client.api import ClientError
from chatd.client.logins import RESUME_FLAG
from chatd.client.sdk.backoff import Backoff
from chatd.client.tui.catchup import Catchup
from chatd.client.tui.complete import LOCAL_COMMANDS, Vocabulary
from chatd.client.tui.lines import Line, error, notice
from chatd.client.tui.roomargs import RoomDefaults
from chatd.client.tui.session import ClientSession
from chatd.client.tui.state import SERVER, ChatState, Conversation, dm_key

log = logging.getLogger(__name__)

HISTORY_PAGE = 50  # messages fetched per scroll to the top
HISTORY_MAX = 200  # the server's cap on /history (rooms.history_max by default)
TYPING_EVERY = 3.0  # seconds between two typing notices we send for one room
# After these commands the list of rooms may have changed: ask the server again.
MEMBERSHIP = frozenset({"join", "create", "leave", "part", "accept", "transfer", "userdel"})
REMOVED = frozenset({"kick", "ban", "terminated"})  # events that end a membership
# A departure of our own reaches this connection as an event only when another
# connection of the account made it: this one's /leave is answered, not told.
LEFT_ELSEWHERE = "leave"
QUIT = frozenset({"quit", "exit"})
# Connected, not logged in (after /logout, or a login refused on reconnecting): the
# connection stays open and only a login is sent.
LOGGED_OUT = "logged out"
LOGINS = frozenset({"login", "register", "auth"})
OFFLINE = frozenset({"query", "close"})  # commands that need no server
COMING_BACK = frozenset({"disconnected", "reconnecting"})  # the pump is reconnecting
NOT_HERE = ("you are in no room here: the server conversation takes commands only. Show a room "
            "(Ctrl-N, Alt-2 ...) or a person (/query <user>) to talk, or /join <room>.")

Reconnect = Callable[[], Awaitable[list[Line]]]


class Controller:
    """One person's full-screen conversation with a server."""

    def __init__(self, session: ClientSession, state: ChatState, vocabulary: Vocabulary,
                 reconnect: Reconnect | None = None, backoff: Backoff | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.session = session
        self.state = state
        self.vocabulary = vocabulary
        self.room_defaults = RoomDefaults()  # commands whose room, left out, is the server's
        self.redraw: Callable[[], None] = lambda: None
        self._reconnect = reconnect
        self._backoff = backoff or Backoff()
        self.clock = clock
        self._sleep = sleep
        self._typing_sent: dict[str, float] = {}
        self._loading: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Lines typed while the connection was down, each with the conversation it was
        # typed in.
        self._held: list[tuple[str, str]] = []
        # One line at a time reaches the server: the last held line and the next one
        # typed must not overtake each other.
        self._sending = asyncio.Lock()
        # The newest message id seen: a reconnection resumes from it (PROTOCOL.md 7.1).
        self.catchup = Catchup()

    # -- starting -----------------------------------------------------------------------

    async def start(self, said: Iterable[Line] = ()) -> None:
        """After login: learn the commands and rooms, and open the current room."""
        self.state.me = self.session.user
        self.state.theme = str(self.session.settings.get("theme", self.state.theme))
        self.state.connection = "connected"
        for line in said:
            self.state.add(line)
        overview = await self.session.client.command("/help", check=False)
        self.vocabulary.learn_commands(overview.get("commands") or [])
        described = await self.session.client.command("/schema", check=False)
        self.room_defaults.learn(described.get("commands") or [] if described.ok else [])
        # Rooms go here only after a new login: left (or lost) while disconnected or
        # logged out, with nothing on this connection to say so.
        for room in await self.refresh_rooms():
            self.state.add(notice(f"you are no longer in #{room}: it leaves the list "
                                  "(/notifications tells of a kick or a ban)."))
        await self._learn_listed_rooms()
        if not self.catchup.marked:
            await self.catchup.mark_start(self.session.client, [
                key for key, conversation in self.state.conversations.items()
                if conversation.is_room])
        await self.show(self.session.current_room or self.state.current)

    async def refresh_rooms(self) -> list[str]:
        """Ask the server which rooms this user is in; open and close conversations;
        the rooms closed. The list is read whole, every page: a room on page 2 of
        /myrooms is no room left."""
        try:
            mine, _ = await self.session.client.my_rooms()
        except ClientError:
            return []
        names = [str(room["name"]) for room in mine]
        for name in names:
            self.state.open(name)
        gone = [k for k, c in self.state.conversations.items() if c.is_room and k not in names]
        for key in gone:
            self.state.close(key)
        self.vocabulary.learn_rooms(names)
        return gone

    async def _learn_listed_rooms(self) -> None:
        """Every room /rooms lists, as names to complete: once a connection, not after
        each /join or /leave (a server of a thousand rooms is fifty pages, fifty
        commands out of the person's budget for each)."""
        with contextlib.suppress(ClientError):
            listed = (await self.session.client.walk("/rooms", rooms="id"))["rooms"]
            self.vocabulary.learn_rooms(str(r["name"]) for r in listed)

    # -- what the person does -------------------------------------------------------------

    async def show(self, key: str) -> None:
        """Put conversation ``key`` on screen; a room becomes the server's current room."""
        await self._follow(self._switch(key))

    def jump(self, key: str) -> None:
        """Show ``key`` at once (a key pressed, a click): a line typed right after it
        belongs there, though the server is told in the background."""
        self.spawn(self._follow(self._switch(key)))

    def step(self, by: int) -> None:
        """Show the next (``by`` = 1) or previous (-1) conversation in the list, at once."""
        keys = self.state.keys()
        self.jump(keys[(keys.index(self.state.current) + by) % len(keys)])

    def _switch(self, key: str) -> Conversation:
        conversation = self.state.switch(key)
        self.redraw()
        return conversation

    async def _follow(self, conversation: Conversation) -> None:
        """A room shown: the server's current room, its members and its history."""
        if not conversation.is_room:
            return
        key = conversation.key
        self.session.current_room = key
        await self.session.client.command(f"/switch {key}", check=False)
        with contextlib.suppress(ClientError):
            members = await self.session.client.members(key)
            self.vocabulary.learn_nicks(str(m["user"]) for m in members)
        if not conversation.loaded:
            await self.load_older(conversation)

    async def submit(self, text: str, typed_in: str | None = None) -> bool:
        """Handle what was typed or pasted in conversation ``typed_in`` (None: the one
        on screen), a line at a time; False when the person asked to quit.

        A line waits for the ones typed before it (a /join waits for the room's
        history), and the person may show another conversation meanwhile: it still
        goes where it was typed.

        A paste may hold line breaks, and the server reads each as the end of a line:
        what follows one would reach it as a line of its own, a plain line for the
        server's current room (not the conversation on screen: the rest of a direct
        message posted in a room) or a command run unseen. Each line is handled as if
        typed, in order.
        """
        where = self.state.current if typed_in is None else typed_in
        for line in text.splitlines():
            if not await self._submit_line(line, where):
                return False
        return True

    async def _submit_line(self, text: str, typed_in: str) -> bool:
        text = text.strip()
        if not text:
            return True
        if _name_of(text) in QUIT:
            return False
        name = _name_of(text)
        if self.state.connection == LOGGED_OUT and name not in LOGINS | OFFLINE:
            self.state.add(error("you are logged out: /login <name> <password> first "
                                 "(/quit leaves)."))
        elif self._held or (self.state.connection not in ("connected", LOGGED_OUT)
                            and name not in OFFLINE):
            self._hold(text, typed_in)
        else:
            await self._send(text, typed_in)
        self.redraw()
        return True

    async def _send(self, text: str, typed_in: str | None = None) -> None:
        name = _name_of(text)
        rest = text[1:].partition(" ")[2].strip() if name else ""
        if name in ("login", "auth") and RESUME_FLAG not in rest.split():
            text += f" {RESUME_FLAG}"  # a resume token, so that a reconnection can use it
        try:
            async with self._sending:
                await self._run(text, name, rest, self._conversation(typed_in))
                await self._logged_in_or_out()
        except (ConnectionError, TimeoutError) as exc:
            # str(): an exception is true even when it says nothing (a time-out).
            self.state.add(error(f"no answer from the server ({str(exc) or 'timed out'}): "
                                 "the line may not have reached it."))

    async def _logged_in_or_out(self) -> None:
        """The status bar follows /logout, and a login typed while logged out brings
        the screen back: rooms, what was missed, and what arrives from then on."""
        if self.session.user is None and self.state.connection == "connected":
            self.state.connection = LOGGED_OUT
        elif self.session.user is not None and self.state.connection == LOGGED_OUT:
            await self._caught_up([])
            current = self.state.current
            await self.start([])
            await self.show(current if current in self.state.conversations else SERVER)

    def _conversation(self, key: str | None) -> Conversation:
        """The conversation ``key`` (the one on screen for None), even when it left the
        list meanwhile (a room one was removed from: the server then says so)."""
        if key is None:
            return self.state.shown
        return self.state.conversations.get(key) or Conversation(key)

    def _hold(self, text: str, typed_in: str) -> None:
        """A line typed while the connection is down: sent once it is back, in order
        (as the line mode does), or refused when it will not come back."""
        if self._reconnect is None or self.state.connection not in COMING_BACK:
            self.state.add(error(f"not sent: {self.state.connection}, and the client does not "
                                 "connect again (/quit, then start it again)."))
            return
        self._held.append((text, typed_in))
        self.state.add(notice(f"not sent yet ({self.state.connection}): the line is sent once "
                              f"the client is connected again ({len(self._held)} waiting)."))

    async def _send_held(self) -> None:
        """Lines typed while the connection was down, in the order typed; lines typed
        meanwhile join the end of the queue, so the order holds."""
        while self._held:
            await self._send(*self._held.pop(0))

    def _drop_held(self, why: str) -> None:
        if self._held:
            self.state.add(error(f"{len(self._held)} line(s) typed while disconnected were not "
                                 f"sent: {why}."))
            self._held.clear()

    async def _run(self, text: str, name: str, rest: str,
                   conversation: Conversation) -> None:
        if name == "query":
            await self._query(rest)
            return
        if name == "close":
            self._close(conversation)
            return
        if conversation.key == SERVER and not name:
            self.state.add(error(NOT_HERE), SERVER)
            return
        # What acts on "the current room" (a plain line, /secure, /topic) acts on the
        # conversation it was typed in: none when it is not a room, never the room
        # shown last.
        self.session.current_room = conversation.key if conversation.is_room else None
        aimed = self._aimed(text, name, conversation.key)
        if aimed is None:
            return
        text = aimed
        before = self.session.current_room
        if conversation.key.startswith("@") and not name:
            said = await self.session.command(f"/msg {conversation.key[1:]} "
                                              f"{text[1:] if text[:2] == '//' else text}")
        else:
            said = await self.session.input(text)
        self.state.theme = str(self.session.settings.get("theme", self.state.theme))
        if name in MEMBERSHIP:
            await self.refresh_rooms()
        entered = self.session.current_room  # /join, /create, /switch move the person there
        home = conversation.key
        if entered and entered != before and entered in self.state.conversations:
            home = entered
            await self.show(entered)
        # The reply's lines go with what was typed (in the room it entered), not to the
        # conversation shown once the room's history came: the person may have moved.
        kept = home in self.state.conversations  # not a room just left
        for line in said:
            self.state.add(line, home if kept else None)
        if name not in LOGINS:  # a login's direct messages may be newer than a gap to resume
            self.catchup.note_lines(said)

    def _aimed(self, text: str, name: str, typed_in: str) -> str | None:
        """A server command that would fall back on the server's current room, made to
        name the room on screen; None (and said why) outside a room's view."""
        if not name or name in LOCAL_COMMANDS:
            return text
        known = {*self.vocabulary.rooms, *self.state.conversations}
        aimed = self.room_defaults.aim(text, self.session.current_room, known)
        if isinstance(aimed, Line):
            self.state.add(aimed, typed_in)
            return None
        return aimed

    async def _query(self, user: str) -> None:
        if not user:
            self.state.add(error("usage: /query <user>"))
            return
        self.vocabulary.learn_nicks([user])
        await self.show(dm_key(user.lstrip("@")))

    def _close(self, conversation: Conversation) -> None:
        """/close: a direct conversation goes. A room stays, since the person is still
        in it (hidden, it would come back with its next message), and so does the
        server conversation: either says what to do instead."""
        if conversation.key.startswith("@"):
            self.state.close(conversation.key)
        elif conversation.is_room:
            self.state.add(error(f"/close closes a direct conversation; /leave "
                                 f"{conversation.key} leaves {conversation.title}."),
                           conversation.key)
        else:
            self.state.add(error("/close closes a direct conversation; the server "
                                 "conversation stays."), SERVER)

    def typed(self, text: str) -> None:
        """The input line changed: tell the room we type, at most every few seconds."""
        room = self.state.shown
        if not text or text.startswith("/") or not room.is_room:
            return
        now = self.clock()
        if now - self._typing_sent.get(room.key, -TYPING_EVERY) < TYPING_EVERY:
            return
        self._typing_sent[room.key] = now
        self.spawn(self.session.client.command(f"/typing {room.key}", check=False))

    def scroll(self, rows: int) -> None:
        """Scroll the conversation on screen up (``rows`` > 0) or down."""
        self.state.shown.scroll_by(rows)
        self.redraw()

    def reached_top(self) -> None:
        """The screen shows the oldest line held: fetch older ones (once at a time)."""
        shown = self.state.shown
        if shown.is_room and not shown.history_done and shown.key not in self._loading:
            self.spawn(self.load_older(shown))

    async def load_older(self, conversation: Conversation) -> None:
        """Fetch the page of history before the oldest message held."""
        key = conversation.key
        if key in self._loading or conversation.history_done:
            return
        self._loading.add(key)
        try:
            held = len(conversation.known_ids())
            want = min(held + HISTORY_PAGE, HISTORY_MAX)
            reply = await self.session.client.command(f"/history {key} {want}", check=False)
            records = reply.get("messages") or [] if reply.ok else []
            self.catchup.note(records)
            older: list[Line] = []
            for record in records:
                older += await self.session.show(record)
            conversation.prepend(older)
            conversation.loaded = True
            if reply.ok and len(records) < want:  # the server has nothing older
                conversation.history_done = True
                conversation.lines.appendleft(notice(f"this is the start of "
                                                     f"{conversation.title}'s history."))
            elif want >= HISTORY_MAX or not reply.ok:  # older ones exist, out of reach
                conversation.history_done = True
                conversation.lines.appendleft(notice(
                    f"older messages of {conversation.title} are beyond what the server's "
                    f"/history gives ({HISTORY_MAX} at most)." if reply.ok else
                    f"older history could not be fetched ({reply.get('message')})."))
        finally:
            self._loading.discard(key)
            self.redraw()

    # -- what the server sends ---------------------------------------------------------------

    async def receive(self, event: dict[str, Any]) -> None:
        """File one unlabelled record: a message, an event, a notice."""
        if event.get("type") == "event":
            if self._event(event):
                return
        elif event.get("type") == "message":
            if not self.catchup.live(event):  # delivered live before /resume replayed it
                return
            self.vocabulary.learn_nicks([str(event.get("from") or "")])
        for line in await self.session.show(event):
            self.state.add(line)
        if event.get("type") == "event" and self._removes_me(event):
            self._removed(str(event.get("room")), str(event.get("event")))
        self.redraw()

    def _removed(self, room: str, how: str) -> None:
        """Out of ``room``: it leaves the list. A kick or a ban comes with the server's
        notice; a departure made elsewhere has none, so the person is told here."""
        self.state.close(room)
        if self.session.current_room == room:
            self.session.current_room = None
        if how == LEFT_ELSEWHERE:
            self.state.add(notice(f"you left #{room} on another connection."))

    def _event(self, event: dict[str, Any]) -> bool:
        """Events the client keeps to itself (True: nothing to show)."""
        user, room = str(event.get("user", "")), str(event.get("room", ""))
        if event.get("event") == "typing":
            self.state.typing(room, user, self.clock())
            self.redraw()
            return True
        if event.get("event") == "join":
            self.vocabulary.learn_nicks([user])
        return False

    def _removes_me(self, event: dict[str, Any]) -> bool:
        me = (self.state.me or "").casefold()
        return (event.get("event") in {*REMOVED, LEFT_ELSEWHERE}
                and str(event.get("user", "")).casefold() == me)

    async def pump(self) -> None:
        """Receive until the connection closes; then reconnect, if we may, and go on."""
        while True:
            try:
                async for event in self.session.client.events():
                    await self.receive(event)
            except (ConnectionError, TimeoutError):
                pass  # showing an encrypted message may look up keys; the server went away
            logged_out = self.state.connection == LOGGED_OUT
            self.state.connection = "disconnected"
            self.state.add(error("the server closed the connection."))
            self.redraw()
            if self._reconnect is None or logged_out:  # no login worth trying again
                self._drop_held("the connection is closed")
                return
            with contextlib.suppress(ConnectionError, TimeoutError):
                # Logged in again, or refused and logged out: either way, the new
                # connection's events follow (lost again meanwhile: they end at once).
                await self._reconnected()

    async def _reconnected(self) -> bool:
        """Reconnect and log in again, waiting longer after each failure."""
        assert self._reconnect is not None
        while True:
            self.state.connection = "reconnecting"
            self.redraw()
            await self._sleep(self._backoff.next_delay())
            self.session.user = None  # set again by a login that succeeds
            try:
                said = await self._reconnect()
            except (OSError, TimeoutError) as exc:
                log.debug("reconnect failed: %s", exc)
                continue
            if not self._logged_in():  # refused: the password changed, an account deleted
                for line in said:
                    self.state.add(line)
                self.state.connection = LOGGED_OUT
                self.state.add(error("the server refused to log you in again: /login <name> "
                                     "<password> to go on, or /quit."))
                self._drop_held("the login was refused")
                self.redraw()
                return False
            self._backoff.reset()
            self.state.add(notice("reconnected."))
            await self._caught_up(said)
            current = self.state.current
            await self.start([])
            await self.show(current if current in self.state.conversations else SERVER)
            await self._send_held()
            return True

    async def _caught_up(self, said: list[Line]) -> None:
        """After a login on a new connection: the direct messages it brought, then what
        was said in the person's rooms and direct conversations meanwhile."""
        for line in said:
            if line.kind != "notice":  # not the welcome again (it may hold the resume token)
                self.state.add(line)
        # From the last id seen before: the login's messages may be newer than the gap.
        resumed = await self.catchup.resume(self.session.client, self._replay)
        if resumed.failed is not None:
            self.state.add(resumed.failed)
        if resumed.gap is not None:
            self._gap(resumed.gap)
        self.catchup.note_lines(said)

    async def _replay(self, records: list[dict[str, Any]]) -> None:
        """Replayed messages, each where it belongs, less those already on screen (sent
        by this client, shown live or brought by the login)."""
        held: dict[str, set[int]] = {}
        for record in records:
            for line in await self.session.show(record):
                key = self.state.key_of(line)
                if key not in held:
                    held[key] = self.state.open(key).known_ids()
                if line.message_id not in held[key]:
                    self.state.add(line)

    def _gap(self, said: Line) -> None:
        """The replay may be incomplete: every conversation the person reads is told."""
        for conversation in self.state.conversations.values():
            if conversation.key == self.state.current or conversation.lines:
                conversation.append(said)

    def _logged_in(self) -> bool:
        return self.session.user is not None

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in the background, keeping a reference until it ends."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, ConnectionError | TimeoutError):
                log.error("background work failed", exc_info=exc)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def _name_of(text: str) -> str:
    """The command a typed line is, lower case ("" for a plain line, and for //text)."""
    if not text.startswith("/") or text.startswith("//"):
        return ""
    return text[1:].partition(" ")[0].lower()
