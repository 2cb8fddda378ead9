"""Messages: plain lines, say, me, msg, history."""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any

from chatd.domain.accounts import User
from chatd.domain.names import capped_number, is_number
from chatd.domain.ports import settled
from chatd.domain.room import Room
from chatd.domain.scopes import Scope
from chatd.errors import ChatError, Code
from chatd.protocol.context import Context, table_time
from chatd.protocol.paging import PAGE, page_of
from chatd.protocol.params import Context as ParamContext
from chatd.protocol.params import Decline, Int, Recipient, RoomRef, Text, no_room
from chatd.protocol.records import record_of
from chatd.protocol.registry import (
    NEEDS_MEMBER,
    NEEDS_READER,
    NEEDS_SENDER,
    command,
    message_handler,
)
from chatd.protocol.render import render
from chatd.protocol.results import Ok, ok

GROUP = "messages"
# /resume's reason when the cap (rooms.resume_max) cut the replay short.
RESUME_CAPPED = "more follow: /resume from last_id"


@message_handler
def plain_line(ctx: Context, text: str) -> Awaitable[int] | None:
    """A line that is not a command goes to the current room."""
    room = ctx.session.current_room
    if room is None:
        raise no_room(ctx)
    sent = ctx.services.messaging.post(ctx.session, room, text)
    # Awaited by the dispatcher when the id comes later (a cluster's counter).
    return None if isinstance(sent, int) else sent


@command("say", RoomRef("room"), Text("text"), group=GROUP,
         scope=Scope.POST, errors=(Code.NOT_IN_ROOM, Code.MUTED, Code.MODERATED, Code.BANNED,
                                   Code.E2E_REQUIRED),
         needs=NEEDS_SENDER)
async def say(ctx: Context, room: Room, text: str) -> Ok:
    """Send a message to one of your rooms (not necessarily the current one)."""
    message_id = await settled(ctx.services.messaging.post(ctx.session, room, text,
                                                           label=ctx.label))
    return ok(id=message_id, room=room.name)


@command("me", Text("action"), group=GROUP,
         scope=Scope.POST, errors=(Code.NO_ROOM, Code.MUTED, Code.MODERATED, Code.E2E_REQUIRED),
         needs=NEEDS_MEMBER)
async def me(ctx: Context, action: str) -> Ok:
    """Send an action to the current room, shown as '<you> * <action>'."""
    room = ctx.session.current_room
    if room is None:
        raise no_room(ctx)
    message_id = await settled(ctx.services.messaging.post(ctx.session, room, action,
                                                           action=True, label=ctx.label))
    return ok(id=message_id, room=room.name)


@command("msg", Recipient("user"), Text("text"), group=GROUP,
         scope=Scope.POST, errors=(Code.BLOCKED,))
def msg(ctx: Context, user: User, text: str) -> Ok | Coroutine[Any, Any, Ok]:
    """Send a direct message to a user; they get it at their next login if offline."""
    # A plain function when the message went out at once (no coroutine, no task).
    sent = ctx.services.messaging.send_direct(ctx.session, user, text, ctx.label)
    if isinstance(sent, int):
        return _sent_to(ctx, user, sent)
    return _msg_sent(ctx, user, sent)


async def _msg_sent(ctx: Context, user: User, sent: Awaitable[int]) -> Ok:
    return _sent_to(ctx, user, await sent)


def _sent_to(ctx: Context, user: User, message_id: int) -> Ok:
    note = "" if user.online else f"{user.name} is offline and will see it at their next login."
    away = ctx.services.presence.away(user)
    if not away:
        return ok(note, id=message_id, to=user.name, online=user.online)
    # What an away message is for: the sender learns it at once, as on IRC.
    ctx.notice(f"{user.name} is away: {away}", user=user.name, away=away)
    return ok(note, id=message_id, to=user.name, online=user.online, away=away)


@dataclass(frozen=True, slots=True)
class HistoryCount(Int):
    """How many messages /history shows: any whole number from 1, capped by the
    configuration (asking for more is not wrong, it gets the cap)."""

    high: int = 2**62

    def convert(self, ctx: ParamContext, word: str, more_follow: bool) -> Any:
        # A number of any size is a count, not only one storage could hold: the
        # history of a room is never longer than 2**62 messages.
        count = capped_number(word, self.high)
        if count is not None and count >= self.low:
            return count
        if self.optional:
            raise Decline
        raise self.refusal(ctx, word)

    def refusal(self, ctx: ParamContext, word: str) -> ChatError:
        cap = ctx.services.config.rooms.history_max
        return ChatError(Code.BAD_ARGUMENTS, f"{self.name} must be a whole number of 1 or more "
                                             f"(at most {cap} messages are shown), not \"{word}\".")


# /history [room] [n]: a lone number is the count, two are a room's id and the count
# (/history 7 50), as /who 7 2 reads a room's id and a page.
HISTORY_ROOM = RoomRef("room", optional=True, id_before_number=True)


@command("history", HISTORY_ROOM, HistoryCount("n", optional=True, default=0),
         group=GROUP, scope=Scope.READ, errors=(Code.NOT_IN_ROOM,),
         needs=NEEDS_READER)
async def history(ctx: Context, room: Room, n: int) -> Ok:
    """Show a room's last messages, oldest first: n of them (else the server's default
    number), up to the server's cap."""
    config = ctx.services.config.rooms
    if not room.is_member(ctx.user.id) and not ctx.user.is_admin:
        raise ChatError(Code.NOT_IN_ROOM, f"only members of #{room.name} can read its history.",
                        remedy=room.way_in())
    limit = min(n or config.history_default, config.history_max)
    messages = [record_of(m) for m in await ctx.services.messaging.history(room, limit)]
    if not messages:  # no transcript to head: the sentence alone, as for an empty list
        return ok(f"no messages in #{room.name} yet.", room=room.name, messages=[])
    # In text mode the whole history is one block, so it reads as a transcript.
    lines = []
    for record in messages:
        lines += render(record, ctx.session.style, True).decode().splitlines()
    last = "the last message" if len(messages) == 1 else f"last {len(messages)} messages"
    ctx.text([f"-- {last} of #{room.name} --", *lines])
    return ok(_history_said(len(messages), limit, config.history_max, room.name),
              room=room.name, messages=messages)


def _history_said(count: int, limit: int, most: int, room: str) -> str:
    """The sentence under a transcript: how many messages, and, when as many came as
    were asked for (older ones may be left out), how to see more of them."""
    said = f"{count} message{'s' * (count != 1)}"
    if count == limit < most:
        return f"{said}; /history {room} {most} shows up to {most}."
    return f"{said}."


@command("conversations", PAGE, group=GROUP, scope=Scope.READ)
async def conversations(ctx: Context, page: int) -> Ok:
    """List the people you exchanged direct messages with, the most recent first, a page
    at a time."""
    services = ctx.services
    found = [(partner, ts) for partner_id, ts in await services.messaging.partners(ctx.user)
             if (partner := services.accounts.get(partner_id)) is not None]  # not deleted
    shown = page_of(found, page, services.config.rooms.page_size)
    if shown.items:
        ctx.table(["with", "last message (UTC)", "online"],
                  [[p.name, table_time(ts), "yes" if p.online else "no"] for p, ts in shown.items])
    count = len(found)
    return ok(shown.told(f"{count} conversation{'s' * (count != 1)}", "/conversations"),
              conversations=[{"user": p.name, "last": ts, "online": p.online}
                             for p, ts in shown.items], **shown.fields())


@dataclass(frozen=True, slots=True)
class MessageId(Int):
    """A message id: a whole number from 0 (0: from the very first message), in
    ASCII digits only (``isdigit`` alone also takes digits such as "²")."""

    low: int = 0
    high: int = 2**63 - 1

    def convert(self, ctx: ParamContext, word: str, more_follow: bool) -> int:
        if is_number(word) and int(word) <= self.high:
            return int(word)
        raise self.refusal(ctx, word)


@command("resume", MessageId("last_id"), group=GROUP, scope=Scope.READ,
         usage="/resume <last-id>", errors=(Code.BAD_ARGUMENTS,))
async def resume(ctx: Context, last_id: int) -> Ok:
    """Replay the messages of your rooms and direct messages above a message id, in id order."""
    session = ctx.session
    # Held from before the first await: a live message delivered meanwhile is
    # put in its place among the replayed ones, or shown after them.
    session.hold_live()
    try:
        gap = await ctx.services.catchup.since(ctx.user, last_id,
                                               ctx.services.config.rooms.resume_max)
    except BaseException:
        session.end_hold((), last_id, ctx.label)  # what was held goes out as it came
        raise
    replay = session.end_hold(gap.messages, last_id, ctx.label)
    last = replay[-1].id if replay else \
        (last_id if gap.go_on_from is None else gap.go_on_from)
    count = f"{len(replay)} message{'s' * (len(replay) != 1)} replayed"
    if gap.recovered:
        return ok(f"{count}; nothing is missing.", recovered=True, more=False,
                  replayed=len(replay), last_id=last)
    reasons = [*gap.doubts, *([RESUME_CAPPED] if gap.more else [])]
    return ok(f"{count}; the gap may not be complete ({'; '.join(reasons)}).",
              recovered=False, more=gap.more, replayed=len(replay), last_id=last,
              reasons=reasons)

