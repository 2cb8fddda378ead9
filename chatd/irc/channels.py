"""Channels are rooms: JOIN, PART, TOPIC, NAMES, KICK and INVITE (LIST: chatd.irc.listing).

Each handler calls the domain method the line protocol's command calls, so
access rules, governance and events are the same: a JOIN is
``admission.admit`` (open, request and private rooms, bans, invitations,
keys and limits), a KICK is ``moderation.kick``. One IRC habit is kept: JOIN
of a channel that does not exist creates the room (open, with the joiner as
owner), for guests too when ``rooms.creation`` is "everyone".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.domain.limits import Kind
from chatd.domain.permissions import Action, authorize
from chatd.domain.room import Mode
from chatd.domain.rooms import TOPIC_MAX
from chatd.domain.scopes import Scope
from chatd.errors import ChatError, Code
from chatd.irc import numerics as n
from chatd.irc.codec import format_line, plain_text
from chatd.irc.commands import irc_command
from chatd.irc.guests import is_guest
from chatd.irc.lookup import (
    existing_room,
    existing_user,
    room_name,
    rooms_of,
    targets,
    visible_room,
)
from chatd.irc.messages import when_paid
from chatd.irc.numerics import IrcError
from chatd.irc.render import channel
from chatd.irc.views import join_lines, names_lines, topic_lines
from chatd.protocol.session import SessionState

if TYPE_CHECKING:
    from chatd.domain.room import Room
    from chatd.irc.commands import IrcContext


def _announce(ctx: IrcContext, room: Room) -> None:
    """The client's JOIN of ``room``, its topic and names, as this command's reply."""
    session = ctx.session
    if room.id not in session.joined:
        session.shown_joined(room.id)
        ctx.lines.extend(join_lines(ctx.listener.renderer, ctx.nick, room, session.key,
                                    session.caps))


@irc_command("JOIN", min_params=1, errors={Code.NOT_PERMITTED: n.ERR_INVITEONLYCHAN,
                                            Code.QUOTA_EXCEEDED: n.ERR_TOOMANYCHANNELS,
                                            Code.RATE_LIMITED: n.ERR_TOOMANYCHANNELS},
             scope=Scope.POST)
async def join(ctx: IrcContext) -> None:
    """Join channels with their keys (a missing one is created); JOIN 0 leaves every one."""
    if ctx.params[0] == "0":
        for room in rooms_of(ctx, ctx.user):
            with ctx.attempt(channel(room.name)):
                await _part(ctx, room, "")
        return
    names = ctx.params[0].split(",")
    if not any(names):
        raise _no_channel("JOIN")
    # Held: the room's messages must not reach the client before its JOIN.
    ctx.hold()
    keys = ctx.params[1].split(",") if len(ctx.params) > 1 else []
    first = True
    for index, name in enumerate(names):
        if not name:
            continue
        if not first and not await _paced(ctx):
            return  # the client went away meanwhile: nothing more is made for it
        first = False
        with ctx.attempt(name):
            await _join(ctx, name, keys[index] if index < len(keys) else "")


async def _paced(ctx: IrcContext) -> bool:
    """Wait for a command token for another channel of one JOIN (the line took one
    for the first); whether the connection is still there. A line names some 90
    channels, each a room made when missing: at a token per line, one client made
    rooms 90 times as fast as the line protocol's /create (a command each) allows."""
    await ctx.services.protection.wait_for(Kind.COMMAND, ctx.session.id)
    return ctx.session.state is not SessionState.CLOSING


def _no_channel(verb: str) -> IrcError:
    """``JOIN ,,`` names no channel: 461, rather than no answer at all."""
    return IrcError(n.ERR_NEEDMOREPARAMS, verb, "Not enough parameters (no channel named)")


async def _join(ctx: IrcContext, name: str, key: str) -> None:
    services, user = ctx.services, ctx.user
    room = services.rooms.find(room_name(name))
    if room is None:
        if is_guest(user) and services.rooms.creation != "everyone":
            raise IrcError(n.ERR_NOSUCHCHANNEL, name, "No such channel (guests cannot create "
                           "rooms)")
        try:
            async with services.protection.creating_room(user):
                room = await (ctx.listener.guests.create(ctx.session, name) if is_guest(user)
                              else services.rooms.create(user, name, Mode.OPEN, ctx.session))
        except ChatError as exc:
            if exc.code is not Code.NAME_TAKEN:
                raise
            room = existing_room(ctx, name)  # created meanwhile by someone else: join it
        else:
            _announce(ctx, room)
            return
    if room.is_member(user.id):
        _announce(ctx, room)
    elif is_guest(user):
        await ctx.listener.guests.join(ctx.session, room, key or None)
        _announce(ctx, room)
    elif await services.admission.admit(user, room, ctx.session, key or None) == "requested":
        renderer = ctx.listener.renderer
        ctx.lines.extend(renderer.tagged([format_line(
            "NOTICE", ctx.nick, f"{channel(room.name)} admits by request: your request is "
            "filed; you will be notified of the answer.", source=renderer.server)],
            ctx.session.key))
    else:
        _announce(ctx, room)


@irc_command("PART", min_params=1, scope=Scope.POST)
async def part(ctx: IrcContext) -> None:
    """Leave channels (the room membership ends, as with /leave)."""
    reason = plain_text(ctx.params[1]) if len(ctx.params) > 1 else ""
    names = targets(ctx.params[0])
    if not names:
        raise _no_channel("PART")
    for name in names:
        with ctx.attempt(name):
            room = existing_room(ctx, name)
            if not room.is_member(ctx.user.id):
                raise IrcError(n.ERR_NOTONCHANNEL, name, "You're not on that channel")
            await _part(ctx, room, reason)


async def _part(ctx: IrcContext, room: Room, reason: str) -> None:
    """Leave ``room``, once the user's message bucket has a token (taken): a PART is
    shown to every member, with a text of the client's choosing, and without it a
    JOIN and PART in turn showed them two lines per command token."""
    paid = when_paid(ctx, _paid)
    if paid is not None:
        await paid
    if ctx.session.state is SessionState.CLOSING:
        return  # the client went away while its PART waited
    user = ctx.user
    if is_guest(user):
        await ctx.listener.guests.leave(ctx.session, room, reason)
    else:
        # As /leave: a decision queued first (the room ended, a kick) may have taken
        # the user out already; the PART below still tells the client it is out.
        await ctx.services.rooms.leave(user, room, ctx.session, reason)
    ctx.session.shown_parted(room.id)
    params = [channel(room.name), *([reason] if reason else [])]
    renderer = ctx.listener.renderer
    ctx.lines.extend(renderer.tagged([format_line("PART", *params, source=renderer.mask(ctx.nick),
                                                  trailing=len(params) > 1)], ctx.session.key))


def _paid() -> None:
    """Nothing to do once a message token is taken: the leave comes after it."""


def topic_scope(params: tuple[str, ...]) -> Scope:
    """What TOPIC needs of a token login: asking is ``read``; setting it is
    ``moderate``, as the line protocol's /topic."""
    return Scope.READ if len(params) == 1 else Scope.MODERATE


@irc_command("TOPIC", min_params=1, scope=topic_scope, own_events=True)
async def topic(ctx: IrcContext) -> None:
    """Show a channel's topic, or set it (room admins and the owner)."""
    name = ctx.params[0]
    ctx.channel = name
    room, user = visible_room(ctx, name), ctx.user
    if len(ctx.params) == 1:
        ctx.lines.extend(topic_lines(ctx.listener.renderer.server, ctx.nick, room))
        return
    if not room.is_member(user.id) and not user.is_admin:
        raise IrcError(n.ERR_NOTONCHANNEL, name, "You're not on that channel")
    authorize(Action.TOPIC, room, user)
    # The topic event reaches every member, this connection included. A longer one
    # is cut to TOPICLEN, as IRC servers do with what ISUPPORT announced.
    await ctx.services.rooms.set_topic(user, room, plain_text(ctx.params[1])[:TOPIC_MAX])


@irc_command("NAMES")
def names(ctx: IrcContext) -> None:
    """List who is in channels: every member, ~ the owner and @ the admins."""
    renderer = ctx.listener.renderer
    asked = targets(ctx.params[0]) if ctx.params else []
    if not asked:
        # NAMES alone, or a list of empty elements (NAMES ,,,): the end of an
        # empty list, rather than no answer at all (modern docs' NAMES message).
        ctx.reply(n.RPL_ENDOFNAMES, "*", "End of /NAMES list")
        return
    for name in asked:
        room = ctx.services.rooms.find(name) if name.startswith("#") else None
        if room is not None and ctx.services.rooms.can_see(ctx.user, room):
            ctx.lines.extend(names_lines(renderer, ctx.nick, room, ctx.session.caps))
        else:
            ctx.reply(n.RPL_ENDOFNAMES, name, "End of /NAMES list")


@irc_command("KICK", min_params=2, errors={Code.NOT_IN_ROOM: n.ERR_USERNOTINCHANNEL},
             scope=Scope.MODERATE, own_events=True)
async def kick(ctx: IrcContext) -> None:
    """Remove members from a channel (room admins; admins only by the owner)."""
    name, nicks = ctx.params[0], targets(ctx.params[1])
    if not nicks:
        # "KICK #room ," or "KICK #room :" names no one: 461, as "JOIN ,," is.
        raise IrcError(n.ERR_NEEDMOREPARAMS, "KICK", "Not enough parameters (no nick named)")
    reason = plain_text(ctx.params[2]) if len(ctx.params) > 2 else ""
    with ctx.attempt(name):
        room = visible_room(ctx, name)
        for nick in nicks:
            with ctx.attempt(name, nick):
                # A guest too: it is told by its KICK, having nowhere to keep a
                # notification (moderation.kick skips it).
                await ctx.services.moderation.kick(ctx.user, room, existing_user(ctx, nick),
                                                   reason)


@irc_command("INVITE", min_params=2, errors={Code.BANNED: n.ERR_UNKNOWNERROR},
             scope=Scope.MODERATE)
async def invite(ctx: IrcContext) -> None:
    """Invite a user to a channel (room admins): single use, valid rooms.invitation_ttl."""
    nick, name = ctx.params[0], ctx.params[1]
    ctx.channel, ctx.target = name, nick
    target = existing_user(ctx, nick)
    room = visible_room(ctx, name)
    if is_guest(target) or is_guest(ctx.user):
        raise IrcError(n.ERR_UNKNOWNERROR, "INVITE", "guests join open rooms only and "
                       "cannot invite")
    await ctx.services.admission.invite(ctx.user, room, target)
    ctx.reply(n.RPL_INVITING, target.name, channel(room.name))
