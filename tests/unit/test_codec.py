"""Tests for chatd.protocol.codec: the line framer, line parsing and output encoding."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.protocol.codec import (
    INVALID_UTF8,
    LINE_TOO_LONG,
    BadLine,
    LineFramer,
    ParsedLine,
    clean_text,
    encode_json,
    encode_line,
    iso_ts,
    parse_line,
    split_args,
)

TOO_LONG = BadLine(LINE_TOO_LONG)
BAD_UTF8 = BadLine(INVALID_UTF8)
CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")

# Hypothesis tests share these settings: no deadline (CI machines vary) and a
# modest number of examples to keep the whole unit suite fast.
FAST = settings(max_examples=150, deadline=None)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def feed_pieces(max_line: int, data: bytes, cuts: list[int], *,
                telnet: bool = True) -> list[str | BadLine]:
    """Feed ``data`` to a new framer, cut at the offsets ``cuts``.

    Checks the buffer bound after every feed.
    """
    framer = LineFramer(max_line, telnet=telnet)
    out: list[str | BadLine] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        out.extend(framer.feed(data[start:cut]))
        assert framer.buffered <= max_line + 16
        start = cut
    return out


def reference_strip_telnet(data: bytes) -> bytes:
    """A slow, obviously-correct telnet filter, byte by byte."""
    out = bytearray()
    i, size = 0, len(data)
    while i < size:
        if data[i] != 0xFF:
            out.append(data[i])
            i += 1
        elif i + 1 >= size:
            i += 1
        elif data[i + 1] in (0xFB, 0xFC, 0xFD, 0xFE):
            i += 3
        elif data[i + 1] == 0xFA:
            i = reference_skip_subnegotiation(data, i + 2)
        else:
            i += 2
    return bytes(out)


def reference_skip_subnegotiation(data: bytes, i: int) -> int:
    """Index just after the IAC SE closing a subnegotiation whose body starts at ``i``."""
    while i < len(data):
        if data[i] == 0xFF:
            if i + 1 < len(data) and data[i + 1] == 0xF0:
                return i + 2
            i += 2
        else:
            i += 1
    return i


def reference_frame(data: bytes, max_line: int, *, telnet: bool = True) -> list[str | BadLine]:
    """A slow reference framer for a whole stream fed at once."""
    *lines, tail = (reference_strip_telnet(data) if telnet else data).split(b"\n")
    out: list[str | BadLine] = []
    for raw in lines:
        body = raw[:-1] if raw.endswith(b"\r") else raw
        if len(body) > max_line:
            out.append(TOO_LONG)
            continue
        try:
            out.append(clean_text(body.decode("utf-8")).rstrip())
        except UnicodeDecodeError:
            out.append(BAD_UTF8)
    if len(tail) > max_line + 1:
        out.append(TOO_LONG)  # reported early, before the newline arrives
    return out


# Interesting fragments: terminators, controls, UTF-8 pieces (valid and not)
# and telnet commands, so random streams hit every path of the framer.
FRAGMENTS = [
    b"a",
    b"hello ",
    b"x" * 13,
    b"\n",
    b"\r\n",
    b"\r",
    b"\r\x00",
    b"\x00",
    b"\t",
    b"\x1b[31m",
    b"\xc2\x9b",
    b"\xc3\xa9",
    b"\xe2\x82\xac",
    b"\xf0\x9f\x98\x80",
    b"\xc3",
    b"\x80",
    b"\xff",
    b"\xff\xff",
    b"\xff\xfb\x01",
    b"\xff\xfd\x0a",
    b"\xff\xf1",
    b"\xff\xfa\x18\x00xterm",
    b"\xff\xf0",
    b"\xfa",
    b"\xf0",
]

streams = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(FRAGMENTS), max_size=80).map(b"".join),
)


@st.composite
def stream_and_cuts(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    """A byte stream and the offsets at which to cut it."""
    data = draw(streams)
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=20))
    return data, cuts


# Text a client may legitimately send: no controls (Cc) and no surrogates.
plain_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")),
    max_size=120,
)


# ---------------------------------------------------------------------------
# clean_text
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hello", "hello"),
        ("", ""),
        ("a\tb", "a b"),
        ("\x1b[31mred\x1b[0m", "[31mred[0m"),
        ("bell\x07", "bell"),
        ("del\x7f", "del"),
        ("csi\x9b2J", "csi2J"),
        ("nul\x00cr\rlf\n", "nulcrlf"),
        ("caf\u00e9 \u20ac \U0001f600", "caf\u00e9 \u20ac \U0001f600"),
        ("nbsp\u00a0zwj\u200d", "nbsp\u00a0zwj\u200d"),  # not controls: kept
    ],
)
def test_clean_text(raw: str, expected: str) -> None:
    assert clean_text(raw) == expected


@FAST
@given(st.text())
def test_clean_text_removes_every_control(text: str) -> None:
    cleaned = clean_text(text)
    assert CONTROL_RE.search(cleaned) is None
    assert clean_text(cleaned) == cleaned


@FAST
@given(plain_text)
def test_clean_text_keeps_text_without_controls(text: str) -> None:
    assert clean_text(text) == text


# ---------------------------------------------------------------------------
# LineFramer: tables
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"hello\n"], ["hello"]),
        ([b"hello\r\n"], ["hello"]),
        ([b"one\ntwo\r\nthree\n"], ["one", "two", "three"]),
        ([b"hel", b"lo", b"\n"], ["hello"]),
        ([b"hello\r", b"\n"], ["hello"]),
        ([b"\n\r\n"], ["", ""]),
        ([b"trailing   \t \n"], ["trailing"]),
        ([b"  leading\n"], ["  leading"]),
        ([b"no newline yet"], []),
        ([b"bare\rcr\n"], ["barecr"]),
        ([b"telnet\r\x00nul\r\n"], ["telnetnul"]),
        ([b"\x1b]0;title\x07\x1b[2Jhi\n"], ["]0;title[2Jhi"]),
        ([b"caf\xc3", b"\xa9\n"], ["caf\u00e9"]),
        ([b"\xc3\xa9t\xc3\xa9\n"], ["\u00e9t\u00e9"]),
    ],
)
def test_framer_lines(chunks: list[bytes], expected: list[str]) -> None:
    framer = LineFramer()
    out: list[str | BadLine] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    assert out == expected


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        # Option negotiation, as a telnet client sends it on connect.
        ([b"\xff\xfd\x01\xff\xfb\x1f\xff\xfb\x18hi\n"], ["hi"]),
        # Subnegotiation dropped entirely, including a newline inside it.
        ([b"a\xff\xfa\x18\x00xt\nerm\xff\xf0b\n"], ["ab"]),
        # IAC IAC inside a subnegotiation does not end it.
        ([b"a\xff\xfa\x01\xff\xff\xf0\xff\xf0b\n"], ["ab"]),
        # IAC IAC (escaped 0xFF) is dropped.
        ([b"x\xff\xffy\n"], ["xy"]),
        # Two-byte commands: NOP, AYT, IP, stray SE.
        ([b"\xff\xf1a\xff\xf6b\xff\xf4c\xff\xf0d\n"], ["abcd"]),
        # An option byte that happens to be a newline does not end the line.
        ([b"a\xff\xfd\nb\n"], ["ab"]),
        # Sequences split across feeds, at every position.
        ([b"a\xff", b"\xfb", b"\x01b\n"], ["ab"]),
        ([b"a\xff\xfa", b"\x18\x00x\xff", b"\xf0b\n"], ["ab"]),
        ([b"a\xff\xfa\x18\xff", b"\xff", b"\xff", b"\xf0b\n"], ["ab"]),
        # Telnet inside a multi-byte UTF-8 character.
        ([b"caf\xc3\xff\xfb\x01\xa9\n"], ["caf\u00e9"]),
    ],
)
def test_framer_removes_telnet(chunks: list[bytes], expected: list[str]) -> None:
    framer = LineFramer()
    out: list[str | BadLine] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    assert out == expected
    assert framer.buffered == 0


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"12345678\n"], ["12345678"]),
        ([b"12345678\r\n"], ["12345678"]),
        ([b"12345678\r", b"\n"], ["12345678"]),
        ([b"123456789\nok\n"], [TOO_LONG, "ok"]),
        ([b"123456789\r\nok\n"], [TOO_LONG, "ok"]),
        ([b"123456789", b"\nok\n"], [TOO_LONG, "ok"]),
        ([b"1234567890", b"123", b"456\nok\n"], [TOO_LONG, "ok"]),
        ([b"1234", b"5678", b"9\r\nok\n"], [TOO_LONG, "ok"]),
        ([b"x" * 100, b"y" * 100, b"\r\n", b"ok\n"], [TOO_LONG, "ok"]),
        ([b"ok\n" + b"x" * 50 + b"\nok2\n"], ["ok", TOO_LONG, "ok2"]),
        # The limit counts bytes, not characters: 3 x 3 bytes > 8.
        (["\u20ac\u20ac\u20ac\n".encode()], [TOO_LONG]),
        # Control characters count too: the limit applies before cleaning.
        ([b"\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\nok\n"], [TOO_LONG, "ok"]),
    ],
)
def test_framer_line_limit(chunks: list[bytes], expected: list[str | BadLine]) -> None:
    framer = LineFramer(max_line=8)
    out: list[str | BadLine] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
        assert framer.buffered <= 9
    assert out == expected


@pytest.mark.parametrize(
    "bad",
    [
        b"\xc3\x28",  # invalid continuation
        b"\x80",  # lone continuation byte
        b"\xc3",  # truncated sequence at end of line
        b"\xc0\xaf",  # overlong encoding of "/"
        b"\xed\xa0\x80",  # UTF-16 surrogate
        b"\xf4\x90\x80\x80",  # beyond U+10FFFF
        b"\xfe",
        b"ok \xe2\x82",
    ],
)
def test_framer_invalid_utf8(bad: bytes) -> None:
    framer = LineFramer()
    assert framer.feed(b"before\n" + bad + b"\r\nafter\n") == ["before", BAD_UTF8, "after"]


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        # A WebSocket's messages, one line each: 0xFF is bad UTF-8, not telnet's IAC,
        # so it neither swallows the line end after it nor joins two lines.
        ([b"/ping\xff\n", b"/whoami\n"], [BAD_UTF8, "/whoami"]),
        ([b"\xff\xfa\n", b"/ping\n/ping\n"], [BAD_UTF8, "/ping", "/ping"]),
        ([b"a\xff", b"\xfb\x01b\n"], [BAD_UTF8]),
        ([b"\xff\xf0\n"], [BAD_UTF8]),
    ],
)
def test_framer_without_telnet_keeps_every_byte(chunks: list[bytes],
                                                expected: list[str | BadLine]) -> None:
    framer = LineFramer(telnet=False)
    out: list[str | BadLine] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    assert out == expected
    assert framer.buffered == 0


def test_framer_default_limit_is_4096() -> None:
    framer = LineFramer()
    assert framer.feed(b"a" * 4096 + b"\r\n") == ["a" * 4096]
    assert framer.feed(b"a" * 4097 + b"\r\nok\n") == [TOO_LONG, "ok"]


def test_framer_rejects_silly_limit() -> None:
    with pytest.raises(ValueError, match="max_line"):
        LineFramer(0)


def test_framer_flood_without_newline_stays_bounded() -> None:
    framer = LineFramer(max_line=100)
    results: list[str | BadLine] = []
    chunk = b"z" * 65536
    for _ in range(160):  # 10 MiB
        results.extend(framer.feed(chunk))
        assert framer.buffered <= 101
    results.extend(framer.feed(b"end\nnext\n"))
    assert results == [TOO_LONG, "next"]


def test_framer_unterminated_subnegotiation_swallows_input() -> None:
    # Documented behaviour: only a broken telnet client does this.
    framer = LineFramer()
    assert framer.feed(b"\xff\xfaabc\ndef\n") == []
    assert framer.feed(b"\xff\xf0ok\n") == ["ok"]


# ---------------------------------------------------------------------------
# LineFramer: properties
# ---------------------------------------------------------------------------


@FAST
@given(stream_and_cuts(), st.sampled_from([4, 16, 4096]))
def test_framer_split_anywhere_same_result(case: tuple[bytes, list[int]], max_line: int) -> None:
    data, cuts = case
    whole = LineFramer(max_line).feed(data)
    assert feed_pieces(max_line, data, cuts) == whole


@FAST
@given(stream_and_cuts(), st.sampled_from([4, 16, 4096]))
def test_framer_matches_reference(case: tuple[bytes, list[int]], max_line: int) -> None:
    data, cuts = case
    assert feed_pieces(max_line, data, cuts) == reference_frame(data, max_line)


@FAST
@given(stream_and_cuts(), st.sampled_from([4, 16, 4096]))
def test_framer_without_telnet_matches_reference(case: tuple[bytes, list[int]],
                                                 max_line: int) -> None:
    data, cuts = case
    assert feed_pieces(max_line, data, cuts, telnet=False) == \
        reference_frame(data, max_line, telnet=False)


@FAST
@given(stream_and_cuts(), st.sampled_from([4, 16, 4096]))
def test_framer_results_are_clean(case: tuple[bytes, list[int]], max_line: int) -> None:
    data, cuts = case
    for item in feed_pieces(max_line, data, cuts):
        if isinstance(item, BadLine):
            assert item.code in (LINE_TOO_LONG, INVALID_UTF8)
        else:
            assert isinstance(item, str)
            assert CONTROL_RE.search(item) is None
            assert item == item.rstrip()


@FAST
@given(st.lists(plain_text, max_size=8), st.booleans(), st.data())
def test_framer_round_trips_lines(lines: list[str], crlf: bool, data: st.DataObject) -> None:
    terminator = b"\r\n" if crlf else b"\n"
    stream = b"".join(line.encode() + terminator for line in lines)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    assert feed_pieces(4096, stream, cuts) == [line.rstrip() for line in lines]


telnet_commands = st.one_of(
    st.builds(
        lambda verb, opt: bytes([0xFF, verb, opt]), st.integers(0xFB, 0xFE), st.integers(0, 255)
    ),
    st.builds(lambda cmd: bytes([0xFF, cmd]), st.integers(0, 0xF9) | st.just(0xFF)),
    st.builds(
        lambda body: b"\xff\xfa" + body.replace(b"\xff", b"\xff\xff") + b"\xff\xf0",
        st.binary(max_size=12),
    ),
)


@FAST
@given(st.lists(plain_text, max_size=6), st.data())
def test_framer_telnet_vanishes(lines: list[str], data: st.DataObject) -> None:
    text = b"".join(line.encode() + b"\r\n" for line in lines)
    inserts = data.draw(st.lists(st.tuples(st.integers(0, len(text)), telnet_commands), max_size=8))
    stream = bytearray(text)
    # Insert from the end so earlier offsets stay valid; offsets may fall
    # inside a UTF-8 character or between CR and LF, which must not matter.
    for offset, command in sorted(inserts, reverse=True):
        stream[offset:offset] = command
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    assert feed_pieces(4096, bytes(stream), cuts) == [line.rstrip() for line in lines]


@FAST
@given(st.integers(9, 300), st.lists(st.integers(0, 400), max_size=10), st.booleans())
def test_framer_over_long_line_reported_once(length: int, cuts: list[int], crlf: bool) -> None:
    terminator = b"\r\n" if crlf else b"\n"
    stream = b"ok\n" + b"x" * length + terminator + b"next\n"
    cuts = [min(cut, len(stream)) for cut in cuts]
    assert feed_pieces(8, stream, cuts) == ["ok", TOO_LONG, "next"]


@FAST
@given(plain_text, st.binary(min_size=1, max_size=20), st.data())
def test_framer_invalid_utf8_then_recovers(prefix: str, junk: bytes, data: st.DataObject) -> None:
    bad = prefix.encode() + b"\x80" + junk.replace(b"\n", b"").replace(b"\xff", b"")
    stream = bad + b"\nafter\n"
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    assert feed_pieces(4096, stream, cuts) == [BAD_UTF8, "after"]


# ---------------------------------------------------------------------------
# parse_line
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hello", ParsedLine(None, None, "", "hello")),
        ("", ParsedLine(None, None, "", "")),
        ("/join #lobby", ParsedLine(None, "join", "#lobby", None)),
        ("/JOIN #Lobby", ParsedLine(None, "join", "#Lobby", None)),
        ("/msg bob  hi  there", ParsedLine(None, "msg", "bob  hi  there", None)),
        ("/quit", ParsedLine(None, "quit", "", None)),
        ("/quit   ", ParsedLine(None, "quit", "", None)),
        ("/", ParsedLine(None, "", "", None)),
        ("/ who", ParsedLine(None, "", "who", None)),
        ("//shrug", ParsedLine(None, None, "", "/shrug")),
        ("//", ParsedLine(None, None, "", "/")),
        ("///x", ParsedLine(None, None, "", "//x")),
        (" /join", ParsedLine(None, None, "", " /join")),
        ("@r1 /join #a", ParsedLine("r1", "join", "#a", None)),
        ("@r1    /WHO", ParsedLine("r1", "who", "", None)),
        ("@a.b:c+d-e_9 /x y", ParsedLine("a.b:c+d-e_9", "x", "y", None)),
        ("@r1 /", ParsedLine("r1", "", "", None)),
        ("@" + "L" * 64 + " /x", ParsedLine("L" * 64, "x", "", None)),
        ("@" + "L" * 65 + " /x", ParsedLine(None, None, "", "@" + "L" * 65 + " /x")),
        ("@bob hi there", ParsedLine(None, None, "", "@bob hi there")),
        ("@r1 //text", ParsedLine(None, None, "", "@r1 //text")),
        ("@r1/join", ParsedLine(None, None, "", "@r1/join")),
        ("@ /join", ParsedLine(None, None, "", "@ /join")),
        ("@r!1 /join", ParsedLine(None, None, "", "@r!1 /join")),
        ("@r1\t/join", ParsedLine(None, None, "", "@r1\t/join")),
        ("@r1", ParsedLine(None, None, "", "@r1")),
    ],
)
def test_parse_line(line: str, expected: ParsedLine) -> None:
    assert parse_line(line) == expected


@FAST
@given(st.text().filter(lambda s: not s.startswith(("/", "@"))))
def test_parse_line_plain_message(text: str) -> None:
    assert parse_line(text) == ParsedLine(None, None, "", text)


@FAST
@given(st.text())
def test_parse_line_double_slash_escapes(text: str) -> None:
    assert parse_line("//" + text) == ParsedLine(None, None, "", "/" + text)


command_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,15}", fullmatch=True)
labels = st.from_regex(r"[A-Za-z0-9._:+\-]{1,64}", fullmatch=True)


@FAST
@given(labels, st.integers(1, 4), command_names, plain_text)
def test_parse_line_labelled_command(label: str, spaces: int, name: str, args: str) -> None:
    line = f"@{label}{' ' * spaces}/{name} {args}"
    assert parse_line(line) == ParsedLine(label, name.lower(), args.lstrip(), None)


@FAST
@given(st.text())
def test_parse_line_is_total(line: str) -> None:
    parsed = parse_line(line)
    if parsed.command is None:
        assert parsed.label is None
        assert parsed.args == ""
        assert parsed.text is not None
    else:
        assert parsed.text is None
        assert parsed.command == parsed.command.lower()


# ---------------------------------------------------------------------------
# split_args
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "max_parts", "expected"),
    [
        ("", 2, []),
        ("   ", 2, []),
        ("   ", 0, []),
        ("bob", 2, ["bob"]),
        ("bob too loud  here", 2, ["bob", "too loud  here"]),
        ("  bob   too loud  here  ", 2, ["bob", "too loud  here"]),
        ("a b c d", 3, ["a", "b", "c d"]),
        ("a b c d", 1, ["a b c d"]),
        ("  a b  ", 1, ["a b"]),
        ("a\tb\t c", 2, ["a", "b\t c"]),
        ("a b c d", 0, ["a", "b", "c", "d"]),
        ("a b c d", -1, ["a", "b", "c", "d"]),
        ("a b", 5, ["a", "b"]),
    ],
)
def test_split_args(args: str, max_parts: int, expected: list[str]) -> None:
    assert split_args(args, max_parts) == expected


@FAST
@given(st.text(), st.integers(-2, 6))
def test_split_args_properties(args: str, max_parts: int) -> None:
    parts = split_args(args, max_parts)
    if max_parts <= 0:
        assert parts == args.split()
        return
    assert len(parts) <= max_parts
    assert all(part and part == part.strip() for part in parts)
    # Nothing lost or reordered: re-splitting the parts gives the words.
    assert [word for part in parts for word in part.split()] == args.split()
    # All parts but the last are single words.
    assert all(len(part.split()) == 1 for part in parts[:-1])
    if parts:
        assert parts[-1] in args  # the last part is verbatim


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def test_encode_line() -> None:
    assert encode_line("hi") == b"hi\r\n"
    assert encode_line("") == b"\r\n"
    assert encode_line("caf\u00e9") == b"caf\xc3\xa9\r\n"
    assert encode_line("bad \ud800") == b"bad ?\r\n"


def test_encode_json() -> None:
    encoded = encode_json({"type": "msg", "text": "caf\u00e9\nnext", "n": 1})
    assert encoded == '{"type":"msg","text":"caf\u00e9\\nnext","n":1}\r\n'.encode()
    assert encoded.count(b"\n") == 1
    assert json.loads(encoded) == {"type": "msg", "text": "caf\u00e9\nnext", "n": 1}


@FAST
@given(st.dictionaries(st.text(), st.text() | st.integers() | st.booleans()))
def test_encode_json_is_one_line(obj: dict[str, object]) -> None:
    encoded = encode_json(obj)
    assert encoded.endswith(b"\r\n")
    assert b"\n" not in encoded[:-2]
    assert b"\r" not in encoded[:-2]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)


@FAST
@given(st.dictionaries(st.text(), _JSON))
def test_encode_json_is_what_the_standard_encoder_writes(obj: dict[str, object]) -> None:
    standard = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    assert encode_json(obj) == (standard + "\r\n").encode("utf-8", "replace")


def test_encode_json_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError):
        encode_json({"x": object()})


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1795255200, "2026-11-21T10:00:00.000Z"),
        (1795255200.5, "2026-11-21T10:00:00.500Z"),
        (1795255200.0419, "2026-11-21T10:00:00.041Z"),
        (951782400, "2000-02-29T00:00:00.000Z"),
    ],
)
def test_iso_ts(epoch: float, expected: str) -> None:
    assert iso_ts(epoch) == expected


@FAST
@given(st.binary(max_size=600), st.binary(max_size=600),
       st.lists(st.integers(0, 600), max_size=6))
def test_connections_sharing_the_framer_at_rest_keep_their_own_lines(
        first: bytes, second: bytes, cuts: list[int]) -> None:
    """Two streams (telnet sequences, long lines and all) fed in turns, each
    connection keeping what settle() returns: each gives what it gives alone."""
    shared = LineFramer(64)
    held = [shared, shared]
    got: list[list[str | BadLine]] = [[], []]
    start = 0
    for cut in [*sorted(cuts), 600]:
        for k, data in enumerate((first, second)):
            got[k] += held[k].feed(data[start:cut])
            held[k] = held[k].settle()
            assert shared.buffered == 0
        start = max(start, cut)
    assert got == [LineFramer(64).feed(first), LineFramer(64).feed(second)]


def test_the_framer_at_rest_is_one_per_line_limit() -> None:
    assert LineFramer.at_rest(100) is LineFramer.at_rest(100)
    assert LineFramer.at_rest(100) is not LineFramer.at_rest(200)
    private = LineFramer.at_rest(100)
    private.feed(b"half a li")
    private = private.settle()
    assert private is not LineFramer.at_rest(100) and private.buffered == 9
    assert LineFramer.at_rest(100).buffered == 0
    assert private.feed(b"ne\n") == ["half a line"]
    assert private.settle() is LineFramer.at_rest(100)


def test_the_framer_at_rest_without_telnet_is_its_own_and_stays_so() -> None:
    plain = LineFramer.at_rest(100, telnet=False)
    assert plain is LineFramer.at_rest(100, telnet=False)
    assert plain is not LineFramer.at_rest(100)
    # A line cut after 0xFF leaves a private framer: it must not start filtering telnet.
    assert plain.feed(b"half\xff") == []
    private = plain.settle()
    assert private is not plain and plain.buffered == 0
    assert private.feed(b"\xfa\n/ping\n") == [BAD_UTF8, "/ping"]
    assert private.settle() is plain
