"""FlushScheduler: output written once per turn; a turn waits listen.flush_delay only
while output fans out to the same connections again and again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from chatd.net.connection import FANOUT_MIN, Connection, FlushScheduler

DELAY = 0.05


class _Written:
    """The transport side as the scheduler sees it: something to flush, a room's
    reader (taking a feed's lane) or not."""

    def __init__(self, reader: bool = True) -> None:
        self.flushes = 0
        self.lane = object() if reader else None

    def flush(self) -> None:
        self.flushes += 1


class _Loop:
    """The scheduler's loop with a time that moves only when a test advances it.

    On the real loop's time, a machine that stalled between two turns (a loaded CI
    runner: a tenth of a second is enough) made output "at once" come after a lull,
    or fired a held turn's flush before the test's next turn. The end of a loop's
    turn (call_soon) is still the real loop's."""

    def __init__(self) -> None:
        self._real = asyncio.get_running_loop()
        self._now = 0.0
        self._timers: list[tuple[float, Callable[[], object]]] = []

    def time(self) -> float:
        return self._now

    def call_soon(self, callback: Callable[[], object]) -> None:
        self._real.call_soon(callback)

    def call_later(self, delay: float, callback: Callable[[], object]) -> None:
        self._timers.append((self._now + delay, callback))

    async def advance(self, seconds: float) -> None:
        """Move the time on, run the timers then due, then the end of the turn."""
        self._now += seconds
        due = sorted((t for t in self._timers if t[0] <= self._now), key=lambda t: t[0])
        self._timers = [t for t in self._timers if t[0] > self._now]
        for _, callback in due:
            callback()
        await asyncio.sleep(0)


def _scheduler(delay: float | Callable[[], float], turns: list[float],
               loop: _Loop | None = None) -> FlushScheduler:
    clock = loop or _Loop()
    return FlushScheduler(cast(asyncio.AbstractEventLoop, clock),
                          lambda: turns.append(clock.time()),
                          delay if callable(delay) else lambda: delay)


async def _turn(scheduler: FlushScheduler, connections: list[_Written]) -> None:
    """Output for each of ``connections``, then the end of the loop's turn."""
    for conn in connections:
        scheduler.mark(cast(Connection, conn))
    await asyncio.sleep(0)


def _room(size: int = FANOUT_MIN) -> list[_Written]:
    return [_Written() for _ in range(size)]


async def test_without_a_delay_the_output_is_written_at_the_end_of_the_loop_turn() -> None:
    turns: list[float] = []
    scheduler = _scheduler(0.0, turns)
    written = _Written()
    scheduler.mark(cast(Connection, written))
    assert written.flushes == 0
    await asyncio.sleep(0)
    assert (written.flushes, len(turns)) == (1, 1)
    room = _room()
    for _ in range(3):  # fan-out, however steady, never waits without a delay
        await _turn(scheduler, room)
    assert (room[0].flushes, len(turns)) == (3, 4)


async def test_steady_fan_out_to_the_same_connections_earns_the_wait() -> None:
    turns: list[float] = []
    loop = _Loop()
    scheduler = _scheduler(DELAY, turns, loop)
    room = _room()
    await _turn(scheduler, room)  # the first flush: nothing to compare it with
    assert (room[0].flushes, scheduler.waits) == (1, False)
    await _turn(scheduler, room)  # the same connections again, at once
    assert (room[0].flushes, scheduler.waits) == (2, True)
    # Now a turn waits the delay, and gathers the output of several loop turns.
    # (A connection is marked once per turn: its first output of the turn marks it.)
    first, second = _Written(), _Written()
    await _turn(scheduler, [first, *room])
    await _turn(scheduler, [second])
    assert (first.flushes, second.flushes, room[0].flushes, len(turns)) == (0, 0, 2, 2)
    await loop.advance(DELAY * 2)
    assert (first.flushes, second.flushes, room[0].flushes, len(turns)) == (1, 1, 3, 3)


async def test_a_direct_message_or_a_small_room_is_never_held_back() -> None:
    turns: list[float] = []
    scheduler = _scheduler(DELAY, turns)
    pair = _room(FANOUT_MIN - 1)
    for _ in range(5):
        await _turn(scheduler, pair)
    assert (pair[0].flushes, len(turns), scheduler.waits) == (5, 5, False)


async def test_fan_out_to_other_connections_each_turn_is_not_held_back() -> None:
    """Many small rooms: each turn's connections are new, so a wait would batch nothing."""
    turns: list[float] = []
    scheduler = _scheduler(DELAY, turns)
    for _ in range(4):
        await _turn(scheduler, _room())
        assert scheduler.waits is False
    assert len(turns) == 4


async def test_output_after_a_lull_goes_at_once() -> None:
    """A large room at a message every few delays gains nothing from a wait."""
    turns: list[float] = []
    loop = _Loop()
    scheduler = _scheduler(DELAY, turns, loop)
    room = _room()
    await _turn(scheduler, room)
    await _turn(scheduler, room)
    assert scheduler.waits is True
    await _turn(scheduler, room)
    assert room[0].flushes == 2  # held back
    await loop.advance(DELAY * 0.9)
    assert room[0].flushes == 2  # until the delay is out
    await loop.advance(DELAY * 0.6)
    assert room[0].flushes == 3
    await loop.advance(DELAY * 2.5)
    await _turn(scheduler, room)  # more than two delays after the last flush
    assert room[0].flushes == 4


async def test_a_delay_set_to_zero_stops_the_waits_at_once() -> None:
    turns: list[float] = []
    delay = [DELAY]
    scheduler = _scheduler(lambda: delay[0], turns)
    room = _room()
    await _turn(scheduler, room)
    await _turn(scheduler, room)
    assert scheduler.waits is True
    delay[0] = 0.0  # a reload
    await _turn(scheduler, room)
    assert room[0].flushes == 3


async def test_a_connection_listed_twice_counts_once() -> None:
    """A client answered early and given more output in the same turn is marked
    again: the fan-out is still one connection short."""
    turns: list[float] = []
    scheduler = _scheduler(DELAY, turns)
    room = _room(FANOUT_MIN - 1)
    for _ in range(3):
        await _turn(scheduler, [*room, room[0]])
        assert scheduler.waits is False


async def test_a_closed_connection_is_forgotten_and_no_delay_keeps_none() -> None:
    turns: list[float] = []
    scheduler = _scheduler(DELAY, turns)
    room = _room()
    await _turn(scheduler, room)
    gone = cast(Connection, room[0])
    assert gone in scheduler.steady
    scheduler.forget(gone)
    assert gone not in scheduler.steady
    without = _scheduler(0.0, turns)
    await _turn(without, room)
    assert without.steady == set()


async def test_only_the_rooms_readers_make_the_fan_out() -> None:
    """Connections given queued bytes (replies, direct messages) in the same
    flushes are not readers: they neither earn the wait nor join the steady set."""
    turns: list[float] = []
    scheduler = _scheduler(DELAY, turns)
    others = [_Written(reader=False) for _ in range(FANOUT_MIN)]
    for _ in range(3):
        await _turn(scheduler, others)
        assert scheduler.waits is False
    room, lone = _room(), _Written(reader=False)
    await _turn(scheduler, [*room, lone])
    await _turn(scheduler, [*room, lone])
    assert scheduler.waits is True
    assert cast(Connection, lone) not in scheduler.steady
