"""MONITOR (IRCv3): be told when nicks come online and go offline.

``MONITOR + a,b`` adds nicks to the connection's list (at most
:data:`chatd.irc.people.MONITOR_MAX`, ``734`` past it) and answers with their
state now; ``- a,b`` removes, ``C`` clears, ``L`` lists (``732``/``733``),
``S`` gives every state again. A nick is online while its user has a
connection of either listener (``730 :nick!user@host``), offline otherwise
(``731 :nick``); guests count while they are connected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from chatd.domain import names
from chatd.domain.names import name_key
from chatd.irc import numerics as n
from chatd.irc.commands import irc_command
from chatd.irc.lookup import find_user, targets
from chatd.irc.numerics import IrcError
from chatd.irc.people import MONITOR_MAX

if TYPE_CHECKING:
    from chatd.irc.commands import IrcContext


@irc_command("MONITOR", min_params=1)
def monitor(ctx: IrcContext) -> None:
    """Watch nicks come and go: MONITOR + nicks, - nicks, C, L, S."""
    action = _ACTIONS.get(ctx.params[0].upper())
    if action is None:
        raise IrcError(n.ERR_UNKNOWNERROR, "MONITOR", "unknown MONITOR action: use + - C L S")
    action(ctx, targets(ctx.params[1]) if len(ctx.params) > 1 else [])


def _add(ctx: IrcContext, nicks: list[str]) -> None:
    """Add the nicks not watched yet, and tell their state. The monitor spec adds
    only valid nicks and adds none twice: a nick already on the list (or twice in
    this one) is neither added nor told again, nor is a word no one could hold."""
    added = []
    for position, nick in enumerate(nicks):
        if not _is_nick(nick) or name_key(nick) in ctx.session.monitoring:
            continue
        if not ctx.listener.people.monitor(ctx.session, nick):
            ctx.reply(n.ERR_MONLISTFULL, str(MONITOR_MAX), ",".join(nicks[position:]),
                      "Monitor list is full")
            break
        added.append(nick)
    _states(ctx, added)


def _is_nick(word: str) -> bool:
    """Whether ``word`` is a nick someone could hold (a user name: accounts' and
    guests' alike)."""
    try:
        names.user_name(word)
    except names.InvalidName:
        return False
    return True


def _remove(ctx: IrcContext, nicks: list[str]) -> None:
    for nick in nicks:
        ctx.listener.people.unmonitor(ctx.session, nick)


def _clear(ctx: IrcContext, nicks: list[str]) -> None:
    _remove(ctx, list(ctx.session.monitoring.values()))


def _list(ctx: IrcContext, nicks: list[str]) -> None:
    listed = list(ctx.session.monitoring.values())
    if listed:
        ctx.reply_list(n.RPL_MONLIST, (), listed, ",")
    ctx.reply(n.RPL_ENDOFMONLIST, "End of MONITOR list")


def _status(ctx: IrcContext, nicks: list[str]) -> None:
    _states(ctx, list(ctx.session.monitoring.values()))


def _states(ctx: IrcContext, nicks: list[str]) -> None:
    """One 730 for the nicks online, one 731 for the others."""
    online, offline = [], []
    for nick in nicks:
        user = find_user(ctx, nick)
        if user is not None and user.online:
            online.append(ctx.listener.renderer.mask(user.name))
        else:
            offline.append(nick)
    if online:
        ctx.reply_list(n.RPL_MONONLINE, (), online, ",")
    if offline:
        ctx.reply_list(n.RPL_MONOFFLINE, (), offline, ",")


_ACTIONS: Final[dict[str, Callable[[IrcContext, list[str]], None]]] = {
    "+": _add, "-": _remove, "C": _clear, "L": _list, "S": _status}
