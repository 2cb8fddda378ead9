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
from chatd.protocol.params import Decline, Int, Number, Param

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
