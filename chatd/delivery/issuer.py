"""The labelled command being run: the connection that issued it, and its label.

The events a command causes (a kick, a topic, a promotion ...) reach every
member of the room, the issuing connection among them. That connection's
copy is part of the command's reply, and like every other line of the reply
it carries the command's label. The dispatcher marks the connection while
the command runs; the bus labels that connection's copies.

A context variable, because the label would otherwise travel through every
service a command calls; each asyncio task sees its own value. Work a
command starts in a task of its own (a flood mute, a delayed close) copies
the variable, so the mark is switched off, not only removed, when the
command ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd.domain.ports import Endpoint


class _Issuing:
    """One run of a labelled command. Tasks and callbacks started meanwhile copy
    the context, and with it this object: ``over`` keeps them from labelling
    what they send after the command has ended."""

    __slots__ = ("label", "over", "session")

    def __init__(self, session: Endpoint, label: str) -> None:
        self.session = session
        self.label = label
        self.over = False


_ISSUING: ContextVar[_Issuing | None] = ContextVar("chatd_issuing", default=None)


def issuer() -> tuple[Endpoint, str] | None:
    """The connection running a labelled command now, with the label; None otherwise."""
    issuing = _ISSUING.get()
    if issuing is None or issuing.over:
        return None
    return issuing.session, issuing.label


@contextlib.contextmanager
def issuing(session: Endpoint, label: str | None) -> Iterator[None]:
    """Mark ``session`` as running a command labelled ``label`` (nothing if no label)."""
    if label is None:
        yield
        return
    run = _Issuing(session, label)
    token = _ISSUING.set(run)
    try:
        yield
    finally:
        run.over = True
        _ISSUING.reset(token)
