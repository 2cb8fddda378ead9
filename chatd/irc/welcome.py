"""What a client is told when registration completes: 001-005, LUSERS and the MOTD.

``ISUPPORT`` (005) describes chatd's model in IRC terms: ``#`` channels,
operator ``@`` (owner and admins) and voice ``+`` prefixes, and the owner's
``~`` for clients that asked for ``multi-prefix``, the channel modes of :mod:`chatd.irc.modes`,
chatd's name lengths, ASCII case-insensitive names and UTF-8 only, the
targets each command takes, and the extensions (WHOX, MONITOR, CHATHISTORY,
the bot mode, ELIST).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

from chatd.domain.names import ROOM_NAME_MAX, USER_NAME_MAX
from chatd.domain.presence import AWAY_MAX
from chatd.irc import numerics as n
from chatd.irc.commands import irc_command
from chatd.irc.history import HISTORY_MAX
from chatd.irc.operators import USER_MODES, USERHOST_MAX
from chatd.irc.people import MONITOR_MAX, USER_LEN
from chatd.irc.views import PREFIX_TOKEN

if TYPE_CHECKING:
    from chatd.irc.commands import IrcContext

# At most this many tokens per 005 line (the usual limit clients expect).
TOKENS_PER_LINE: Final = 13
MAX_TARGETS: Final = 4
# Lists (b), always with an argument (k), with one when set (l), switches.
CHANMODES: Final = "CHANMODES=b,k,l,imnstR"
AWAY_LEN: Final = AWAY_MAX


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
        f"NETWORK={network}",
        f"MODES={MAX_TARGETS}",
        f"AWAYLEN={AWAY_LEN}",
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
    server = ctx.listener.renderer.server
    version = f"chatd-{services.version}"
    network = services.config.server.name
    created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(services.started_at))
    ctx.reply(n.RPL_WELCOME, f"Welcome to the {network} IRC Network "
                             f"{ctx.listener.renderer.mask(nick)}")
    ctx.reply(n.RPL_YOURHOST, f"Your host is {server}, running version {version}")
    ctx.reply(n.RPL_CREATED, f"This server was created {created}")
    ctx.reply(n.RPL_MYINFO, server, version, "".join(sorted(USER_MODES)), "biklmnoqstvR", "bkloqv")
    tokens = isupport(network, "multi-prefix" in ctx.session.irc.caps)
    for start in range(0, len(tokens), TOKENS_PER_LINE):
        ctx.reply(n.RPL_ISUPPORT, *tokens[start:start + TOKENS_PER_LINE],
                  "are supported by this server")
    lusers_lines(ctx)
    motd_lines(ctx)


def lusers_lines(ctx: IrcContext) -> None:
    """LUSERS: users, operators, unregistered connections, channels, and the peaks
    since start (the most users online, and connections open, at once)."""
    services = ctx.services
    presence = services.presence
    sessions = presence.sessions
    users = presence.users_online
    admins = presence.admins_online()
    unknown = presence.anonymous_sessions
    peak = max(presence.peak_users, users)
    ctx.reply(n.RPL_LUSERCLIENT, f"There are {users} users and 0 invisible on 1 servers")
    ctx.reply(n.RPL_LUSEROP, str(admins), "operator(s) online")
    ctx.reply(n.RPL_LUSERUNKNOWN, str(unknown), "unknown connection(s)")
    ctx.reply(n.RPL_LUSERCHANNELS, str(services.rooms.count), "channels formed")
    ctx.reply(n.RPL_LUSERME, f"I have {len(sessions) - unknown} clients and 0 servers")
    ctx.reply(n.RPL_LOCALUSERS, str(users), str(peak),
              f"Current local users {users}, max {peak}")
    ctx.reply(n.RPL_GLOBALUSERS, str(users), str(peak),
              f"Current global users {users}, max {peak}")
    ctx.reply(n.RPL_STATSCONN, f"Highest connection count: {presence.peak_sessions} "
                               f"({peak} clients)")


def motd_lines(ctx: IrcContext) -> None:
    motd = ctx.services.config.server.motd
    if not motd:
        ctx.reply(n.ERR_NOMOTD, "MOTD File is missing")
        return
    ctx.reply(n.RPL_MOTDSTART, f"- {ctx.listener.renderer.server} Message of the day - ")
    for line in motd.split("\n"):
        ctx.reply(n.RPL_MOTD, f"- {line}")
    ctx.reply(n.RPL_ENDOFMOTD, "End of /MOTD command.")


@irc_command("MOTD")
def motd(ctx: IrcContext) -> None:
    """Show the message of the day (server.motd)."""
    motd_lines(ctx)


@irc_command("LUSERS")
def lusers(ctx: IrcContext) -> None:
    """Count users, operators (server admins), unregistered connections and channels."""
    lusers_lines(ctx)
