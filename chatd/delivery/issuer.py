"""The labelled command being run: the connection that issued it, and its label.

The events a command causes (a kick, a topic, a promotion ...) reach every
member of the room, the issuing connection among them. That connection's
copy is part of the command's reply, and like every other line of the reply
it carries the command's label. The dispatcher marks the connection while
the command runs; the bus labels that connection's copies.

The mark also notes whether the issuing connection received an event of its
command (labelled or not): a text-mode reply then leaves out the ``ok``
sentence that would say the same news again.

A context variable, because the label would otherwise travel through every
service a command calls; each asyncio task sees its own value. Work a
command starts in a task of its own (a flood mute, a delayed close) copies
the variable, so the mark is switched off, not only removed, when the
command ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd.domain.ports import Endpoint


class Issuing:
    """One run of a command. Tasks and callbacks started meanwhile copy the context,
    and with it this object: ``over`` keeps them from labelling what they send
    after the command has ended. ``told``: a room event reached the issuing
    connection while the command ran."""

    __slots__ = ("label", "over", "session", "told")

    def __init__(self, session: Endpoint, label: str | None) -> None:
        self.session = session
        self.label = label
        self.over = False
        self.told = False


_ISSUING: ContextVar[Issuing | None] = ContextVar("chatd_issuing", default=None)


def issuer() -> tuple[Endpoint, str] | None:
    """The connection running a labelled command now, with the label; None otherwise."""
    issuing = _ISSUING.get()
    if issuing is None or issuing.over or issuing.label is None:
        return None
    return issuing.session, issuing.label


def told(connected: Collection[Endpoint]) -> tuple[Endpoint, str] | None:
    """A room event goes to ``connected``: note it if the connection running a
    command now is among them, and return that connection with its label if the
    command is labelled (its copy is then part of the reply)."""
    issuing = _ISSUING.get()
    if issuing is None or issuing.over or issuing.session not in connected:
        return None
    issuing.told = True
    return None if issuing.label is None else (issuing.session, issuing.label)


@contextlib.contextmanager
def issuing(session: Endpoint, label: str | None) -> Iterator[Issuing]:
    """Mark ``session`` as running a command labelled ``label`` (or unlabelled)."""
    run = Issuing(session, label)
    token = _ISSUING.set(run)
    try:
        yield run
    finally:
        run.over = True
        _ISSUING.reset(token)
