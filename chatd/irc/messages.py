"""PRIVMSG, NOTICE and TAGMSG: room messages, direct messages, typing.

A message to ``#room`` is ``messaging.post`` and one to a nick is
``messaging.direct``: membership, mutes, bans, the room's own rate and the
per-user message bucket hold exactly as for line-protocol users. What
differs is how a rate limit shows: IRC cannot say "retry in N ms", so the
message waits until the bucket has a token (fakelag) and this connection's
later lines wait behind it; the client sees a delay, never an error.

``\\x01ACTION ...\\x01`` (``/me``) is an action; other CTCP requests are not
relayed. IRC formatting and other control characters are removed, as the
line protocol removes them. NOTICE is a message of kind ``notice`` (shown
as a notice by both listeners) and never answers with an error.

A message is one IRC line for every recipient: text that would not fit in
512 bytes once the server adds its ``:nick!user@host`` prefix is cut to
fit, never split. Client-only tags (``+name=value``) ride with the message
to the recipients that negotiated ``message-tags`` (and are stored with it);
a TAGMSG carries them alone, and ``+typing=active`` is also chatd's typing
event, which line-protocol clients see.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Final, NamedTuple

from chatd.domain.clock import iso_ts
from chatd.domain.protection import MAX_WAIT_STEP
from chatd.domain.scopes import Scope
from chatd.errors import ChatError, Code
from chatd.irc import numerics as n
from chatd.irc.codec import MAX_BODY, add_tags, fit, format_line, plain_text, tag_data
from chatd.irc.commands import irc_command
from chatd.irc.guests import is_guest
from chatd.irc.lookup import away_message, existing_room, existing_user, find_user, targets
from chatd.irc.numerics import IrcError
from chatd.irc.render import CLIENT_TAGS, CLIENT_TAGS_MAX, channel
from chatd.irc.session import ECHO, IrcSession
from chatd.irc.welcome import MAX_TARGETS
from chatd.protocol.session import SessionState

if TYPE_CHECKING:
    from chatd.domain.accounts import User
    from chatd.domain.ports import Endpoint
    from chatd.domain.room import Room
    from chatd.irc.commands import IrcContext

_SEND_ERRORS = {Code.NOT_IN_ROOM: n.ERR_CANNOTSENDTOCHAN,
                Code.NOT_PERMITTED: n.ERR_CANNOTSENDTOCHAN,
                Code.BANNED: n.ERR_CANNOTSENDTOCHAN}


def _ctcp(text: str) -> tuple[str, bool] | None:
    """The text and whether it is an action; None for a CTCP request that is not."""
    if not text.startswith("\x01"):
        return text, False
    body = text[1:].removesuffix("\x01")
    verb, _, rest = body.partition(" ")
    if verb.upper() == "ACTION":
        return rest, True
    return None


@irc_command("PRIVMSG", errors=_SEND_ERRORS, scope=Scope.POST)
def privmsg(ctx: IrcContext) -> Awaitable[None] | None:
    """Send a message to channels or users (at most 4 targets)."""
    return _send(ctx)


@irc_command("NOTICE", quiet=True, errors=_SEND_ERRORS, scope=Scope.POST)
def notice(ctx: IrcContext) -> Awaitable[None] | None:
    """Send a notice: a message never answered automatically (nor with errors)."""
    return _send(ctx)


# PRIVMSG and NOTICE are plain functions that return an awaitable only when a
# send must wait (fakelag, a direct message's storage, a sequencer's id): a room
# message that goes out at once costs no coroutine and no task, which was most
# of its cost at full load. The dispatcher awaits what they return.


# A client-only tag's key (IRCv3 message-tags): "+", an optional vendor (a host
# name) and "/", then letters, digits and hyphens.
_CLIENT_TAG_KEY: Final = re.compile(r"\+(?:[A-Za-z0-9.-]+/)?[A-Za-z0-9-]+")


def client_tags(ctx: IrcContext) -> dict[str, str]:
    """The client-only tags of the line (``+name``); ``417`` when they are too big.

    A tag whose key breaks the grammar, or whose value holds a NUL (which no
    escape can carry), is dropped: relayed, a CR in a key ended the line early in
    many clients (what followed read as a line of the sender's making) and a NUL
    cut it short in those written in C."""
    tags = {k: v for k, v in ctx.message.tags.items()
            if k.startswith("+") and _CLIENT_TAG_KEY.fullmatch(k) and "\0" not in v}
    if len(tag_data(tags).encode()) > CLIENT_TAGS_MAX:
        raise IrcError(n.ERR_INPUTTOOLONG, "Input line was too long (client tags)")
    return tags


# The most of a refused target shown in 407 (it may be any text a client sent).
TARGET_SHOWN = 64


def _send(ctx: IrcContext) -> Awaitable[None] | None:
    params = ctx.message.params  # (read once: a property call each time, per message)
    # "PRIVMSG , :hi" names no recipient either: 411, not a message sent to no one.
    names = targets(params[0]) if params else []
    if not names:
        raise IrcError(n.ERR_NORECIPIENT, f"No recipient given ({ctx.message.command})")
    if len(params) < 2 or not params[1]:
        raise IrcError(n.ERR_NOTEXTTOSEND, "No text to send")
    parsed = _ctcp(params[1])
    if parsed is None:
        return None
    text, action = plain_text(parsed[0]), parsed[1]
    if not text.strip():
        raise IrcError(n.ERR_NOTEXTTOSEND, "No text to send")
    kind = "notice" if ctx.message.command == "NOTICE" else "action" if action else "text"
    # (Most lines carry no tags: no dict comprehension for them.)
    tags = client_tags(ctx) if ctx.message.tags else {}
    sent = Outgoing(text, kind, {CLIENT_TAGS: tags} if tags else {})
    if len(names) > MAX_TARGETS:
        # Said once, not skipped in silence (ISUPPORT says TARGMAX, but a client
        # that ignores it must learn that some got nothing), and not once per
        # target: a line of hundreds would be answered with hundreds.
        first = names[MAX_TARGETS][:TARGET_SHOWN]
        ctx.fail(IrcError(n.ERR_TOOMANYTARGETS, first,
                          f"Too many targets: at most {MAX_TARGETS}; this one and the "
                          "ones after it were not sent"))
    chosen = names[:MAX_TARGETS]
    return _send_each(ctx, _distinct(chosen) if len(chosen) > 1 else chosen, sent)


def _distinct(names: list[str]) -> list[str]:
    """Each target once, in the order given (names compare in lower case, as rooms
    and nicks are looked up): ``PRIVMSG #a,#A :hi`` is one message to #a, as on
    other servers, not the same text sent and stored twice."""
    seen: set[str] = set()
    distinct = []
    for name in names:
        key = name.lower()
        if key not in seen:
            seen.add(key)
            distinct.append(name)
    return distinct


def _send_each(ctx: IrcContext, names: list[str], sent: Outgoing) -> Awaitable[None] | None:
    """Send to each target in turn; from the first that must wait on, in a coroutine."""
    for index, target in enumerate(names):
        # ctx.attempt(target, target), written out: the generator-based context
        # manager cost more than the rest of a one-target PRIVMSG's dispatch.
        ctx.channel = ctx.target = target
        try:
            pending = _send_to(ctx, target, sent)
        except (IrcError, ChatError) as exc:
            ctx.fail(exc)
            continue
        if pending is not None:
            return _send_rest(ctx, pending, target, names[index + 1:], sent)
    return None


async def _send_rest(ctx: IrcContext, pending: Awaitable[None], waiting_for: str,
                     rest: list[str], sent: Outgoing) -> None:
    with ctx.attempt(waiting_for, waiting_for):
        await pending
    for target in rest:
        with ctx.attempt(target, target):
            waiting = _send_to(ctx, target, sent)
            if waiting is not None:
                await waiting


def _send_to(ctx: IrcContext, target: str, sent: Outgoing) -> Awaitable[None] | None:
    text = _fitted(ctx, target, sent.text, sent.kind)
    fitted = sent if text is sent.text else Outgoing(text, sent.kind, sent.extra)
    if target.startswith("#"):
        return _to_room(ctx, existing_room(ctx, target), fitted)
    return _to_user(ctx, target, fitted)


class Outgoing(NamedTuple):
    """What one PRIVMSG or NOTICE sends, whatever its target."""

    text: str
    kind: str
    extra: dict[str, object]


def _fitted(ctx: IrcContext, target: str, text: str, kind: str) -> str:
    """``text`` cut so that the line relayed to ``target`` fits in an IRC line."""
    return fitted_text(text, ctx.listener.renderer.mask(ctx.nick), target, kind)


def fitted_text(text: str, mask: str, target: str, kind: str) -> str:
    """``text`` cut so that ``mask``'s line to ``target`` fits in an IRC line, as the
    renderer counts it (chatd.irc.render.IrcRenderer.message), which then has no
    reason to split it."""
    # A character is at most 4 bytes (a target's lower case too): text this short
    # fits whatever it holds. The rest is ":", two spaces, a verb of 7, " :", the
    # line end and an action's 9.
    if 4 * (len(text) + len(mask) + len(target)) + 23 <= MAX_BODY:
        return text
    verb = "NOTICE" if kind == "notice" else "PRIVMSG"
    room = target.lower() if target.startswith("#") else target
    overhead = len(f":{mask} {verb} {room} :".encode()) + 2 + (9 if kind == "action" else 0)
    return fit(text, MAX_BODY - overhead)


def _to_room(ctx: IrcContext, room: Room, sent: Outgoing) -> Awaitable[None] | None:
    session, messaging = ctx.session, ctx.services.messaging
    if not room.modes.no_external:
        # (Asked only there: a +n room, most rooms, takes nothing from outside.)
        _refuse_banned_guest(ctx, room)
    return fakelag(ctx, room, lambda: messaging.post_kind(session, room, sent.text, sent.kind,
                                                          dict(sent.extra), ECHO))


def _refuse_banned_guest(ctx: IrcContext, room: Room) -> None:
    """A guest's message from outside a ``-n`` room that bans it is refused, as an
    account's is: messaging knows only the bans kept with accounts, while a guest's
    (by nick and address) live with the IRC listener."""
    user = ctx.session.user
    if not is_guest(user):
        return
    assert user is not None
    if not room.is_member(user.id) and ctx.listener.guests.banned(room, ctx.session):
        raise ChatError(Code.BANNED, f"you are banned from #{room.name}.")


def _to_user(ctx: IrcContext, nick: str, sent: Outgoing) -> Awaitable[None] | None:
    session, target = ctx.session, find_user(ctx, nick)
    if target is None:
        raise IrcError(n.ERR_NOSUCHNICK, nick, "No such nick/channel")
    text, kind = sent.text, sent.kind
    if kind == "action":
        # Direct messages have no actions in chatd: say it in words.
        text, kind = f"* {ctx.nick} {text}", "text"
    if is_guest(target):
        guests = ctx.listener.guests
        pending = fakelag(ctx, None, lambda: guests.direct(session, target, text, ECHO, kind,
                                                           sent.extra))
    else:
        messaging = ctx.services.messaging
        pending = fakelag(ctx, None, lambda: messaging.send_direct(session, target, text, ECHO,
                                                                   kind, dict(sent.extra)))
    if pending is None:
        _tell_away(ctx, target)
        return None
    return _then_tell_away(ctx, pending, target)


async def _then_tell_away(ctx: IrcContext, pending: Awaitable[None], target: User) -> None:
    await pending
    _tell_away(ctx, target)


def _tell_away(ctx: IrcContext, target: User) -> None:
    away = away_message(ctx, target)
    if away is not None and ctx.message.command == "PRIVMSG":
        ctx.reply(n.RPL_AWAY, target.name, away)


def fakelag(ctx: IrcContext, room: Room | None,
            send: Callable[[], object]) -> Awaitable[None] | None:
    """Run ``send`` once the sender's message bucket has a token.

    The user's bucket is read without taking from it, so waiting is not a
    refusal (refusals count toward flood control). A room with its own rate
    keeps that bucket to itself: there a refusal is waited out and retried.
    Returns None when ``send`` ran at once and finished (the usual case: no
    coroutine), else an awaitable of the rest.
    """
    session = ctx.session
    if session.state is SessionState.CLOSING:
        return None
    user = session.user
    if user is not None and ctx.services.protection.message_wait(user, room):
        return _fakelag(ctx, room, send)
    try:
        result = send()
    except ChatError as exc:
        return _fakelag(ctx, room, send, delay=_retry_delay(exc))
    # A message id (an int) or nothing is done; checked first because
    # inspect.isawaitable of an int walks the Awaitable ABC's checks.
    if result is None or isinstance(result, int) or not inspect.isawaitable(result):
        return None
    return _fakelag(ctx, room, send, started=result)


async def _fakelag(ctx: IrcContext, room: Room | None, send: Callable[[], object],
                   started: Awaitable[object] | None = None, delay: float = 0.0) -> None:
    """:func:`fakelag` from where it had to wait: finishing a send it ``started``,
    or after ``delay`` seconds."""
    if started is not None:
        try:
            await started
            return
        except ChatError as exc:
            delay = _retry_delay(exc)
    if delay:
        await asyncio.sleep(delay)
    session, protection = ctx.session, ctx.services.protection
    while session.state is not SessionState.CLOSING:
        user = session.user
        wait = protection.message_wait(user, room) if user is not None else 0.0
        if wait:
            await asyncio.sleep(min(wait, MAX_WAIT_STEP))
            continue
        try:
            result = send()
            if inspect.isawaitable(result):
                await result
            return
        except ChatError as exc:
            await asyncio.sleep(_retry_delay(exc))


def _retry_delay(exc: ChatError) -> float:
    """How long to wait before trying a send refused by ``exc`` again (a room's own
    rate); any other refusal is raised again."""
    if exc.code is not Code.RATE_LIMITED or "retry_ms" not in exc.details:
        raise exc
    return float(min(exc.details["retry_ms"] / 1000, MAX_WAIT_STEP))


@irc_command("TAGMSG", min_params=1, quiet=True, scope=Scope.POST)
def tagmsg(ctx: IrcContext) -> Awaitable[None] | None:
    """A message of client-only tags: relayed to a channel's or a user's IRC clients that
    take message tags; ``+typing=active`` to a channel is also chatd's typing event."""
    tags, target = client_tags(ctx), ctx.params[0]
    if not tags:
        return None
    if target.startswith("#"):
        return _tags_to_room(ctx, existing_room(ctx, target), tags)
    user = existing_user(ctx, target)
    if ctx.user.id in user.blocked:
        # A block holds back a direct message of tags (a reaction, typing) as it
        # holds back the text: dropped, unanswered, as every TAGMSG refusal is.
        return None
    sent = dict(tags)  # what the sender is echoed (echo-message): all of it
    return _paid(ctx, None, tags, lambda: _relay_tags(
        ctx, ctx.services.presence.connections(user), user.name, tags, sent))


def _tags_to_room(ctx: IrcContext, room: Room, tags: dict[str, str]) -> Awaitable[None] | None:
    if not room.is_member(ctx.user.id):
        raise IrcError(n.ERR_CANNOTSENDTOCHAN, channel(room.name), "Cannot send to channel")
    # Client tags (a reaction, typing) show the room something: held back from
    # whoever may not send it a message (TAGMSG is quiet: dropped, unanswered).
    ctx.services.messaging.refuse_silenced(room, ctx.user)
    if room.settings.get("e2e"):
        tags = _e2e_tags(ctx, room, tags)
        if not tags:
            return None
    sent = dict(tags)
    if tags.get("+typing") == "active":
        # The typing event reaches IRC clients as this TAGMSG already.
        del tags["+typing"]
        if not ctx.services.protection.charge_typing(ctx.session):
            ctx.services.messaging.typing(ctx.session, room)
    return _paid(ctx, room, tags, lambda: _relay_tags(
        ctx, ctx.services.bus.in_room(room), channel(room.name), tags, sent))


def _paid(ctx: IrcContext, room: Room | None, tags: dict[str, str],
          relay: Callable[[], None]) -> Awaitable[None] | None:
    """Run ``relay`` once ``tags`` are paid for. A typing state alone (paused, done,
    or active to a nick) takes a typing token, and is dropped without one, as a
    typing indicator is; any other tag (a reaction, up to 4 KiB of anything) is
    shown as a message is, so it waits on the message bucket as a PRIVMSG waits:
    else one client could fill a channel's screens at the command rate."""
    if set(tags) <= {"+typing"}:
        if tags and ctx.services.protection.charge_typing(ctx.session):
            return None
        relay()
        return None
    return fakelag(ctx, room, lambda: _charged(ctx, room, relay))


def when_paid(ctx: IrcContext, action: Callable[[], None]) -> Awaitable[None] | None:
    """Run ``action`` (a change shown in every channel the user shares: a guest's
    NICK, a SETNAME) once the user's message bucket has a token, taking it: it
    shows those channels as much as a message does, so it waits as one does."""
    return fakelag(ctx, None, lambda: _charged(ctx, None, action))


def _charged(ctx: IrcContext, room: Room | None,
             relay: Callable[[], None]) -> Awaitable[None] | None:
    """Take the message token, then relay (once a cluster's store has answered)."""
    charged = ctx.services.protection.charge_message(ctx.session, room)
    if charged is None:
        relay()
        return None
    return _relay_when_charged(charged, relay)


async def _relay_when_charged(charged: Awaitable[None], relay: Callable[[], None]) -> None:
    await charged
    relay()


# The client-only tags an end-to-end room relays, with the values they may have: a
# typing notice says no more than the typing event the line protocol sends there
# (its value is one of the three words of the spec, not free text). Any other tag
# (a reaction, a reply's reference, a draft's text) may be content, which the
# server must only ever carry there as ciphertext.
E2E_TAGS: Final = {"+typing": frozenset({"active", "paused", "done"})}
# The standard reply's code for tags refused by an end-to-end room.
E2E_REQUIRED: Final = "E2E_REQUIRED"


def _e2e_tags(ctx: IrcContext, room: Room, tags: dict[str, str]) -> dict[str, str]:
    """The tags of a TAGMSG to end-to-end ``room`` that may go there; the sender is
    told, though TAGMSG is otherwise quiet, when any are held back: a client that
    believes its reaction was seen would be misled, and one a line is no flood."""
    kept = {k: v for k, v in tags.items() if v in E2E_TAGS.get(k, ())}
    dropped = sorted(k for k in tags if k not in kept)
    if dropped:
        sentence = (f"#{room.name} is end-to-end encrypted: client-only tags other than "
                    "+typing (active, paused or done) are not relayed there "
                    f"({', '.join(dropped)[:TARGET_SHOWN]}).")
        if "message-tags" in ctx.session.caps:
            ctx.line(format_line("FAIL", "TAGMSG", E2E_REQUIRED, channel(room.name), sentence,
                                 source=ctx.listener.renderer.server))
        else:
            ctx.reply(n.ERR_CANNOTSENDTOCHAN, channel(room.name), sentence)
    return kept


def _relay_tags(ctx: IrcContext, receivers: Iterable[Endpoint], target: str,
                tags: dict[str, str], sent: dict[str, str]) -> None:
    """``tags`` to the other receivers that take message tags; ``sent`` (all of them)
    back to the sender with echo-message, labelled as a PRIVMSG's echo is."""
    line = format_line("TAGMSG", target, source=ctx.listener.renderer.mask(ctx.nick),
                       trailing=False)
    stamp = iso_ts(ctx.services.clock.time())
    if tags:
        for receiver in receivers:
            if receiver is not ctx.session and isinstance(receiver, IrcSession) \
                    and "message-tags" in receiver.caps:
                receiver.queue_lines([_tagged(receiver, line, tags, stamp)])
    caps = ctx.session.caps
    if "echo-message" in caps and "message-tags" in caps:
        echo = _tagged(ctx.session, line, sent, stamp)
        if ctx.label is not None and "labeled-response" in caps:
            ctx.line(echo)  # the labelled command's response
        else:
            ctx.session.queue_lines([echo])


def _tagged(receiver: IrcSession, line: str, tags: dict[str, str], stamp: str) -> str:
    timed = {"time": stamp} if "server-time" in receiver.caps else {}
    return add_tags(line, {**timed, **tags})
