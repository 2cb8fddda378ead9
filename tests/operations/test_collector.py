"""The cycle collector set for serving (chatd.ops.collector)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from chatd.ops import collector


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    """The test process's thresholds, put back afterwards."""
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*before)


def test_the_young_threshold_is_raised_and_the_older_ones_are_kept(
        thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(700, 7, 9)
    assert collector.tune() == (700, 7, 9)
    assert gc.get_threshold() == (collector.YOUNG, 7, 9)


def test_objects_freed_young_leave_the_collector_idle(thresholds: tuple[int, int, int]) -> None:
    """A burst of short-lived containers, as a turn of messages makes, runs no
    collection once tuned; untuned, the same burst runs many."""
    def burst() -> int:
        before = sum(stats["collections"] for stats in gc.get_stats())
        held = [[{"id": n}] for n in range(5_000)]  # alive together, then freed
        del held
        return sum(stats["collections"] for stats in gc.get_stats()) - before

    assert burst() >= 5
    collector.tune()
    assert burst() == 0
