"""What the client shows, as plain data: the session makes Lines, the view draws them.

Keeping this free of rich and of the terminal makes the session testable:
tests read Lines instead of screen output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatd.client.tui.tables import local_time, rows, tables
from chatd.protocol.render import Style, render

# Text from other people reaches the terminal only after this: no escape
# sequence inside an encrypted message (which the server cannot clean) may
# recolour the screen or move the cursor, and no bidirectional override or
# isolate may reorder what a terminal that lays out bidirectional text draws
# after it (a name, another message's words); the marks LRM and RLM stay. A TAB
# becomes a space, as the server makes it in the text it can read: a terminal
# advances a TAB to a column of its own choosing, which no row's measure knows.
_BIDI_FORCING = (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
_CONTROLS = {c: "\ufffd" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0), *_BIDI_FORCING)
             if c not in (9, 10)} | {9: " "}
_PLAIN = Style()
# After a bot's name (a bot account's or a webhook's message): as /who marks a bot.
BOT_MARK = " (bot)"
# The end of a webhook's name, which says it is a bot already.
_NAMED_BOT = "[bot]"
USAGE_FORMS = "  |  "  # between the forms of a command's usage in /help's JSON
HELP_INDENT = "    "  # a command's description, under its usage


@dataclass(frozen=True, slots=True)
class Line:
    """One thing to show. ``kind`` is message, notice, event, error, warning or table."""

    kind: str
    text: str
    room: str | None = None
    sender: str | None = None
    to: str | None = None
    ts: str = ""
    action: bool = False
    encrypted: bool = False
    verified: bool = False
    rows: tuple[tuple[str, ...], ...] = ()
    message_id: int | None = None
    bot: bool = False  # sent by a bot: its sender is shown with BOT_MARK
    # The columns of a table that are numbers, drawn right-aligned as text mode does.
    right: tuple[int, ...] = ()


def clock(ts: str) -> str:
    """A message's time as ``HH:MM`` on the person's own clock: the server's times
    are UTC, and tables already show local times."""
    return local_time(ts)[11:16]


def bot_mark(line: Line) -> str:
    """What follows the sender's name: BOT_MARK for a bot's message, unless the name
    says so itself (a webhook's, ``deploy[bot]``); else nothing."""
    if not line.bot or (line.sender or "").endswith(_NAMED_BOT):
        return ""
    return BOT_MARK


def clean(text: str) -> str:
    return text.translate(_CONTROLS)


def notice(text: str) -> Line:
    return Line("notice", clean(text))


def warning(text: str, room: str | None = None) -> Line:
    return Line("warning", clean(text), room=room)


def error(text: str) -> Line:
    return Line("error", clean(text))


def plain_message(record: dict[str, Any]) -> Line:
    """A message the server can read (not end-to-end encrypted)."""
    text = str(record.get("text", ""))
    preview = (record.get("file") or {}).get("preview") or record.get("sticker_art")
    if preview:
        text = f"{text}\n{preview}"
    return Line("message", clean(text), room=record.get("room"), sender=record.get("from"),
                to=record.get("to"), ts=str(record.get("ts", "")),
                action=bool(record.get("action")), message_id=record.get("id"),
                bot=bool(record.get("bot")))


def from_record(record: dict[str, Any]) -> Line | None:
    """A Line for a non-message record (event, notice, error, notification)."""
    kind = record.get("type")
    if kind == "error":
        return error(f"{record.get('code')}: {record.get('message')}")
    if kind == "event" and record.get("event") == "e2e":
        return Line("event", clean(f"{record.get('actor')} turned end-to-end encryption "
                                   f"{record.get('state')} in #{record.get('room')}"),
                    room=record.get("room"))
    if kind == "event" and isinstance(record.get("until"), int | float):
        return Line("event", clean(_ending(record)), room=record.get("room"))
    if kind in ("event", "notice"):
        return Line("event" if kind == "event" else "notice", clean(_served_text(record)),
                    room=record.get("room"))
    return None


def _served_text(record: dict[str, Any]) -> str:
    """The server's own text sentence, so events read as they do over telnet."""
    rendered = render(record, _PLAIN).decode("utf-8", errors="replace")
    return "\n".join(line.removeprefix("* ").removeprefix("  ")
                     for line in rendered.rstrip("\r\n").split("\r\n"))


def _ending(record: dict[str, Any]) -> str:
    """A timed sanction's sentence, saying when it ends (before its reason): a mute's
    event carries ``until``, a ban's line is given it from its actor's reply."""
    text = _served_text({**record, "reason": ""})
    reason = record.get("reason")
    return f"{text} until {local_time(record['until'])}" + (f" ({reason})" if reason else "")


def from_ok(final: dict[str, Any]) -> list[Line]:
    """An ``ok`` reply: what its fields say (tables for lists), then its sentence.

    The JSON sentence is often only a summary ("1 conversation.") or empty (/help
    <command>): the content is in the fields, which text mode would have shown.
    """
    special = _SPECIAL.get(str(final.get("command", "")))
    shown = special(final) if special is not None else []
    for table in tables(final):
        cells = tuple(tuple(clean(cell) for cell in row) for row in rows(table))
        shown.append(Line("table", "", rows=cells, right=table.right))
    message = str(final.get("message", ""))
    if message:
        shown.append(notice(message))
    return shown


def _help(final: dict[str, Any]) -> list[Line]:
    """/help: every command's usage and what it does, or one command's."""
    commands = final.get("commands")
    if isinstance(commands, list):
        rows: list[tuple[str, ...]] = [("command",)]
        for described in (c for c in commands if isinstance(c, dict)):
            rows += _described(described)
        return [Line("table", "", rows=tuple(rows))]
    shown = [notice(str(final[key])) for key in ("usage", "help") if final.get(key)]
    if final.get("needs"):
        shown.append(notice(f"needs: {final['needs']}"))
    if final.get("aliases"):
        shown.append(notice("also: " + ", ".join(f"/{a}" for a in final["aliases"])))
    return shown


def _described(command: dict[str, Any]) -> list[tuple[str, ...]]:
    """One command of /help: each form of its usage on a row, what it does indented
    below, as text mode has a long usage. Side by side, the widest usage (three
    forms of /webhook) would push every description past the edge of the screen."""
    forms = [clean(form.strip()) for form in str(command.get("usage", "")).split(USAGE_FORMS)]
    rows: list[tuple[str, ...]] = [(form,) for form in forms]
    return [*rows, (HELP_INDENT + clean(str(command.get("help", ""))),)]


def _whois(final: dict[str, Any]) -> list[Line]:
    away = final.get("away")
    status = f"away ({away})" if away else ("online" if final.get("online") else "offline")
    rows = [("user", str(final.get("user", ""))), ("status", status),
            ("rooms", ", ".join(f"#{room}" for room in final.get("rooms") or []) or "-"),
            ("since", local_time(final.get("since")))]
    if final.get("admin"):
        rows.append(("role", "server admin"))
    if final.get("bot"):
        rows.append(("kind", f"bot, owned by {final.get('owner') or 'nobody'}"))
    return [Line("table", "", rows=tuple((clean(a), clean(b)) for a, b in rows))]


_SPECIAL = {"help": _help, "whois": _whois}
