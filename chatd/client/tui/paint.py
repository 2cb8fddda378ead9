"""Lines as coloured screen rows for the full-screen client, in the account's theme.

The colours are the server's own themes (``/set theme default|dark|light|mono``,
chatd.protocol.render.THEMES), translated from SGR codes to prompt_toolkit
styles, so a person sees the same colours in chatd-client as over telnet.
Every piece of text from the network arrives here already cleaned of control
characters (lines.clean) and is drawn as text, never as markup.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from functools import lru_cache

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.styles import Style

from chatd.client.tui import cells
from chatd.client.tui.lines import Line, bot_mark, clock
from chatd.protocol.render import THEMES, Theme

LOCKED, VERIFIED, UNVERIFIED = "\N{LOCK} ", "\N{CHECK MARK}", "?"
CONTINUATION = "  "  # the indent of a wrapped row

_SGR_COLOURS = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "gray")
_SGR_BRIGHT = ("brightblack", "brightred", "brightgreen", "brightyellow", "brightblue",
               "brightmagenta", "brightcyan", "white")


def sgr_style(code: str) -> str:
    """A prompt_toolkit style for an SGR parameter string: ``"1;36"`` is bold cyan."""
    parts = []
    # ASCII digits only, and few of them: "²".isdigit() is true, and int() refuses it.
    for number in (int(p) for p in code.split(";") if p.isascii() and p.isdigit()
                   and len(p) <= 3):
        if number == 1:
            parts.append("bold")
        elif number == 2:  # prompt_toolkit has no "dim": grey reads the same
            parts.append("fg:ansibrightblack")
        elif 30 <= number <= 37:
            parts.append(f"fg:ansi{_SGR_COLOURS[number - 30]}")
        elif 90 <= number <= 97:
            parts.append(f"fg:ansi{_SGR_BRIGHT[number - 90]}")
    return " ".join(parts)


def theme_of(name: str, color: bool = True) -> Theme | None:
    """The server's theme called ``name`` (default if unknown); None without colour."""
    return THEMES.get(name, THEMES["default"]) if color else None


def style_sheet(theme: Theme | None) -> Style:
    """The style classes the screen uses, coloured by ``theme`` (plain when None)."""
    rules = {"status": "reverse", "roomlist.current": "reverse", "scrolled": "reverse",
             "mention": "bold", "unread": "bold"}
    if theme is not None:
        rules |= {"error": sgr_style(theme.error), "warning": "bold " + sgr_style(theme.error),
                  "notice": sgr_style(theme.notice), "event": sgr_style(theme.notice),
                  "time": sgr_style(theme.notice), "room": sgr_style(theme.room),
                  "mention": "bold " + sgr_style(theme.error),
                  "bot": sgr_style(theme.notice),
                  "verified": "fg:ansigreen", "unverified": "bold fg:ansiyellow"}
    return Style.from_dict(rules)


def name_style(name: str, theme: Theme | None) -> str:
    """One stable colour per name, chosen as the server's text mode chooses it."""
    if theme is None:
        return ""
    names = theme.names
    return sgr_style(names[zlib.crc32(name.lower().encode()) % len(names)])


@lru_cache(maxsize=4096)
def fragments(line: Line, theme: Theme | None, current: str | None = None) -> StyleAndTextTuples:
    """One Line as styled text (it may hold newlines); ``current`` is the room shown."""
    if line.kind == "message":
        return _message(line, theme, current)
    if line.kind == "table":
        return [("", _table(line.rows, line.right))]
    prefix = "! " if line.kind in ("error", "warning") else "* "
    return [(f"class:{line.kind}", prefix + line.text)]


def _message(line: Line, theme: Theme | None, current: str | None) -> StyleAndTextTuples:
    out: StyleAndTextTuples = []
    if line.ts:
        out.append(("class:time", f"[{clock(line.ts)}] "))
    if line.encrypted:
        out.append(("", LOCKED))
        out.append(("class:verified", VERIFIED + " ") if line.verified
                   else ("class:unverified", UNVERIFIED + " "))
    sender = line.sender or "?"
    name = [(name_style(sender, theme), sender), ("class:bot", bot_mark(line))]
    if line.to is not None:
        out += [("", "<"), *name, ("", " -> "),
                (name_style(line.to, theme), line.to), ("", "> ")]
    else:
        if line.room and line.room != current:
            out.append(("class:room", f"#{line.room} "))
        out += [("", "* " if line.action else "<"), *name,
                ("", " " if line.action else "> ")]
    first, *rest = line.text.split("\n")
    out.append(("", first + "".join("\n    " + more for more in rest)))
    return out


def _table(rows: tuple[tuple[str, ...], ...], right: tuple[int, ...] = ()) -> str:
    """Aligned columns, as the server's text mode draws them: ``right`` (numbers) to
    the right."""
    widths = [max(cells.width(row[i]) for row in rows if i < len(row))
              for i in range(max(len(row) for row in rows))]

    def padded(i: int, cell: str) -> str:
        pad = " " * (widths[i] - cells.width(cell))
        return pad + cell if i in right else cell + pad

    return "\n".join("  " + "  ".join(padded(i, cell) for i, cell in enumerate(row)).rstrip()
                     for row in rows)


def wrap(styled: StyleAndTextTuples, width: int) -> list[StyleAndTextTuples]:
    """Screen rows of at most ``width`` cells: cut at newlines, then at the space
    before a word that would cross the edge. A word wider than a continued row (a
    long URL) is cut at the edge instead, never inside a grapheme cluster (an emoji
    sequence, a letter and its accents)."""
    rows = _Rows(max(width, len(CONTINUATION) + 2))  # room for a wide character
    for number, line in enumerate(_lines(styled)):
        if number:
            rows.new_line()
        for spaces, word in _words(line):
            rows.place(spaces, word)
    return rows.rows


# One grapheme cluster to draw: its style, its text and the cells it takes.
_Cell = tuple[str, str, int]


def _lines(styled: StyleAndTextTuples) -> list[list[_Cell]]:
    """The clusters of ``styled``, measured, as the lines its newlines make."""
    lines: list[list[_Cell]] = [[]]
    for fragment in styled:
        style = fragment[0]
        for cluster in cells.clusters(fragment[1]):
            if cluster == "\n":
                lines.append([])
            else:
                lines[-1].append((style, cluster, cells.cluster_width(cluster)))
    return lines


def _words(line: list[_Cell]) -> Iterator[tuple[list[_Cell], list[_Cell]]]:
    """Each word of ``line`` with the spaces before it; the spaces at its end last,
    with no word."""
    spaces: list[_Cell] = []
    word: list[_Cell] = []
    for cell in line:
        if cell[1] != " ":
            word.append(cell)
            continue
        if word:
            yield spaces, word
            spaces, word = [], []
        spaces.append(cell)
    yield spaces, word


def _width(run: list[_Cell]) -> int:
    return sum(cell[2] for cell in run)


class _Rows:
    """The rows wrap makes, filled one word at a time."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.rows: list[StyleAndTextTuples] = [[]]
        self.used = 0
        self.fresh = True  # nothing on the row yet but a continued row's indent

    def new_line(self) -> None:
        self.rows.append([])
        self.used, self.fresh = 0, True

    def place(self, spaces: list[_Cell], word: list[_Cell]) -> None:
        """The word on this row if it fits, else on the next (the spaces before it
        dropped at the cut); a word too wide for any row fills this one on."""
        fits_a_row = _width(word) <= self.width - len(CONTINUATION)
        if word and not self.fresh and fits_a_row and \
                self.used + _width(spaces) + _width(word) > self.width:
            self._continue()
            spaces = []
        for cell in (*spaces, *word):
            self._put(cell)

    def _put(self, cell: _Cell) -> None:
        style, cluster, size = cell
        if self.used + size > self.width:
            if cluster == " ":
                return  # a space at the edge: the cut stands in for it
            self._continue()
        row = self.rows[-1]
        if row and row[-1][0] == style:
            row[-1] = (style, row[-1][1] + cluster)
        else:
            row.append((style, cluster))
        self.used += size
        self.fresh = False

    def _continue(self) -> None:
        self.rows.append([("", CONTINUATION)])
        self.used, self.fresh = len(CONTINUATION), True
