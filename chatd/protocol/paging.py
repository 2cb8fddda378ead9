"""Long lists a page at a time: which items a page shows, and how its reply says so.

Text mode reads a long list as a table, and a table of hundreds of rows scrolls away
before anyone reads it; so ``/rooms``, ``/who``, ``/files``, ``/myfiles``,
``/requests``, ``/myrooms``, ``/conversations``, ``/stickers`` and ``/notifications``
show ``rooms.page_size`` rows and say how to ask for the next page. A program reads
the same page, with ``page``, ``pages`` and ``total`` to walk the rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chatd.protocol.params import Int, RoomRef

T = TypeVar("T")

# The parameters of a paged list: [page], and the [room] before it. A lone number is
# the page; a room by its id needs the page after it (/who 7 1).
PAGE = Int("page", optional=True, default=1)
PAGED_ROOM = RoomRef("room", optional=True, id_before_number=True)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Page ``number`` of a list; ``items`` is empty past the last page."""

    items: Sequence[T]
    number: int
    pages: int
    total: int

    def fields(self) -> dict[str, Any]:
        """What a program reads to walk the other pages."""
        return {"page": self.number, "pages": self.pages, "total": self.total}

    def said(self, again: str) -> str:
        """Where this page stands, for the reply's sentence; ``again`` is the command
        that asks for another page with the page number last (``/who lounge``).
        Empty when the list is."""
        if not self.items:
            if not self.total:
                return ""
            there = "there is only 1 page" if self.pages == 1 else \
                f"there are only {self.pages} pages"
            return f"{there}; {again} 1 starts over"
        said = f"page {self.number} of {self.pages}"
        if self.number < self.pages:
            said += f"; {again} {self.number + 1} for more"
        return said

    def told(self, sentence: str, again: str) -> str:
        """``sentence`` (without its full stop), then where the page stands when the
        list takes more than one page or the page asked for is past its end: a list
        that fits one page says nothing of pages."""
        if self.total and (self.pages > 1 or not self.items):
            sentence += f"; {self.said(again)}"
        return f"{sentence}."


def page_of(items: Sequence[T], number: int, size: int) -> Page[T]:
    """Page ``number`` (from 1) of ``items``, ``size`` to a page."""
    return page_read(items[skipped(number, size):number * size], number, size, len(items))


def skipped(number: int, size: int) -> int:
    """How many items come before page ``number`` (from 1), ``size`` to a page."""
    return (number - 1) * size


def page_read(items: Sequence[T], number: int, size: int, total: int) -> Page[T]:
    """Page ``number`` of a list of ``total`` items when only that page's ``items`` were
    read (a list the database pages: all of it would be too many to read each time)."""
    return Page(items, number, max(1, math.ceil(total / size)), total)
