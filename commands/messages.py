"""Messages: plain lines, say, me, msg, history."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

from chatd.domain.accounts import User
from chatd.domain.ports import settled
from chatd.domain.room import Room
from chatd.domain.scopes import Scope
from chatd.errors import ChatError, Code
from chatd.protocol.context import Context
from chatd.protocol.params import Context as ParamContext
from chatd.protocol.params import Int, RoomRef, Text, UserRef
from chatd.protocol.records import record_of
from chatd.protocol.registry import command, message_handler
from chatd.protocol.render import render
from chatd.protocol.results import Ok, ok

GROUP = "messages"


@message_handler
def plain_line(ctx: Context, text: str) -> Awaitable[int] | None:
    """A line that is not a command goes to the current room."""
    room = ctx.session.current_room
    if room is None:
        raise ChatError(Code.NO_ROOM, "you are in no room: /join <room> or /create <room> "
                        "first, then plain lines go there.")
    sent = ctx.services.messaging.post(ctx.session, room, text)
    # Awaited by the dispatcher when the id comes later (a cluster's counter).
    return None if isinstance(sent, int) else sent


@command("say", RoomRef("room"), Text("text"), group=GROUP,
         scope=Scope.POST, errors=(Code.NOT_IN_ROOM, Code.MUTED, Code.MODERATED, Code.BANNED,
                                   Code.E2E_REQUIRED))
async def say(ctx: Context, room: Room, text: str) -> Ok:
    """Send a message to one of your rooms (not necessarily the current one)."""
    message_id = await settled(ctx.services.messaging.post(ctx.session, room, text,
                                                           label=ctx.label))
    return ok(id=message_id, room=room.name)


@command("me", Text("action"), group=GROUP,
         scope=Scope.POST, errors=(Code.NO_ROOM, Code.MUTED, Code.MODERATED, Code.E2E_REQUIRED))
async def me(ctx: Context, action: str) -> Ok:
    """Send an action to the current room, shown as '<you> * <action>'."""
    room = ctx.session.current_room
    if room is None:
        raise ChatError(Code.NO_ROOM, "you are in no room: /join one first.")
    message_id = await settled(ctx.services.messaging.post(ctx.session, room, action,
                                                           action=True, label=ctx.label))
    return ok(id=message_id, room=room.name)


@command("msg", UserRef("user"), Text("text"), group=GROUP,
         scope=Scope.POST, errors=(Code.BLOCKED,))
async def msg(ctx: Context, user: User, text: str) -> Ok:
    """Send a direct message to a user; they get it at their next login if offline."""
    message_id = await ctx.services.messaging.direct(ctx.session, user, text, ctx.label)
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

    def refusal(self, ctx: ParamContext, word: str) -> ChatError:
        cap = ctx.services.config.rooms.history_max
        return ChatError(Code.BAD_ARGUMENTS, f"{self.name} must be a whole number of 1 or more "
                                             f"(at most {cap} messages are shown), not \"{word}\".")


@command("history", RoomRef("room", optional=True), HistoryCount("n", optional=True, default=0),
         group=GROUP, scope=Scope.READ, errors=(Code.NOT_IN_ROOM,))
async def history(ctx: Context, room: Room, n: int) -> Ok:
    """Show a room's last messages (20 by default, 200 at most)."""
    config = ctx.services.config.rooms
    if not room.is_member(ctx.user.id) and not ctx.user.is_admin:
        raise ChatError(Code.NOT_IN_ROOM, f"only members of #{room.name} can read its history.")
    limit = min(n or config.history_default, config.history_max)
    messages = [record_of(m) for m in await ctx.services.messaging.history(room, limit)]
    # In text mode the whole history is one block, so it reads as a transcript.
    lines = []
    for record in messages:
        lines += render(record, ctx.session.style, True).decode().splitlines()
    last = "the last message" if len(messages) == 1 else f"last {len(messages)} messages"
    ctx.text([f"-- {last} of #{room.name} --", *lines])
    return ok(f"{len(messages)} message{'s' * (len(messages) != 1)}.", room=room.name,
              messages=messages)
