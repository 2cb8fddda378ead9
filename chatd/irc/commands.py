"""The IRC command table and the one dispatcher that enforces its rules.

Each IRC command is a declarative record: its verb, how many parameters it
needs, whether registration must be complete, the scope a token login must
grant for it (chatd.domain.scopes, as the line protocol's commands declare
theirs), and how the domain's errors read for it. The dispatcher checks
those once (``461``, ``451``, ``421``, ``FAIL <verb> MISSING_SCOPE``),
applies fakelag when the connection sends faster than its command rate (IRC
has no way to say "retry later", so the connection's next lines are delayed
instead of refused), runs the handler, and turns any ``ChatError`` from the
domain into the numeric the command declares. Handlers stay thin: they call
the same domain methods as the line protocol's commands.

Replies a handler makes go through its :class:`IrcContext`; at the end they
are written at once, labelled (``labeled-response``) and batched when the
client asked for it.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from chatd.delivery.issuer import issued
from chatd.domain.limits import Kind
from chatd.domain.scopes import Scope, require_scope
from chatd.errors import ChatError, Code
from chatd.irc import numerics as n
from chatd.irc.codec import (
    IrcMessage,
    IrcParseError,
    add_tags,
    format_line,
    parse,
    plain_text,
    raw_verb,
)
from chatd.irc.numerics import IrcError
from chatd.irc.views import list_lines
from chatd.protocol.dispatch import database_busy
from chatd.protocol.session import SessionState
from storage.api import Unavailable

if TYPE_CHECKING:
    from chatd.domain.accounts import User
    from chatd.irc.guests import Guests
    from chatd.irc.people import People
    from chatd.irc.render import IrcRenderer
    from chatd.irc.session import IrcSession
    from chatd.protocol.services import Services

log = logging.getLogger(__name__)

_batch_ids = itertools.count(1)

Handler = Callable[["IrcContext"], Awaitable[None] | None]
# The scope a token login needs for a command: one, or one chosen by the
# parameters (MODE and TOPIC read when they ask, moderate when they change);
# None for registration's commands, which run before any login.
ScopeRule = Scope | Callable[[tuple[str, ...]], Scope] | None
# How a refusal for want of a scope reads (IRCv3 standard replies):
# FAIL <verb> MISSING_SCOPE <scope> :<sentence>.
MISSING_SCOPE = "MISSING_SCOPE"


class Front(Protocol):
    """What a command sees of the IRC front end (chatd.irc.front.IrcFront):
    the session's view of it, and the guests. A Protocol, so that the front
    end, which holds the dispatcher, is not imported back."""

    @property
    def renderer(self) -> IrcRenderer: ...
    @property
    def services(self) -> Services: ...
    @property
    def guests(self) -> Guests: ...
    @property
    def people(self) -> People: ...


@dataclass(frozen=True, slots=True)
class IrcCommand:
    """One IRC verb and the rules the dispatcher enforces for it."""

    name: str
    handler: Handler
    summary: str
    min_params: int = 0
    registered: bool = True  # needs a completed registration (else ERR_NOTREGISTERED)
    quiet: bool = False  # never answers with an error (NOTICE)
    errors: Mapping[Code, str] = field(default_factory=dict)
    scope: ScopeRule = Scope.READ
    # Its decision's room event (KICK, TOPIC, MODE) reaches this connection too:
    # its reply waits for it, which on a cluster comes back from the shared log.
    own_events: bool = False

    def needs(self, params: tuple[str, ...]) -> Scope | None:
        """The scope a token login needs to run this command with ``params``."""
        if self.scope is None or isinstance(self.scope, Scope):
            return self.scope
        return self.scope(params)


class IrcCommandTable:
    """IRC commands by verb."""

    def __init__(self) -> None:
        self._commands: dict[str, IrcCommand] = {}

    def add(self, command: IrcCommand) -> None:
        if command.name in self._commands:
            raise ValueError(f"IRC command {command.name} is declared twice")
        self._commands[command.name] = command

    def get(self, name: str) -> IrcCommand | None:
        return self._commands.get(name)

    def all(self) -> list[IrcCommand]:
        return sorted(self._commands.values(), key=lambda c: c.name)


IRC_COMMANDS = IrcCommandTable()


def irc_command(name: str, min_params: int = 0, registered: bool = True, quiet: bool = False,
                errors: Mapping[Code, str] | None = None, scope: ScopeRule = Scope.READ,
                own_events: bool = False, table: IrcCommandTable = IRC_COMMANDS
                ) -> Callable[[Handler], Handler]:
    """Declare an IRC command handler; its docstring's first line is its summary."""

    def register(handler: Handler) -> Handler:
        doc = inspect.getdoc(handler) or ""
        table.add(IrcCommand(name, handler, doc.split("\n")[0], min_params, registered, quiet,
                             dict(errors or {}), scope, own_events))
        return handler

    return register


class IrcContext:
    """One IRC command being handled: its message, its session and its replies."""

    __slots__ = ("batch_lines", "channel", "command", "held", "label", "lines", "listener",
                 "message", "server", "session", "target")

    def __init__(self, listener: Front, session: IrcSession, message: IrcMessage) -> None:
        self.listener = listener
        self.session = session
        self.message = message
        self.command: IrcCommand | None = None
        self.label = message.tags.get("label") or None
        self.lines: list[str] = []
        # What the command is about, for the parameters of error numerics.
        self.channel = "*"
        self.target = "*"
        self.held = False
        # How many of ``lines`` only frame a batch (its BATCH + and - lines): they
        # cost no command token (see IrcDispatcher._paced).
        self.batch_lines = 0
        # The server's name, as this command's replies give it (read at the first).
        self.server: str | None = None

    @property
    def services(self) -> Services:
        return self.listener.services

    @property
    def params(self) -> tuple[str, ...]:
        return self.message.params

    @property
    def user(self) -> User:
        """The logged-in user (guaranteed for commands that need registration)."""
        user = self.session.user
        assert user is not None, "a registered IRC session always has a user"
        return user

    @property
    def nick(self) -> str:
        return self.session.nick

    def reply(self, numeric: str, *params: str) -> None:
        """A numeric reply to this client."""
        self.lines.append(format_line(numeric, self.session.nick, *params,
                                      source=self.server_name()))

    def server_name(self) -> str:
        """The server's name as this command's replies give it: read once per
        command (a welcome is 20-odd replies)."""
        server = self.server
        if server is None:
            server = self.server = self.listener.renderer.server
        return server

    def line(self, line: str) -> None:
        self.lines.append(line)

    def reply_list(self, code: str, params: Sequence[str], items: Iterable[str],
                   separator: str = " ") -> None:
        """A numeric listing ``items``, split over as many lines as they need."""
        self.lines.extend(list_lines(self.server_name(), code, self.session.nick,
                                     params, items, separator))

    def hold(self) -> None:
        """Hold deliveries to this session until the command's replies are out."""
        self.session.hold()
        self.held = True

    @contextlib.contextmanager
    def attempt(self, channel: str = "*", target: str = "*") -> Iterator[None]:
        """Report an error about one of several targets, then go on with the next."""
        self.channel, self.target = channel, target
        try:
            yield
        except (IrcError, ChatError) as exc:
            self.fail(exc)

    def fail(self, exc: IrcError | ChatError) -> None:
        """Turn a refusal into its numeric (nothing for quiet commands)."""
        if self.command is not None and self.command.quiet:
            return
        if isinstance(exc, IrcError):
            self._refuse(exc.numeric, exc.params)
            return
        self.listener.services.stats.error(exc.code.value)
        if exc.code is Code.SCOPE:
            self.line(format_line("FAIL", self.message.command, MISSING_SCOPE,
                                  str(exc.details.get("scope", "")), exc.message,
                                  source=self.listener.renderer.server))
            return
        declared = self.command.errors if self.command is not None else {}
        numeric = declared.get(exc.code) or n.ERRORS.get(exc.code, n.ERR_UNKNOWNERROR)
        about = {"nick": self.target, "channel": self.channel, "command": self.message.command}
        subjects = [about[s] for s in n.SHAPES.get(numeric, ())]
        self._refuse(numeric, (*subjects, _after_subject(exc.message, subjects)))

    def _refuse(self, numeric: str, params: Sequence[str]) -> None:
        """An error numeric: its subjects (the command, channel or nick as the client
        sent it), then its text. A subject is refused often because of a control
        character in it (``PRIVMSG #gen^@eral``): it is echoed without them, as IRC
        text is taken, for a client would show a colour or act on a CTCP byte the
        server sent back."""
        self.reply(numeric, *(plain_text(subject) for subject in params[:-1]), *params[-1:])

    def flush(self) -> int:
        """Write the replies (labelled and batched as negotiated), then release held
        output; how many lines the reply was, less the lines that frame a batch."""
        self.session.context = None
        lines, self.lines = self.lines, []
        written = len(lines) - self.batch_lines
        if self.label is not None and "labeled-response" in self.session.caps:
            lines = self._labelled(lines)
        self.session.write_lines(lines)
        if self.held:
            self.session.release()
        return written

    def _labelled(self, lines: list[str]) -> list[str]:
        server = self.listener.renderer.server
        label = {"label": self.label or ""}
        if not lines:
            return [add_tags(f":{server} ACK", label)]
        if len(lines) == 1 or "batch" not in self.session.caps:
            # A label tags one message (labeled-response, which needs batch for a
            # reply of several): without batch, the first line carries it alone.
            return [add_tags(lines[0], label), *lines[1:]]
        ref = f"L{next(_batch_ids)}"
        outer = {"batch": ref}
        # A batch of the reply's own (CHATHISTORY's) nests in this one: its BATCH
        # lines join it, and its lines stay in it alone (a tag may not repeat).
        return [add_tags(f":{server} BATCH +{ref} labeled-response", label),
                *(line if _in_batch(line) else add_tags(line, outer) for line in lines),
                f":{server} BATCH -{ref}"]


def _in_batch(line: str) -> bool:
    """Whether ``line`` already carries a ``batch`` tag."""
    if not line.startswith("@"):
        return False
    tags = line[1:].split(" ", 1)[0]
    return any(tag.partition("=")[0] == "batch" for tag in tags.split(";"))


# The reply lines that come with a command's token, and then the lines that cost one
# token more each (see IrcDispatcher._paced): a WHOIS, a NAMES or a full CHATHISTORY
# batch (100 messages, ISUPPORT CHATHISTORY=100) stays free, a LIST of 5,000 rooms
# costs what 50 lines received do.
REPLY_LINES_PER_TOKEN = 100


class IrcDispatcher:
    """Runs IRC lines for sessions against a command table."""

    def __init__(self, listener: Front, table: IrcCommandTable) -> None:
        self._listener = listener
        self._table = table

    def handle(self, session: IrcSession, line: str) -> Awaitable[None] | None:
        """Handle one line; returns an awaitable when it must wait (fakelag, storage)."""
        if session.state is SessionState.CLOSING:
            return None
        try:
            message = parse(line)
        except IrcParseError:
            verb = raw_verb(line)
            if not verb:
                return None  # nothing to answer: not even a verb
            # A verb no IRC command can have (``GET_INFO``): still unknown, still 421.
            message = IrcMessage(verb)
        if self._listener.services.protection.charge(Kind.COMMAND, session.id):
            return self._later(session, message)
        return self._run(session, message)

    async def _later(self, session: IrcSession, message: IrcMessage) -> None:
        """Fakelag: hold this connection's lines until its command bucket has a token."""
        await self._listener.services.protection.wait_for(Kind.COMMAND, session.id)
        if session.state is SessionState.CLOSING:
            return  # the client went away while its line waited
        pending = self._run(session, message)
        if pending is not None:
            await pending

    def _run(self, session: IrcSession, message: IrcMessage) -> Awaitable[None] | None:
        ctx = IrcContext(self._listener, session, message)
        session.context = ctx
        try:
            result = self._checked(ctx).handler(ctx)
        except (IrcError, ChatError) as exc:
            ctx.fail(exc)
        except Exception:
            _crashed(ctx)
        else:
            # (Most commands return None: no ABC check for them.)
            if result is not None and isinstance(result, Coroutine):
                return self._finish(ctx, result)
        return self._paced(session, ctx.flush())

    def _paced(self, session: IrcSession, written: int) -> Awaitable[None] | None:
        """A reply of many lines (a LIST of thousands of rooms, a WHO of a big
        channel) costs a command token more for each REPLY_LINES_PER_TOKEN lines (or
        part of them) past its first REPLY_LINES_PER_TOKEN, waited for before the
        connection's next line: at one token a line received, one client could keep
        the server formatting thousands of lines for each, 20 times a second. (At
        most a burst's worth: a bucket never holds more.) The first lines are free
        so that a full CHATHISTORY batch, 100 messages, costs its line alone, as
        documented: counting its own hundredth line (and its BATCH lines, which
        ``written`` leaves out) cost a client catching up 50 channels 50 tokens."""
        extra = max(0, written - 1) // REPLY_LINES_PER_TOKEN
        if not extra:
            return None
        protection = self._listener.services.protection
        burst = self._listener.services.config.limits.command_burst
        return protection.wait_for(Kind.COMMAND, session.id, float(min(extra, max(1, burst))))

    def _checked(self, ctx: IrcContext) -> IrcCommand:
        """The command of ``ctx``'s message, once its declared rules hold."""
        message = ctx.message
        command = self._table.get(message.command)
        if command is None:
            raise IrcError(n.ERR_UNKNOWNCOMMAND, message.command, "Unknown command")
        ctx.command = command  # from here on, a quiet command answers no error
        if command.registered and not ctx.session.registered:
            raise IrcError(n.ERR_NOTREGISTERED, "You have not registered")
        if len(message.params) < command.min_params:
            raise IrcError(n.ERR_NEEDMOREPARAMS, message.command, "Not enough parameters")
        scopes = ctx.session.scopes
        needed = command.needs(message.params) if scopes is not None else None
        if needed is not None:
            require_scope(scopes, needed, message.command)
        return command

    async def _finish(self, ctx: IrcContext, pending: Coroutine[Any, Any, None]) -> None:
        try:
            if ctx.command is not None and ctx.command.own_events:
                # On one node the KICK reaches its issuer before the reply, as part of
                # the decision; a cluster's node reads it back from the log: waited for.
                async with issued(ctx.session, None):
                    await pending
            else:
                await pending
        except (IrcError, ChatError) as exc:
            ctx.fail(exc)
        except Exception:
            _crashed(ctx)
        finally:
            written = ctx.flush()
        paced = self._paced(ctx.session, written)
        if paced is not None:
            await paced


def _crashed(ctx: IrcContext) -> None:
    """Log an unexpected exception (being handled); the client gets a generic numeric.
    The database not answering (a cluster's PostgreSQL away) is refused as the line
    protocol refuses it (busy: try again in a moment)."""
    failure = sys.exc_info()[1]
    if isinstance(failure, Unavailable):
        log.warning("IRC command refused: the database does not answer (%s)", failure,
                    extra={"fields": {"session": ctx.session.id,
                                      "command": ctx.message.command}})
        ctx.fail(database_busy())
        return
    log.exception("IRC command failed", extra={"fields": {
        "session": ctx.session.id, "command": ctx.message.command}})
    ctx.fail(ChatError(Code.INTERNAL_ERROR,
                       "something went wrong on the server; it has been logged."))


def _after_subject(sentence: str, subjects: Sequence[str]) -> str:
    """The domain's sentence without the subject it starts with when the numeric
    names it already (``404 nick #kk :#kk is moderated: ...`` shows as "#kk #kk is
    moderated" in irssi): ``is moderated: ...``. The line protocol keeps its own."""
    if not subjects:
        return sentence
    first = subjects[0]
    head, rest = sentence[:len(first)], sentence[len(first):]
    if first in {"", "*"} or head.casefold() != first.casefold() or not rest.startswith(" "):
        return sentence
    return rest.lstrip() or sentence
