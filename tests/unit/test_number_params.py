"""The number parameters of commands (chatd.protocol.params Int and Number): both
follow the number rules of chatd.domain.names, so a word one takes the other takes,
and a word refused is refused as ``bad-arguments`` (or left to the next parameter
by an optional one), never with another exception."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.domain.names import MAX_NUMBER, is_decimal, is_number
from chatd.errors import ChatError, Code
from chatd.protocol.params import Decline, Int, Number, Param, Word, parse

FAST = settings(max_examples=300, deadline=None)

# Neither parameter looks anything up: parsing a number needs no context.
NO_CONTEXT: Any = None

# Words of every kind: any text, and near-numbers (signs, "_", exponents, points,
# other scripts' digits, and more digits than storage holds).
WORDS = (st.text(max_size=30)
         | st.from_regex(r"[+-]?[0-9_]{1,25}(\.[0-9]{0,3})?([eE][0-9]{1,3})?", fullmatch=True)
         | st.integers(min_value=0, max_value=10**25).map(str)
         | st.sampled_from(["٣", "٢", "５", "²", "1_0", "inf", "nan", "1e3", "0x1", ".5", "5."]))

WHOLE = Int("n", low=0, high=MAX_NUMBER)
DECIMAL = Number("rate", low=0.0, high=float(MAX_NUMBER))


def _parsed(param: Param, word: str) -> Any:
    """What ``param`` makes of ``word``: its value, or the error code, or "decline"."""
    try:
        return param.convert(NO_CONTEXT, word, True)
    except ChatError as exc:
        return exc.code
    except Decline:
        return "decline"


@FAST
@given(WORDS)
def test_an_integer_parameter_takes_exactly_the_numbers(word: str) -> None:
    value = _parsed(WHOLE, word)
    if is_number(word):
        assert value == int(word) and type(value) is int
    else:
        assert value is Code.BAD_ARGUMENTS
    assert _parsed(Int("n", optional=True, low=0, high=MAX_NUMBER), word) == \
        (value if is_number(word) else "decline")


@FAST
@given(WORDS)
def test_a_decimal_parameter_takes_exactly_the_decimals(word: str) -> None:
    value = _parsed(DECIMAL, word)
    if not is_decimal(word):
        assert value is Code.BAD_ARGUMENTS
        assert _parsed(Number("rate", optional=True), word) == "decline"
    elif float(word) <= MAX_NUMBER:
        assert value == float(word)
    else:  # a decimal, out of range
        assert value is Code.BAD_ARGUMENTS


@FAST
@given(WORDS)
def test_what_an_integer_parameter_takes_a_decimal_one_takes(word: str) -> None:
    whole = _parsed(WHOLE, word)
    if type(whole) is int:
        assert _parsed(DECIMAL, word) == float(word)


@pytest.mark.parametrize("word", ["٣", "1_0", "５", "+3", "1e0", "inf", "nan", " 3", "3 "])
def test_both_refuse_what_float_and_int_take_besides(word: str) -> None:
    assert _parsed(WHOLE, word) is Code.BAD_ARGUMENTS
    assert _parsed(DECIMAL, word) is Code.BAD_ARGUMENTS


# /ratelimit's shape: a rate or "off", a burst only after a rate, then a word (the room).
RATE_LINE = (Word("rate"), Number("burst", optional=True, low=1, high=1e6, not_after=("off",)),
             Word("room", optional=True))
ONE_WORD = WORDS.filter(lambda word: len(word.split()) == 1 and word == word.strip())


@FAST
@given(st.sampled_from(["off", "OFF", "Off"]), ONE_WORD)
def test_after_off_a_word_is_never_the_burst(off: str, word: str) -> None:
    # "/ratelimit off 7": 7 is the room's id, not a burst for the rate it turns off.
    parsed = parse(RATE_LINE, NO_CONTEXT, f"{off} {word}", "/ratelimit off [room]")
    assert (parsed["burst"], parsed["room"]) == (None, word)


@FAST
@given(st.sampled_from(["2", "0.5", "offer"]), ONE_WORD)
def test_after_a_rate_a_number_is_the_burst(rate: str, word: str) -> None:
    try:
        parsed = parse(RATE_LINE, NO_CONTEXT, f"{rate} {word}", "/ratelimit <rate> [burst]")
    except ChatError as exc:  # a decimal out of the burst's range
        assert exc.code is Code.BAD_ARGUMENTS and is_decimal(word)
        assert not 1 <= float(word) <= 1e6
        return
    if is_decimal(word):
        assert (parsed["burst"], parsed["room"]) == (float(word), None)
    else:
        assert (parsed["burst"], parsed["room"]) == (None, word)
