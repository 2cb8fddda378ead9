"""What a client is told when registration completes: 001-005, LUSERS and the MOTD.

``ISUPPORT`` (005) describes chatd's model in IRC terms: ``#`` channels,
operator ``@`` (owner and admins) and voice ``+`` prefixes, and the owner's
``~`` for clients that asked for ``multi-prefix``, the channel modes of :mod:`chatd.irc.modes`,
chatd's name lengths, ASCII case-insensitive names and UTF-8 only, the
targets each command takes, and the extensions (WHOX, MONITOR, CHATHISTORY,
the bot mode, ELIST).
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Final

from chatd.domain.names import ROOM_NAME_MAX, USER_NAME_MAX
from chatd.domain.presence import AWAY_MAX
from chatd.domain.rooms import TOPIC_MAX
from chatd.irc import numerics as n
from chatd.irc.codec import MAX_BODY, format_line
from chatd.irc.commands import irc_command
from chatd.irc.history import HISTORY_MAX
from chatd.irc.operators import USERHOST_MAX
from chatd.irc.people import MONITOR_MAX, USER_LEN
from chatd.irc.session import USER_MODES
from chatd.irc.views import PREFIX_TOKEN

if TYPE_CHECKING:
    from chatd.irc.commands import IrcContext

# At most this many tokens per 005 line (the usual limit clients expect).
TOKENS_PER_LINE: Final = 13
MAX_TARGETS: Final = 4
# Lists (b), always with an argument (k), with one when set (l), switches.
CHANMODES: Final = "CHANMODES=b,k,l,imnstR"
AWAY_LEN: Final = AWAY_MAX
# The longest real name (USER, SETNAME): ISUPPORT NAMELEN, which setname requires.
REALNAME_MAX: Final = 100


# What an ISUPPORT value may not hold as itself (a space would end the token),
# written as the \xHH escapes the modern client protocol defines.
_ISUPPORT_ESCAPES: Final = str.maketrans({" ": "\\x20", "=": "\\x3D", "\\": "\\x5C"})


def isupport_value(text: str) -> str:
    """``text`` as an ISUPPORT token's value: server.name may hold spaces."""
    return text.translate(_ISUPPORT_ESCAPES)


def isupport(network: str, multi_prefix: bool = False) -> list[str]:
    """The ISUPPORT tokens: each says what this server does, and no more (the
    owner's ~ is among the prefixes with ``multi-prefix``)."""
    return [
        "CASEMAPPING=ascii",
        "CHANTYPES=#",
        PREFIX_TOKEN[multi_prefix],
        CHANMODES,
        f"CHANNELLEN={ROOM_NAME_MAX + 1}",
        f"NICKLEN={USER_NAME_MAX}",
        f"USERLEN={USER_LEN}",
        f"NETWORK={isupport_value(network)}",
        f"MODES={MAX_TARGETS}",
        f"AWAYLEN={AWAY_LEN}",
        f"NAMELEN={REALNAME_MAX}",
        f"TOPICLEN={TOPIC_MAX}",
        f"TARGMAX=JOIN:,PART:,KICK:,NAMES:,LIST:,WHOIS:1,WHOWAS:1,USERHOST:{USERHOST_MAX},"
        f"MONITOR:,TAGMSG:1,PRIVMSG:{MAX_TARGETS},NOTICE:{MAX_TARGETS}",
        f"MAXTARGETS={MAX_TARGETS}",
        "ELIST=MNU",
        "SAFELIST",
        "WHOX",
        f"MONITOR={MONITOR_MAX}",
        f"CHATHISTORY={HISTORY_MAX}",
        "MSGREFTYPES=msgid,timestamp",
        "BOT=B",
        "UTF8ONLY",
    ]


def welcome(ctx: IrcContext) -> None:
    """001 to 005, then LUSERS and the MOTD."""
    services, nick = ctx.services, ctx.nick
    server = ctx.server_name()
    network = services.config.server.name
    ctx.reply(n.RPL_WELCOME, f"Welcome to the {network} IRC Network "
                             f"{ctx.listener.renderer.mask(nick)}")
    _reply_all(ctx, _introduction(server, network, services.version, services.started_at,
                                  "multi-prefix" in ctx.session.caps))
    lusers_lines(ctx)
    motd_lines(ctx)


# A reply formatted once for every client: its numeric, its parameters after the
# nick, and the end of its line after the nick (see _reply_all).
Formatted = tuple[str, tuple[str, ...], str]


@functools.lru_cache(maxsize=16)
def _introduction(server: str, network: str, version: str, started_at: float,
                  multi_prefix: bool) -> tuple[Formatted, ...]:
    """002 to 005: the same for every client but for its nick, so formatted once per
    server name, network, version and ``multi-prefix`` (they were most of the
    CPU of an IRC log-in)."""
    running = f"chatd-{version}"
    created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started_at))
    replies: list[tuple[str, tuple[str, ...]]] = [
        (n.RPL_YOURHOST, (f"Your host is {server}, running version {running}",)),
        (n.RPL_CREATED, (f"This server was created {created}",)),
        (n.RPL_MYINFO, (server, running, "".join(sorted(USER_MODES)), "biklmnoqstvR",
                        "bkloqv")),
    ]
    tokens = isupport(network, multi_prefix)
    for start in range(0, len(tokens), TOKENS_PER_LINE):
        replies.append((n.RPL_ISUPPORT, (*tokens[start:start + TOKENS_PER_LINE],
                                         "are supported by this server")))
    return tuple(_formatted(server, numeric, params) for numeric, params in replies)


def _formatted(server: str, numeric: str, params: tuple[str, ...]) -> Formatted:
    # (The server name is one word, never empty: the configuration checks it.)
    head = f":{server} {numeric} *"
    return numeric, params, format_line(numeric, "*", *params, source=server)[len(head):]


def _reply_all(ctx: IrcContext, replies: tuple[Formatted, ...]) -> None:
    """``ctx.reply`` of each, from its formatted end: the same line unless the nick
    makes it too long, which ``ctx.reply`` then cuts as always."""
    nick, server = ctx.nick, ctx.server_name()
    plain = bool(nick) and not nick.startswith(":") and " " not in nick and "\0" not in nick
    for numeric, params, end in replies:
        line = f":{server} {numeric} {nick}{end}"
        if plain and len(line.encode()) <= MAX_BODY:
            ctx.line(line)
        else:
            ctx.reply(numeric, *params)


def lusers_lines(ctx: IrcContext) -> None:
    """LUSERS: users, operators, unregistered connections, channels, and the peaks
    since start (the most users online, and connections open, at once)."""
    services = ctx.services
    presence = services.presence
    sessions = presence.sessions
    users = presence.users_online
    invisible = min(len(ctx.listener.people.invisible()), users)
    admins = presence.admins_online()
    unknown = presence.anonymous_sessions
    peak = max(presence.peak_users, users)
    # Counts and chatd's own words: formatted here, not by the general path (nine
    # replies of it were an eighth of an IRC log-in's CPU).
    _reply_all(ctx, (
        _counted(n.RPL_LUSERCLIENT,
                 f"There are {users - invisible} users and {invisible} invisible on 1 servers"),
        _counted(n.RPL_LUSEROP, str(admins), "operator(s) online"),
        _counted(n.RPL_LUSERUNKNOWN, str(unknown), "unknown connection(s)"),
        _counted(n.RPL_LUSERCHANNELS, str(services.rooms.count), "channels formed"),
        _counted(n.RPL_LUSERME, f"I have {len(sessions) - unknown} clients and 0 servers"),
        _counted(n.RPL_LOCALUSERS, str(users), str(peak),
                 f"Current local users {users}, max {peak}"),
        _counted(n.RPL_GLOBALUSERS, str(users), str(peak),
                 f"Current global users {users}, max {peak}"),
        _counted(n.RPL_STATSCONN,
                 f"Highest connection count: {presence.peak_sessions} ({peak} clients)")))


def _counted(numeric: str, *params: str) -> Formatted:
    """A reply of counts (digits) and a text of chatd's own (no line break, no
    leading colon): its end after the nick, as ``format_line`` writes it."""
    *counts, text = params
    return numeric, params, "".join(f" {count}" for count in counts) + f" :{text}"


def motd_lines(ctx: IrcContext) -> None:
    _reply_all(ctx, _motd(ctx.server_name(), ctx.services.config.server.motd))


@functools.lru_cache(maxsize=16)
def _motd(server: str, motd: str) -> tuple[Formatted, ...]:
    """The MOTD's replies, formatted once per server name and text."""
    if not motd:
        return (_formatted(server, n.ERR_NOMOTD, ("MOTD File is missing",)),)
    return (_formatted(server, n.RPL_MOTDSTART, (f"- {server} Message of the day - ",)),
            *(_formatted(server, n.RPL_MOTD, (f"- {line}",)) for line in motd.split("\n")),
            _formatted(server, n.RPL_ENDOFMOTD, ("End of /MOTD command.",)))


@irc_command("VERSION")
def version(ctx: IrcContext) -> None:
    """The server's version (351), then what it supports (005), as the welcome gave
    it: irssi's /version, and bots identifying the server, ask this way. (A server
    named as the parameter can only be this one: chatd links to no other.)"""
    services = ctx.services
    ctx.reply(n.RPL_VERSION, f"chatd-{services.version}", ctx.server_name(),
              "chatd: rooms with governance, over its own line protocol and IRC")
    introduction = _introduction(ctx.server_name(), services.config.server.name,
                                 services.version, services.started_at,
                                 "multi-prefix" in ctx.session.caps)
    _reply_all(ctx, tuple(reply for reply in introduction if reply[0] == n.RPL_ISUPPORT))


@irc_command("MOTD")
def motd(ctx: IrcContext) -> None:
    """Show the message of the day (server.motd)."""
    motd_lines(ctx)


@irc_command("LUSERS")
def lusers(ctx: IrcContext) -> None:
    """Count users, operators (server admins), unregistered connections and channels."""
    lusers_lines(ctx)
