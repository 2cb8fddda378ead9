"""Finding what an IRC command names: channels (rooms) and nicks (accounts, guests)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.domain import names
from chatd.irc import numerics as n
from chatd.irc.numerics import IrcError

if TYPE_CHECKING:
    from chatd.domain.accounts import User
    from chatd.domain.room import Room
    from chatd.irc.commands import IrcContext


def targets(param: str) -> list[str]:
    """The comma-separated targets of a parameter (empty ones dropped)."""
    return [target for target in param.split(",") if target]


def room_name(name: str) -> str:
    """The chatd room name of the channel ``name`` (``#`` then a valid room name)."""
    if not name.startswith("#"):
        raise IrcError(n.ERR_NOSUCHCHANNEL, name, "No such channel")
    try:
        return names.room_name(name)
    except names.InvalidName:
        raise IrcError(n.ERR_BADCHANMASK, name, "Bad Channel Mask") from None


def existing_room(ctx: IrcContext, name: str) -> Room:
    """The live room of channel ``name``, or ERR_NOSUCHCHANNEL."""
    room = ctx.services.rooms.find(room_name(name))
    if room is None:
        raise IrcError(n.ERR_NOSUCHCHANNEL, name, "No such channel")
    return room


def visible_room(ctx: IrcContext, name: str) -> Room:
    """:func:`existing_room`, where ``ctx``'s user may see it: a private or secret room
    they are not in (or one that bans them) is ERR_NOSUCHCHANNEL to them, whatever
    they ask of it, since any other answer (442, 482, a ban list) would tell a
    stranger that it exists."""
    room = existing_room(ctx, name)
    if not ctx.services.rooms.can_see(ctx.user, room):
        raise IrcError(n.ERR_NOSUCHCHANNEL, name, "No such channel")
    return room


def find_user(ctx: IrcContext, nick: str) -> User | None:
    """An account (online or not) or an online guest named ``nick``."""
    return ctx.services.accounts.find(nick) or ctx.listener.guests.find(nick)


def existing_user(ctx: IrcContext, nick: str) -> User:
    user = find_user(ctx, nick)
    if user is None:
        raise IrcError(n.ERR_NOSUCHNICK, nick, "No such nick/channel")
    return user


def away_message(ctx: IrcContext, user: User) -> str | None:
    """Why ``user`` is not there: offline, or their away message (set with AWAY
    here or /away on a chatd connection); None when they are present."""
    if not user.online:
        return "offline"
    return ctx.services.presence.away(user) or None


def rooms_of(ctx: IrcContext, user: User) -> list[Room]:
    """The rooms ``user`` (an account or a guest) is a member of."""
    return ctx.services.rooms.of_user(user)
