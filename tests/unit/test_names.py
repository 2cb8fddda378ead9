"""Tests for chatd.domain.names: name validation, numbers and durations."""

from __future__ import annotations

import contextlib
import math
import sqlite3
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.domain.names import (
    MAX_DIGITS,
    MAX_DURATION,
    MAX_NUMBER,
    InvalidName,
    format_duration,
    is_decimal,
    is_number,
    looks_like_duration,
    meant_as_duration,
    name_key,
    parse_duration,
    room_name,
    user_name,
)
from chatd.errors import ChatError, Code
from chatd.protocol.params import Decline, Duration

FAST = settings(max_examples=200, deadline=None)

# Parsing a duration looks nothing up: it needs no context.
NO_CONTEXT: Any = None

# ---------------------------------------------------------------------------
# User names
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "Bob", "bob_99", "x-y", "_", "-", "A" * 24, "0"])
def test_user_name_valid(name: str) -> None:
    assert user_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A" * 25,
        "bob smith",
        " bob",
        "bob\n",
        "bob!",
        "b.b",
        "#bob",
        "@bob",
        "caf\u00e9",
        "\u0430dmin",  # Cyrillic a: a look-alike of "admin"
        "\u212a",  # Kelvin sign
        "bob\x1b",
    ],
)
def test_user_name_invalid(name: str) -> None:
    with pytest.raises(InvalidName, match="1-24 characters"):
        user_name(name)


def test_invalid_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid user name"):
        user_name("")


@FAST
@given(st.from_regex(r"[A-Za-z0-9_-]{1,24}", fullmatch=True))
def test_user_name_accepts_the_alphabet(name: str) -> None:
    assert user_name(name) == name


@FAST
@given(st.text(max_size=30))
def test_user_name_accepts_exactly_the_rule(name: str) -> None:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    valid = 1 <= len(name) <= 24 and set(name) <= allowed
    try:
        user_name(name)
    except InvalidName:
        assert not valid
    else:
        assert valid


# ---------------------------------------------------------------------------
# Room names
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("lobby", "lobby"),
        ("#lobby", "lobby"),
        ("#Lobby", "lobby"),
        ("RUST-lang_2", "rust-lang_2"),
        ("#" + "a" * 32, "a" * 32),
        ("a" * 32, "a" * 32),
    ],
)
def test_room_name_valid(raw: str, expected: str) -> None:
    assert room_name(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "#",
        "##lobby",
        "a" * 33,
        "#" + "a" * 33,
        "lob by",
        "lobby.",
        "caf\u00e9",
        "\u212a",
        " #a",
    ],
)
def test_room_name_invalid(raw: str) -> None:
    with pytest.raises(InvalidName, match="1-32 characters"):
        room_name(raw)


@FAST
@given(st.text(max_size=40))
def test_room_name_is_canonical(raw: str) -> None:
    try:
        name = room_name(raw)
    except InvalidName:
        return
    assert room_name(name) == name
    assert room_name("#" + name) == name
    assert name == name.lower()
    assert name.isascii()


def test_name_key() -> None:
    assert name_key("Bob") == name_key("bOB") == "bob"
    assert name_key("Stra\u00dfe") == "strasse"


# ---------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("2h", 7200),
        ("7d", 604800),
        ("1w", 604800),
        ("1h30m", 5400),
        ("1d12h", 129600),
        ("1w2d3h4m5s", 788645),
        ("90m", 5400),
        (" 10m ", 600),
        ("3650d", MAX_DURATION),
        ("0h1s", 1),
    ],
)
def test_parse_duration(raw: str, seconds: float) -> None:
    assert parse_duration(raw) == seconds
    assert isinstance(parse_duration(raw), float)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "invalid duration"),
        ("10", "unit"),
        ("m", "unit"),
        ("10x", "unit"),
        ("10M", "unit"),
        ("1.5h", "unit"),
        ("-5m", "unit"),
        ("1h 30m", "unit"),
        ("h1", "unit"),
        ("forever", "unit"),
        ("0s", "longer than zero"),
        ("0h0m", "longer than zero"),
        ("3651d", "at most 10 years"),
        ("9999999999w", "at most 10 years"),
        ("1" * 50 + "s", "invalid duration"),
        ("1s" * 30, "invalid duration"),
    ],
)
def test_parse_duration_invalid(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10m", True),
        ("1h30m", True),
        ("0s", True),
        ("bob", False),
        ("10", False),
        ("", False),
        ("spam", False),
        ("5 minutes", False),
        ("1s" * 30, False),
    ],
)
def test_looks_like_duration(raw: str, expected: bool) -> None:
    assert looks_like_duration(raw) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10m", True),
        ("1x", True),
        ("10M", True),
        ("1.5h", True),
        ("10min", True),
        ("2HRS", True),
        ("3days", True),
        ("1h30mins", True),
        ("2nd", False),
        ("3rd", False),
        ("4chan", False),
        ("1v1", False),
        ("1h30", False),
        ("10", False),
        ("x10", False),
        ("general", False),
        ("1\u017f", False),  # a long s: a letter to re.IGNORECASE, not an ASCII one
        ("1x" * 30, True),  # too long to be any duration: a mistyped one all the same
        ("0" * 70 + "7d", True),
        ("-5m", True),
        (".5h", True),
        ("5.h", True),
        ("1" * 5000, False),
        ("1" * 60 + "-x", False),
    ],
)
def test_meant_as_duration(raw: str, expected: bool) -> None:
    assert meant_as_duration(raw) is expected


@FAST
@given(st.from_regex(r"(?:[0-9]{1,10}[smhdw]){1,3}", fullmatch=True))
def test_every_duration_is_meant_as_one(raw: str) -> None:
    assert meant_as_duration(raw)


@FAST
@given(st.from_regex(r"[A-Za-z_-][A-Za-z0-9_-]{0,31}", fullmatch=True))
def test_a_name_that_starts_with_no_digit_is_never_meant_as_a_duration(name: str) -> None:
    assert not meant_as_duration(name)


DURATION = Duration("duration", optional=True)
# Durations, near-durations and anything else a user may type where one may stand.
DURATION_WORDS = (st.text(max_size=12)
                  | st.from_regex(r"[0-9]{1,4}(\.[0-9])?[a-zA-Z]{1,8}([0-9]{1,2}[a-z]{0,3})?",
                                  fullmatch=True))


@FAST
@given(DURATION_WORDS)
def test_an_optional_duration_takes_refuses_or_passes_on_by_the_rule(word: str) -> None:
    """A duration is taken, a word meant as one is refused (never left for a room or a
    reason to take), and any other word is passed on to the next parameter."""
    try:
        taken = DURATION.convert(NO_CONTEXT, word, True)
    except ChatError as exc:
        assert exc.code is Code.BAD_ARGUMENTS and meant_as_duration(word)
        assert "duration" in exc.message
    except Decline:
        assert not meant_as_duration(word) and not looks_like_duration(word)
    else:
        assert taken == parse_duration(word)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (-5, "0s"),
        (0.2, "1s"),
        (1, "1s"),
        (45, "45s"),
        (59.5, "1m"),
        (60, "1m"),
        (61, "1m 1s"),
        (600, "10m"),
        (3600, "1h"),
        (7500, "2h 5m"),
        (7530, "2h 5m"),
        (86400, "1d"),
        (97200, "1d 3h"),
        (86400 + 300, "1d"),  # 1d 0h 5m: units after the first two are dropped
        (604800, "7d"),
        (MAX_DURATION, "3650d"),
    ],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_format_duration_rejects_non_finite(value: float) -> None:
    with pytest.raises(ValueError, match="cannot format"):
        format_duration(value)


def _second_unit(text: str) -> int:
    """The size of the smallest unit ``format_duration`` could have shown next."""
    largest = text.split(maxsplit=1)[0][-1]
    return {"d": 3600, "h": 60, "m": 1, "s": 1}[largest]


@FAST
@given(st.floats(0.001, MAX_DURATION))
def test_format_then_parse_round_trips(seconds: float) -> None:
    text = format_duration(seconds)
    assert looks_like_duration(text.replace(" ", ""))
    parsed = parse_duration(text.replace(" ", ""))
    whole = math.ceil(seconds)
    # Never more than the rounded-up time, short by less than one unit
    # after the two shown.
    assert parsed <= whole
    assert whole - parsed < _second_unit(text)


@FAST
@given(
    st.integers(0, 3649),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
)
def test_parse_then_format_exact_for_two_units(d: int, h: int, m: int, s: int) -> None:
    # Keep only the two largest units so that formatting loses nothing.
    parts = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
    while parts and parts[0][0] == 0:
        parts.pop(0)
    parts = parts[:2]
    if not parts:
        return
    raw = "".join(f"{n}{unit}" for n, unit in parts)
    shown = " ".join(f"{n}{unit}" for n, unit in parts if n)
    assert format_duration(parse_duration(raw)) == shown


# Bidirectional overrides and isolates, zero-width characters and marks: names
# are ASCII, so none of them can hide in one.
INVISIBLE = st.sampled_from("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
                            "\u200b\u200c\u200d\u200e\u200f")


@FAST
@given(st.from_regex(r"[a-z0-9_-]{0,20}", fullmatch=True), INVISIBLE,
       st.from_regex(r"[a-z0-9_-]{0,10}", fullmatch=True))
def test_names_refuse_invisible_characters(before: str, char: str, after: str) -> None:
    with pytest.raises(InvalidName):
        user_name(before + char + after)
    with pytest.raises(InvalidName):
        room_name(before + char + after)


# ---------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------


def test_the_largest_number_is_the_largest_stored_id() -> None:
    assert MAX_NUMBER == 2**63 - 1 == 9223372036854775807


@pytest.mark.parametrize(("word", "expected"), [
    ("0", True), ("7", True), ("007", True), ("9223372036854775807", True),
    ("0" * (MAX_DIGITS - 1) + "5", True),
    ("9223372036854775808", False), ("99999999999999999999", False), ("1" + "0" * 400, False),
    ("0" * MAX_DIGITS + "5", False),
    ("", False), ("-5", False), ("+5", False), (" 5", False), ("5 ", False), ("1_0", False),
    ("٣", False), ("²", False), ("５", False), ("1.0", False), ("1e3", False), ("0x1", False),
])
def test_is_number(word: str, expected: bool) -> None:
    assert is_number(word) is expected


@FAST
@given(st.integers(min_value=0, max_value=MAX_NUMBER))
def test_every_id_storage_holds_is_a_number(value: int) -> None:
    assert is_number(str(value))


@FAST
@given(st.integers(min_value=MAX_NUMBER + 1, max_value=10**(MAX_DIGITS + 5)))
def test_no_number_beyond_storage_is_one(value: int) -> None:
    assert not is_number(str(value))


@FAST
@given(st.text(max_size=40) | st.from_regex(r"[0-9]{1,35}", fullmatch=True))
def test_what_is_a_number_storage_holds_and_int_reads_alike(word: str) -> None:
    """Whatever passes, int() reads as written (digits 0-9, nothing else) and
    SQLite stores (no OverflowError: the internal error a hostile id gave)."""
    if is_number(word):
        assert set(word) <= set("0123456789")
        with contextlib.closing(sqlite3.connect(":memory:")) as db:
            assert db.execute("SELECT ?", (int(word),)).fetchone() == (int(word),)
    else:
        assert not word.isascii() or not word.isdigit() or len(word) > MAX_DIGITS \
            or int(word) > MAX_NUMBER


@FAST
@given(st.text(min_size=1, max_size=5).filter(lambda t: not (t.isascii() and t.isdigit())),
       st.from_regex(r"[0-9]{0,5}", fullmatch=True))
def test_a_number_is_digits_only(odd: str, digits: str) -> None:
    assert not is_number(digits + odd)
    assert not is_number(odd + digits)


@pytest.mark.parametrize(("word", "expected"), [
    ("2", True), ("0.5", True), (".5", True), ("5.", True), ("20.25", True), ("007", True),
    ("", False), (".", False), ("1..2", False), ("1.2.3", False), ("-1", False), ("+1", False),
    (" 1", False), ("1 ", False), ("1_0", False), ("1e3", False), ("1E3", False), ("inf", False),
    ("nan", False), ("0x1", False), ("٣", False), ("٣.5", False), ("1.٥", False), ("５", False),
    ("1" * MAX_DIGITS, True), ("1" * (MAX_DIGITS + 1), False),
])
def test_is_decimal(word: str, expected: bool) -> None:
    assert is_decimal(word) is expected


@FAST
@given(st.text(max_size=12) | st.from_regex(r"[ +-]?[0-9_]{0,5}\.?[0-9_eE]{0,5}", fullmatch=True))
def test_a_decimal_is_ascii_digits_and_one_point(word: str) -> None:
    """What passes is what float() reads as written; what float() reads besides
    (other digits, "_", exponents, signs, spaces, inf and nan) does not pass."""
    if is_decimal(word):
        assert set(word) <= set("0123456789.") and word.count(".") <= 1
        assert math.isfinite(float(word)) and float(word) >= 0
    else:
        assert not word or not set(word) <= set("0123456789.") or word.count(".") > 1 \
            or word == "." or len(word) > MAX_DIGITS


@FAST
@given(st.integers(min_value=0, max_value=MAX_NUMBER).map(str) | st.text(max_size=25))
def test_every_whole_number_is_a_decimal(word: str) -> None:
    if is_number(word):
        assert is_decimal(word)
