"""What a command handler returns: its final ``ok``, or a promise of one later.

A module of its own so that the parameter parser, the command table and the
invocation context can all name the results without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Ok:
    """A successful command's final reply: a sentence for people, fields for bots."""

    message: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    # The sentence says more than the command's event (how long a ban lasts): a
    # text-mode client is shown it even after the event (Context.reply_ok).
    beyond_event: bool = False


def ok(message: str = "", **fields: Any) -> Ok:
    return Ok(message, fields)


class Deferred:
    """Returned by a handler whose final reply comes later (after an upload's
    data lines): the dispatcher sends nothing, and the handler's flow calls
    :meth:`chatd.protocol.context.Context.reply_ok` or ``reply_error`` exactly once."""


DEFERRED = Deferred()
