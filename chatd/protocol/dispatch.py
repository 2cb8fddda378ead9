"""From a received line to exactly one final reply.

The dispatcher parses the line, finds the command, enforces what the command
declared (login state, admin flag, room role, rate limits, arguments), runs
the handler and turns its result or its exception into one ``ok`` or
``error`` line. Nothing else in the daemon writes final replies.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

from chatd.delivery.issuer import REPLY_WAIT, Issuing, issued, issuing
from chatd.domain.room import Role, Room
from chatd.domain.scopes import Scope, require_scope
from chatd.errors import ChatError, Code
from chatd.protocol.codec import ParsedLine, parse_line
from chatd.protocol.context import Context
from chatd.protocol.params import parse as parse_params
from chatd.protocol.pipeline import Posts
from chatd.protocol.registry import Command, CommandTable, Need
from chatd.protocol.results import Deferred, Ok
from storage.api import Unavailable

if TYPE_CHECKING:
    from chatd.protocol.services import Services
    from chatd.protocol.session import Session

log = logging.getLogger(__name__)



class Dispatcher:
    """Runs lines for sessions against a command table."""

    def __init__(self, services: Services, table: CommandTable) -> None:
        self._services = services
        self._table = table

    def handle(self, session: Session, line: str) -> Awaitable[None] | None:
        """Handle one line; returns an awaitable when the command must wait."""
        sink = session.line_sink
        if sink is not None:
            return sink.line(line)
        parsed = _unquoted(parse_line(line))
        if parsed.command is None:
            return self._message(session, parsed.text) if parsed.text else None
        posts = session.posts
        if posts is not None and posts.waiting():
            # A command is handled after the posts read before it (pipeline).
            return self._after_posts(posts, session, parsed)
        return self._command(session, parsed)

    async def _after_posts(self, posts: Posts, session: Session, parsed: ParsedLine) -> None:
        await posts.settled()
        pending = self._command(session, parsed)
        if pending is not None:
            await pending

    def _command(self, session: Session, parsed: ParsedLine) -> Awaitable[None] | None:
        assert parsed.command is not None
        cmd = self._table.get(parsed.command)
        ctx = Context(self._services, session, parsed.command, parsed.label)
        try:
            # Every command line costs a token, unknown ones too.
            self._services.protection.charge_command(session)
            if cmd is None:
                raise unknown_command(self._table, parsed.command)
            ctx.command, ctx.usage = cmd.name, cmd.usage_for(parsed.args)
            self._check(cmd, session)
            kwargs = self._arguments(cmd, ctx, parsed.args)
        except ChatError as exc:
            if cmd is not None and cmd.data_lines and parsed.args.strip():
                # Refused before it ran (e.g. not logged in): the data lines that
                # follow must not become messages. A bare "/upload" sends none.
                session.line_sink = _DiscardData(ctx, exc)
            else:
                ctx.reply_error(exc)
            return None
        except Exception:
            self._crash(ctx)
            return None
        return self._run(cmd, ctx, kwargs)

    def _run(self, cmd: Command, ctx: Context, kwargs: dict[str, Any]) -> Awaitable[None] | None:
        with issuing(ctx.session, ctx.label) as run:
            try:
                result = cmd.handler(ctx, **kwargs)
            except ChatError as exc:
                run.end()  # what it caused before it failed is not its reply
                ctx.reply_error(exc)
                return None
            except Exception:
                run.end()
                self._crash(ctx)
                return None
        if isinstance(result, Coroutine):
            return self._finish(cmd, ctx, result)
        if run.waiting:
            return self._finish_shown(cmd, ctx, run, result)  # type: ignore[arg-type]
        ctx.told = cmd.told_by_event and run.told
        ctx.finish(result)  # type: ignore[arg-type]
        return None

    async def _finish_shown(self, cmd: Command, ctx: Context, run: Issuing,
                            result: Ok | Deferred | None) -> None:
        """A command's own events still to come (a cluster's node reads them back
        from the shared log): its final line follows them, as in one process."""
        await run.shown(REPLY_WAIT)
        ctx.told = cmd.told_by_event and run.told
        ctx.finish(result)

    def _message(self, session: Session, text: str) -> Awaitable[None] | None:
        ctx = Context(self._services, session, "message", None)
        try:
            if not session.logged_in:
                raise _login_first()
            if session.scopes is not None:  # (a password login, the most, calls nothing)
                require_scope(session.scopes, Scope.POST, "a message")
            assert self._table.on_message is not None
            pending = self._table.on_message(ctx, text)
        except ChatError as exc:
            ctx.reply_error(exc)
        except Exception:
            self._crash(ctx)
        else:
            if pending is not None:
                # Sent once the cluster charged, numbered and placed it: the next
                # plain lines go on meanwhile (chatd.protocol.pipeline).
                posts = session.posts
                if posts is None:
                    posts = session.posts = Posts()
                if isinstance(pending, asyncio.Future):  # the poster's: no task needed
                    # Settled once its refusal, if any, is written: a command after the
                    # line (or the end of input) waits for that, not for the post alone.
                    answered = pending.get_loop().create_future()
                    pending.add_done_callback(partial(self._answered, ctx, answered))
                    return posts.add(answered)
                return posts.add(asyncio.ensure_future(self._sent(ctx, pending)))
        return None

    async def _sent(self, ctx: Context, pending: Awaitable[Any]) -> None:
        try:
            await pending
        except ChatError as exc:
            ctx.reply_error(exc)
        except Exception:
            self._crash(ctx)

    def _answered(self, ctx: Context, answered: asyncio.Future[None],
                  post: asyncio.Future[Any]) -> None:
        """A post's refusal, if any, is its line's answer (as :meth:`_sent` says it);
        then ``answered`` is settled."""
        try:
            if not post.cancelled() and post.exception() is not None:
                post.result()  # raises it, so that a crash is logged with its traceback
        except ChatError as exc:
            ctx.reply_error(exc)
        except Exception:
            self._crash(ctx)
        finally:
            answered.set_result(None)

    async def _finish(self, cmd: Command, ctx: Context,
                      pending: Coroutine[Any, Any, Ok | Deferred | None]) -> None:
        try:
            # Its own events come before its final line (see _finish_shown).
            async with issued(ctx.session, ctx.label) as run:
                result = await pending
        except ChatError as exc:
            ctx.reply_error(exc)
        except Exception:
            self._crash(ctx)
        else:
            ctx.told = cmd.told_by_event and run.told
            ctx.finish(result)

    def _check(self, cmd: Command, session: Session) -> None:
        if cmd.need is Need.LOGIN and not session.logged_in:
            raise _login_first()
        if cmd.need is Need.ANONYMOUS and session.logged_in:
            raise ChatError(Code.ALREADY_LOGGED_IN,
                            "you are already logged in; /logout first to change user.")
        if cmd.server_admin and not (session.user and session.user.is_admin):
            raise ChatError(Code.NOT_PERMITTED, f"only a server admin can use /{cmd.name}.")
        require_scope(session.scopes, cmd.scope, f"/{cmd.name}")

    def _arguments(self, cmd: Command, ctx: Context, args: str) -> dict[str, Any]:
        kwargs = parse_params(cmd.params, ctx, args, cmd.usage)
        if cmd.role is not None:
            room = kwargs.get("room")
            if isinstance(room, Room):
                _require_role(ctx, room, cmd.role, cmd.name)
        return kwargs

    def _crash(self, ctx: Context) -> None:
        crashed(ctx)


class _DiscardData:
    """Reads a refused command's data lines up to ".", then sends its error."""

    def __init__(self, ctx: Context, error: ChatError) -> None:
        self._ctx = ctx
        self._error = error

    def line(self, text: str) -> None:
        if text == ".":
            self._ctx.session.line_sink = None
            self._ctx.reply_error(self._error)

    def abort(self, code: str) -> None:
        """A disconnect ends the discarding. A damaged line is one more data line to
        throw away (its own framing error tells it): ending here would hand the
        lines after it, the rest of the file, to the dispatcher as commands and
        messages."""
        if code == "disconnected":
            self._ctx.session.line_sink = None


# The command whose words are run as a command line of their own (see _unquoted).
QUOTE = "quote"


def _unquoted(parsed: ParsedLine) -> ParsedLine:
    """``/quote join general`` is ``/join general``: IRC clients send the words after
    /quote to the server as they are, so a person used to them may type it. The
    slash of the inner command is optional; the label stays with the line."""
    while parsed.command == QUOTE and parsed.args:
        rest = parsed.args
        inner = parse_line(rest if rest.startswith("/") else f"/{rest}")
        if inner.command is None:
            # "/quote //text" quotes a message, not a command: a bare /quote's
            # refusal, answered under the label (a labelled client waits for it).
            return ParsedLine(parsed.label, QUOTE, "", None)
        parsed = ParsedLine(parsed.label, inner.command, inner.args, inner.text)
    return parsed


def unknown_command(table: CommandTable, name: str) -> ChatError:
    """``unknown-command`` for ``/name``, suggesting the command it most looks like."""
    guess = table.closest(name)
    if guess is None:
        return ChatError(Code.UNKNOWN_COMMAND, f"there is no command /{name}. /help lists them.")
    return ChatError(Code.UNKNOWN_COMMAND,
                     f"there is no command /{name}; did you mean /{guess}? /help lists them.",
                     suggestion=guess)


# How long a client is asked to wait when the database does not answer.
DATABASE_RETRY_MS = 2000


def database_busy() -> ChatError:
    """The refusal of a command whose statement the database did not answer."""
    return ChatError(Code.BUSY, "the database does not answer right now: try again in a "
                     "moment.", retry_ms=DATABASE_RETRY_MS)


def crashed(ctx: Context) -> None:
    """Log an unexpected exception (being handled) and answer ``internal-error``;
    the database not answering (a cluster's PostgreSQL away) is ``busy``."""
    failure = sys.exc_info()[1]
    if isinstance(failure, Unavailable):
        log.warning("command refused: the database does not answer (%s)", failure,
                    extra={"fields": {"session": ctx.session.id, "command": ctx.command}})
        ctx.reply_error(database_busy())
        return
    log.exception("command failed", extra={"fields": {
        "session": ctx.session.id, "command": ctx.command}})
    ctx.reply_error(ChatError(Code.INTERNAL_ERROR,
                              "something went wrong on the server; it has been logged."))


def _require_role(ctx: Context, room: Room, needed: Role, command: str) -> None:
    user = ctx.user
    if user.is_admin:
        return
    role = room.role_of(user.id)
    if role is None or role.rank < needed.rank:
        who = "the owner" if needed is Role.OWNER else "an admin or the owner"
        raise ChatError(Code.NOT_PERMITTED, f"only {who} of #{room.name} can use /{command}.")


def _login_first() -> ChatError:
    return ChatError(Code.NOT_LOGGED_IN,
                     "log in first: /login <name> <password>, or /register <name> <password>.")

