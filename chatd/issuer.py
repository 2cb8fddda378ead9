"""The labelled command being run: the connection that issued it, and its label.

The events a command causes (a kick, a topic, a promotion ...) reach every
member of the room, the issuing connection among them. That connection's
copy is part of the command's reply, and like every other line of the reply
it carries the command's label. The dispatcher marks the connection while
the command runs; the bus labels that connection's copies.

A context variable, because the label would otherwise travel through every
service a command calls; each asyncio task sees its own value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd.session import Session

_ISSUER: ContextVar[tuple[Session, str] | None] = ContextVar("chatd_issuer", default=None)


def issuer() -> tuple[Session, str] | None:
    """The connection running a labelled command now, with the label; None otherwise."""
    return _ISSUER.get()


@contextlib.contextmanager
def issuing(session: Session, label: str | None) -> Iterator[None]:
    """Mark ``session`` as running a command labelled ``label`` (nothing if no label)."""
    if label is None:
        yield
        return
    token = _ISSUER.set((session, label))
    try:
        yield
    finally:
        _ISSUER.reset(token)
