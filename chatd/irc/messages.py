"""PRIVMSG, NOTICE and TAGMSG: room messages, direct messages, typing.

A message to ``#room`` is ``messaging.post`` and one to a nick is
``messaging.direct``: membership, mutes, bans, the room's own rate and the
per-user message bucket hold exactly as for line-protocol users. What
differs is how a rate limit shows: IRC cannot say "retry in N ms", so the
message waits until the bucket has a token (fakelag) and this connection's
later lines wait behind it; the client sees a delay, never an error.

``\\x01ACTION ...\\x01`` (``/me``) is an action; other CTCP requests are not
relayed. IRC formatting and other control characters are removed, as the
line protocol removes them. NOTICE is sent like PRIVMSG (chatd has one kind
of message) but never answers with an error.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatd.domain.protection import MAX_WAIT_STEP
from chatd.errors import ChatError, Code
from chatd.irc import numerics as n
from chatd.irc.commands import irc_command
from chatd.irc.guests import is_guest
from chatd.irc.lookup import away_message, existing_room, find_user, targets
from chatd.irc.numerics import IrcError
from chatd.irc.session import ECHO
from chatd.irc.welcome import MAX_TARGETS
from chatd.protocol.codec import clean_text
from chatd.protocol.session import SessionState

if TYPE_CHECKING:
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


@irc_command("PRIVMSG", errors=_SEND_ERRORS)
async def privmsg(ctx: IrcContext) -> None:
    """Send a message to channels or users (at most 4 targets)."""
    await _send(ctx)


@irc_command("NOTICE", quiet=True, errors=_SEND_ERRORS)
async def notice(ctx: IrcContext) -> None:
    """Send a message like PRIVMSG; errors are never answered (as IRC wants for NOTICE)."""
    await _send(ctx)


async def _send(ctx: IrcContext) -> None:
    if not ctx.params or not ctx.params[0]:
        raise IrcError(n.ERR_NORECIPIENT, f"No recipient given ({ctx.message.command})")
    if len(ctx.params) < 2 or not ctx.params[1]:
        raise IrcError(n.ERR_NOTEXTTOSEND, "No text to send")
    parsed = _ctcp(ctx.params[1])
    if parsed is None:
        return
    text, action = clean_text(parsed[0]), parsed[1]
    if not text.strip():
        raise IrcError(n.ERR_NOTEXTTOSEND, "No text to send")
    for target in targets(ctx.params[0])[:MAX_TARGETS]:
        with ctx.attempt(target, target):
            if target.startswith("#"):
                await _to_room(ctx, existing_room(ctx, target), text, action)
            else:
                await _to_user(ctx, target, text, action)


async def _to_room(ctx: IrcContext, room: Room, text: str, action: bool) -> None:
    session, messaging = ctx.session, ctx.services.messaging
    await fakelag(ctx, room, lambda: messaging.post(session, room, text, action, ECHO))


async def _to_user(ctx: IrcContext, nick: str, text: str, action: bool) -> None:
    session, target = ctx.session, find_user(ctx, nick)
    if target is None:
        raise IrcError(n.ERR_NOSUCHNICK, nick, "No such nick/channel")
    if action:
        # Direct messages have no actions in chatd: say it in words.
        text = f"* {ctx.nick} {text}"
    if is_guest(target):
        guests = ctx.listener.guests
        await fakelag(ctx, None, lambda: guests.direct(session, target, text, ECHO))
    else:
        messaging = ctx.services.messaging
        await fakelag(ctx, None, lambda: messaging.direct(session, target, text, ECHO))
    away = away_message(ctx, target)
    if away is not None and ctx.message.command == "PRIVMSG":
        ctx.reply(n.RPL_AWAY, target.name, away)


async def fakelag(ctx: IrcContext, room: Room | None, send: Callable[[], object]) -> None:
    """Run ``send`` once the sender's message bucket has a token.

    The user's bucket is read without taking from it, so waiting is not a
    refusal (refusals count toward flood control). A room with its own rate
    keeps that bucket to itself: there a refusal is waited out and retried.
    """
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
            if exc.code is not Code.RATE_LIMITED or "retry_ms" not in exc.details:
                raise
            await asyncio.sleep(min(exc.details["retry_ms"] / 1000, MAX_WAIT_STEP))


@irc_command("TAGMSG", min_params=1, quiet=True)
def tagmsg(ctx: IrcContext) -> None:
    """A message with tags only: ``+typing=active`` to a channel is a typing indicator."""
    if ctx.message.tags.get("+typing") != "active" or not ctx.params[0].startswith("#"):
        return
    room, session = existing_room(ctx, ctx.params[0]), ctx.session
    if not room.is_member(ctx.user.id):
        return
    if ctx.services.protection.charge_typing(session):
        return  # typing indicators are dropped first; nothing to report
    ctx.services.messaging.typing(session, room)
