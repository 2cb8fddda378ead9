"""MODE: chatd's roles, bans and room modes in IRC's terms.

| IRC | chatd |
|---|---|
| ``~`` / ``+q`` | the room's owner (shown only, to ``multi-prefix`` clients; otherwise ``@``) |
| ``@`` / ``+o`` ``-o`` | an admin: ``/promote`` and ``/demote`` (the owner) |
| ``+`` / ``+v`` ``-v`` | voice: ``/voice`` and ``/devoice`` (admins) |
| ``+b nick`` ``-b nick`` | ``/ban`` (permanent) and ``/unban``; ``+b`` alone lists the bans |
| ``+i`` | a private room (join by invitation) |
| ``+R`` | a request room (JOIN files a request that admins accept) |
| ``+k key`` ``+l n`` ``+m`` ``+s`` ``+n`` ``+t`` | the room's modes (chatd.domain.modes; admins) |

Neither ``+i`` nor ``+R``: an open room. User modes: chatd.irc.operators.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from chatd.domain.modes import (
    LETTERS,
    ModeChange,
    Takes,
    parse_mode_string,
    valid_key,
    valid_limit,
)
from chatd.domain.names import name_key
from chatd.domain.room import JOIN_LETTERS
from chatd.domain.scopes import Scope
from chatd.errors import ChatError, Code
from chatd.irc import numerics as n
from chatd.irc.codec import plain_text
from chatd.irc.commands import irc_command
from chatd.irc.guests import is_guest
from chatd.irc.lookup import existing_user, find_user, visible_room
from chatd.irc.masks import Mask, has_wildcards
from chatd.irc.numerics import IrcError
from chatd.irc.operators import change_user_modes, user_modes
from chatd.irc.render import channel
from chatd.irc.views import channel_mode_params
from chatd.irc.welcome import MAX_TARGETS

if TYPE_CHECKING:
    from chatd.domain.room import Room
    from chatd.irc.commands import IrcContext

# Channel modes that take an argument, as CHANMODES and PREFIX say: b (without
# one it lists the bans), k, o, q, v always; l when set.
TAKES: Final = {"b": Takes.ALWAYS, "k": Takes.ALWAYS, "o": Takes.ALWAYS, "q": Takes.ALWAYS,
                "v": Takes.ALWAYS, "l": Takes.ON_SET}


# Asking for a channel's ban list: "MODE #room b" (irssi sends it after every JOIN).
_BAN_LIST_QUERIES: Final = frozenset({"b", "+b"})


def mode_scope(params: tuple[str, ...]) -> Scope:
    """What MODE needs of a token login: reading the modes, the ban list or one's
    own user modes is ``read``; changing a channel's modes is ``moderate``."""
    if not params[0].startswith("#") or len(params) == 1:
        return Scope.READ
    if len(params) == 2 and params[1] in _BAN_LIST_QUERIES:
        return Scope.READ
    return Scope.MODERATE


@irc_command("MODE", min_params=1, errors={Code.NOT_IN_ROOM: n.ERR_USERNOTINCHANNEL},
             scope=mode_scope, own_events=True)
async def mode(ctx: IrcContext) -> None:
    """Show or change a channel's modes (roles, bans, private, request) or your own."""
    target = ctx.params[0]
    if target.startswith("#"):
        await _channel_mode(ctx, target)
    else:
        _user_mode(ctx, target)


def _user_mode(ctx: IrcContext, target: str) -> None:
    if name_key(target) != name_key(ctx.nick):
        # A nick no one has is 401, as for any command that names one; 502 says
        # that the nick is someone else's.
        existing_user(ctx, target)
        raise IrcError(n.ERR_USERSDONTMATCH, "Can't change mode for other users")
    if len(ctx.params) < 2:
        ctx.reply(n.RPL_UMODEIS, user_modes(ctx))
        return
    change_user_modes(ctx, [("+" if c.on else "-", c.letter)
                            for c in parse_mode_string(ctx.params[1], [], {})[0]])


async def _channel_mode(ctx: IrcContext, name: str) -> None:
    ctx.channel = name
    room, user = visible_room(ctx, name), ctx.user
    if len(ctx.params) < 2:
        show_key = room.is_member(user.id) or user.is_admin
        ctx.reply(n.RPL_CHANNELMODEIS, channel(room.name), *channel_mode_params(room, show_key))
        ctx.reply(n.RPL_CREATIONTIME, channel(room.name), str(int(room.created_at)))
        return
    changes = _within_modes(parse_mode_string(ctx.params[1], list(ctx.params[2:]), TAKES)[0])
    # The room's own modes change at once, in one MODE line to the room; who may
    # join (i, R) in one decision, which never opens the room on the way (-i+R).
    await _room_modes(ctx, room, [c for c in changes if c.letter in LETTERS])
    joining = [c for c in changes if c.letter in JOIN_LETTERS]
    if joining:
        with ctx.attempt(name):
            await ctx.services.moderation.switch_modes(
                ctx.user, room, [(JOIN_LETTERS[c.letter], c.on) for c in joining])
    for change in changes:
        if change.letter in LETTERS or change.letter in JOIN_LETTERS:
            continue
        with ctx.attempt(name, change.argument or "*"):
            apply = _MODES.get(change.letter)
            if apply is None:
                raise IrcError(n.ERR_UNKNOWNMODE, change.letter, "is unknown mode char to me")
            await apply(ctx, room, change.on, change.argument)


def _within_modes(changes: list[ModeChange]) -> list[ModeChange]:
    """At most MODES (ISUPPORT) changes with an argument per MODE, as advertised:
    the ones after it are left out, as other servers do."""
    kept, argued = [], 0
    for change in changes:
        if change.argument is not None:
            argued += 1
            if argued > MAX_TARGETS:
                continue
        kept.append(change)
    return kept


async def _room_modes(ctx: IrcContext, room: Room, changes: list[ModeChange]) -> None:
    """k l m s n t, one by one as IRC servers take modes: a ``+k`` or ``+l`` whose
    argument is missing (461) or bad (696) is refused alone, and the others are
    applied together, shown in one MODE line (what the echo lists took effect)."""
    complete = [change for change in changes if _argument_ok(ctx, room, change)]
    if complete:
        with ctx.attempt(channel(room.name)):
            await ctx.services.moderation.change_modes(ctx.user, room, complete)


def _argument_ok(ctx: IrcContext, room: Room, change: ModeChange) -> bool:
    """Whether a room mode change has the argument it needs, else its refusal."""
    if not change.on or change.letter not in "kl":
        return True  # a switch, or -k and -l, whose argument (if any) is ignored
    if change.argument is None:
        ctx.reply(n.ERR_NEEDMOREPARAMS, "MODE", f"+{change.letter} needs an argument")
        return False
    try:
        (valid_key if change.letter == "k" else valid_limit)(change.argument)
    except ChatError as exc:
        ctx.reply(n.ERR_INVALIDMODEPARAM, channel(room.name), change.letter,
                  plain_text(change.argument) or "*", exc.message)
        return False
    return True


async def _ban(ctx: IrcContext, room: Room, on: bool, mask: str | None) -> None:
    if mask is None:
        _ban_list(ctx, room)
        return
    nick = mask.split("!", 1)[0]
    if not nick or has_wildcards(nick):
        if not on:
            raise IrcError(n.ERR_UNKNOWNERROR, "MODE", ONE_USER)
        nick = _member_masked(ctx, room, mask)
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


# Why a ban mask is refused: chatd bans users, one at a time.
ONE_USER: Final = "a ban names one user: +b nick"


def _member_masked(ctx: IrcContext, room: Room, mask: str) -> str:
    """The one member of ``room`` whose ``nick!user@host`` ``mask`` matches (``*`` and
    ``?``, in any ASCII case: chatd.irc.masks): the ban clients make of a nick (irssi's
    /ban sends ``*!*user@host``, WeeChat's ``*!user@host``) from the masks they were shown.
    Refused unless exactly one matches: a ban names one user."""
    pattern = Mask(mask)
    renderer = ctx.listener.renderer
    matched = [member.name for member in room.members.values()
               if pattern.matches(renderer.mask(member.name))]
    if len(matched) == 1:
        return matched[0]
    if not matched:
        raise IrcError(n.ERR_UNKNOWNERROR, "MODE", ONE_USER)
    raise IrcError(n.ERR_UNKNOWNERROR, "MODE", f"{mask} matches {len(matched)} members of "
                   f"{channel(room.name)}: {ONE_USER}")


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
        raise IrcError(n.ERR_UNKNOWNERROR, "MODE", "guests cannot be room admins")
    if on:
        await ctx.services.moderation.promote(ctx.user, room, target)
    else:
        await ctx.services.moderation.demote(ctx.user, room, target)


async def _voice(ctx: IrcContext, room: Room, on: bool, nick: str | None) -> None:
    """+v / -v: voice (guests too: a guest's role lives in memory with it)."""
    if nick is None:
        raise IrcError(n.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters")
    target = existing_user(ctx, nick)
    moderation = ctx.services.moderation
    await (moderation.voice if on else moderation.devoice)(ctx.user, room, target)


async def _owner(ctx: IrcContext, room: Room, on: bool, nick: str | None) -> None:
    raise IrcError(n.ERR_UNKNOWNERROR, "MODE", "ownership passes only by succession")


Apply = Callable[["IrcContext", "Room", bool, str | None], Awaitable[None]]
_MODES: Final[dict[str, Apply]] = {"b": _ban, "o": _op, "q": _owner, "v": _voice}

