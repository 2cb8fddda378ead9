"""Tests for chatd.domain.limits: bucket arithmetic on the manual clock, properties, the store."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.domain.clock import Clock, ManualClock
from chatd.domain.limits import (
    Charge,
    FloodDetector,
    Kind,
    MemoryLimitStore,
    SlidingWindow,
    TokenBucket,
)
from chatd.domain.protection import rate_limited
from chatd.errors import Code

FAST = settings(max_examples=200, deadline=None)


# ---------------------------------------------------------------------------
# TokenBucket: exact arithmetic
# ---------------------------------------------------------------------------


def test_bucket_starts_full_and_drains() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=1, burst=3, clock=clock)
    assert bucket.tokens == 3
    assert [bucket.try_take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.tokens == 0
    assert bucket.try_take() == 1.0
    assert bucket.try_take() == 1.0  # a refusal takes nothing


def test_bucket_refills_over_time() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=2, burst=4, clock=clock)
    for _ in range(4):
        bucket.try_take()
    clock.advance(1)
    assert bucket.tokens == 2
    assert bucket.try_take() == 0.0
    assert bucket.try_take() == 0.0
    assert bucket.try_take() == 0.5


def test_bucket_partial_refill_wait_times() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=2, burst=5, clock=clock)
    assert bucket.try_take(5) == 0.0
    clock.advance(0.25)
    assert bucket.tokens == 0.5
    assert bucket.try_take() == 0.25
    assert bucket.try_take(3) == 1.25
    clock.advance(0.25)
    assert bucket.try_take() == 0.0
    assert bucket.tokens == 0.0


def test_bucket_refill_is_capped_at_burst() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=10, burst=3, clock=clock)
    bucket.try_take(2)
    clock.advance(3600)
    assert bucket.tokens == 3
    assert bucket.try_take(3) == 0.0
    assert bucket.try_take() == 0.1


def test_bucket_waiting_the_given_time_is_enough() -> None:
    # Awkward numbers: floating-point refill lands a hair short of 1 token.
    clock = ManualClock()
    bucket = TokenBucket(rate=3, burst=1, clock=clock)
    bucket.try_take()
    clock.advance(0.1)
    wait = bucket.try_take()
    assert wait == pytest.approx(0.7 / 3)
    clock.advance(wait)
    assert bucket.try_take() == 0.0


def test_bucket_cost_above_burst_never_fits() -> None:
    bucket = TokenBucket(rate=1, burst=2, clock=ManualClock())
    assert bucket.try_take(3) == math.inf
    assert bucket.tokens == 2


def test_bucket_zero_cost_always_fits() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    bucket.try_take()
    assert bucket.try_take(0) == 0.0


@pytest.mark.parametrize("rate", [0, -1, 0.0])
def test_bucket_unlimited(rate: float) -> None:
    bucket = TokenBucket(rate=rate, burst=1, clock=ManualClock())
    assert all(bucket.try_take(5) == 0.0 for _ in range(1000))
    assert bucket.tokens == 1


def test_bucket_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(rate=1, burst=-1, clock=ManualClock())
    bucket = TokenBucket(rate=1, burst=1, clock=ManualClock())
    with pytest.raises(ValueError, match="cost"):
        bucket.try_take(-1)
    with pytest.raises(ValueError, match="burst"):
        bucket.reconfigure(1, -2)


def test_bucket_clock_standing_still_or_going_back_earns_nothing() -> None:
    now = [100.0]

    class Broken(Clock):
        def monotonic(self) -> float:
            return now[0]

    bucket = TokenBucket(rate=1, burst=2, clock=Broken())
    bucket.try_take(2)
    now[0] = 90.0  # broken clock
    assert bucket.tokens == 0
    now[0] = 101.0  # one second after the last good reading
    assert bucket.tokens == 1


def test_reconfigure_keeps_tokens() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=1, burst=10, clock=clock)
    bucket.try_take(4)
    bucket.reconfigure(rate=2, burst=20)
    assert bucket.tokens == 6
    assert (bucket.rate, bucket.burst) == (2, 20)
    clock.advance(1)
    assert bucket.tokens == 8


def test_reconfigure_clamps_to_new_burst() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=1, burst=10, clock=clock)
    bucket.reconfigure(rate=1, burst=3)
    assert bucket.tokens == 3
    clock.advance(100)
    assert bucket.tokens == 3


def test_reconfigure_credits_elapsed_time_at_old_rate() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=1, burst=10, clock=clock)
    bucket.try_take(10)
    clock.advance(2)
    bucket.reconfigure(rate=100, burst=10)
    assert bucket.tokens == 2


def test_reconfigure_from_unlimited_gives_full_bucket() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=0, burst=1, clock=clock)
    for _ in range(50):
        bucket.try_take()
    clock.advance(10)
    bucket.reconfigure(rate=1, burst=5)
    assert bucket.tokens == 5
    bucket.reconfigure(rate=0, burst=5)
    assert bucket.try_take(100) == 0.0


def test_bucket_repr() -> None:
    assert repr(TokenBucket(2, 5, ManualClock())) == "TokenBucket(rate=2, burst=5, tokens=5.000)"


# ---------------------------------------------------------------------------
# TokenBucket: properties
# ---------------------------------------------------------------------------

operations = st.lists(
    st.tuples(
        st.floats(0, 5, allow_nan=False),  # advance the clock by this much, then...
        st.sampled_from([0.5, 1.0, 1.0, 2.0]),  # ...try to take this cost
    ),
    max_size=60,
)


@FAST
@given(st.floats(0.01, 50), st.floats(0, 20), operations)
def test_bucket_never_exceeds_burst_plus_refill(
    rate: float, burst: float, ops: list[tuple[float, float]]
) -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate, burst, clock)
    taken = 0.0
    elapsed = 0.0
    for step, cost in ops:
        clock.advance(step)
        elapsed += step
        if bucket.try_take(cost) == 0.0:
            taken += cost
        # The tiny rounding tolerance of the bucket, and no more.
        assert taken <= burst + rate * elapsed + 1e-6
        assert 0 <= bucket.tokens <= burst


@FAST
@given(st.floats(0.01, 50), st.floats(1, 20), operations)
def test_bucket_wait_is_exact(rate: float, burst: float, ops: list[tuple[float, float]]) -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate, burst, clock)
    for step, cost in ops:
        clock.advance(step)
        wait = bucket.try_take(cost)
        if wait == 0.0 or math.isinf(wait):
            continue
        assert wait > 0
        if wait * 0.01 * rate > 1e-6:  # a gap beyond the rounding tolerance
            # Just before the wait is over it is still refused...
            clock.advance(wait * 0.99)
            assert bucket.try_take(cost) > 0
            clock.advance(wait * 0.01)
        else:
            clock.advance(wait)
        # ...and once it is over it succeeds.
        assert bucket.try_take(cost) == 0.0


# ---------------------------------------------------------------------------
# FloodDetector
# ---------------------------------------------------------------------------


def test_flood_threshold_then_reset() -> None:
    clock = ManualClock()
    flood = FloodDetector(threshold=3, window=10, clock=clock)
    results = []
    for _ in range(7):
        results.append(flood.record())
        clock.advance(1)
    assert results == [False, False, True, False, False, True, False]
    assert flood.count == 1


def test_flood_window_slides() -> None:
    clock = ManualClock()
    flood = FloodDetector(threshold=3, window=10, clock=clock)
    assert not flood.record()  # t=0
    clock.advance(6)
    assert not flood.record()  # t=6
    clock.advance(4)
    assert not flood.record()  # t=10: the t=0 refusal is exactly 10 s old, out
    assert flood.count == 2
    clock.advance(1)
    assert flood.record()  # t=11: 6, 10, 11


def test_flood_threshold_one() -> None:
    flood = FloodDetector(threshold=1, window=1, clock=ManualClock())
    assert flood.record()
    assert flood.record()


def test_flood_idle_once_the_window_is_empty() -> None:
    clock = ManualClock()
    flood = FloodDetector(threshold=3, window=10, clock=clock)
    assert flood.idle
    flood.record()
    clock.advance(9.5)
    assert not flood.idle
    clock.advance(0.5)
    assert flood.idle


def test_flood_reset() -> None:
    flood = FloodDetector(threshold=2, window=10, clock=ManualClock())
    flood.record()
    flood.reset()
    assert not flood.record()


def test_flood_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="threshold"):
        FloodDetector(threshold=0, window=1, clock=ManualClock())
    with pytest.raises(ValueError, match="window"):
        FloodDetector(threshold=1, window=0, clock=ManualClock())


@FAST
@given(st.integers(1, 6), st.floats(0.5, 20), st.lists(st.floats(0, 5), max_size=60))
def test_flood_matches_naive_model(threshold: int, window: float, steps: list[float]) -> None:
    clock = ManualClock()
    flood = FloodDetector(threshold, window, clock)
    kept: list[float] = []  # refusal times since the last flood
    for step in steps:
        clock.advance(step)
        now = clock.monotonic()
        kept = [t for t in kept if t > now - window] + [now]
        expected = len(kept) >= threshold
        if expected:
            kept = []
        assert flood.record() is expected


# ---------------------------------------------------------------------------
# TokenBucket.wait: how long until a take would succeed, taking nothing
# ---------------------------------------------------------------------------


def test_bucket_wait_takes_nothing() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=2, burst=2, clock=clock)
    assert bucket.wait() == 0.0
    bucket.try_take(2)
    assert bucket.wait() == 0.5
    assert bucket.wait(3) == math.inf
    clock.advance(0.5)
    assert bucket.wait() == 0.0 and bucket.try_take() == 0.0
    assert TokenBucket(rate=0, burst=1, clock=clock).wait(5) == 0.0


# ---------------------------------------------------------------------------
# SlidingWindow
# ---------------------------------------------------------------------------


def test_window_allows_limit_then_waits_for_the_oldest() -> None:
    clock = ManualClock()
    window = SlidingWindow(1.0, clock)
    assert window.try_take(2) == 0.0
    clock.advance(0.25)
    assert window.try_take(2) == 0.0
    assert window.try_take(2) == 0.75  # the first leaves the window a second after it came
    clock.advance(0.75)
    assert window.try_take(2) == 0.0
    assert window.try_take(2) == pytest.approx(0.25)


def test_window_follows_a_lowered_limit() -> None:
    clock = ManualClock()
    window = SlidingWindow(1.0, clock)
    for step in (0.0, 0.1, 0.1):
        clock.advance(step)
        assert window.try_take(3) == 0.0
    # Three within the window and a limit of 2: free once two have left.
    assert window.try_take(2) == pytest.approx(0.9)
    assert window.try_take(1) == pytest.approx(1.0)  # a limit of 1: once all have


def test_window_rejects_a_bad_window() -> None:
    with pytest.raises(ValueError, match="window"):
        SlidingWindow(0, ManualClock())


@FAST
@given(st.integers(1, 5), st.lists(st.floats(0, 1.5, allow_nan=False), max_size=60))
def test_window_never_holds_more_than_limit(limit: int, steps: list[float]) -> None:
    clock = ManualClock()
    window = SlidingWindow(1.0, clock)
    taken: list[float] = []
    for step in steps:
        clock.advance(step)
        now = clock.monotonic()
        if window.try_take(limit) == 0.0:
            taken.append(now)
        assert sum(1 for t in taken if t > now - 1.0) <= limit


# ---------------------------------------------------------------------------
# MemoryLimitStore
# ---------------------------------------------------------------------------


def test_store_keeps_kinds_and_keys_apart() -> None:
    store = MemoryLimitStore(ManualClock())
    assert store.take(Kind.MESSAGE, 1, 1, 1) == 0.0
    assert store.take(Kind.MESSAGE, 1, 1, 1) == 1.0
    assert store.take(Kind.MESSAGE, 2, 1, 1) == 0.0
    assert store.take(Kind.COMMAND, 1, 1, 1) == 0.0
    assert len(store) == 3


def test_store_wait_makes_no_bucket() -> None:
    store = MemoryLimitStore(ManualClock())
    assert store.wait(Kind.LOGIN_NAME, "bob", 1, 5) == 0.0
    assert store.wait(Kind.LOGIN_NAME, "bob", 1, 5, cost=6) == math.inf
    assert store.wait(Kind.LOGIN_NAME, "bob", 0, 5, cost=6) == 0.0
    assert len(store) == 0
    store.take(Kind.LOGIN_NAME, "bob", 1, 1)
    assert store.wait(Kind.LOGIN_NAME, "bob", 1, 1) == 1.0


def test_store_applies_a_new_rate_keeping_tokens() -> None:
    clock = ManualClock()
    store = MemoryLimitStore(clock)
    store.take(Kind.MESSAGE, 1, 1, 4, cost=4)
    # The bucket is empty; under the new rate it refills twice as fast.
    assert store.take(Kind.MESSAGE, 1, 2, 4) == 0.5
    assert store.wait(Kind.MESSAGE, 1, 4, 4) == 0.25
    clock.advance(0.25)
    assert store.take(Kind.MESSAGE, 1, 4, 4) == 0.0


def test_store_sweep_drops_only_refilled_buckets() -> None:
    clock = ManualClock()
    store = MemoryLimitStore(clock)
    store.take(Kind.COMMAND, "idle", 1, 1)
    store.take(Kind.COMMAND, "busy", 1, 10, cost=10)
    clock.advance(1)
    store.sweep()
    assert len(store) == 1
    # The dropped bucket comes back full, as it would have been.
    assert store.take(Kind.COMMAND, "idle", 1, 1) == 0.0


def test_store_is_bounded_per_kind() -> None:
    store = MemoryLimitStore(ManualClock(), max_keys=3)
    store.take(Kind.MESSAGE, "kept", 1, 1)
    for name in "abcd":
        store.take(Kind.LOGIN_ADDRESS, name, 1, 1)
        store.take(Kind.MESSAGE, "kept", 1, 1)  # recently charged: never the one dropped
    assert len(store) == 4
    assert store.wait(Kind.MESSAGE, "kept", 1, 1) == 1.0
    assert store.wait(Kind.LOGIN_ADDRESS, "a", 1, 1) == 0.0  # forgotten: full again


def test_store_forgets_a_scope() -> None:
    store = MemoryLimitStore(ManualClock())
    for key in [(7, 1), (7, 2), (8, 1), 7]:
        store.take(Kind.ROOM_MESSAGE, key, 1, 1)
    store.forget(Kind.ROOM_MESSAGE, 7)
    assert len(store) == 1
    assert store.wait(Kind.ROOM_MESSAGE, (8, 1), 1, 1) == 1.0


store_ops = st.lists(
    st.tuples(
        st.floats(0, 3, allow_nan=False),  # advance the clock by this much, then...
        st.sampled_from(["take", "take", "sweep", "wait"]),  # ...do this
    ),
    max_size=60,
)


@FAST
@given(st.floats(0.01, 50), st.floats(1, 20), store_ops)
def test_store_never_grants_more_than_burst_plus_refill(
    rate: float, burst: float, ops: list[tuple[float, str]]
) -> None:
    """Sweeping, peeking and re-making buckets never adds allowance."""
    clock = ManualClock()
    store = MemoryLimitStore(clock)
    taken = elapsed = 0.0
    for step, op in ops:
        clock.advance(step)
        elapsed += step
        if op == "sweep":
            store.sweep()
        elif op == "wait":
            store.wait(Kind.MESSAGE, "u", rate, burst)
        elif store.take(Kind.MESSAGE, "u", rate, burst) == 0.0:
            taken += 1
        assert taken <= burst + rate * elapsed + 1e-6


def test_store_over_its_bound_drops_refilled_buckets_first() -> None:
    clock = ManualClock()
    store = MemoryLimitStore(clock, max_keys=3)
    store.take(Kind.LOGIN_NAME, "old-but-empty", 1, 1)
    store.take(Kind.LOGIN_NAME, "refilled", 1, 1, cost=0)
    store.take(Kind.LOGIN_NAME, "b", 1, 1)
    store.take(Kind.LOGIN_NAME, "c", 1, 1)  # over the bound: the refilled one goes
    assert len(store) == 3
    assert store.wait(Kind.LOGIN_NAME, "old-but-empty", 1, 1) == 1.0


def test_store_over_its_bound_drops_a_tenth_at_once() -> None:
    store = MemoryLimitStore(ManualClock(), max_keys=20)
    for key in range(21):
        store.take(Kind.LOGIN_ADDRESS, key, 1, 1)
    # Nothing refilled: the oldest made go, down to a tenth below the bound,
    # so the next new keys do not scan again.
    assert len(store) == 18
    assert store.wait(Kind.LOGIN_ADDRESS, 0, 1, 1) == 0.0  # forgotten: full again
    assert store.wait(Kind.LOGIN_ADDRESS, 3, 1, 1) == 1.0
    store.take(Kind.LOGIN_ADDRESS, 21, 1, 1)
    assert len(store) == 19


# ---------------------------------------------------------------------------
# Taking from several buckets at once, and giving back
# ---------------------------------------------------------------------------


def test_give_puts_back_up_to_the_burst() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=1, burst=2, clock=clock)
    bucket.try_take(2)
    bucket.give()
    assert bucket.tokens == 1
    bucket.give(5)
    assert bucket.tokens == 2
    unlimited = TokenBucket(rate=0, burst=1, clock=clock)
    unlimited.give()
    assert unlimited.tokens == 1


def test_take_all_takes_from_every_bucket_or_none() -> None:
    store = MemoryLimitStore(ManualClock())
    address = Charge(Kind.LOGIN_ADDRESS, "192.0.2.1", 0.5, 2.0)
    name = Charge(Kind.LOGIN_NAME, "bob", 0.5, 2.0)
    assert store.take_all([name]) == 0.0
    assert store.take_all([name]) == 0.0
    assert store.take_all([address, name]) == 2.0
    assert store.wait(*address) == 0.0 and store.take(*address, 2.0) == 0.0  # untouched
    store.give_back([name, Charge(Kind.LOGIN_NAME, "never-charged", 0.5, 2.0)])
    assert store.take_all([name]) == 0.0
    assert store.take_all([]) == 0.0


@FAST
@given(steps=st.lists(st.tuples(st.sampled_from([0, 1, 2]), st.floats(0.5, 3.0)),
                      min_size=1, max_size=30))
def test_take_all_is_all_or_nothing(steps: list[tuple[int, float]]) -> None:
    """Whatever the order of the groups, a refused group leaves every bucket as it
    was, and a granted one takes its cost from each of its buckets only."""
    clock = ManualClock()
    store = MemoryLimitStore(clock)
    charges = [Charge(Kind.LOGIN_NAME, n, 1.0, 3.0) for n in range(3)]

    def tokens() -> list[float]:
        buckets = store._buckets[Kind.LOGIN_NAME]
        return [buckets[c.key].tokens if c.key in buckets else 3.0 for c in charges]

    for first, cost in steps:
        group = charges[first:first + 2]
        before = tokens()
        wait = store.take_all(group, cost)
        expected = before if wait else [t - cost if c in group else t
                                        for c, t in zip(charges, before, strict=True)]
        assert tokens() == pytest.approx([max(0.0, t) for t in expected], abs=1e-9)
        clock.advance(0.25)


@given(wait=st.floats(min_value=0.0, max_value=86_400.0, allow_nan=False))
def test_a_refusal_says_when_the_token_is_back_never_before(wait: float) -> None:
    refused = rate_limited("too many messages", wait)
    retry_ms = refused.details["retry_ms"]
    assert refused.code is Code.RATE_LIMITED and retry_ms >= max(1, wait * 1000)
    said = refused.message.removeprefix("too many messages; wait ").removesuffix(
        " and try again.")
    number, unit = said.split(" ")
    if retry_ms < 1000:
        assert unit == "ms" and int(number) == retry_ms
    else:
        assert unit == "s" and int(number) * 1000 >= retry_ms > (int(number) - 1) * 1000
