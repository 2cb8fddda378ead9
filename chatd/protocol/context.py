"""What a command handler gets: its session, the domain services, and reply helpers."""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chatd.errors import ChatError
from chatd.protocol.hints import line_message
from chatd.protocol.render import TEXT_ONLY, show_invisible
from chatd.protocol.results import Deferred, Ok

if TYPE_CHECKING:
    from chatd.domain.accounts import User
    from chatd.protocol.services import HandlerServices
    from chatd.protocol.session import Session


def display_width(text: str) -> int:
    """How many terminal columns ``text`` takes as text mode sends it (an invisible
    character written out as ``<U+202E>``): two for a wide character (CJK, most emoji),
    none for a combining mark or another format character, one for the rest."""
    if text.isascii():
        return len(text)
    return sum(_char_width(c) for c in show_invisible(text))


def _char_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Me", "Mn", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _pad(text: str, width: int, right: bool) -> str:
    """``text`` padded with spaces to ``width`` terminal columns."""
    room = " " * (width - display_width(text))
    return room + text if right else text + room


def table_time(stamp: float) -> str:
    """A time as every table shows it: ``2026-12-06 09:41``, in UTC."""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(stamp))


class Context:
    """One command invocation. Lines sent through it carry the command's label."""

    __slots__ = ("command", "label", "services", "session", "told", "usage")

    def __init__(self, services: HandlerServices, session: Session, command: str,
                 label: str | None) -> None:
        self.services = services
        self.session = session
        self.command = command
        self.label = label
        # This connection was shown the command's own event (see Command.told_by_event).
        self.told = False
        # The command's usage, which ends its bad-arguments refusals (None: a plain line).
        self.usage: str | None = None

    @property
    def user(self) -> User:
        """The logged-in user (the dispatcher guarantees one for login commands)."""
        user = self.session.user
        assert user is not None, "command declared without a login need"
        return user

    def reply_ok(self, result: Ok | None = None) -> None:
        """The command's final ``ok`` (sent once, by the dispatcher or a deferred flow)."""
        result = result or Ok()
        message = result.message
        if self.told and not result.beyond_event and self.session.style.fmt == "text":
            # The event line just shown said it: a person reads the news once, and the
            # ok reads as one with an empty sentence (nothing, or "@label * ok").
            # JSON keeps the sentence: a bot matches the ok, not the event.
            message = ""
        self.send({"type": "ok", "command": self.command, "message": message,
                   **result.fields})

    def reply_error(self, exc: ChatError) -> None:
        """The command's final ``error``."""
        self.services.stats.error(exc.code.value)
        self.send({"type": "error", "code": exc.code.value,
                   "message": line_message(exc, self.usage), "command": self.command,
                   **exc.details})

    def finish(self, result: Ok | Deferred | None) -> None:
        if not isinstance(result, Deferred):
            self.reply_ok(result)

    def send(self, record: dict[str, Any]) -> None:
        self.session.send(record, self.label)

    def notice(self, text: str, **fields: Any) -> None:
        self.send({"type": "notice", "text": text, **fields})

    def text(self, lines: Sequence[str]) -> None:
        """Lines for people only (JSON clients get the data in the final ``ok``)."""
        self.send({"type": TEXT_ONLY, "lines": list(lines)})

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]],
              right: Sequence[int] = ()) -> None:
        """An aligned text table; ``right`` lists the columns to right-align. Columns are
        measured as a terminal shows them, so a file name in CJK keeps its row aligned."""
        cells = [[str(h) for h in headers], *([str(c) for c in row] for row in rows)]
        widths = [max(display_width(row[i]) for row in cells) for i in range(len(headers))]

        def line(row: list[str]) -> str:
            parts = [_pad(c, w, i in right)
                     for i, (c, w) in enumerate(zip(row, widths, strict=True))]
            return "  " + "  ".join(parts).rstrip()

        self.text([line(row) for row in cells])
