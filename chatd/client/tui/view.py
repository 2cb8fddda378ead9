"""Drawing Lines on the terminal with rich.

Every piece of text from the network goes in as a rich ``Text`` (never as
markup), so a message holding ``[bold]`` or ``[link=...]`` shows as typed.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from chatd.client.tui.lines import Line, bot_mark, clock

NAME_COLOURS = ("green", "yellow", "blue", "magenta", "cyan", "bright_red", "bright_green",
                "bright_yellow", "bright_blue", "bright_magenta", "bright_cyan")
STYLES = {"notice": "dim", "event": "dim", "error": "bold red", "warning": "bold yellow"}
LOCKED, VERIFIED, UNVERIFIED = "\N{LOCK} ", "\N{CHECK MARK}", "?"


def name_style(name: str) -> str:
    """One stable colour per name, as the server's text mode does."""
    return NAME_COLOURS[zlib.crc32(name.lower().encode()) % len(NAME_COLOURS)]


class View:
    """Prints Lines; the current room is left implicit, as chatd's text mode does."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def show(self, shown: Iterable[Line], current_room: str | None = None) -> None:
        for line in shown:
            if line.kind == "table":
                self.console.print(self._table(line))
            elif line.kind == "message":
                self.console.print(self.message(line, current_room), soft_wrap=True)
            else:
                prefix = {"error": "! ", "warning": "! "}.get(line.kind, "* ")
                self.console.print(Text(prefix + line.text, style=STYLES.get(line.kind, "")),
                                   soft_wrap=True)

    def message(self, line: Line, current_room: str | None = None) -> Text:
        """``[10:00] #room <alice> text``, with a lock and a tick when encrypted."""
        out = Text()
        if line.ts:
            out.append(f"[{clock(line.ts)}] ", style="dim")
        if line.encrypted:
            out.append(LOCKED)
            mark = VERIFIED if line.verified else UNVERIFIED
            out.append(mark + " ", style="green" if line.verified else "bold yellow")
        sender = line.sender or "?"
        if line.to is not None:
            out.append("<")
            out.append(sender, style=name_style(sender))
            out.append(bot_mark(line), style="dim")
            out.append(" -> ")
            out.append(line.to, style=name_style(line.to))
            out.append("> ")
        else:
            if line.room and line.room != current_room:
                out.append(f"#{line.room} ", style="bold cyan")
            out.append("* " if line.action else "<")
            out.append(sender, style=name_style(sender))
            out.append(bot_mark(line), style="dim")
            out.append(" " if line.action else "> ")
        first, *rest = line.text.split("\n")
        out.append(first)
        for more in rest:
            out.append("\n    " + more)
        return out

    @staticmethod
    def _table(line: Line) -> Table:
        head, *rows = line.rows
        table = Table(box=None, show_edge=False, pad_edge=False)
        for i, column in enumerate(head):
            # Numbers to the right, as the server's text mode has them.
            table.add_column(column, style="", header_style="bold",
                             justify="right" if i in line.right else "left")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        return table
