"""The line codec: bytes from a client in, cleaned text lines out, and back.

Wire rules (see ``LineFramer``): UTF-8 text lines ending in ``\\n`` or
``\\r\\n``; telnet option negotiation is silently removed so a plain
``telnet host port`` works (not on a stream that is not telnet's, such as the
lines of WebSocket messages: ``LineFramer(telnet=False)``); control characters
never survive decoding, so no terminal escape sequence can travel from one user
to another.

Everything here is pure: no asyncio, no I/O, and no import from the rest of
chatd (the codec is a leaf of the package).
"""

from __future__ import annotations

import abc
import functools
import json
import json.encoder
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, Self

from chatd.domain.clock import iso_ts
from chatd.errors import ChatError, Code

__all__ = [
    "INVALID_UTF8",
    "LINE_TOO_LONG",
    "BadLine",
    "Framer",
    "LineFramer",
    "ParsedLine",
    "SharedAtRest",
    "clean_text",
    "encode_json",
    "encode_line",
    "iso_ts",
    "parse_line",
    "split_args",
]

LINE_TOO_LONG: Final = "line-too-long"
INVALID_UTF8: Final = "invalid-utf8"

DEFAULT_MAX_LINE: Final = 4096


@dataclass(frozen=True, slots=True)
class BadLine:
    """A framing error to report to the client; the connection survives.

    ``code`` is ``LINE_TOO_LONG`` or ``INVALID_UTF8``.
    """

    code: str


class Framer(Protocol):
    """What a connection reads its client's bytes with: :class:`LineFramer` for the
    line protocol, ``chatd.irc.codec.IrcFramer`` for IRC."""

    @property
    def buffered(self) -> int:
        """How many bytes of an incomplete line are held."""

    def feed(self, data: bytes) -> list[str | BadLine]:
        """Consume ``data``; return the lines and errors it completes, in order."""

    def settle(self) -> Framer:
        """The framer to feed next (see :class:`SharedAtRest`)."""


class SharedAtRest(abc.ABC):
    """A framer that many connections share while it is at rest.

    Between lines a framer holds nothing of its client's, and that is where
    almost every connection is almost all of the time: the connections of a
    kind share one framer then (10,000 idle connections held 10,000 framers
    of 48 to 64 bytes each). After each ``feed`` a connection keeps what
    :meth:`settle` returns: the shared framer while it is at rest; when a
    feed leaves part of a line (or a telnet sequence, or an over-long line's
    rest), a private framer that carries on from that state, the shared one
    returning to rest. The private one gives way to the shared one again at
    the next rest. A feed and its settle run without an await in between, so
    the shared framer is at rest whenever another connection feeds it.
    """

    __slots__ = ("_home",)

    def __init__(self) -> None:
        # The shared framer a private one returns to; None in the shared one.
        self._home: Self | None = None

    @abc.abstractmethod
    def settle(self) -> Self:
        """Each kind checks its own state inline (the usual case, the shared framer
        left at rest, costs no more than that), then :meth:`_settled`."""

    def _settled(self, at_rest: bool) -> Self:
        """The framer to keep, this one being ``at_rest`` or not (see above)."""
        home = self._home
        if at_rest:
            return self if home is None else home
        if home is not None:
            return self
        private = self._take_state()
        private._home = self
        return private

    @abc.abstractmethod
    def _take_state(self) -> Self:
        """A new framer of the same kind and limits with this one's state; this one
        is left at rest."""


# Shared instances: the dataclass is frozen and compares by value, so there is
# no reason to allocate one per error.
_TOO_LONG: Final = BadLine(LINE_TOO_LONG)
_BAD_UTF8: Final = BadLine(INVALID_UTF8)

# ---------------------------------------------------------------------------
# Control characters
# ---------------------------------------------------------------------------

# C0 controls except TAB (handled separately), DEL and the C1 controls. ESC
# (U+001B) and CSI (U+009B) are in here, which is what keeps terminal escape
# sequences out of other users' screens.
_CONTROL_RE: Final = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def one_line(text: str, what: str) -> str:
    """``text`` as one line of printable text, a TAB as a space (as the line protocol
    takes it); anything else (a line end, an escape sequence) is ``bad-arguments``
    naming ``what``: text a program hands over (an HTTP message, an operator's
    reason) is refused rather than sent otherwise than written."""
    spaced = text.replace("\t", " ")
    if clean_text(spaced) != spaced:
        raise ChatError(Code.BAD_ARGUMENTS, f"{what} must be one line without control "
                        "characters.")
    return spaced


def clean_text(text: str) -> str:
    """Remove control characters from user-supplied text.

    C0 controls (U+0000-U+001F) are removed except TAB, which becomes a space;
    DEL (U+007F) and the C1 controls (U+0080-U+009F) are removed too.
    Whitespace is otherwise left alone (the framer strips trailing whitespace
    itself).
    """
    # Fast path: isprintable() is a single C loop and is True for the vast
    # majority of chat lines, which then need no copy at all.
    if text.isprintable():
        return text
    if "\t" in text:
        text = text.replace("\t", " ")
    return _CONTROL_RE.sub("", text)


# ---------------------------------------------------------------------------
# Telnet filtering
# ---------------------------------------------------------------------------

_IAC_BYTE: Final = b"\xff"
_SB: Final = 0xFA
_SE: Final = 0xF0
_NEGOTIATION: Final = frozenset({0xFB, 0xFC, 0xFD, 0xFE})  # WILL, WONT, DO, DONT

# Telnet filter states. DATA and SUB are "long" states that skip ahead with
# bytes.find; the others last exactly one byte and use the lookup tables.
_T_DATA: Final = 0  # ordinary data
_T_IAC: Final = 1  # just saw IAC in data
_T_OPTION: Final = 2  # saw IAC WILL/WONT/DO/DONT, the option byte comes next
_T_SUB: Final = 3  # inside IAC SB ... (dropped)
_T_SUB_IAC: Final = 4  # saw IAC inside a subnegotiation


def _transitions(state: int) -> bytes:
    """The next state after each possible byte, for a one-byte state."""
    table = bytearray(256)
    for byte in range(256):
        if state == _T_IAC:
            # IAC IAC is an escaped 0xFF data byte: dropped, since 0xFF is never
            # valid UTF-8. Any other command byte makes a 2-byte sequence.
            if byte in _NEGOTIATION:
                table[byte] = _T_OPTION
            elif byte == _SB:
                table[byte] = _T_SUB
            else:
                table[byte] = _T_DATA
        elif state == _T_OPTION:
            table[byte] = _T_DATA
        else:  # _T_SUB_IAC: only IAC SE ends a subnegotiation
            table[byte] = _T_DATA if byte == _SE else _T_SUB
    return bytes(table)


# Indexed by state; the entries for the "long" states are never used.
_NEXT_STATE: Final = (
    b"",
    _transitions(_T_IAC),
    _transitions(_T_OPTION),
    b"",
    _transitions(_T_SUB_IAC),
)


# ---------------------------------------------------------------------------
# The framer
# ---------------------------------------------------------------------------

_NL: Final = b"\n"
_CR: Final = b"\r"


class LineFramer(SharedAtRest):
    """Split a client's byte stream into cleaned text lines.

    ``feed()`` returns, in order, the complete lines (``str``, cleaned with
    ``clean_text`` and stripped of trailing whitespace, possibly ``""``) and
    the framing errors (``BadLine``) found in the bytes received so far.

    * Lines end in ``\\n`` or ``\\r\\n``; a telnet ``\\r\\0`` is just a
      control sequence inside a line and is removed with the other controls.
    * A line longer than ``max_line`` bytes (terminator not counted) is
      dropped and reported once as ``LINE_TOO_LONG``; the framer then resyncs
      at the next newline. The buffer never holds more than ``max_line + 1``
      bytes (the ``+ 1`` leaves room for the ``\\r`` of a ``\\r\\n``).
    * A line that is not valid UTF-8 is reported as ``INVALID_UTF8``.
    * Telnet commands (IAC sequences, including whole subnegotiations) are
      removed before framing, and may be split across ``feed()`` calls. A
      client that opens a subnegotiation and never closes it loses the rest
      of its input; only a misbehaving telnet client can do that, since 0xFF
      never occurs in UTF-8 text. With ``telnet=False`` nothing is removed:
      for streams that are not a telnet client's (a WebSocket's messages,
      where a 0xFF byte is bad UTF-8 to report, not a command to act on).

    Feeding a stream in any number of pieces gives the same result as feeding
    it at once.
    """

    __slots__ = ("_buf", "_discarding", "_max", "_strips", "_telnet")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE, *, telnet: bool = True) -> None:
        """Create a framer accepting lines of at most ``max_line`` bytes, removing
        telnet commands unless ``telnet`` is False."""
        if max_line < 1:
            raise ValueError(f"max_line must be at least 1, not {max_line}")
        super().__init__()
        self._max = max_line
        self._strips = telnet
        # The incomplete last line, telnet already removed; None rather than
        # empty, so the many connections between lines hold no buffer.
        self._buf: bytearray | None = None
        self._discarding = False  # inside an over-long line, waiting for its newline
        self._telnet = _T_DATA

    @property
    def buffered(self) -> int:
        """How many bytes of an incomplete line are held."""
        return 0 if self._buf is None else len(self._buf)

    @property
    def max_line(self) -> int:
        """The longest line taken, in bytes (what a refusal tells the client)."""
        return self._max

    def settle(self) -> Self:
        at_rest = self._buf is None and not self._discarding and self._telnet == _T_DATA
        if at_rest and self._home is None:
            return self  # the shared framer, left at rest: nearly every feed
        return self._settled(at_rest)

    @staticmethod
    @functools.cache
    def at_rest(max_line: int, *, telnet: bool = True) -> LineFramer:
        """The shared framer of the connections of ``max_line`` and ``telnet``
        (see :class:`SharedAtRest`)."""
        return LineFramer(max_line, telnet=telnet)

    def _take_state(self) -> Self:
        private = type(self)(self._max, telnet=self._strips)
        private._buf, private._discarding, private._telnet = \
            self._buf, self._discarding, self._telnet
        self._buf, self._discarding, self._telnet = None, False, _T_DATA
        return private

    def feed(self, data: bytes) -> list[str | BadLine]:
        """Consume ``data``; return the lines and errors it completes, in order."""
        # `in` is a C-speed search; the byte-level state machine only runs when
        # a telnet sequence is present or was cut by the previous feed. (The
        # option is asked last: the common line without 0xFF pays nothing for it.)
        if (self._telnet != _T_DATA or _IAC_BYTE in data) and self._strips:
            data = self._strip_telnet(data)
        pos = 0
        if self._discarding:
            newline = data.find(_NL)
            if newline < 0:
                return []
            self._discarding = False
            pos = newline + 1
        out: list[str | BadLine] = []
        newline = data.find(_NL, pos)
        while newline >= 0:
            out.append(self._line(data, pos, newline))
            pos = newline + 1
            newline = data.find(_NL, pos)
        self._keep(data, pos, out)
        return out

    def _keep(self, data: bytes, pos: int, out: list[str | BadLine]) -> None:
        """Buffer the incomplete tail ``data[pos:]``, or report it as too long."""
        buf = self._buf
        if (0 if buf is None else len(buf)) + len(data) - pos > self._max + 1:
            # Report now rather than at the newline, so the buffer stays bounded
            # however much data arrives without one.
            self._buf = None
            self._discarding = True
            out.append(_TOO_LONG)
        elif pos < len(data):
            if buf is None:
                self._buf = bytearray(data[pos:])
            else:
                buf += data[pos:]

    def _line(self, data: bytes, start: int, end: int) -> str | BadLine:
        """Complete the buffered line with ``data[start:end]`` and decode it."""
        buf = self._buf
        # Size check before any copy: one huge line must not be duplicated.
        if (0 if buf is None else len(buf)) + end - start > self._max + 1:
            self._buf = None
            return _TOO_LONG
        if buf is not None:
            buf += data[start:end]
            raw = bytes(buf)
            self._buf = None
        else:
            raw = data[start:end]
        if raw.endswith(_CR):
            raw = raw[:-1]
        if len(raw) > self._max:
            return _TOO_LONG
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _BAD_UTF8
        return clean_text(text).rstrip()

    def _strip_telnet(self, data: bytes) -> bytes:
        """Remove telnet commands from ``data``, carrying state across calls."""
        out = bytearray()
        state = self._telnet
        pos, size = 0, len(data)
        while pos < size:
            if state in (_T_DATA, _T_SUB):
                # Jump to the next IAC; data before it is kept (or, inside a
                # subnegotiation, dropped) in one slice.
                iac = data.find(_IAC_BYTE, pos)
                stop = size if iac < 0 else iac
                if state == _T_DATA:
                    out += data[pos:stop]
                pos = stop + 1
                if iac >= 0:
                    state = _T_IAC if state == _T_DATA else _T_SUB_IAC
            else:
                state = _NEXT_STATE[state][data[pos]]
                pos += 1
        self._telnet = state
        return bytes(out)


# ---------------------------------------------------------------------------
# Parsing a line
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class ParsedLine:
    """A client line, classified as a command or a message.

    For a command, ``command`` is the lower-cased name without the slash
    (``""`` for a bare ``/``), ``args`` is the raw text after it with leading
    whitespace removed, and ``text`` is ``None``. For a message, ``command``
    is ``None``, ``args`` is ``""`` and ``text`` is the message. ``label``
    comes from an ``@label`` prefix (commands only).
    """

    label: str | None
    command: str | None
    args: str
    text: str | None


# "@label" then spaces then a single slash (a lookahead: the slash belongs to
# the command). "//" after a label is not a command, so no label either.
_LABEL_RE: Final = re.compile(r"@([A-Za-z0-9._:+\-]{1,64}) +(?=/(?!/))")
# "/name" then the whitespace separating it from its arguments.
_COMMAND_RE: Final = re.compile(r"/(\S*)\s*")


def _command(line: str, label: str | None = None) -> ParsedLine:
    """Parse ``line``, which starts with a slash, as a command."""
    match = _COMMAND_RE.match(line)
    assert match is not None  # always matches: the caller checked the slash
    return ParsedLine(label, match.group(1).lower(), line[match.end() :], None)


def _message(text: str) -> ParsedLine:
    """A plain message."""
    return ParsedLine(None, None, "", text)


def parse_line(line: str) -> ParsedLine:
    """Classify a cleaned line as a command or a message.

    * ``/cmd args`` is the command ``cmd`` (lower-cased) with args ``args``.
    * ``//text`` is the message ``/text``: the first slash escapes the second.
    * ``@label /cmd args`` is a labelled command: the label (1-64 characters
      of ``A-Za-z0-9._:+-``) must start the line and be followed by one or
      more spaces and a single slash. Clients use labels to match replies to
      requests.
    * Anything else, including ``@bob hi there`` and ``@label //text``, is a
      message whose text is the whole line. Labels on messages are not
      supported: the label would be indistinguishable from a message that
      happens to start with ``@``.
    """
    if line.startswith("/"):
        if line.startswith("//"):
            return _message(line[1:])
        return _command(line)
    if line.startswith("@"):
        match = _LABEL_RE.match(line)
        if match is not None:
            return _command(line[match.end() :], match.group(1))
    return _message(line)


def split_args(args: str, max_parts: int) -> list[str]:
    """Split ``args`` on runs of whitespace into at most ``max_parts`` parts.

    The last part keeps the rest of the string verbatim (internal whitespace
    preserved, surrounding whitespace stripped), so ``split_args("bob too
    loud  here", 2)`` is ``["bob", "too loud  here"]``. ``max_parts <= 0``
    means unlimited. Empty or whitespace-only input gives ``[]``.
    """
    if max_parts <= 0:
        return args.split()
    parts = args.split(None, max_parts - 1)
    # str.split already dropped leading whitespace; the remainder keeps its
    # trailing whitespace, which is not part of the argument.
    if parts:
        parts[-1] = parts[-1].rstrip()
    return parts


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def encode_line(text: str) -> bytes:
    """Encode one output line: ``text`` + CRLF, in UTF-8.

    Lone surrogates (which only buggy code could produce) become ``?`` rather
    than raising inside a connection's writer.
    """
    return (text + "\r\n").encode("utf-8", "replace")


# One encoder for every line: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _compact_json() -> Callable[[Any], str]:
    """The fastest function giving what _ENCODER.encode gives for our records.

    JSONEncoder.encode builds CPython's C encoder anew on every call: a
    microsecond of the two and a half a message record takes. Built once
    here, with the same settings (no circular check: records are trees
    the daemon makes). Where json has no C encoder, the encoder itself.
    """
    make: Callable[..., Callable[[Any, int], Iterable[str]]] | None = getattr(
        json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return _ENCODER.encode
    encoder = make(None, _ENCODER.default, json.encoder.encode_basestring, None,
                   _ENCODER.key_separator, _ENCODER.item_separator, False, False, True)

    def compact(obj: Any) -> str:
        return "".join(encoder(obj, 0))

    return compact


_compact = _compact_json()


def encode_json(obj: Mapping[str, Any]) -> bytes:
    """Encode one compact JSON output line, CRLF-terminated, in UTF-8.

    JSON escapes newlines inside strings, so the object is always a single
    line on the wire.
    """
    return (_compact(obj) + "\r\n").encode("utf-8", "replace")
