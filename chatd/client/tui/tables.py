"""The tables of list replies, as the server's text mode draws them.

A person who used chatd over telnet reads the same table here: the server's column
names (``room``, not the JSON field ``name``), its cells (``yes``/``no``, sizes as
``1.5 KiB``, ``member now``) and its numbers right-aligned. Only times differ: they
are the person's local time here, so the columns leave out the server's "(UTC)".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chatd.content.previews import human_size
from chatd.domain.names import format_duration

Item = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its header, its cell for an item, and whether it is a number
    (right-aligned, as text mode's ids and counts are)."""

    header: str
    cell: Callable[[Item], object]
    right: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    """The table a reply's list field makes: its columns, and its rows."""

    columns: tuple[Column, ...]
    items: Sequence[Item]

    @property
    def right(self) -> tuple[int, ...]:
        return tuple(i for i, column in enumerate(self.columns) if column.right)


def field(name: str, right: bool = False, header: str | None = None) -> Column:
    """A column that shows the item's field ``name`` as it is."""
    return Column(header or name, lambda item: item.get(name), right)


def when(name: str, header: str, absent: str = "") -> Column:
    """A column of times (epoch seconds or ISO), shown as a local date; ``absent``
    where there is none (a token that never expires)."""
    return Column(header, lambda item: absent if item.get(name) is None
                  else local_time(item.get(name)))


def yes_no(name: str, header: str | None = None) -> Column:
    return Column(header or name, lambda item: "yes" if item.get(name) else "no")


def _member(item: Item) -> str:
    return f"{item.get('user')}" + (" (bot)" if item.get("bot") else "")


def _first_line(item: Item) -> str:
    return str(item.get("art") or "").split("\n")[0].strip()


def _room_of_file(item: Item) -> str:
    if item.get("room") is None:
        return "-"
    return f"#{item['room']}" + (" (ended)" if item.get("room_ended") else "")


def _size(item: Item) -> str:
    size = item.get("size")
    return human_size(size) if isinstance(size, int) else ""


def _room_state(item: Item) -> str:
    """/myrooms' state column: as the server words it."""
    if "role" in item and "last_joined" not in item:
        return "member now"
    if item.get("terminated"):
        return "terminated"
    if item.get("banned"):
        until = item.get("until")
        return "banned" if until is None else \
            f"banned for {format_duration(float(until) - time.time())} more"
    joined = item.get("last_joined")
    return f"last joined {time.strftime('%Y-%m-%d', time.localtime(float(joined or 0)))}"


def _scopes(item: Item) -> str:
    scopes = item.get("scopes")
    return ",".join(scopes) if isinstance(scopes, list) else str(scopes or "")


_ID = field("id", right=True)
_ROOMS = (_ID, field("name", header="room"), field("mode"), field("members", right=True),
          field("topic"))
_MY_ROOMS = (_ID, field("name", header="room"), field("role"), Column("state", _room_state))
_FILES = (_ID, field("name"), Column("size", _size), field("mime", header="type"),
          field("uploader"))
_MY_FILES = (_ID, field("name"), Column("size", _size), Column("room", _room_of_file),
             when("time", "uploaded"))
_TOKENS = (field("name"), field("kind"), Column("scopes", _scopes), when("created", "created"),
           when("expires", "expires", "never"), when("last_used", "last used", "never"))

# (command, list field): the columns of its text-mode table. A command not named here
# shows its list field with these columns whatever the command (FIELDS).
BY_COMMAND: dict[tuple[str, str], tuple[Column, ...]] = {
    ("myfiles", "files"): _MY_FILES,
}
FIELDS: dict[str, tuple[Column, ...]] = {
    "rooms": _ROOMS,
    "members": (Column("user", _member), field("role"), yes_no("online")),
    "files": _FILES,
    "conversations": (field("user", header="with"), when("last", "last message"),
                      yes_no("online")),
    "requests": (field("user"), when("since", "asked")),
    "stickers": (field("name", header="sticker"),
                 Column("size", lambda s: f"{s.get('width')}x{s.get('height')}"),
                 Column("first line", _first_line)),
    "notifications": (when("ts_epoch", "when"), field("kind"), field("text", header="what")),
    "keys": (field("user"), field("fingerprint"),
             Column("post-quantum", lambda k: "yes" if "pq_key" in k else "no")),
    "tokens": _TOKENS,
    "bots": (field("user", header="bot"), Column("owner", lambda b: b.get("owner") or "-"),
             yes_no("online"), when("since", "since")),
    "webhooks": (_ID, field("bot"), when("created", "created"), yes_no("by_token", "by token"),
                 Column("state", lambda w: f"dead: {w['dead']}" if w.get("dead") else "live")),
    "entries": (when("ts", "when"), field("actor"), field("action"), field("target"),
                field("room"), field("reason")),
    "blocks": (field("user"), when("since", "since")),
}


def local_time(value: object) -> str:
    """Epoch seconds or an ISO time as a local ``YYYY-MM-DD HH:MM``; other values as
    they are."""
    if isinstance(value, bool) or value is None:
        return cell(value)
    try:
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(value, tz=UTC)
        else:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return str(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def cell(value: object) -> str:
    """A value as a table shows it: nothing for none, yes for true."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    return str(value)


def rows(table: Table) -> tuple[tuple[str, ...], ...]:
    """The table's header, then a row of cells for each item."""
    head = tuple(column.header for column in table.columns)
    return (head, *(tuple(cell(column.cell(item)) for column in table.columns)
                    for item in table.items))


def tables(final: Item) -> list[Table]:
    """The tables of an ``ok`` reply, in the order of its fields. /myrooms' rooms you
    are in and those you were in are one table, as text mode has them."""
    command = str(final.get("command", ""))
    if command == "myrooms":
        items = [*_items(final, "rooms"), *_items(final, "past")]
        return [Table(_MY_ROOMS, items)] if items else []
    found = []
    for name, value in final.items():
        columns = BY_COMMAND.get((command, name)) or FIELDS.get(name)
        items = _items(final, name)
        if columns is not None and items and isinstance(value, list):
            found.append(Table(columns, items))
    return found


def _items(final: Item, name: str) -> list[Item]:
    value = final.get(name)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        return []
    return value
