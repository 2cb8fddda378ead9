"""FlushScheduler: output written once per turn, a turn lasting listen.flush_delay."""

from __future__ import annotations

import asyncio
from typing import cast

from chatd.net.connection import Connection, FlushScheduler


class _Written:
    """The transport side as the scheduler sees it: something to flush."""

    def __init__(self) -> None:
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1


def _scheduler(delay: float, turns: list[float]) -> FlushScheduler:
    loop = asyncio.get_running_loop()
    return FlushScheduler(loop, lambda: turns.append(loop.time()), lambda: delay)


async def test_with_a_delay_the_output_of_several_loop_turns_is_written_together() -> None:
    turns: list[float] = []
    scheduler = _scheduler(0.05, turns)
    first, second = _Written(), _Written()
    scheduler.mark(cast(Connection, first))
    await asyncio.sleep(0)  # another turn of the event loop
    scheduler.mark(cast(Connection, second))
    await asyncio.sleep(0)
    assert (first.flushes, second.flushes, turns) == (0, 0, [])
    await asyncio.sleep(0.1)
    assert (first.flushes, second.flushes, len(turns)) == (1, 1, 1)


async def test_without_a_delay_the_output_is_written_at_the_end_of_the_loop_turn() -> None:
    turns: list[float] = []
    scheduler = _scheduler(0.0, turns)
    written = _Written()
    scheduler.mark(cast(Connection, written))
    assert written.flushes == 0
    await asyncio.sleep(0)
    assert (written.flushes, len(turns)) == (1, 1)
    scheduler.mark(cast(Connection, written))  # a new turn is scheduled anew
    await asyncio.sleep(0)
    assert (written.flushes, len(turns)) == (2, 2)
