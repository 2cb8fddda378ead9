"""What a node asks of Redis during one turn of the event loop, answered in one call.

The limits' charges, the sequencer's ids and the poster's posts are each asked
many times a turn and cost a round trip to answer: a :class:`PerTurn` collects
what a turn asks and hands it, after the turn, to its ``answer`` (one script
call for all). One batch is in flight at a time, and what is asked meanwhile
forms the next, so batches are answered in the order they were asked, and
every item of a batch in the order it was added.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class PerTurn(Generic[Item]):
    """Items asked for in a turn, answered together after it, one batch at a time."""

    def __init__(self, answer: Callable[[list[Item]], Awaitable[None]]) -> None:
        self._answer = answer
        self.asked: list[Item] = []
        self.in_flight: list[Item] = []
        self._sending: asyncio.Task[None] | None = None

    def add(self, item: Item) -> None:
        self.asked.append(item)
        if self._sending is None:
            self._sending = asyncio.get_running_loop().create_task(self._send())

    async def drained(self) -> None:
        """Until every item added so far was answered."""
        if self._sending is not None:
            await self._sending

    async def _send(self) -> None:
        try:
            await asyncio.sleep(0)  # the rest of this turn asks too
            while self.asked:
                batch, self.asked = self.asked, []
                self.in_flight = batch
                await self._answer(batch)
        finally:
            self.in_flight = []
            self._sending = None
