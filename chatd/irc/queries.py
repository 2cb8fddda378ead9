"""Who is who: WHO (with masks and WHOX), WHOIS, WHOWAS and AWAY.

A channel lists every member of the room, online or not, as chatd's rooms
keep their members: ``H`` (here) is a member with a connection and no away
message, ``G`` (gone) one who is offline or away.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from chatd.domain.names import is_number
from chatd.domain.scopes import Scope
from chatd.irc import numerics as n
from chatd.irc.codec import plain_text
from chatd.irc.commands import irc_command
from chatd.irc.guests import is_guest
from chatd.irc.lookup import away_message, existing_user, find_user, rooms_of
from chatd.irc.masks import Mask, has_wildcards
from chatd.irc.messages import when_paid
from chatd.irc.numerics import IrcError
from chatd.irc.render import channel
from chatd.irc.views import members_in_order, prefix
from chatd.irc.welcome import AWAY_LEN

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from chatd.domain.accounts import User
    from chatd.domain.room import Member, Room
    from chatd.irc.commands import IrcContext


# WHO lists at most this many users for a mask (a channel lists all its members).
WHO_MAX: Final = 200
# WHOX fields in the order replies give them (ircu's readme.who).
WHOX_ORDER: Final = "tcuihsnfdlaor"


@dataclass(frozen=True, slots=True)
class WhoRow:
    """One user as WHO shows them, in a channel (or ``*``)."""

    where: str
    name: str
    user: User | None
    member: Member | None


def _flags(ctx: IrcContext, row: WhoRow) -> str:
    user = row.user
    here = "H" if user is not None and away_message(ctx, user) is None else "G"
    oper = "*" if user is not None and user.is_admin else ""
    caps = ctx.session.caps
    bot = "B" if ctx.listener.people.is_bot(row.name) else ""
    return here + oper + bot + (prefix(row.member.role, caps) if row.member is not None else "")


def _reply_row(ctx: IrcContext, row: WhoRow, whox: tuple[str, str] | None) -> None:
    server, people = ctx.listener.renderer.server, ctx.listener.people
    username, realname = people.username(row.name), people.realname(row.name)
    if whox is None:
        ctx.reply(n.RPL_WHOREPLY, row.where, username, server, server, row.name,
                  _flags(ctx, row), f"0 {realname}")
        return
    fields, token = whox
    account = row.name if row.user is not None and not is_guest(row.user) else "0"
    values = {"t": token, "c": row.where, "u": username, "i": "255.255.255.255",
              "h": server, "s": server, "n": row.name, "f": _flags(ctx, row), "d": "0",
              "l": "0", "a": account, "o": "n/a", "r": realname}
    ctx.reply(n.RPL_WHOSPCRPL, *(values[f] for f in WHOX_ORDER if f in fields))


def _whox(ctx: IrcContext) -> tuple[str, str] | None:
    """The WHOX fields and token asked for (``WHO mask %cnuf,42``), or None."""
    if len(ctx.params) < 2 or not ctx.params[1].startswith("%"):
        return None
    fields, _, token = ctx.params[1][1:].partition(",")
    return fields, token[:3] or "0"


@irc_command("WHO", min_params=1)
def who(ctx: IrcContext) -> None:
    """List users: WHO #channel, WHO nick, WHO mask (* ? wildcards); WHOX with %fields."""
    mask, whox = ctx.params[0], _whox(ctx)
    only_opers = len(ctx.params) > 1 and ctx.params[1] == "o"
    for row in _rows(ctx, mask):
        if not only_opers or (row.user is not None and row.user.is_admin):
            _reply_row(ctx, row, whox)
    ctx.reply(n.RPL_ENDOFWHO, mask, "End of WHO list")


def _rows(ctx: IrcContext, mask: str) -> list[WhoRow]:
    if mask.startswith("#"):
        room = ctx.services.rooms.find(mask)
        if room is None or not ctx.services.rooms.can_see(ctx.user, room):
            return []
        return _room_rows(ctx, room)
    if not has_wildcards(mask) and mask != "0":
        user = find_user(ctx, mask)
        return [] if user is None else [WhoRow("*", user.name, user, None)]
    pattern = Mask("*" if mask == "0" else mask)
    return [WhoRow("*", user.name, user, None) for user in _visible(ctx)
            if pattern.matches(user.name)][:WHO_MAX]


def _room_rows(ctx: IrcContext, room: Room) -> list[WhoRow]:
    accounts, guests = ctx.services.accounts, ctx.listener.guests
    return [WhoRow(channel(room.name), member.name,
                   accounts.get(member.user_id) or guests.find(member.name), member)
            for member in members_in_order(room)]


def _visible(ctx: IrcContext) -> list[User]:
    """The users online whom a mask may show: those not invisible (user mode +i), and
    anyone sharing a room with the asker (server admins see everyone)."""
    me = ctx.user
    invisible = ctx.listener.people.invisible()
    mine = {room.id for room in rooms_of(ctx, me)}
    seen: dict[int, User] = {}
    for session in ctx.services.presence.sessions:
        user = session.user
        if user is None or user.id in seen:
            continue
        if (user is me or me.is_admin or user.id not in invisible
                or not mine.isdisjoint(r.id for r in rooms_of(ctx, user))):
            seen[user.id] = user
    return sorted(seen.values(), key=lambda u: u.name.lower())


@irc_command("WHOIS", min_params=1)
def whois(ctx: IrcContext) -> None:
    """Tell about a user: their channels, whether they are away, their account."""
    nick = ctx.params[-1].split(",")[0]
    if not nick:
        # "WHOIS :" or "WHOIS ,x": no nick to look up (the modern client
        # protocol's 431), rather than "401 * :No such nick".
        raise IrcError(n.ERR_NONICKNAMEGIVEN, "No nickname given")
    ctx.target = nick
    try:
        user = existing_user(ctx, nick)
    except IrcError:
        ctx.reply(n.ERR_NOSUCHNICK, nick, "No such nick/channel")
        ctx.reply(n.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")
        return
    server, name, people = ctx.listener.renderer.server, user.name, ctx.listener.people
    ctx.reply(n.RPL_WHOISUSER, name, people.username(name), server, "*", people.realname(name))
    caps = ctx.session.caps
    visible = [prefix(room.members[user.id].role, caps) + channel(room.name)
               for room in rooms_of(ctx, user) if ctx.services.rooms.can_see(ctx.user, room)]
    if visible:
        ctx.reply_list(n.RPL_WHOISCHANNELS, (name,), visible)
    ctx.reply(n.RPL_WHOISSERVER, name, server, f"chatd {ctx.services.version}")
    if user.is_admin:
        ctx.reply(n.RPL_WHOISOPERATOR, name, "is a server administrator")
    if people.is_bot(name):
        ctx.reply(n.RPL_WHOISBOT, name, "is a bot")
    away = away_message(ctx, user)
    if away is not None:
        ctx.reply(n.RPL_AWAY, name, away)
    if not is_guest(user):
        ctx.reply(n.RPL_WHOISACCOUNT, name, name, "is logged in as")
    ctx.reply(n.RPL_ENDOFWHOIS, name, "End of /WHOIS list")


@irc_command("WHOWAS", min_params=1)
def whowas(ctx: IrcContext) -> None:
    """Who recently had a nick (renamed guests, ended connections): WHOWAS nick [count]."""
    nick = ctx.params[0].split(",")[0]
    if not nick:
        raise IrcError(n.ERR_NONICKNAMEGIVEN, "No nickname given")  # as WHOIS
    ctx.target = nick
    count = int(ctx.params[1]) if len(ctx.params) > 1 and is_number(ctx.params[1]) else 0
    entries = ctx.listener.people.departed(nick)
    if count > 0:
        entries = entries[:count]
    if not entries:
        ctx.reply(n.ERR_WASNOSUCHNICK, nick, "There was no such nickname")
    server = ctx.listener.renderer.server
    for entry in entries:
        ctx.reply(n.RPL_WHOWASUSER, entry.nick, entry.username, server, "*", entry.realname)
        when = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(entry.at))
        ctx.reply(n.RPL_WHOISSERVER, entry.nick, server, when)
    ctx.reply(n.RPL_ENDOFWHOWAS, nick, "End of WHOWAS")


@irc_command("AWAY", scope=Scope.POST)
def away(ctx: IrcContext) -> Awaitable[None] | None:
    """Set an away message (AWAY :text), or clear it (AWAY): shown to every
    away-notify client sharing a channel, so at the pace of messages (when_paid)."""
    text = plain_text(ctx.params[0]).strip()[:AWAY_LEN] if ctx.params else ""
    return when_paid(ctx, lambda: _set_away(ctx, text))


def _set_away(ctx: IrcContext, text: str) -> None:
    ctx.services.presence.set_away(ctx.user, text)
    if text:
        ctx.reply(n.RPL_NOWAWAY, "You have been marked as being away")
    else:
        ctx.reply(n.RPL_UNAWAY, "You are no longer marked as being away")
