"""Server-wide commands: USERHOST, ISON, TIME, INFO, and the operators' OPER, KILL, WALLOPS;
user modes (``+i``, ``+w``, ``+B``, ``+o``).

IRC operators are chatd's **server admins** (an account's admin flag, set with
``chatd useradd --admin`` or ``/admin``): there is no separate oper block.
``OPER <account> <password>`` checks the admin's own account and password and
sets the user mode ``+o``; KILL and WALLOPS are for server admins, with or
without OPER (as every other admin right in chatd), and ``481`` for anyone else.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

from chatd.domain.names import name_key
from chatd.domain.scopes import Scope
from chatd.errors import ChatError
from chatd.irc import numerics as n
from chatd.irc.auth import checked_login
from chatd.irc.codec import MAX_BODY, format_line, plain_text
from chatd.irc.commands import irc_command
from chatd.irc.guests import is_guest
from chatd.irc.lookup import away_message, existing_user, find_user, targets
from chatd.irc.numerics import IrcError
from chatd.irc.session import USER_MODES

if TYPE_CHECKING:
    from chatd.irc.commands import IrcContext

# USERHOST answers for at most this many nicks (RFC 2812).
USERHOST_MAX: Final = 5
# User modes a client may set on itself; +o comes from OPER only (and may be dropped).
SELF_MODES: Final = "iwB"


# -- user modes ----------------------------------------------------------------------


def user_modes(ctx: IrcContext) -> str:
    return "+" + ctx.session.modes


def change_user_modes(ctx: IrcContext, changes: list[tuple[str, str]]) -> None:
    """Apply ``(sign, flag)`` changes to the client's own modes; show what changed."""
    changed, last, unknown = "", "", False
    for sign, flag in changes:
        on = sign == "+"
        if flag not in USER_MODES or (flag == "o" and on):
            unknown = unknown or flag not in USER_MODES
            continue
        if _set_flag(ctx, flag, on):
            # One sign for a run of changes of the same sign: +iw, not +i+w.
            changed += flag if last == sign else sign + flag
            last = sign
    if changed:
        _tell_modes(ctx, changed)
    if unknown:
        ctx.reply(n.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")


def _tell_modes(ctx: IrcContext, changed: str) -> None:
    """The client's ``MODE nick`` line of what changed in its user modes: its own
    act, tagged as every event it is shown (``time`` with server-time)."""
    renderer = ctx.listener.renderer
    ctx.lines.extend(renderer.tagged([format_line("MODE", ctx.nick, changed, trailing=False,
                                                  source=renderer.mask(ctx.nick))],
                                     ctx.session.key))


def _set_flag(ctx: IrcContext, flag: str, on: bool) -> bool:
    """Set one user mode; whether it changed. A bot account's ``+B`` stays: it is
    what the account is, not what its client says."""
    session = ctx.session
    if flag == "B" and not on and ctx.user.is_bot:
        return False
    if not session.set_mode(flag, on):
        return False
    if flag == "B":
        ctx.listener.people.set_bot(ctx.nick, on)
    elif flag == "i":
        ctx.listener.people.set_invisible(session, on)
    return True


# -- queries -----------------------------------------------------------------------


@irc_command("USERHOST", min_params=1)
def userhost(ctx: IrcContext) -> None:
    """``nick[*]=[+-]user@host`` for up to 5 nicks (* a server admin, - away)."""
    replies = []
    for nick in [t for param in ctx.params for t in targets(param)][:USERHOST_MAX]:
        user = find_user(ctx, nick)
        if user is None:
            continue
        oper = "*" if user.is_admin else ""
        here = "-" if away_message(ctx, user) is not None else "+"
        mask = ctx.listener.renderer.mask(user.name)
        replies.append(f"{user.name}{oper}={here}{mask.split('!', 1)[1]}")
    ctx.reply(n.RPL_USERHOST, " ".join(replies))


# The bytes of nicks one ISON reply carries: a line less its prefix, the numeric,
# the client's nick and the separators (a nick is at most NICKLEN, 24).
ISON_ROOM: Final = MAX_BODY - 64 - 24


@irc_command("ISON", min_params=1)
def ison(ctx: IrcContext) -> None:
    """Which of the nicks are online (RFC 2812): what irssi's /notify polls with, as
    do other clients without MONITOR. An account is online while it has a connection
    of either listener, a guest while it is connected; each is named as the server
    spells it, in one reply (a request is one line, so its answer fits in one)."""
    online: list[str] = []
    size = 0
    for nick in (word for param in ctx.params for word in param.split(" ") if word):
        user = find_user(ctx, nick)
        if user is None or not user.online:
            continue
        size += len(user.name.encode()) + 1
        if size > ISON_ROOM:
            break
        online.append(user.name)
    ctx.reply(n.RPL_ISON, " ".join(online))


@irc_command("TIME")
def time_(ctx: IrcContext) -> None:
    """The server's time."""
    now = ctx.services.clock.time()
    text = time.strftime("%A %B %d %Y -- %H:%M:%S +00:00", time.gmtime(now))
    ctx.reply(n.RPL_TIME, ctx.listener.renderer.server, text)


@irc_command("INFO")
def info(ctx: IrcContext) -> None:
    """What this server is."""
    services = ctx.services
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(services.started_at))
    for line in (f"chatd {services.version}",
                 "A chat daemon: rooms with governance, over its own line protocol and IRC.",
                 "Rooms are channels; members stay members when they disconnect.",
                 f"Running since {started}."):
        ctx.reply(n.RPL_INFO, line)
    ctx.reply(n.RPL_ENDOFINFO, "End of INFO list")


# -- operators ------------------------------------------------------------------------


@irc_command("OPER", min_params=2, scope=Scope.ADMIN)
async def oper(ctx: IrcContext) -> None:
    """Become an IRC operator: OPER <your account> <its password> (server admins)."""
    name, password = ctx.params[0], ctx.params[1]
    if not password:
        # OPER name : gives no password: as OPER without one, not a log-in tried and
        # charged to the failed-login limits for a password that cannot be right.
        raise IrcError(n.ERR_NEEDMOREPARAMS, "OPER", "Not enough parameters")
    user = ctx.user
    if is_guest(user) or not user.is_admin or name_key(name) != name_key(user.name):
        raise IrcError(n.ERR_NOOPERHOST, "Only server admins are operators, with their "
                       "own account")
    accounts = ctx.services.accounts
    try:
        await checked_login(ctx, name, lambda: accounts.authenticate(name, password))
    except ChatError:
        raise IrcError(n.ERR_PASSWDMISMATCH, "Password incorrect") from None
    if _set_flag(ctx, "o", True):
        _tell_modes(ctx, "+o")
    ctx.reply(n.RPL_YOUREOPER, "You are now an IRC operator")


def _require_admin(ctx: IrcContext) -> None:
    if not ctx.user.is_admin:
        raise IrcError(n.ERR_NOPRIVILEGES, "Permission Denied- You're not an IRC operator")


@irc_command("KILL", min_params=2, scope=Scope.ADMIN)
async def kill(ctx: IrcContext) -> None:
    """Close every connection of a user: KILL <nick> :<reason> (server admins)."""
    _require_admin(ctx)
    ctx.target = ctx.params[0]
    target = existing_user(ctx, ctx.params[0])
    reason = plain_text(ctx.params[1]).strip() or "no reason"
    text = f"Killed ({ctx.nick} ({reason}))"
    for session in list(ctx.services.presence.connections(target)):
        session.send({"type": "notice", "text": f"you were disconnected by {ctx.nick}: "
                                                f"{reason}"})
        session.close(text)
    await ctx.services.audit.record("kill", actor=ctx.nick, target=target.name, reason=reason)


@irc_command("WALLOPS", min_params=1, scope=Scope.ADMIN)
def wallops(ctx: IrcContext) -> None:
    """A message to every IRC client with user mode +w (server admins)."""
    _require_admin(ctx)
    text = plain_text(ctx.params[0])
    renderer = ctx.listener.renderer
    lines = renderer.tagging([format_line("WALLOPS", text, source=renderer.mask(ctx.nick))])
    for session in ctx.listener.people.sessions():
        if session.has_mode("w"):
            session.queue_lines(lines(session.key))
