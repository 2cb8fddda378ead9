"""The IRC codec: table-driven (the ircdocs parser tests) and property-based."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from parser_tests import data as vectors

from chatd.irc import codec
from chatd.irc.codec import (
    MAX_BODY,
    MAX_TAGS,
    IrcFramer,
    IrcMessage,
    IrcParseError,
    add_tags,
    escape_tag,
    fit,
    format_line,
    parse,
    split_text,
    unescape_tag,
)
from chatd.protocol.codec import INVALID_UTF8, LINE_TOO_LONG, BadLine

TOO_LONG, BAD_UTF8 = BadLine(LINE_TOO_LONG), BadLine(INVALID_UTF8)


# -- parsing: the ircdocs/parser-tests vectors -------------------------------------

@pytest.mark.parametrize("case", vectors.msg_split["tests"], ids=lambda c: c["input"][:40])
def test_parse_split_vectors(case: dict) -> None:
    atoms = case["atoms"]
    message = parse(case["input"])
    assert message.command == atoms["verb"].upper()
    assert list(message.params) == atoms.get("params", [])
    assert message.source == atoms.get("source")
    assert dict(message.tags) == {k: v or "" for k, v in (atoms.get("tags") or {}).items()}


@pytest.mark.parametrize("case", vectors.msg_join["tests"], ids=lambda c: c.get("desc", ""))
def test_format_join_vectors(case: dict) -> None:
    atoms = case["atoms"]
    line = format_line(atoms["verb"], *atoms.get("params", []), source=atoms.get("source"),
                       tags=atoms.get("tags"), trailing=False)
    # Tag order is free; compare what parsing gives back.
    expected = [parse(m) for m in case["matches"]]
    assert parse(line) in expected


@pytest.mark.parametrize("line", ["", "   ", ":source", "@a=b", "@a=b :src", "PRIV-MSG x"])
def test_parse_refuses_lines_without_a_verb(line: str) -> None:
    with pytest.raises(IrcParseError):
        parse(line)


def test_parse_upper_cases_the_verb_and_keeps_spaces_in_the_trailing_param() -> None:
    assert parse("privmsg #a :hi  there ") == IrcMessage("PRIVMSG", ("#a", "hi  there "))


@pytest.mark.parametrize(("raw", "value"), [
    ("a\\:b\\sc\\\\d", "a;b c\\d"), ("x\\ry\\nz", "x\ry\nz"), ("\\q", "q"), ("end\\", "end"),
])
def test_tag_values_unescape(raw: str, value: str) -> None:
    assert unescape_tag(raw) == value
    assert unescape_tag(escape_tag(value)) == value


# -- formatting ----------------------------------------------------------------------

def test_format_marks_the_trailing_parameter() -> None:
    assert format_line("PRIVMSG", "#a", "hi", source="n!u@h") == ":n!u@h PRIVMSG #a :hi"
    assert format_line("JOIN", "#a", trailing=False) == "JOIN #a"
    assert format_line("X", "", trailing=False) == "X :"
    assert format_line("X", ":colon", trailing=False) == "X ::colon"


def test_format_never_breaks_a_line_and_cuts_to_the_limit() -> None:
    line = format_line("PRIVMSG", "#a", "x\r\ny\0" + "é" * 400)
    assert "\r" not in line and "\n" not in line and "\0" not in line
    assert len(line.encode()) <= MAX_BODY
    assert format_line("X", "a b", "c") == "X a_b :c"


def test_tags_are_added_in_front() -> None:
    assert add_tags("PING x", {"label": "a b"}) == "@label=a\\sb PING x"
    assert add_tags("@time=1 PING x", {"label": "l"}) == "@label=l;time=1 PING x"
    assert add_tags("PING", {}) == "PING"
    assert add_tags("PING", {"flag": ""}) == "@flag PING"


def test_tags_never_break_the_line() -> None:
    """Values escape CR and LF; a key cannot, and NUL has no escape: both are
    removed (a space in their place would end the tag section)."""
    assert add_tags("TAGMSG #a", {"+a\rb": "1\0", "+ok": "x\r\ny"}) == (
        "@+ab=1;+ok=x\\r\\ny TAGMSG #a")


def test_split_text_keeps_words_and_characters_whole() -> None:
    assert split_text("hello world", 100) == ["hello world"]
    assert split_text("aaaa bbbb cccc", 9) == ["aaaa bbbb", "cccc"]
    pieces = split_text("é" * 10, 5)
    assert all(len(p.encode()) <= 5 for p in pieces) and "".join(pieces) == "é" * 10
    assert fit("éé", 3) == "é"


# -- framing -----------------------------------------------------------------------

def test_framer_joins_lines_split_across_reads() -> None:
    framer = IrcFramer()
    assert framer.feed(b"PRIVMSG #a :hel") == []
    assert framer.buffered == 15
    assert framer.feed(b"lo\r") == []
    assert framer.feed(b"\nPING x\nPI") == ["PRIVMSG #a :hello", "PING x"]
    assert framer.feed(b"NG y\r\n\r\n\n") == ["PING y"]


def test_framer_holds_nothing_between_lines() -> None:
    framer = IrcFramer()
    assert framer.feed(b"PING a\r\nPI") == ["PING a"]
    assert framer.feed(b"NG b\r\n") == ["PING b"]
    assert framer.buffered == 0
    assert framer.feed(b"P " + b"x" * 600) == [TOO_LONG]
    assert framer.buffered == 0


def test_framer_limits_a_line_to_512_bytes_and_resyncs() -> None:
    framer = IrcFramer()
    fits = b"P " + b"x" * (MAX_BODY - 2)
    assert framer.feed(fits + b"\r\n") == [fits.decode()]
    assert framer.feed(fits + b"y\r\n") == [TOO_LONG]
    # Reported as soon as it is known, then the rest of that line is skipped.
    assert framer.feed(b"P " + b"x" * 600) == [TOO_LONG]
    assert framer.feed(b"more of it\nPING ok\n") == ["PING ok"]


def test_framer_allows_8191_bytes_of_tags() -> None:
    framer = IrcFramer()
    tags = b"@t=" + b"v" * (MAX_TAGS - 4) + b" "
    body = b"PRIVMSG #a :" + b"x" * (MAX_BODY - 12)
    assert framer.feed(tags + body + b"\n") == [(tags + body).decode()]
    assert framer.feed(b"@t=" + b"v" * MAX_TAGS + b" PING x\n") == [TOO_LONG]
    assert framer.feed(tags + body + b"x\n") == [TOO_LONG]


def test_framer_passes_a_line_of_tags_alone_to_the_parser() -> None:
    assert IrcFramer().feed(b"@\r\n@a=b\n") == ["@", "@a=b"]


def test_framer_reports_invalid_utf8_and_goes_on() -> None:
    framer = IrcFramer()
    assert framer.feed(b"PRIVMSG #a :\xff\xfe\nPING x\n") == [BAD_UTF8, "PING x"]


# -- properties ----------------------------------------------------------------------

@settings(max_examples=300)
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=6))
def test_framer_gives_the_same_whatever_the_reads(data: bytes, cuts: list[int]) -> None:
    whole = IrcFramer().feed(data)
    framer, pieces, start = IrcFramer(), [], 0
    for cut in sorted(cuts):
        pieces += framer.feed(data[start:cut])
        start = max(start, cut)
    pieces += framer.feed(data[start:])
    assert pieces == whole
    assert framer.buffered <= MAX_TAGS + MAX_BODY + 1


@settings(max_examples=500)
@given(st.text(max_size=600))
def test_parse_never_fails_otherwise(line: str) -> None:
    try:
        message = parse(line)
    except IrcParseError:
        return
    assert message.command.isupper() or message.command.isdigit()


def _outcome(line: str) -> IrcMessage | None:
    try:
        return parse(line)
    except IrcParseError:
        return None


@settings(max_examples=500)
@given(st.text(st.sampled_from("PRIVMSG #a:b x @=;\t"), max_size=40) | st.text(max_size=200))
def test_the_short_way_for_plain_lines_parses_as_the_long_way(line: str) -> None:
    # A line with a leading space takes the general parser, with the same meaning.
    assert _outcome(line) == _outcome(" " + line)


@settings(max_examples=500)
@given(st.lists(st.text(st.sampled_from("ab :\r\n\0"), max_size=4) | st.text(max_size=8),
                min_size=1, max_size=5))
def test_middle_parameters_are_written_as_one_by_one(params: list[str]) -> None:
    # The joined short way for plain words gives what each parameter's own rules give.
    assert codec._middles(params) == " ".join(map(codec._middle, params))


@settings(max_examples=300)
@given(st.binary(max_size=1500))
def test_any_bytes_frame_and_parse_without_crashing(data: bytes) -> None:
    for item in IrcFramer().feed(data + b"\n"):
        if isinstance(item, str):
            with contextlib.suppress(IrcParseError):
                parse(item)


_word = st.text(st.characters(blacklist_characters=" \r\n\0:", blacklist_categories=("Cs",)),
                min_size=1, max_size=20)


@settings(max_examples=300)
@given(st.lists(_word, max_size=5), st.text(max_size=300),
       st.dictionaries(st.from_regex(r"\+?[a-z][a-z0-9-]{0,8}", fullmatch=True),
                       st.text(max_size=20), max_size=3))
def test_format_then_parse_gives_the_parts_back(middle: list[str], last: str,
                                                tags: dict[str, str]) -> None:
    line = format_line("PRIVMSG", *middle, last, source="n!u@h", tags=tags)
    assert "\n" not in line and "\r" not in line and "\0" not in line
    message = parse(line)
    assert message.params[:-1] == tuple(middle)
    clean = last.replace("\r", " ").replace("\n", " ").replace("\0", " ")
    assert clean.startswith(message.params[-1])
    # (A NUL has no escape: it is removed from a tag's value.)
    assert message.tags == {key: value.replace("\0", "") for key, value in tags.items()}
    body = line.split(" ", 1)[1] if tags else line
    assert len(body.encode()) <= MAX_BODY


@pytest.mark.parametrize(("raw", "plain"), [
    ("c \x0304,12red\x03 \x034x \x04ff0000hex\x04", "c red x hex"),
    ("\x02bold\x02 \x1ditalic\x1d \x1funder\x1f \x0freset", "bold italic under reset"),
    ("\x03,12 no foreground: the comma stays", ",12 no foreground: the comma stays"),
    ("\x03123 three digits: the third stays", "3 three digits: the third stays"),
    ("\x04ff00 short hex: left", "ff00 short hex: left"),
    ("no formatting at all", "no formatting at all"),
])
def test_plain_text_removes_colour_codes_with_their_numbers(raw: str, plain: str) -> None:
    assert codec.plain_text(raw) == plain


@given(st.text())
def test_plain_text_leaves_no_control_character(text: str) -> None:
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in codec.plain_text(text))


@settings(max_examples=200)
@given(st.binary(max_size=1200), st.binary(max_size=1200),
       st.lists(st.integers(0, 1200), max_size=6))
def test_connections_sharing_the_framer_at_rest_keep_their_own_lines(
        first: bytes, second: bytes, cuts: list[int]) -> None:
    """Two streams fed in turns, each connection keeping what settle() returns, as
    a connection does: each gives what it gives alone, and the shared framer is at
    rest after every settle."""
    shared = IrcFramer()
    held = [shared, shared]
    got: list[list[str | BadLine]] = [[], []]
    start = 0
    for cut in [*sorted(cuts), 1200]:
        for k, data in enumerate((first, second)):
            got[k] += held[k].feed(data[start:cut])
            held[k] = held[k].settle()
            assert shared.buffered == 0
        start = max(start, cut)
    assert got == [IrcFramer().feed(first), IrcFramer().feed(second)]
    # A newline ends any line or skip: both connections are back on the shared framer.
    for k in range(2):
        held[k].feed(b"\n")
        held[k] = held[k].settle()
    assert held[0] is shared and held[1] is shared
