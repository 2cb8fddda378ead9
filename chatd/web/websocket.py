"""A WebSocket as a chatd connection's transport: one protocol line per message.

The handshake and the parsing of the client's frames (masking, fragments,
control frames, the closing handshake, size limits) are the ``websockets``
library's Sans-I/O :class:`~websockets.server.ServerProtocol`, driven from
the web listener's own asyncio protocol. Everything above is chatd's
unchanged :class:`~chatd.net.connection.Connection` (or IRC's): it reads a
message as the line it carries, and writes a turn's output once, to
:class:`WsTransport`, which frames each line as one message and hands all
the frames of the turn to the socket in one write. So the per-turn batching,
input backpressure, slow-reader cut-off, limits and time-outs are those of
TCP, and a line's limit (``listen.max_line``) gives the same error.

Server frames are never masked, so they are framed here directly (a header
and the line's bytes), which is cheaper than building a frame object per line
on the fan-out's hot path.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import TYPE_CHECKING, Any

from websockets.exceptions import InvalidHeader, NegotiationError, SecurityError
from websockets.frames import Frame, Opcode
from websockets.protocol import CLOSING, OPEN
from websockets.server import ServerProtocol

from chatd.errors import Code
from chatd.web.http import HttpError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from websockets.http11 import Response
    from websockets.typing import Subprotocol

    from chatd.net.connection import Connection

log = logging.getLogger(__name__)

CHATD = "text.chatd"
IRC_TEXT = "text.ircv3.net"
IRC_BINARY = "binary.ircv3.net"
# What each path offers. A client that offers none gets the text protocol
# (as InspIRCd's defaultmode); one that offers only others is refused.
CHATD_PROTOCOLS = (CHATD,)
IRC_PROTOCOLS = (IRC_BINARY, IRC_TEXT)
# Room for an IRC line with tags (8191) and its message (512), as the framer allows.
IRC_MAX_MESSAGE = 8191 + 512
# Messages past max_line but within this many times it get the line protocol's
# line-too-long error; larger ones close the connection (1009), so memory stays bounded.
OVERSIZE_FACTOR = 4

_TEXT = 0x81  # FIN + text
_BINARY = 0x82  # FIN + binary
# Close codes (RFC 6455 §7.4.1): a normal close, and the server going down.
NORMAL_CLOSURE = 1000
GOING_AWAY = 1001
# How long the server waits for the client's Close after its own (RFC 6455 §7.1.1:
# the socket closes once both were sent) before it cuts the socket off.
CLOSE_TIMEOUT = 5.0


def frame(payload: bytes, first: int = _TEXT) -> bytes:
    """One unmasked, unfragmented frame (``first``: FIN and the opcode)."""
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", first, 126, size) + payload
    return struct.pack("!BBQ", first, 127, size) + payload


_last: list[tuple[bytes, int, bytes]] = [(b"", 0, b"")]


def _framed_once(data: bytes, first: int) -> bytes:
    """``data``'s lines as frames; the last result is kept, keyed by the object itself."""
    last_data, last_first, last_framed = _last[0]
    if data is last_data and first == last_first:
        return last_framed
    lines = data.split(b"\n")
    lines.pop()  # the empty piece after the last line end
    framed = b"".join([frame(line[:-1] if line[-1:] == b"\r" else line, first)
                       for line in lines])
    _last[0] = (data, first, framed)
    return framed


def handshake(head: bytes, offered: Sequence[str], max_size: int) -> ServerProtocol:
    """A protocol that has read the upgrade request ``head`` and accepted it (the
    101 is in ``data_to_send``); HttpError when the request cannot be accepted."""
    protocol = ServerProtocol(subprotocols=[_sub(p) for p in offered],
                              select_subprotocol=_in_client_order, max_size=max_size)
    protocol.receive_data(head)
    events = protocol.events_received()
    # No event: the library could not read the request and has queued its own
    # answer (or none). Either way its text/plain answer is never sent: every
    # refusal of the web listener is the API's JSON error with a stable code.
    response = protocol.accept(events[0]) if events else None  # type: ignore[arg-type]
    if response is None or response.status_code != 101:
        raise _refused(protocol.handshake_exc, response)
    protocol.send_response(response)
    return protocol


# The stable code of each status the library refuses an upgrade with; others are
# bad-request.
_REFUSAL_CODES = {405: Code.METHOD_NOT_ALLOWED, 431: Code.REQUEST_TOO_LARGE,
                  500: Code.INTERNAL_ERROR}


def _refused(exc: BaseException | None, response: Response | None) -> HttpError:
    """The JSON refusal of a failed handshake, with the library's status and reason."""
    status = 400 if response is None else response.status_code
    if isinstance(exc, SecurityError):
        status = 431  # a header line over the library's 8 KiB (the request is within ours)
    headers: list[tuple[str, str]] = []
    if status == 405:
        headers.append(("Allow", "GET"))
    elif isinstance(exc, InvalidHeader) and exc.name.lower() == "sec-websocket-version":
        # RFC 6455 4.4: name the version this server speaks.
        status = 426
        headers.append(("Sec-WebSocket-Version", "13"))
    elif status == 426:
        headers.append(("Upgrade", "websocket"))
    code = _REFUSAL_CODES.get(status, Code.BAD_REQUEST)
    return HttpError(status, code, f"the WebSocket handshake failed: {_reason(exc)}.",
                     headers=headers)


def _reason(exc: BaseException | None) -> str:
    """The exception and its causes, as the library words them."""
    reasons = []
    while exc is not None:
        reasons.append(str(exc))
        exc = exc.__cause__
    return "; ".join(reasons) or "not a WebSocket upgrade request"


def _sub(name: str) -> Subprotocol:
    return name  # type: ignore[return-value]


def _in_client_order(protocol: ServerProtocol, offered: Sequence[Subprotocol]) -> \
        Subprotocol | None:
    """The first of the client's subprotocols the path offers (IRCv3: the client's
    order of preference); none offered means the default text protocol."""
    available = protocol.available_subprotocols or ()
    for name in offered:
        if name in available:
            return name
    if offered:
        raise NegotiationError("unsupported subprotocol; this path offers "
                               + ", ".join(available))
    return None


class WsTransport(asyncio.Transport):
    """What a chatd connection writes to: lines in, one WebSocket message each out."""

    def __init__(self, raw: asyncio.Transport, protocol: ServerProtocol, *, binary: bool,
                 line_end: bytes, peer: Any, output_limit: Callable[[], int]) -> None:
        super().__init__()
        self._raw = raw
        self.protocol = protocol
        # limits.output_buffer, read at each use (a reload reaches open sockets).
        self._output_limit = output_limit
        self._first = _BINARY if binary else _TEXT
        # IRC text mode must send UTF-8 only (IRCv3): bad bytes become U+FFFD.
        self._sanitize = not binary and line_end == b"\r\n"
        self._carry = b""
        self._closed = False
        self._peer = peer
        # The code of the closing handshake: 1000 (normal closure), or 1001 (going
        # away, RFC 6455 §7.4.1) once the server leaves the client (going_away).
        self._close_code = NORMAL_CLOSURE
        # Set while the server's Close waits for the client's (see close).
        self._answer_wait: asyncio.TimerHandle | None = None

    # -- what the connection calls ---------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed or self.protocol.state is not OPEN:
            return
        if type(data) is bytes and data[-1:] == b"\n" and not self._carry \
                and not self._sanitize:
            # A room's lane: the same bytes object for every member this turn, so
            # it is framed once for them all (the fan-out's hot path).
            framed = _framed_once(data, self._first)
        else:
            framed = self._frame_lines(bytes(data))
        if framed:
            self._raw.write(framed)

    def _frame_lines(self, data: bytes) -> bytes:
        lines = (self._carry + data).split(b"\n")
        self._carry = lines.pop()  # after the last line end: normally nothing
        parts = []
        first = self._first
        for line in lines:
            payload = line[:-1] if line[-1:] == b"\r" else line
            if self._sanitize and not payload.isascii():
                payload = payload.decode("utf-8", "replace").encode("utf-8")
            parts.append(frame(payload, first))
        return b"".join(parts)

    def get_write_buffer_size(self) -> int:
        return self._raw.get_write_buffer_size()

    def pause_reading(self) -> None:
        self._raw.pause_reading()

    def resume_reading(self) -> None:
        self._raw.resume_reading()

    def is_closing(self) -> bool:
        return self._closed or self._raw.is_closing()

    def going_away(self) -> None:
        """The server leaves the client (it is shutting down, or it is a cluster node
        that was fenced): the close that follows says 1001, going away, as RFC 6455
        asks of a server going down, and the client reconnects (net.connection's
        Connection.close, with going_away)."""
        self._close_code = GOING_AWAY

    def close(self) -> None:
        """The closing handshake's first frame (1000, or 1001 when the server is going
        away from the client); the socket closes once the client's Close comes back
        (send_pending), or after CLOSE_TIMEOUT without it.

        Not at once: what the client sent meanwhile (a browser's page still sending
        its lines) would be unread at the close, and a socket closed with unread
        bytes is reset; a browser whose next send meets the reset reports 1006
        (abnormal closure) and never reads the close frame waiting for it. Reading
        goes on until then: the frames that come are dropped (the connection is
        closing), the client's Close ends it."""
        if self._closed:
            return
        self._closed = True
        if self.protocol.state is OPEN:
            self.protocol.send_close(self._close_code)
        self.send_pending()
        if self._raw.is_closing():
            return  # the handshake is over (the client's Close came first)
        if self.protocol.state is not CLOSING:  # no handshake under way to finish
            self._raw.close()
            return
        self._raw.resume_reading()  # (paused for input backpressure, it never comes)
        self._answer_wait = asyncio.get_running_loop().call_later(
            CLOSE_TIMEOUT, self._raw.abort)

    def abort(self) -> None:
        self._closed = True
        self.lost()
        self._raw.abort()

    def lost(self) -> None:
        """The socket is gone: no wait for the client's Close any more."""
        if self._answer_wait is not None:
            self._answer_wait.cancel()
            self._answer_wait = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._peer
        return self._raw.get_extra_info(name, default)

    # -- what the web listener calls -------------------------------------------------

    def send_pending(self) -> None:
        """Write what the protocol queued (pongs, a close frame); close the socket
        when it has finished (the closing handshake, or a protocol error)."""
        pending = self.protocol.data_to_send()
        data = b"".join(pending)
        if data and not self._raw.is_closing():
            self._raw.write(data)
        if b"" in pending:  # the protocol's end of stream
            self._closed = True
            self._raw.close()

    def send_answers(self) -> None:
        """Write the protocol's answers to the client's frames (pongs, the closing
        handshake); past ``limits.output_buffer`` unsent, cut the client off.

        These go to the socket directly, never through the connection, so its own
        cut-off (Connection.flush) never sees them: a client sending pings and
        reading nothing would grow the buffer by a pong per ping, without end.
        Between two checks it grows by one read's pongs at most."""
        self.send_pending()
        buffered = self._raw.get_write_buffer_size()
        if buffered > self._output_limit() and not self._raw.is_closing():
            log.warning("slow consumer disconnected", extra={"fields": {
                "peer": self._peer, "buffered": buffered}})
            self.abort()

    def ping(self) -> None:
        if not self._closed and self.protocol.state is OPEN:
            self.protocol.send_ping(b"")
            self.send_pending()


class MessageReader:
    """Assembles the client's frames into messages and hands them to the connection."""

    __slots__ = ("_binary", "_conn", "_line_end", "_parts", "_refuse_binary", "transport")

    def __init__(self, conn: Connection, transport: WsTransport, *, line_end: bytes,
                 refuse_binary: bool) -> None:
        self._conn = conn
        self.transport = transport
        self._line_end = line_end
        self._refuse_binary = refuse_binary
        # The fragments of a message so far, as one buffer: its size is the
        # message's, which the protocol bounds (max_size), however many fragments
        # (a list of them grew by a pointer per empty fragment, without bound).
        self._parts = bytearray()
        self._binary = False

    def feed(self, data: bytes) -> None:
        protocol = self.transport.protocol
        protocol.receive_data(data)
        lines: list[bytes] = []
        for event in protocol.events_received():
            if not isinstance(event, Frame):
                continue
            opcode = event.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                self._binary = opcode is Opcode.BINARY
                if event.fin:  # the usual message, one frame: no copy
                    self._message(bytes(event.data), lines)
                    continue
                self._parts = bytearray(event.data)
            elif opcode is Opcode.CONT:
                self._parts += event.data
            else:
                continue  # control frames: the protocol has answered them
            if event.fin:
                self._message(bytes(self._parts), lines)
                self._parts = bytearray()
        self._deliver(lines)
        self.transport.send_answers()

    def _message(self, data: bytes, lines: list[bytes]) -> None:
        if self._binary and self._refuse_binary:
            self._deliver(lines)  # the lines before it come first
            self._conn.session.send({
                "type": "error", "code": Code.BINARY_FRAME.value,
                "message": "binary messages are not accepted here: send each line as a "
                           "text message."})
            return
        lines.append(data)

    def _deliver(self, lines: list[bytes]) -> None:
        """The messages of one read as one chunk of lines, as TCP reads them."""
        if lines:
            end = self._line_end
            self._conn.data_received(end.join(lines) + end)
            lines.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport.lost()
        self._conn.connection_lost(exc)

    def eof(self) -> None:
        self.transport.protocol.receive_eof()
        self.transport.send_pending()

