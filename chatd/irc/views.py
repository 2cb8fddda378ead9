"""How rooms and members read in IRC: prefixes, NAMES, topics and WHO rows.

Shared by the session (which announces a channel when a room appears to a
client) and the command handlers. Pure functions of the domain objects.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Final

from chatd.domain.room import Member, Role, Room
from chatd.irc import numerics as n
from chatd.irc.codec import MAX_BODY, format_line
from chatd.irc.render import MODE_FLAGS, channel

if TYPE_CHECKING:
    from chatd.irc.render import IrcRenderer

# How a role reads before a nick. The owner is a channel operator like the
# admins, as the creator of a channel is on other servers; a client that asked
# for multi-prefix sees the owner's ~ too (ISUPPORT tells each client which).
PREFIX: Final = {Role.OWNER: "@", Role.ADMIN: "@", Role.VOICE: "+", Role.MEMBER: ""}
MULTI_PREFIX: Final = {**PREFIX, Role.OWNER: "~@"}
PREFIX_TOKEN: Final = {False: "PREFIX=(ov)@+", True: "PREFIX=(qov)~@+"}


def prefix(role: Role, caps: Collection[str] = ()) -> str:
    """The prefix of ``role`` for a client with ``caps``."""
    return (MULTI_PREFIX if "multi-prefix" in caps else PREFIX)[role]


def numeric(server: str, code: str, nick: str, *params: str) -> str:
    """A numeric reply line from ``server`` to ``nick``."""
    return format_line(code, nick or "*", *params, source=server)


def members_in_order(room: Room) -> list[Member]:
    """Owner, then admins, then members, each in join order (as /who lists them)."""
    return sorted(room.members.values(), key=lambda m: (-m.role.rank, m.seq))


def channel_modes(room: Room) -> str:
    """The room's channel mode letters (without arguments), for LIST."""
    return "+" + room.modes.letters() + MODE_FLAGS[room.mode.value]


def channel_mode_params(room: Room, show_key: bool) -> list[str]:
    """RPL_CHANNELMODEIS's mode string and arguments; the key only when ``show_key``."""
    return [channel_modes(room), *room.modes.arguments(show_key)]


def names_lines(renderer: IrcRenderer, nick: str, room: Room,
                caps: Collection[str] = ()) -> list[str]:
    """RPL_NAMREPLY lines (as many as fit) and RPL_ENDOFNAMES, with every prefix
    (``multi-prefix``) and full masks (``userhost-in-names``) if the client asked."""
    server, name = renderer.server, channel(room.name)
    # "@" says the channel is +s, and clients take it so (irssi adds s to the
    # modes it shows, and no 324 takes it away): a private room, +i, is "=".
    symbol = "@" if room.modes.secret else "="
    shown = renderer.mask if "userhost-in-names" in caps else str
    lines = list_lines(server, n.RPL_NAMREPLY, nick, (symbol, name),
                       (prefix(m.role, caps) + shown(m.name) for m in members_in_order(room)))
    return [*lines, numeric(server, n.RPL_ENDOFNAMES, nick, name, "End of /NAMES list")]


def list_lines(server: str, code: str, nick: str, params: Sequence[str],
               items: Iterable[str], separator: str = " ") -> list[str]:
    """A numeric whose last parameter lists ``items``, in as many lines as it takes
    for each to fit in an IRC line: never an item cut, never one left out."""
    budget = MAX_BODY - len(numeric(server, code, nick, *params, "x").encode())
    return [numeric(server, code, nick, *params, separator.join(chunk))
            for chunk in _chunks(items, budget)]


def _chunks(words: Iterable[str], budget: int) -> list[list[str]]:
    """Group ``words`` so each group, space-separated, fits in ``budget`` bytes."""
    groups: list[list[str]] = []
    size = budget + 1
    for word in words:
        length = len(word.encode()) + 1
        if size + length > budget:
            groups.append([])
            size = 0
        groups[-1].append(word)
        size += length
    return groups


def topic_lines(server: str, nick: str, room: Room, on_join: bool = False) -> list[str]:
    """RPL_TOPIC, or RPL_NOTOPIC (which a JOIN leaves out)."""
    if room.topic:
        return [numeric(server, n.RPL_TOPIC, nick, channel(room.name), room.topic)]
    if on_join:
        return []
    return [numeric(server, n.RPL_NOTOPIC, nick, channel(room.name), "No topic is set")]


def join_lines(renderer: IrcRenderer, nick: str, room: Room, key: int,
               caps: Collection[str] = ()) -> list[str]:
    """What a client of tag mode ``key`` sees when it is in a room: its JOIN (tagged
    as the JOINs of others), the topic and the names."""
    server = renderer.server
    join = format_line("JOIN", channel(room.name), source=renderer.mask(nick), trailing=False)
    return [*renderer.tagged([join], key),
            *topic_lines(server, nick, room, on_join=True),
            *names_lines(renderer, nick, room, caps)]
