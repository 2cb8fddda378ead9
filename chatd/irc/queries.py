"""Who is who: WHO, WHOIS and AWAY.

A channel lists every member of the room, online or not, as chatd's rooms
keep their members: ``H`` (here) is a member with a connection and no away
message, ``G`` (gone) one who is offline or away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.irc import numerics as n
from chatd.irc.commands import irc_command
from chatd.irc.guests import is_guest
from chatd.irc.lookup import away_message, existing_user, find_user, rooms_of
from chatd.irc.numerics import IrcError
from chatd.irc.render import channel
from chatd.irc.views import members_in_order, prefix
from chatd.irc.welcome import AWAY_LEN
from chatd.protocol.codec import clean_text

if TYPE_CHECKING:
    from chatd.domain.accounts import User
    from chatd.domain.room import Member, Room
    from chatd.irc.commands import IrcContext


def _flags(ctx: IrcContext, user: User | None, member: Member | None) -> str:
    here = "H" if user is not None and away_message(ctx, user) is None else "G"
    oper = "*" if user is not None and user.is_admin else ""
    caps = ctx.session.irc.caps
    return here + oper + (prefix(member.role, caps) if member is not None else "")


def _who_row(ctx: IrcContext, where: str, name: str, user: User | None,
             member: Member | None) -> None:
    server = ctx.listener.renderer.server
    ctx.reply(n.RPL_WHOREPLY, where, name, server, server, name, _flags(ctx, user, member),
              f"0 {name}")


@irc_command("WHO", min_params=1)
def who(ctx: IrcContext) -> None:
    """List a channel's members, or one user: WHO #channel, WHO nick."""
    mask = ctx.params[0]
    if mask.startswith("#"):
        room = ctx.services.rooms.find(mask)
        if room is not None and ctx.services.rooms.can_see(ctx.user, room):
            _who_room(ctx, room)
    else:
        user = find_user(ctx, mask)
        if user is not None:
            _who_row(ctx, "*", user.name, user, None)
    ctx.reply(n.RPL_ENDOFWHO, mask, "End of WHO list")


def _who_room(ctx: IrcContext, room: Room) -> None:
    accounts, guests = ctx.services.accounts, ctx.listener.guests
    for member in members_in_order(room):
        user = accounts.get(member.user_id) or guests.find(member.name)
        _who_row(ctx, channel(room.name), member.name, user, member)


@irc_command("WHOIS", min_params=1)
def whois(ctx: IrcContext) -> None:
    """Tell about a user: their channels, whether they are away, their account."""
    nick = ctx.params[-1].split(",")[0]
    ctx.target = nick
    try:
        user = existing_user(ctx, nick)
    except IrcError:
        ctx.reply(n.ERR_NOSUCHNICK, nick, "No such nick/channel")
        ctx.reply(n.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")
        return
    server, name = ctx.listener.renderer.server, user.name
    ctx.reply(n.RPL_WHOISUSER, name, "guest" if is_guest(user) else name, server, "*", name)
    caps = ctx.session.irc.caps
    visible = [prefix(room.members[user.id].role, caps) + channel(room.name)
               for room in rooms_of(ctx, user) if ctx.services.rooms.can_see(ctx.user, room)]
    if visible:
        ctx.reply(n.RPL_WHOISCHANNELS, name, " ".join(visible))
    ctx.reply(n.RPL_WHOISSERVER, name, server, f"chatd {ctx.services.version}")
    if user.is_admin:
        ctx.reply(n.RPL_WHOISOPERATOR, name, "is a server administrator")
    away = away_message(ctx, user)
    if away is not None:
        ctx.reply(n.RPL_AWAY, name, away)
    if not is_guest(user):
        ctx.reply(n.RPL_WHOISACCOUNT, name, name, "is logged in as")
    ctx.reply(n.RPL_ENDOFWHOIS, name, "End of /WHOIS list")


@irc_command("AWAY")
def away(ctx: IrcContext) -> None:
    """Set an away message (AWAY :text), or clear it (AWAY)."""
    text = clean_text(ctx.params[0]).strip()[:AWAY_LEN] if ctx.params else ""
    ctx.services.presence.set_away(ctx.user, text)
    if text:
        ctx.reply(n.RPL_NOWAWAY, "You have been marked as being away")
    else:
        ctx.reply(n.RPL_UNAWAY, "You are no longer marked as being away")
