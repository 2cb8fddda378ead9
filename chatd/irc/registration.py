"""Registration (RFC 1459/2812 with IRCv3 CAP): NICK, USER, PASS, CAP, PING, PONG, QUIT.

Registration completes once the client has sent NICK and USER and ended any
CAP negotiation. The connection then logs in to chatd:

1. as the account SASL authenticated, or
2. as the account ``PASS`` names (``account:secret``, or the nick; a token
   alone names its own account), or
3. as a guest with its nick, when ``accounts.guests`` is on and the nick is
   free (no account's name, no other guest's);

and otherwise gets ``464`` and ``ERROR``. The secret is a password or an API
token (chatd.irc.auth); a token login has the token's scopes. The nick of an account is its
account name (001 tells the client), and cannot change afterwards (``484``
says why); a guest may change its nick to any free one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Final

from chatd.domain import names
from chatd.domain.names import name_key
from chatd.domain.scopes import ALL_SCOPES, Scope
from chatd.domain.tokens import Grant
from chatd.errors import ChatError, Code
from chatd.irc import numerics as n
from chatd.irc.auth import logged_in, names_no_secret, password_login, still_valid
from chatd.irc.codec import format_line, plain_text
from chatd.irc.commands import irc_command
from chatd.irc.guests import is_guest
from chatd.irc.lookup import rooms_of
from chatd.irc.messages import when_paid
from chatd.irc.numerics import IrcError
from chatd.irc.people import clean_username
from chatd.irc.session import CAP_302, NO_QUIT_MESSAGE
from chatd.irc.views import PREFIX_TOKEN
from chatd.irc.welcome import REALNAME_MAX, welcome

if TYPE_CHECKING:
    from chatd.irc.commands import IrcContext
    from chatd.irc.session import IrcState

CAPABILITIES: Final = ("away-notify", "batch", "draft/chathistory", "echo-message",
                       "labeled-response", "message-tags", "multi-prefix", "sasl",
                       "server-time", "setname", "userhost-in-names")
# The longest QUIT message (characters).
QUIT_MAX: Final = 200
# Values a client that speaks CAP 302 is shown.
_CAP_VALUES: Final = {"sasl": "PLAIN"}


@irc_command("CAP", min_params=1, registered=False, scope=None)
def cap(ctx: IrcContext) -> Awaitable[None] | None:
    """Capability negotiation: CAP LS [302], CAP LIST, CAP REQ :caps, CAP END."""
    session = ctx.session
    sub = ctx.params[0].upper()
    if sub == "LS":
        _negotiating(session, True)
        version = ctx.params[1] if len(ctx.params) > 1 else ""
        if names.is_number(version) and int(version) >= 302:
            # For the rest of the connection, as IRCv3's capability negotiation says:
            # a later CAP LS without a version is still shown the values.
            session.spoke_302()
        modern = session.speaks_302
        shown = [f"{c}={_CAP_VALUES[c]}" if modern and c in _CAP_VALUES else c
                 for c in CAPABILITIES]
        _cap_reply(ctx, "LS", " ".join(shown))
    elif sub == "LIST":
        _cap_reply(ctx, "LIST", " ".join(sorted(session.caps - {CAP_302})))
    elif sub == "REQ":
        _negotiating(session, True)
        _request(ctx, ctx.params[1] if len(ctx.params) > 1 else "")
    elif sub == "END":
        _negotiating(session, False)
        return complete(ctx)
    else:
        raise IrcError(n.ERR_INVALIDCAPCMD, ctx.params[0], "Invalid CAP command")
    return None


def _request(ctx: IrcContext, wanted: str) -> None:
    """Enable (or, with ``-``, disable) every capability asked for, or none."""
    session = ctx.session
    if not wanted.split():
        # A REQ of no capability asks for no change: refused (NAK, which changes
        # nothing), rather than an ACK of nothing; a NAK is what every client
        # negotiating during registration already reads before its CAP END.
        _cap_reply(ctx, "NAK", wanted)
        return
    caps = set(session.caps)
    for name in wanted.split():
        cap_name = name.removeprefix("-")
        if cap_name not in CAPABILITIES:
            _cap_reply(ctx, "NAK", wanted)
            return
        if name.startswith("-"):
            caps.discard(cap_name)
        else:
            caps.add(cap_name)
    had_prefix = "multi-prefix" in session.caps
    ctx.session.set_caps(caps)
    ctx.listener.people.caps_changed(ctx.session)
    _cap_reply(ctx, "ACK", wanted)
    if session.registered and ("multi-prefix" in caps) != had_prefix:
        # The prefixes it will be shown change (the owner's ~ comes or goes): told
        # again, as a client told PREFIX=(ov)@+ would read ~@alice as a nick.
        ctx.reply(n.RPL_ISUPPORT, PREFIX_TOKEN["multi-prefix" in caps],
                  "are supported by this server")


def _negotiating(session: IrcState, on: bool) -> None:
    """CAP negotiation opens or closes (it holds registration back, so only before it)."""
    if session.pending is not None:
        session.pending.negotiating = on


def _cap_reply(ctx: IrcContext, sub: str, text: str) -> None:
    # Formatted, not pasted: a NAK repeats what the client asked for, which may
    # hold a character that would break the line.
    server = ctx.server_name()
    ctx.line(format_line("CAP", ctx.nick, sub, text, source=server))


@irc_command("NICK", registered=False, scope=None)
def nick(ctx: IrcContext) -> Awaitable[None] | None:
    """Choose a nick (before registration; afterwards it is the account name)."""
    if not ctx.params or not ctx.params[0]:
        raise IrcError(n.ERR_NONICKNAMEGIVEN, "No nickname given")
    wanted, session = ctx.params[0], ctx.session
    try:
        names.user_name(wanted)
    except names.InvalidName:
        raise IrcError(n.ERR_ERRONEUSNICKNAME, wanted, "Erroneous nickname") from None
    if session.registered:
        return _change_nick(ctx, wanted)
    session.nick = wanted
    return complete(ctx)


def _change_nick(ctx: IrcContext, wanted: str) -> Awaitable[None] | None:
    """NICK after registration: a guest takes any free nick; an account keeps its name.
    The change waits for a message token (see when_paid)."""
    if wanted == ctx.nick:
        return None
    if not is_guest(ctx.user):
        raise IrcError(n.ERR_RESTRICTED, f"Your connection is restricted! Your nick is your "
                       f"account name, {ctx.nick}, and account names do not change")
    _refuse_taken(ctx, wanted)
    return when_paid(ctx, lambda: _rename(ctx, wanted))


def _refuse_taken(ctx: IrcContext, wanted: str) -> None:
    if name_key(wanted) != name_key(ctx.nick) and not ctx.listener.guests.nick_free(wanted):
        raise IrcError(n.ERR_NICKNAMEINUSE, wanted, "Nickname is already in use")


def _rename(ctx: IrcContext, wanted: str) -> None:
    """The guest's change of nick, once paid for: checked again, for the nick may have
    been taken while the change waited."""
    _refuse_taken(ctx, wanted)
    guests, people = ctx.listener.guests, ctx.listener.people
    mask = ctx.listener.renderer.mask(ctx.nick)
    # The identity moves first: the rooms are told at once, under the new nick.
    people.renamed(ctx.nick, wanted)
    guests.rename(ctx.session, wanted)
    # Tagged as the NICK others sharing a channel are shown (a rename event).
    ctx.lines.extend(ctx.listener.renderer.tagged([format_line("NICK", wanted, source=mask)],
                                                  ctx.session.key))


@irc_command("USER", min_params=4, registered=False, scope=None)
def user(ctx: IrcContext) -> Awaitable[None] | None:
    """Give the user name and real name: USER <user> <mode> <unused> :<realname>."""
    session = ctx.session
    if session.registered or session.username:
        raise IrcError(n.ERR_ALREADYREGISTERED, "You may not reregister")
    realname = plain_text(ctx.params[3]).strip()
    if not realname or not ctx.params[0]:
        raise IrcError(n.ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")
    # (Not interned: the interpreter's table of interned strings grows by an
    # entry per new name and never shrinks; IrcState.share_names dedups the
    # common case, a name that repeats the nick.)
    session.username = clean_username(ctx.params[0], "user")
    session.realname = realname[:REALNAME_MAX]
    return complete(ctx)


@irc_command("SETNAME", min_params=1, scope=Scope.POST)
def setname(ctx: IrcContext) -> Awaitable[None] | None:
    """Change your real name (IRCv3 setname): shown to you and, with the capability,
    to those sharing a channel with you, once a message token is there (when_paid)."""
    realname = plain_text(ctx.params[0]).strip()[:REALNAME_MAX]
    if not realname:
        if "setname" in ctx.session.caps:
            # (Without the capability, silence: the setname specification asks it.)
            ctx.line(format_line("FAIL", "SETNAME", "INVALID_REALNAME", "Real name is empty",
                                 source=ctx.listener.renderer.server))
        return None
    return when_paid(ctx, lambda: _set_realname(ctx, realname))


def _set_realname(ctx: IrcContext, realname: str) -> None:
    people = ctx.listener.people
    people.set_realname(ctx.session, realname)
    renderer = ctx.listener.renderer
    # One time for everyone shown it (with server-time), the client itself too.
    lines = renderer.tagging([format_line("SETNAME", realname, source=renderer.mask(ctx.nick))])
    for session in people.sharing_channel(ctx.user):
        if "setname" in session.caps and session is not ctx.session:
            session.queue_lines(lines(session.key))
    if "setname" in ctx.session.caps:
        ctx.lines.extend(lines(ctx.session.key))


@irc_command("PASS", min_params=1, registered=False, scope=None)
def pass_(ctx: IrcContext) -> None:
    """Give the password or an API token: PASS <account>:<secret>, or PASS <secret>
    (the nick's password, or a token alone)."""
    pending = ctx.session.pending
    if pending is None:
        raise IrcError(n.ERR_ALREADYREGISTERED, "You may not reregister")
    if names_no_secret(ctx.params[0]):
        # As PASS without a parameter: tried, it would be a failed log-in charged to
        # the address (and the name) for a password that cannot be right.
        raise IrcError(n.ERR_NEEDMOREPARAMS, "PASS", "Not enough parameters")
    pending.password = ctx.params[0]


@irc_command("PING", registered=False, scope=None)
def ping(ctx: IrcContext) -> None:
    """Answer with PONG and the same token."""
    if not ctx.params:
        raise IrcError(n.ERR_NOORIGIN, "No origin specified")
    server = ctx.server_name()
    # The token comes back as sent, but never a character that would break the line.
    ctx.line(format_line("PONG", server, ctx.params[0], source=server))


@irc_command("PONG", registered=False, scope=None)
def pong(ctx: IrcContext) -> None:
    """A client's answer to a PING (nothing to do: any input counts as activity)."""


@irc_command("QUIT", registered=False, scope=None)
def quit_(ctx: IrcContext) -> None:
    """Close the connection; an account's rooms keep its membership."""
    message = plain_text(ctx.params[0])[:QUIT_MAX] if ctx.params else NO_QUIT_MESSAGE
    ctx.session.quit_message = message
    asyncio.get_running_loop().call_soon(ctx.session.close, f"Quit: {message}")


# -- completing registration ---------------------------------------------------------


def complete(ctx: IrcContext) -> Awaitable[None] | None:
    """Register when NICK and USER are in and CAP negotiation is over."""
    session = ctx.session
    pending = session.pending
    if pending is None or pending.negotiating or session.nick == "*" or not session.username:
        return None
    if pending.sasl is not None:
        # An AUTHENTICATE exchange still waiting for its payload: registration ends
        # it, said with 906 (IRCv3 SASL), rather than leaving the client to think
        # it may still log in that way.
        pending.sasl = None
        ctx.reply(n.ERR_SASLABORTED, "SASL authentication aborted")
    return _register(ctx)


async def _register(ctx: IrcContext) -> None:
    # Held: direct messages replayed at login must come after the welcome.
    ctx.hold()
    grant = await _identify(ctx)
    if grant is None:
        return
    session, services, account = ctx.session, ctx.services, grant.user
    session.nick = account.name
    session.share_names()
    session.set_mode("B", account.is_bot)
    # What this login may do: every scope, or the token's (checked per command);
    # set before the log-in's first await, so never more than the grant.
    session.scopes = None if grant.scopes == ALL_SCOPES else grant.scopes
    try:
        logged = await services.presence.login(session, account, grant.token_id)
    except ChatError as exc:
        if exc.code is not Code.AUTH_FAILED:
            raise
        # The account was deleted since its password or token was checked: a 464
        # that ends registration ends the link too (ERROR, then close), as for a
        # wrong password; left open, the connection would linger unregistered.
        _refuse(ctx, exc.message)
        return
    if session.closing:
        # Gone while the log-in awaited (the replay of waiting direct messages):
        # its end was handled then (people.ended, the log-out); registering now
        # would make the dead session its account's identity again, for good.
        return
    session.completed()
    ctx.listener.people.registered(session)
    welcome(ctx)
    _skipped(ctx, int(logged.get("direct_messages_skipped", 0)))
    for room in rooms_of(ctx, account):
        if room.id not in session.joined:
            session.announce(room)


def _skipped(ctx: IrcContext, skipped: int) -> None:
    """Say how many older direct messages the log-in did not replay (past
    rooms.offline_replay_max): they are marked delivered all the same, so a client
    told nothing would never know to ask CHATHISTORY for them."""
    if not skipped:
        return
    renderer = ctx.listener.renderer
    plural = "s" if skipped != 1 else ""
    ctx.lines.extend(renderer.tagged([format_line(
        "NOTICE", ctx.nick, f"{skipped} older direct message{plural} sent while you were "
        "away not shown here: CHATHISTORY with their sender has them.",
        source=renderer.server)], ctx.session.key))


async def _identify(ctx: IrcContext) -> Grant | None:
    """Who this connection is: an account, a new guest, or nobody (then it is refused)."""
    session = ctx.session
    pending = session.pending
    if pending is None:  # (registration completes once: complete() checked)
        return None
    password, pending.password = pending.password, None  # no secret kept past here
    if pending.grant is not None:
        if still_valid(ctx, pending.grant, pending.account_changes):
            return pending.grant
        _refuse(ctx, "Password changed since SASL authentication"
                if pending.grant.token_id is None else "Token revoked since SASL authentication")
        return None
    if password is not None:
        try:
            grant = await password_login(ctx, password)
        except ChatError:
            _refuse(ctx, "Password incorrect")
            return None
        logged_in(ctx, grant.user)
        return grant
    guests = ctx.listener.guests
    if not guests.enabled:
        _refuse(ctx, "Password required: log in with SASL PLAIN or PASS account:password")
        return None
    if not guests.nick_free(session.nick):
        # Refused, so not the client's nick: until its next NICK it has none, and
        # numerics address it as "*" (433 * alice), as servers address a client
        # whose first NICK was in use.
        refused, session.nick = session.nick, "*"
        ctx.reply(n.ERR_NICKNAMEINUSE, refused, "Nickname is already in use")
        return None
    return Grant(guests.admit(ctx.session, session.nick))


def _refuse(ctx: IrcContext, text: str) -> None:
    ctx.reply(n.ERR_PASSWDMISMATCH, text)
    # After the reply is written (the context flushes first), then ERROR and close.
    asyncio.get_running_loop().call_soon(ctx.session.close, "not logged in")
