"""LIST: the channels you can see, with the ELIST filters.

``LIST`` alone shows every room you can see (private rooms only to their
members). Its parameter is a comma-separated list of channels and conditions
(ISUPPORT ``ELIST=MNU``):

* ``#name`` or a mask with ``*`` and ``?`` (``#dev*``, ``*dev*``): the channel's
  name matches; these are alternatives, of which a channel must match one
  (RFC 2812: ``LIST #a,#b`` lists both);
* ``!mask``: the name does not match;
* ``>n`` / ``<n``: more / fewer than ``n`` members.

A channel is listed when it matches one of the names or masks, if any are
given, and meets every other condition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chatd.domain.names import MAX_NUMBER, is_number
from chatd.irc import numerics as n
from chatd.irc.commands import irc_command
from chatd.irc.lookup import targets
from chatd.irc.masks import Mask, has_wildcards
from chatd.irc.render import channel
from chatd.irc.views import channel_modes

if TYPE_CHECKING:
    from chatd.domain.room import Room
    from chatd.irc.commands import IrcContext

Condition = Callable[["Room"], bool]


def _name_matches(mask: str) -> Condition:
    pattern = Mask(mask)
    return lambda room: pattern.matches(channel(room.name))


def _is_name(word: str) -> bool:
    """A channel's name or a mask of names (an alternative), not a condition."""
    return word.startswith("#") or (word[:1] not in "!<>" and has_wildcards(word))


def condition(word: str) -> Condition | None:
    """One ELIST condition; None for one chatd does not know (it is ignored)."""
    digits = word[1:]
    if word[:1] in "<>" and digits.isascii() and digits.isdigit():
        # A bound past any count (20 digits and more) is still a bound, above every
        # room's: ignoring it would list every room for ">99999999999999999999".
        bound = int(digits) if is_number(digits) else MAX_NUMBER + 1
        if word[0] == ">":
            return lambda room: len(room.members) > bound
        return lambda room: len(room.members) < bound
    if word.startswith("!"):
        matches = _name_matches(word[1:])
        return lambda room: not matches(room)
    if _is_name(word):
        return _name_matches(word)
    return None


def _filter(words: list[str]) -> Condition:
    """Whether a room is listed: it matches one of the names and masks (when any are
    given) and meets every other condition."""
    names = [_name_matches(word) for word in words if _is_name(word)]
    checks = [c for c in map(condition, (w for w in words if not _is_name(w))) if c is not None]
    if names:
        checks.append(lambda room: any(matches(room) for matches in names))
    return lambda room: all(check(room) for check in checks)


@irc_command("LIST")
def list_(ctx: IrcContext) -> None:
    """List the channels you can see: LIST [#name,#mask,!mask,>n,<n]."""
    listed = _filter(targets(ctx.params[0]) if ctx.params else [])
    ctx.reply(n.RPL_LISTSTART, "Channel", "Users  Name")
    for room in ctx.services.rooms.listed_for(ctx.user):
        if listed(room):
            ctx.reply(n.RPL_LIST, channel(room.name), str(len(room.members)),
                      f"[{channel_modes(room)}] {room.topic}")
    ctx.reply(n.RPL_LISTEND, "End of /LIST")
