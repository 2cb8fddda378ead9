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

In a cluster the events a command causes reach its own connection only when
this node reads them back from the shared log, after the handler returned.
The bus notes each of them on the run (:meth:`Issuing.expect`) and delivers
it under the same run (:func:`resumed`); the dispatcher waits for them
(:meth:`Issuing.shown`) before the final line, so that, as in one process,
the issuer's copy comes before its ``ok``, labelled, and counts as told.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd.domain.ports import Endpoint


class Issuing:
    """One run of a command. Tasks and callbacks started meanwhile copy the context,
    and with it this object: ``over`` keeps them from labelling what they send
    after the command has ended. ``told``: a room event reached the issuing
    connection while the command ran."""

    __slots__ = ("label", "over", "session", "told", "waiting")

    def __init__(self, session: Endpoint, label: str | None) -> None:
        self.session = session
        self.label = label
        self.over = False
        self.told = False
        # The events of this run still to be delivered (a cluster's bus, see expect).
        self.waiting: list[asyncio.Future[None]] = []

    def expect(self) -> asyncio.Future[None]:
        """An event of this run is delivered later (read back from a cluster's
        log): the future its deliverer settles once it was delivered, or never
        will be."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        return future

    async def shown(self, timeout: float) -> None:
        """Wait, at most ``timeout`` seconds, until the events :meth:`expect`
        announced were delivered; the run is over then (what comes after is
        not part of its reply)."""
        try:
            pending = [future for future in self.waiting if not future.done()]
            if pending:
                await asyncio.wait(pending, timeout=timeout)
        finally:
            self.end()

    def end(self) -> None:
        """The run is over: nothing it causes from now on is part of its reply."""
        self.waiting.clear()
        self.over = True


_ISSUING: ContextVar[Issuing | None] = ContextVar("chatd_issuing", default=None)

# The longest a command's final line waits for the events it caused to reach its
# own connection (a cluster's node reads them back from the shared log: normally
# milliseconds; Redis away, they were never published and nothing waits).
REPLY_WAIT = 5.0


def current() -> Issuing | None:
    """The command being run now, if any (labelled or not)."""
    issuing = _ISSUING.get()
    return None if issuing is None or issuing.over else issuing


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
        # A run whose events are still to come ends once they came (shown).
        run.over = not run.waiting
        _ISSUING.reset(token)


@contextlib.asynccontextmanager
async def issued(session: Endpoint, label: str | None) -> AsyncIterator[Issuing]:
    """Run a command's work as :func:`issuing` does, then wait (``REPLY_WAIT`` at most)
    for the events it caused to reach ``session``: its final reply follows them, on a
    cluster as in one process, also when the work failed."""
    with issuing(session, label) as run:
        try:
            yield run
        finally:
            await run.shown(REPLY_WAIT)


@contextlib.contextmanager
def resumed(run: Issuing) -> Iterator[None]:
    """Deliver, in another task, an event of ``run`` (see :meth:`Issuing.expect`):
    it is part of the command's reply unless the run is over meanwhile."""
    token = _ISSUING.set(run)
    try:
        yield
    finally:
        _ISSUING.reset(token)
