"""CHATHISTORY (IRCv3 ``draft/chathistory``): a channel's or a conversation's stored
messages, in a batch.

``CHATHISTORY LATEST|BEFORE|AFTER|AROUND <target> <ref> <limit>``,
``CHATHISTORY BETWEEN <target> <ref> <ref> <limit>`` and
``CHATHISTORY TARGETS <timestamp> <timestamp> <limit>``, where a reference is
``msgid=<id>`` (chatd's message id, the ``msgid`` tag), ``timestamp=<ISO 8601>``
or, for LATEST, ``*``. The target is a channel or a nick. The messages come
oldest first in a ``BATCH +ref chathistory <target>``, each with the tags the
client negotiated, as live messages carry them (``time`` with ``server-time``,
``msgid`` and the rest with ``message-tags``; the batch, and the ``batch``
tag, only with ``batch``): a channel's from chatd's history (the
same rows as ``/history``), a nick's from the direct messages the two
exchanged, either way. The limit is at most :data:`HISTORY_MAX` (ISUPPORT
``CHATHISTORY=``).

Who may read: the channel's members (server admins any room), as
``/history``; a conversation, the two in it. History is read backwards from
the newest message, a page at a time, and no further than :data:`SCAN_MAX`
messages back: AFTER, AROUND and BETWEEN a reference older than that find
the messages after that point only. Guests' direct messages are not stored
(a guest's conversation is an empty batch), and only messages are replayed
(no joins or parts: ``draft/event-playback`` is not offered).
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from chatd.domain.clock import iso_ts, shown_millis
from chatd.domain.names import is_number
from chatd.irc.codec import add_tags, format_line
from chatd.irc.commands import irc_command
from chatd.irc.guests import is_guest
from chatd.irc.lookup import find_user, rooms_of
from chatd.irc.render import channel

if TYPE_CHECKING:
    from chatd.domain.accounts import User
    from chatd.domain.events import Message
    from chatd.irc.commands import IrcContext

# The most messages one CHATHISTORY gives (ISUPPORT CHATHISTORY=).
HISTORY_MAX: Final = 100
# How far back a search for a reference goes, and the page it reads at a time.
SCAN_MAX: Final = 2000
_PAGE: Final = 200
_batch_ids = itertools.count(1)

# Where a target's messages come from: the newest ``limit`` (below a message id),
# oldest first. A channel's history, or a conversation of direct messages.
Source = Callable[[int, "int | None"], Awaitable[list["Message"]]]


class HistoryError(Exception):
    """A CHATHISTORY that cannot be answered: its FAIL code and sentence."""

    def __init__(self, code: str, *context: str) -> None:
        super().__init__(code, *context)
        self.code = code
        self.context = context


@dataclass(frozen=True, slots=True)
class Ref:
    """A point in a channel's history: a message id (an int, kept exact: a float
    has 53 bits, and an id rounded up past the largest reads beyond storage's
    64-bit range), or a time in whole milliseconds.

    Times compare in the milliseconds the ``time`` tag shows (:func:`iso_ts`
    truncates): a client that asks for what came after a message's time tag must
    not get that message again, though its stored time has more digits."""

    by_id: bool
    value: int

    def key(self, message: Message) -> int:
        return (message.id or 0) if self.by_id else shown_millis(message.ts)


def parse_ref(text: str) -> Ref:
    """``msgid=<id>`` (an id by chatd's one number rule, :func:`is_number`) or
    ``timestamp=<ISO 8601>``; anything else is INVALID_PARAMS."""
    kind, _, value = text.partition("=")
    if kind == "msgid" and is_number(value):
        return Ref(True, int(value))
    if kind == "timestamp":
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            return Ref(False, round(moment * 1000))
        except ValueError:
            pass
    raise HistoryError("INVALID_PARAMS", f"bad message reference {text}")


def parse_limit(text: str) -> int:
    if not is_number(text) or int(text) < 1:
        raise HistoryError("INVALID_PARAMS", f"bad limit {text}")
    return min(int(text), HISTORY_MAX)


# (One parameter at least: a missing reference or limit is FAIL ... NEED_MORE_PARAMS,
# as the specification asks, not 461.)
@irc_command("CHATHISTORY", min_params=1)
async def chathistory(ctx: IrcContext) -> None:
    """A channel's or a conversation's history: LATEST, BEFORE, AFTER, AROUND, BETWEEN;
    or TARGETS."""
    sub = ctx.params[0].upper()
    try:
        if sub == "TARGETS":
            await _targets(ctx)
            return
        if sub not in _SUBCOMMANDS:
            raise HistoryError("INVALID_PARAMS", f"unknown subcommand {ctx.params[0]}")
        _check_params(ctx, sub)
        target, source = _source(ctx, ctx.params[1])
        messages = [] if source is None else await _SUBCOMMANDS[sub](ctx, source)
        _batch(ctx, target, messages)
    except HistoryError as exc:
        ctx.line(format_line("FAIL", "CHATHISTORY", exc.code, *ctx.params[:2],
                             *exc.context, source=ctx.listener.renderer.server))


def _check_params(ctx: IrcContext, sub: str) -> None:
    """Refuse missing parameters, then malformed references and limits, whatever the
    target (BETWEEN's limit missing is not a malformed second reference)."""
    references = (2, 3) if sub == "BETWEEN" else (2,)
    _param(ctx, references[-1] + 1)
    for index in references:
        if not (sub == "LATEST" and _param(ctx, index) == "*"):
            parse_ref(_param(ctx, index))
    parse_limit(_param(ctx, references[-1] + 1))


def _source(ctx: IrcContext, target: str) -> tuple[str, Source | None]:
    """The target as the batch names it, and where its messages come from (None:
    nowhere, a guest's conversation, which is not stored)."""
    messaging, user = ctx.services.messaging, ctx.user
    if target.startswith("#"):
        room = ctx.services.rooms.find(target)
        if room is None or not (room.is_member(user.id) or user.is_admin):
            raise HistoryError("INVALID_TARGET", f"you cannot read the history of {target}")
        return channel(room.name), lambda limit, before: messaging.history(
            room, limit, before)
    other = find_user(ctx, target)
    if other is None:
        raise HistoryError("INVALID_TARGET", f"there is no user {target}")
    if is_guest(user) or is_guest(other):
        return other.name, None
    return other.name, lambda limit, before: messaging.conversation(
        user, other, limit, before)


def _param(ctx: IrcContext, index: int) -> str:
    if len(ctx.params) <= index:
        raise HistoryError("NEED_MORE_PARAMS", "missing parameters")
    return ctx.params[index]


async def _pages(source: Source, enough: Callable[[list[Message]], bool]) -> list[Message]:
    """Messages from the newest back (oldest first), page by page, until ``enough``
    says so of the oldest page read, or SCAN_MAX messages."""
    found: list[Message] = []
    before: int | None = None
    while len(found) < SCAN_MAX:
        page = await source(_PAGE, before)
        found[:0] = page
        if len(page) < _PAGE or enough(page):
            break
        before = page[0].id
    return found


async def _until(source: Source, ref: Ref) -> list[Message]:
    """The newest messages back to (and including) the one at or below ``ref``."""
    return await _pages(source, lambda page: ref.key(page[0]) <= ref.value)


async def _latest(ctx: IrcContext, source: Source) -> list[Message]:
    reference, limit = _param(ctx, 2), parse_limit(_param(ctx, 3))
    newest = await source(limit, None)
    if reference == "*":
        return newest
    ref = parse_ref(reference)
    return [m for m in newest if ref.key(m) > ref.value]


async def _before(ctx: IrcContext, source: Source) -> list[Message]:
    ref, limit = parse_ref(_param(ctx, 2)), parse_limit(_param(ctx, 3))
    if ref.by_id:
        return await source(limit, int(ref.value))
    return [m for m in await _until(source, ref) if ref.key(m) < ref.value][-limit:]


async def _after(ctx: IrcContext, source: Source) -> list[Message]:
    ref, limit = parse_ref(_param(ctx, 2)), parse_limit(_param(ctx, 3))
    return [m for m in await _until(source, ref) if ref.key(m) > ref.value][:limit]


async def _around(ctx: IrcContext, source: Source) -> list[Message]:
    ref, limit = parse_ref(_param(ctx, 2)), parse_limit(_param(ctx, 3))
    found = await _until(source, ref)
    before = [m for m in found if ref.key(m) < ref.value][-(limit // 2):] if limit > 1 else []
    after = [m for m in found if ref.key(m) >= ref.value][:limit - len(before)]
    return before + after


async def _between(ctx: IrcContext, source: Source) -> list[Message]:
    first, second = parse_ref(_param(ctx, 2)), parse_ref(_param(ctx, 3))
    limit = parse_limit(_param(ctx, 4))
    forwards = first.value <= second.value
    low, high = (first, second) if forwards else (second, first)
    inside = [m for m in await _until(source, low)
              if low.key(m) > low.value and high.key(m) < high.value]
    # From the first reference on: the oldest when it is the earlier one, else the newest.
    return inside[:limit] if forwards else inside[-limit:]


_SUBCOMMANDS: Final = {"LATEST": _latest, "BEFORE": _before, "AFTER": _after,
                       "AROUND": _around, "BETWEEN": _between}


def _batch(ctx: IrcContext, target: str, messages: list[Message]) -> None:
    renderer, key = ctx.listener.renderer, ctx.session.key
    # Rendered as live messages are for this client (its tag mode: the tags it
    # negotiated), so a replayed message reads as it did when it arrived.
    _reply(ctx, ("chathistory", target),
           [line for message in messages for line in renderer.message(message, key)])


def _reply(ctx: IrcContext, batch: tuple[str, ...], lines: list[str]) -> None:
    """``lines`` in a batch of type and parameters ``batch`` for a client that
    negotiated ``batch``; as they are for any other, which would not know what a
    BATCH line or a ``batch`` tag is."""
    if "batch" not in ctx.session.caps:
        ctx.lines.extend(lines)
        return
    server = ctx.listener.renderer.server
    ref = f"H{next(_batch_ids)}"
    ctx.line(format_line("BATCH", f"+{ref}", *batch, source=server, trailing=False))
    ctx.lines.extend(add_tags(line, {"batch": ref}) for line in lines)
    ctx.line(f":{server} BATCH -{ref}")
    ctx.batch_lines += 2  # the BATCH lines cost no token: see IrcDispatcher._paced


async def _targets(ctx: IrcContext) -> None:
    """The channels and nicks with messages between two times, each with its latest
    message's time, the least recent first."""
    first, second = parse_ref(_param(ctx, 1)), parse_ref(_param(ctx, 2))
    limit = parse_limit(_param(ctx, 3))
    if first.by_id or second.by_id:
        raise HistoryError("INVALID_PARAMS", "TARGETS takes timestamps")
    low, high = sorted((first.value, second.value))
    latest = [(ts, name) for ts, name in await _latest_of_each(ctx, ctx.user)
              if low <= shown_millis(ts) <= high]
    server = ctx.listener.renderer.server
    _reply(ctx, ("draft/chathistory-targets",),
           [format_line("CHATHISTORY", "TARGETS", name, f"timestamp={iso_ts(ts)}",
                        source=server, trailing=False) for ts, name in sorted(latest)[:limit]])


async def _latest_of_each(ctx: IrcContext, user: User) -> list[tuple[float, str]]:
    """The time of the newest message of each of ``user``'s rooms and conversations."""
    messaging, accounts = ctx.services.messaging, ctx.services.accounts
    latest: list[tuple[float, str]] = []
    for room in rooms_of(ctx, user):
        newest = await messaging.history(room, 1)
        if newest:
            latest.append((newest[-1].ts, channel(room.name)))
    if is_guest(user):
        return latest
    for partner_id, ts in await messaging.partners(user):
        partner = accounts.get(partner_id)
        if partner is not None:
            latest.append((ts, partner.name))
    return latest
