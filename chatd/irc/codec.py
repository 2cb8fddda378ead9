"""The IRC codec: framing, parsing and formatting of IRC lines.

Pure like :mod:`chatd.protocol.codec`: no asyncio, no sessions, no rooms. The rules
are RFC 1459/2812 with the IRCv3 message-tags extension:

* a line ends in ``\\n`` (``\\r\\n`` on the wire); the body after the tags
  holds at most 510 bytes (512 with the line end), and the tag section
  (``@`` ... up to its space) at most 8191 bytes;
* ``[@tags ][:source ]VERB[ param ...][ :trailing]``, where runs of spaces
  separate the parts and the trailing parameter may hold spaces;
* tag values escape ``;``, space, ``\\``, CR and LF as ``\\:``, ``\\s``,
  ``\\\\``, ``\\r`` and ``\\n``.

:func:`parse` never raises anything but :class:`IrcParseError`, whatever
string it is given; :func:`format_line` and :func:`add_tags` never produce a
line with CR, LF or NUL inside it, nor a body longer than the limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, NamedTuple, Self

from chatd.protocol.codec import INVALID_UTF8, LINE_TOO_LONG, BadLine, SharedAtRest, clean_text

__all__ = [
    "MAX_BODY",
    "MAX_TAGS",
    "IrcFramer",
    "IrcMessage",
    "IrcParseError",
    "add_tags",
    "escape_tag",
    "fit",
    "format_line",
    "is_plain_middle",
    "parse",
    "raw_verb",
    "split_text",
    "unescape_tag",
]

# Bytes of a line without its tags and without the CR LF (RFC 1459: 512 with it).
MAX_BODY: Final = 510
# Bytes of the tag section, its "@" and its closing space included (IRCv3).
MAX_TAGS: Final = 8191

_TOO_LONG: Final = BadLine(LINE_TOO_LONG)
_BAD_UTF8: Final = BadLine(INVALID_UTF8)


class IrcParseError(ValueError):
    """A line that is not an IRC message (no verb, or a malformed verb)."""


# The tags of the many lines that have none: one shared, read-only mapping.
NO_TAGS: Final[Mapping[str, str]] = MappingProxyType({})


class IrcMessage(NamedTuple):
    """One parsed IRC line. ``command`` is upper-cased; ``params`` include the trailing one.

    A named tuple rather than a frozen dataclass: as immutable, and made without
    a ``__setattr__`` per field, once for every line a client sends."""

    command: str
    params: tuple[str, ...] = ()
    source: str | None = None
    tags: Mapping[str, str] = NO_TAGS


# ---------------------------------------------------------------------------
# Framing
# ---------------------------------------------------------------------------


class IrcFramer(SharedAtRest):
    """Split a client's byte stream into IRC lines (``str``) and framing errors.

    A :class:`chatd.protocol.codec.Framer`, as the line protocol's
    :class:`chatd.protocol.codec.LineFramer` (``feed`` returns lines and
    :class:`BadLine` in order, and feeding in any pieces gives the same
    result), with IRC's limits and none of the telnet handling: an over-long
    line is reported once as ``line-too-long``, as soon as it passes the limit,
    and the rest of it is skipped up to its newline. Empty lines are dropped
    silently, as IRC servers do.
    """

    __slots__ = ("_pending", "_skipping")

    def __init__(self) -> None:
        super().__init__()
        # The incomplete last line; None rather than empty, so the many
        # connections between lines hold no buffer.
        self._pending: bytearray | None = None
        self._skipping = False

    def settle(self) -> Self:
        at_rest = self._pending is None and not self._skipping
        if at_rest and self._home is None:
            return self  # the shared framer, left at rest: nearly every feed
        return self._settled(at_rest)

    def _take_state(self) -> Self:
        private = type(self)()
        private._pending, private._skipping = self._pending, self._skipping
        self._pending, self._skipping = None, False
        return private

    @property
    def buffered(self) -> int:
        return 0 if self._pending is None else len(self._pending)

    def feed(self, data: bytes) -> list[str | BadLine]:
        out: list[str | BadLine] = []
        pos = 0
        if self._skipping:
            newline = data.find(b"\n")
            if newline < 0:
                return out
            self._skipping = False
            pos = newline + 1
        newline = data.find(b"\n", pos)
        while newline >= 0:
            pending = self._pending
            if pending is None:
                line = _decode(data[pos:newline])
            else:
                pending += data[pos:newline]
                line = _decode(bytes(pending))
                self._pending = None
            if line is not None:
                out.append(line)
            pos = newline + 1
            newline = data.find(b"\n", pos)
        if pos < len(data):
            self._hold(data[pos:], out)
        return out

    def _hold(self, rest: bytes, out: list[str | BadLine]) -> None:
        """Keep the start of an incomplete line, or report it when it is too long."""
        if self._pending is None:
            self._pending = bytearray(rest)
        else:
            self._pending += rest
        if not _fits(self._pending, complete=False):
            # Reported now, not at the newline, so the buffer stays bounded.
            self._pending = None
            self._skipping = True
            out.append(_TOO_LONG)


def _fits(raw: bytes | bytearray, complete: bool) -> bool:
    """Whether ``raw`` (a line, or the start of one) is within the limits."""
    body = raw
    if raw.startswith(b"@"):
        space = raw.find(b" ")
        if space < 0:
            return len(raw) <= MAX_TAGS
        if space + 1 > MAX_TAGS:
            return False
        body = raw[space + 1:]
    # One byte more while incomplete: it may be the CR of a CR LF.
    return len(body) <= MAX_BODY + (0 if complete else 1)


def _decode(raw: bytes) -> str | BadLine | None:
    """A complete line's text, its framing error, or None for an empty line."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if not raw.strip():
        return None
    if not _fits(raw, complete=True):
        return _TOO_LONG
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _BAD_UTF8


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------

_UNESCAPE: Final = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_ESCAPE: Final = {";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"}


def unescape_tag(value: str) -> str:
    """Decode an IRCv3 tag value (an unknown escape is the character itself)."""
    if "\\" not in value:
        return value
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            out.append(_UNESCAPE.get(nxt, nxt))
        else:
            out.append(char)
    return "".join(out)


def escape_tag(value: str) -> str:
    """Encode an IRCv3 tag value."""
    return "".join(_ESCAPE.get(char, char) for char in value)


def _parse_tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in text.split(";"):
        if item:
            key, _, value = item.partition("=")
            tags[key] = unescape_tag(value)
    return tags


def _next_word(line: str, pos: int) -> tuple[str, int]:
    """The word at ``pos`` and the position after the spaces that follow it."""
    end = line.find(" ", pos)
    if end < 0:
        return line[pos:], len(line)
    word = line[pos:end]
    while end < len(line) and line[end] == " ":
        end += 1
    return word, end


def parse(line: str) -> IrcMessage:
    """Parse one line (without its line end). Raises :class:`IrcParseError` only."""
    if line and line[0] not in _UNCOMMON_START:
        return _parse_plain(line)
    pos = len(line) - len(line.lstrip(" "))
    tags: Mapping[str, str] = NO_TAGS
    source = None
    if line.startswith("@", pos):
        word, pos = _next_word(line, pos)
        tags = _parse_tags(word[1:])
    if line.startswith(":", pos):
        word, pos = _next_word(line, pos)
        source = word[1:]
    verb, pos = _next_word(line, pos)
    if not verb or not verb.isascii() or not verb.isalnum():
        raise IrcParseError(f"no command in {line[:40]!r}")
    return IrcMessage(verb.upper(), _params(line, pos), source, tags)


# What a line starts with when it has tags, a source or leading spaces.
_UNCOMMON_START: Final = "@: "


def _parse_plain(line: str) -> IrcMessage:
    """:func:`parse` of a line with no tags, no source and no leading space (almost
    every line a client sends), in a few string operations: the trailing
    parameter starts at the first space followed by a colon."""
    head, colon, trailing = line.partition(" :")
    words = [word for word in head.split(" ") if word]
    verb = words[0]
    if not verb.isascii() or not verb.isalnum():
        raise IrcParseError(f"no command in {line[:40]!r}")
    if colon:
        words.append(trailing)
    return IrcMessage(verb.upper(), tuple(words[1:]))


def raw_verb(line: str) -> str:
    """The word where a line's verb belongs, even one :func:`parse` refuses (such as
    ``GET_INFO``): the server answers it 421 rather than nothing. Empty when the
    line has no word there at all."""
    pos = len(line) - len(line.lstrip(" "))
    for marker in "@:":
        if line.startswith(marker, pos):
            _, pos = _next_word(line, pos)
    return _next_word(line, pos)[0].upper()


def _params(line: str, pos: int) -> tuple[str, ...]:
    params: list[str] = []
    end = len(line)
    while pos < end:
        if line[pos] == ":":
            params.append(line[pos + 1:])
            break
        word, pos = _next_word(line, pos)
        if word:
            params.append(word)
    return tuple(params)


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------

# Never allowed inside a line: they would end it or truncate it.
_BREAKING: Final = str.maketrans({"\r": " ", "\n": " ", "\0": " "})


# Removed from a tag section: a space there would end it, so none replaces them.
_TAG_BREAKING: Final = str.maketrans("", "", "\r\n\0")


def _unbroken(text: str) -> str:
    """``text`` with the characters that would break a line replaced by spaces."""
    # Three scans in C are cheaper than translate's lookup per character, and
    # almost no text has any of them.
    if "\r" in text or "\n" in text or "\0" in text:
        return text.translate(_BREAKING)
    return text


def _middle(param: str) -> str:
    """A non-final parameter: no spaces, not empty, no leading colon."""
    param = _unbroken(param).replace(" ", "_")
    if not param or param.startswith(":"):
        return "*" + param
    return param


def is_plain_middle(param: str) -> bool:
    """Whether ``param`` is written as it is as a non-final parameter (a nick, a channel)."""
    return (bool(param) and " " not in param and not param.startswith(":")
            and _unbroken(param) is param)


def _middles(params: list[str]) -> str:
    """The non-final parameters, joined: most are words already (a nick, a
    channel, a count), which a few scans of the joined text show at once."""
    joined = " ".join(params)
    # None empty, none with a space (then the joins are the only spaces), none
    # starting with a colon, no line-breaking character.
    if (all(params) and joined.count(" ") == len(params) - 1 and not joined.startswith(":")
            and " :" not in joined and _unbroken(joined) is joined):
        return joined
    return " ".join(map(_middle, params))


def format_line(command: str, *params: str, source: str | None = None,
                tags: Mapping[str, str] | None = None, trailing: bool = True) -> str:
    """One IRC line without its line end.

    The last parameter is written as a trailing one (``:text``), as text
    parameters conventionally are; with ``trailing=False`` only when it must
    be (it is empty, has a space or starts with a colon), as for the channel
    of a JOIN. A body that would pass :data:`MAX_BODY` bytes has its last
    parameter cut (at a character boundary) to fit.
    """
    head = f":{source} {command}" if source else command
    if params:
        *middle, last = params
        if middle:
            head = f"{head} {_middles(middle)}"
        last = fit(_unbroken(last), MAX_BODY - len(head.encode()) - 2)
        needed = not last or " " in last or last.startswith(":")
        head = f"{head} :{last}" if trailing or needed else f"{head} {last}"
    return add_tags(head, tags) if tags else head


def tag_data(tags: Mapping[str, str]) -> str:
    """``tags`` as they go on the wire, without the tag section's "@" and closing
    space: what IRCv3 counts as tag data."""
    text = ";".join(f"{k}={escape_tag(v)}" if v else k for k, v in tags.items())
    if "\0" in text or "\r" in text or "\n" in text:
        # Escaping keeps CR and LF out of values, but not out of keys, nor NUL
        # (which no escape carries) out of either: what a client once sent, and
        # was stored, must not break the line it is replayed in.
        text = text.translate(_TAG_BREAKING)
    return text


def add_tags(line: str, tags: Mapping[str, str]) -> str:
    """``line`` with ``tags`` added in front of any it already has."""
    if not tags:
        return line
    text = tag_data(tags)
    if line.startswith("@"):
        return f"@{text};{line[1:]}"
    return f"@{text} {line}"


def fit(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, at a character boundary."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[:max(0, limit)].decode("utf-8", "ignore")


def split_text(text: str, limit: int) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` UTF-8 bytes (at least one piece).

    Cuts prefer the last space of a piece, so words stay whole when they can.
    """
    limit = max(limit, 4)  # room for any one character
    pieces: list[str] = []
    raw = text.encode()
    while len(raw) > limit:
        cut = limit
        while cut > 0 and (raw[cut] & 0xC0) == 0x80:  # not inside a character
            cut -= 1
        space = raw.rfind(b" ", 0, cut + 1)
        if space > limit // 2:
            cut = space
        pieces.append(raw[:cut].decode())
        raw = raw[cut:].lstrip(b" ") if space == cut else raw[cut:]
    pieces.append(raw.decode())
    return pieces


# A colour code with its numbers: ^C then a foreground and an optional
# background of one or two digits each, or ^D then six hex digits each.
_COLOUR_RE: Final = re.compile(r"\x03(?:[0-9]{1,2}(?:,[0-9]{1,2})?)?"
                               r"|\x04(?:[0-9A-Fa-f]{6}(?:,[0-9A-Fa-f]{6})?)?")


def plain_text(text: str) -> str:
    """Text from an IRC client as the line protocol takes it: colour codes with
    their numbers removed (the control byte alone left "04,12red"), then every
    other control character (bold, italics, reset ...)."""
    if "\x03" in text or "\x04" in text:
        text = _COLOUR_RE.sub("", text)
    return clean_text(text)
