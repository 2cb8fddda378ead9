"""MODE: chatd's roles, bans and room modes in IRC's terms.

| IRC | chatd |
|---|---|
| ``~`` / ``+q`` | the room's owner (shown only: ownership passes by succession) |
| ``@`` / ``+o`` ``-o`` | an admin: ``/promote`` and ``/demote`` (the owner) |
| ``+b nick`` ``-b nick`` | ``/ban`` (permanent) and ``/unban``; ``+b`` alone lists the bans |
| ``+i`` | a private room (join by invitation) |
| ``+R`` | a request room (JOIN files a request that admins accept) |
| ``+n`` ``+t`` | always set: only members send, only admins set the topic |

Neither ``+i`` nor ``+R``: an open room. User modes: chatd.irc.operators.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from chatd.domain.names import name_key
from chatd.domain.room import Mode
from chatd.errors import Code
from chatd.irc import numerics as n
from chatd.irc.commands import irc_command
from chatd.irc.guests import is_guest
from chatd.irc.lookup import existing_room, existing_user, find_user
from chatd.irc.numerics import IrcError
from chatd.irc.operators import change_user_modes, user_modes
from chatd.irc.render import channel
from chatd.irc.views import channel_modes

if TYPE_CHECKING:
    from chatd.domain.room import Room
    from chatd.irc.commands import IrcContext

# Channel modes that take an argument (b without one lists the bans).
_WITH_ARGUMENT: Final = "boq"
Change = tuple[str, str, str | None]


def parse_changes(spec: str, arguments: list[str]) -> list[Change]:
    """Split a mode string into changes, each with its argument when it takes one.

    ``"+ob-i", ["bob", "carol"]`` gives
    ``[("+", "o", "bob"), ("+", "b", "carol"), ("-", "i", None)]``.
    """
    sign, args = "+", iter(arguments)
    changes: list[Change] = []
    for char in spec:
        if char in "+-":
            sign = char
        else:
            changes.append((sign, char, next(args, None) if char in _WITH_ARGUMENT else None))
    return changes


@irc_command("MODE", min_params=1, errors={Code.NOT_IN_ROOM: n.ERR_USERNOTINCHANNEL})
async def mode(ctx: IrcContext) -> None:
    """Show or change a channel's modes (roles, bans, private, request) or your own."""
    target = ctx.params[0]
    if target.startswith("#"):
        await _channel_mode(ctx, target)
    else:
        _user_mode(ctx, target)


def _user_mode(ctx: IrcContext, target: str) -> None:
    if name_key(target) != name_key(ctx.nick):
        raise IrcError(n.ERR_USERSDONTMATCH, "Can't change mode for other users")
    if len(ctx.params) < 2:
        ctx.reply(n.RPL_UMODEIS, user_modes(ctx))
        return
    change_user_modes(ctx, [(sign, char) for sign, char, _ in parse_changes(ctx.params[1], [])])


async def _channel_mode(ctx: IrcContext, name: str) -> None:
    ctx.channel = name
    room = existing_room(ctx, name)
    if len(ctx.params) < 2:
        ctx.reply(n.RPL_CHANNELMODEIS, channel(room.name), channel_modes(room))
        ctx.reply(n.RPL_CREATIONTIME, channel(room.name), str(int(room.created_at)))
        return
    for sign, char, argument in parse_changes(ctx.params[1], list(ctx.params[2:])):
        with ctx.attempt(name, argument or "*"):
            apply = _MODES.get(char)
            if apply is None:
                raise IrcError(n.ERR_UNKNOWNMODE, char, "is unknown mode char to me")
            await apply(ctx, room, sign == "+", argument)


async def _ban(ctx: IrcContext, room: Room, on: bool, mask: str | None) -> None:
    if mask is None:
        _ban_list(ctx, room)
        return
    nick = mask.split("!", 1)[0]
    if not nick or "*" in nick or "?" in nick:
        raise IrcError(n.ERR_UNKNOWNERROR, "MODE", "a ban names one user: +b nick")
    ctx.target = nick
    user, guests, moderation = ctx.user, ctx.listener.guests, ctx.services.moderation
    target = find_user(ctx, nick)
    if target is None:
        if not on and await guests.unban(user, room, nick):
            return  # a guest who has gone since
        raise IrcError(n.ERR_NOSUCHNICK, nick, "No such nick/channel")
    if is_guest(target):
        if on:
            await guests.ban(user, room, target)
        elif not await guests.unban(user, room, nick):
            raise IrcError(n.ERR_UNKNOWNERROR, "MODE", f"{nick} is not banned")
    elif on:
        await moderation.ban(user, room, target, None, "")
    else:
        await moderation.unban(user, room, target)


def _ban_list(ctx: IrcContext, room: Room) -> None:
    services, server = ctx.services, ctx.listener.renderer.server
    name, now = channel(room.name), services.clock.time()
    for user_id, ban in room.bans.items():
        account = services.accounts.get(user_id)
        if account is None or room.banned(user_id, now) is None:
            continue
        setter = services.accounts.get(ban.actor_id) if ban.actor_id else None
        ctx.reply(n.RPL_BANLIST, name, f"{account.name}!*@*",
                  setter.name if setter else server, str(int(ban.created_at)))
    for guest_ban in ctx.listener.guests.bans(room):
        ctx.reply(n.RPL_BANLIST, name, f"{guest_ban.nick}!*@*", guest_ban.actor,
                  str(int(guest_ban.at)))
    ctx.reply(n.RPL_ENDOFBANLIST, name, "End of channel ban list")


async def _op(ctx: IrcContext, room: Room, on: bool, nick: str | None) -> None:
    if nick is None:
        raise IrcError(n.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters")
    target = existing_user(ctx, nick)
    if is_guest(target):
        raise IrcError(n.ERR_UNKNOWNERROR, "MODE", "guests cannot hold a room role")
    if on:
        await ctx.services.moderation.promote(ctx.user, room, target)
    else:
        await ctx.services.moderation.demote(ctx.user, room, target)


async def _owner(ctx: IrcContext, room: Room, on: bool, nick: str | None) -> None:
    raise IrcError(n.ERR_UNKNOWNERROR, "MODE", "ownership passes only by succession")


async def _room_mode(ctx: IrcContext, room: Room, wanted: Mode, on: bool) -> None:
    """+i / +R make the room private / request; removing the room's mode opens it."""
    if on:
        new = wanted
    elif room.mode is wanted:
        new = Mode.OPEN
    else:
        return
    if new is not room.mode:
        await ctx.services.moderation.set_mode(ctx.user, room, new)


async def _private(ctx: IrcContext, room: Room, on: bool, argument: str | None) -> None:
    await _room_mode(ctx, room, Mode.PRIVATE, on)


async def _request(ctx: IrcContext, room: Room, on: bool, argument: str | None) -> None:
    await _room_mode(ctx, room, Mode.REQUEST, on)


async def _fixed(ctx: IrcContext, room: Room, on: bool, argument: str | None) -> None:
    """n and t are how every room works; there is nothing to change."""


Apply = Callable[["IrcContext", "Room", bool, str | None], Awaitable[None]]
_MODES: Final[dict[str, Apply]] = {"b": _ban, "o": _op, "q": _owner, "i": _private,
                                   "R": _request, "n": _fixed, "t": _fixed}
