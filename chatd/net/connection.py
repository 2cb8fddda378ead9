"""One TCP connection: bytes in, lines to the dispatcher, bytes out.

Output is never awaited. Writes are appended to a small list and flushed in
one ``transport.write`` per connection per turn of the event loop (see
:class:`FlushScheduler`); a client whose unsent output passes the configured
bound is disconnected, so one slow reader can neither grow the server's
memory nor slow anyone else. Input is processed in order; a connection with
too many lines waiting stops being read until it catches up.

An idle connection holds no task: a task exists only while a command that
must wait (storage, bcrypt) is running.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from collections import deque
from typing import TYPE_CHECKING, Any, Final, Protocol, cast, runtime_checkable

from chatd.delivery.feed import Outbox
from chatd.errors import Code
from chatd.protocol.codec import BadLine, Framer, LineFramer
from chatd.protocol.session import Session

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from chatd.config import Config
    from chatd.domain.clock import Clock
    from chatd.protocol.pipeline import Posts

log = logging.getLogger(__name__)


@runtime_checkable
class Departing(Protocol):
    """A transport whose close can say that the server is going away (a
    WebSocket's, chatd.web.websocket), for the client to reconnect."""

    def going_away(self) -> None: ...


class LineHandler(Protocol):
    """What handles a connection's lines: the line protocol's or IRC's dispatcher."""

    def handle(self, session: Session, line: str) -> Awaitable[None] | None: ...


class ConnectionHost(Protocol):
    """What a connection needs of whoever accepted it.

    The transport layer defines it, so a connection never imports the server
    that owns it: the application's server is one host; tests may pass another.
    ``config`` is read at each use, so a reload reaches live connections.
    """

    @property
    def config(self) -> Config: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def flusher(self) -> FlushScheduler: ...

    @property
    def dispatcher(self) -> LineHandler: ...

    def connection_opened(self, conn: Connection) -> None:
        """Count it, apply the connection limits, greet it."""

    def connection_closed(self, conn: Connection) -> None:
        """Forget it (its session leaves presence)."""


# A flush to fewer of the rooms' readers never makes the next turn wait: a
# direct message, a small room, a bot's replies gain nothing from it.
FANOUT_MIN: Final = 16


class FlushScheduler:
    """Coalesces writes: every connection written to is flushed once per *turn*.

    A turn ends at the end of the event loop's turn, or, while output fans
    out to the same connections again and again, ``delay()`` seconds after
    its first output (``listen.flush_delay``). Under steady traffic into a
    room the messages of that moment then share one ``send()`` per
    connection, which costs about the same for one message as for ten: at a
    message a millisecond into a room of 100, a delay of 2 ms took about half
    the server's CPU off (docs/PERFORMANCE.md, "Writes a moment late").

    The delay is earned, not assumed: a turn waits only when its first output
    comes less than two delays after a flush to at least FANOUT_MIN of the
    rooms' readers (connections taking a room feed's lane), most of which the
    flush before went to as well. Direct messages and small rooms on a server
    without a busy room, and a large room at a message every few delays, keep
    the latency of a turn's end.
    And a client outside that fan-out never waits for its answers: while a
    turn is held, a connection whose input has been handled writes its output
    at once unless it was in the fan-out (:meth:`Connection._idle`). A member
    of the busy room gets its answers with the room's batch, at most the
    delay later, so the batch is not broken up for it.

    One callback per turn, however many connections have output: the first
    connection marked schedules it, and it flushes them all in one pass.
    ``end_turn`` is called as each flush starts: room feeds (see :mod:`chatd.delivery.feed`)
    of the turn being flushed must not take more messages. A connection that
    closes meanwhile writes its own output first (:meth:`Connection.close`).
    """

    __slots__ = ("_delay", "_end_turn", "_excluded", "_flushed_at", "_loop", "dirty",
                 "holding", "scheduled", "steady", "waits")

    def __init__(self, loop: asyncio.AbstractEventLoop, end_turn: Callable[[], None],
                 delay: Callable[[], float] = lambda: 0.0) -> None:
        self._loop = loop
        self._end_turn = end_turn
        self._delay = delay
        # The connections with output this turn, in the order they got it.
        # Connection.wake appends to it and calls schedule() itself: one call
        # fewer per connection per turn on the fan-out's path.
        self.dirty: list[Connection] = []
        self.scheduled = False
        # Whether the next turn may wait the delay (see _earned_wait), and whether
        # this one does: then a client's answers go out without it (Connection._idle).
        self.waits = self.holding = False
        # The rooms' readers of the last flush that went to FANOUT_MIN or more of
        # them, but those answered early: while a turn is held, a client among
        # them gets its answers with the batch, and any other at once (answer).
        self.steady: set[Connection] = set()
        # The connections answered early in the held turn, and those closed: they
        # stay out of steady.
        self._excluded: set[Connection] = set()
        self._flushed_at = -math.inf

    def mark(self, conn: Connection) -> None:
        self.dirty.append(conn)
        if not self.scheduled:
            self.schedule()

    def schedule(self) -> None:
        self.scheduled = True
        if self.waits:
            delay = self._delay()
            # Output within two delays of the last flush waits (traffic is steady);
            # after a lull it goes at once. A delay of 0 never waits.
            if self._loop.time() - self._flushed_at < 2 * delay:
                self.holding = True
                self._loop.call_later(delay, self.flush)
                return
        self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = self.holding = False
        self._end_turn()
        dirty, self.dirty = self.dirty, []
        # The rooms' readers: connections taking a room feed's lane. Replies, direct
        # messages and a lone client's answers are queued bytes, never a lane.
        # (The length first: most flushes of a quiet server are short.)
        readers = ([conn for conn in dirty if conn.lane is not None]
                   if len(dirty) >= FANOUT_MIN else None)
        for conn in dirty:
            conn.flush()
        self.waits = self._earned_wait(readers)

    def answer(self, conn: Connection) -> None:
        """Write ``conn``'s output now, in a held turn: it is a client waiting for an
        answer, not one of the busy room's readers (Connection._idle)."""
        self._excluded.add(conn)
        conn.flush()

    def forget(self, conn: Connection) -> None:
        """``conn`` closed: keep no reference to it (also should it be in this turn's
        flush, which follows)."""
        self.steady.discard(conn)
        self._excluded.add(conn)

    def _earned_wait(self, readers: list[Connection] | None) -> bool:
        """Whether the next turn may wait: this flush went to many of the rooms'
        readers (the clients answered early and the closed left out), most of
        which the flush before went to as well (whether it does wait depends on
        how soon its output comes: see :meth:`schedule`)."""
        self._flushed_at = self._loop.time()
        excluded = self._excluded
        if excluded:
            self._excluded = set()
        if readers is None or len(readers) < FANOUT_MIN:
            # A direct message, a small room, a download between two of the busy
            # room's flushes: the next turn goes at once, but the next fan-out
            # is compared with the last one, not with this.
            return False
        if self._delay() <= 0:
            self.steady.clear()
            return False
        # (A set: a connection answered early is listed again if it got more.)
        previous, current = self.steady, set(readers) - excluded
        self.steady = current
        return len(current) >= FANOUT_MIN and 2 * len(current & previous) >= len(current)


class Connection(Outbox, asyncio.Protocol):
    """The transport side of a session; its output of a turn is its :class:`Outbox`."""

    __slots__ = ("_closing", "_eof", "_flusher", "_framer", "_host", "_paused", "_queue",
                 "_transport", "address", "address_key", "last_input", "session", "worker")

    def __init__(self, host: ConnectionHost, framer: Framer | None = None) -> None:
        super().__init__()
        self._host = host
        self._flusher = host.flusher
        self._transport: asyncio.Transport | None = None
        # Shared while at rest: framer.settle() after each feed (SharedAtRest).
        self._framer = (framer if framer is not None
                        else LineFramer.at_rest(host.config.listen.max_line))
        # Lines waiting behind a command that is still running; None when none
        # wait (an empty deque alone would cost an idle connection ~750 bytes).
        self._queue: deque[str | BadLine] | None = None
        self.worker: asyncio.Task[None] | None = None
        self._paused = False
        self._closing = False
        self._eof = False
        self.last_input = host.clock.coarse_monotonic()
        # The client's host: what ``peer`` falls back to once the socket cannot say
        # (a TLS connection once it is lost). And what the listener counts it
        # under (limits.ipv6_prefix: an IPv6 address with its network), one string
        # per key, shared; the same string as the host where they are equal.
        self.address = "-"
        self.address_key = "-"
        self.session = self._new_session(self.last_input)

    def _new_session(self, now: float) -> Session:
        """The session this connection carries (an IRC connection carries an IRC one)."""
        return Session(self, None, now)

    @property
    def host(self) -> ConnectionHost:
        """Whoever accepted it (the listener that counts it)."""
        return self._host

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        # TCP keepalive is set on the listening sockets and inherited (see
        # set_keepalive): asking the transport for its socket here would keep a
        # socket object alive for every connection.
        self._host.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self.last_input = self._host.clock.coarse_monotonic()
        framer = self._framer
        lines = framer.feed(data)
        self._framer = framer.settle()
        if self.worker is None and not self._queue:
            self._handle_lines(lines)
        else:
            self._enqueue(lines)

    def eof_received(self) -> bool:
        """The client closed its sending side (``nc`` at the end of its input):
        answer what it sent, then close. True keeps the transport open to write
        (TLS has no half-close: there the transport closes, and True would only
        earn asyncio's warning)."""
        self._eof = True
        if self.worker is None:
            self._idle()
        return self._transport is None or self._transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self.discard()
        self._flusher.forget(self)
        # A command already running finishes (its replies go nowhere); cancelling
        # it could stop it between persisting a change and applying it.
        self._host.connection_closed(self)

    # -- input -------------------------------------------------------------------

    def _handle_lines(self, lines: list[str | BadLine]) -> None:
        """Handle ``lines`` in order until one needs to wait: that one continues in a
        task, and the lines after it queue behind it."""
        for index, item in enumerate(lines):
            if self._closing:
                return
            pending = self._handle(item)
            if pending is not None:
                self._enqueue(lines[index + 1:])
                self.worker = asyncio.ensure_future(self._continue(pending))
                return
        self._idle()

    def _enqueue(self, lines: list[str | BadLine]) -> None:
        """Queue ``lines`` behind the running command; past the bound, stop reading
        until they are handled (backpressure on input)."""
        if not lines:
            return
        queue = self._queue
        if queue is None:
            queue = self._queue = deque(lines)
        else:
            queue.extend(lines)
        if len(queue) > self._host.config.limits.input_queue and not self._paused:
            self._paused = True
            assert self._transport is not None
            self._transport.pause_reading()

    async def _continue(self, pending: Awaitable[None]) -> None:
        try:
            await pending
            while (queue := self._queue) and not self._closing:
                more = self._handle(queue.popleft())
                if more is not None:
                    await more
        finally:
            self.worker = None
        # Handled, or left unhandled because the connection is closing.
        self._queue = None
        self._idle()

    def _idle(self) -> None:
        """Every queued line is handled: read more, or close after the client's EOF
        (once its posts that wait for a cluster are answered too). While the turn
        is held for a busy room's fan-out that this connection is not part of, its
        answers go out now: nothing would come to share their write."""
        flusher = self._flusher
        if flusher.holding and self not in flusher.steady:
            flusher.answer(self)
        if not self._eof:
            self._resume_reading()
        elif self.session.posts is not None and self.session.posts.waiting():
            self.worker = asyncio.ensure_future(self._close_after(self.session.posts))
        else:
            self.close("end of input")

    async def _close_after(self, posts: Posts) -> None:
        try:
            await posts.settled()
        finally:
            self.worker = None
        self.close("end of input")

    def running(self) -> list[asyncio.Future[None]]:
        """What still runs for this connection: its command, its posts."""
        running: list[asyncio.Future[None]] = [] if self.worker is None else [self.worker]
        posts = self.session.posts
        return running + ([] if posts is None else list(posts.pending()))

    def _handle(self, item: str | BadLine) -> Awaitable[None] | None:
        if isinstance(item, BadLine):
            sink = self.session.line_sink
            if sink is not None:
                sink.abort(item.code)  # a damaged line ends an upload
            framer = self._framer
            limit = framer.max_line if isinstance(framer, LineFramer) else None
            self.session.send(_framing_error(item.code, limit))
            return None
        return self._host.dispatcher.handle(self.session, item)

    def _resume_reading(self) -> None:
        if self._paused and not self._closing:
            self._paused = False
            assert self._transport is not None
            self._transport.resume_reading()

    # -- output (the Output protocol of Session) ----------------------------------

    def wake(self) -> bool:
        """Output is about to start for this turn: schedule the flush. False once
        closing (nothing more is sent; close() already flushed what was queued)."""
        if self._closing:
            return False
        flusher = self._flusher
        flusher.dirty.append(self)  # FlushScheduler.mark, inlined: the fan-out's path
        if not flusher.scheduled:
            flusher.schedule()
        return True

    def flush(self) -> None:
        data = self.take()
        transport = self._transport
        if not data or transport is None or transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self._host.config.limits.output_buffer:
            log.warning("slow consumer disconnected", extra={"fields": {
                "session": self.session.id, "peer": self.session.peer,
                "buffered": transport.get_write_buffer_size()}})
            self._closing = True
            transport.abort()

    @property
    def peer(self) -> str:
        """``host:port`` of the client, asked of the socket; when it can no longer
        say (a TLS connection once it is lost), ``host:0``."""
        peer = "-" if self._transport is None else _peer_name(self._transport)
        if peer == "-" and self.address != "-":
            return f"{self.address}:0"
        return peer

    @property
    def congested(self) -> bool:
        """More than a quarter of ``limits.output_buffer`` is unsent: in the socket's
        buffer, or still held for this turn's flush (``listen.flush_delay`` holds
        output back for a while, and a download must count it before it is written)."""
        transport = self._transport
        if transport is None:
            return False
        limit = self._host.config.limits.output_buffer // 4
        buffered = transport.get_write_buffer_size()
        # (The socket's buffer alone first: summing the held output costs more.)
        return buffered > limit or buffered + self.held() > limit

    def close(self, reason: str, going_away: bool = False) -> None:
        """Send what is queued, then close (gracefully: buffered bytes still go out).
        ``going_away``: the server leaves the client, which is to reconnect (a
        shutdown, a fenced cluster node): a transport that says so in its close
        (a WebSocket's 1001, going away) does."""
        if self._closing:
            return
        self.flush()
        self._closing = True
        transport = self._transport
        if transport is not None:
            log.info("closing connection", extra={"fields": {
                "session": self.session.id, "reason": reason}})
            if going_away and isinstance(transport, Departing):
                transport.going_away()
            transport.close()

    def abort(self) -> None:
        """End the connection now, whatever is still unsent (a stop's last resort)."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()


def _framing_error(code: str, max_line: int | None) -> dict[str, str]:
    """The error of a line the framing dropped: what went wrong, and what to do
    instead (the limit is this connection's, which a reload does not change)."""
    if code == Code.LINE_TOO_LONG:
        limit = f" of {max_line} bytes" if max_line is not None else ""
        message = (f"that line was over the limit{limit} and was dropped: send shorter "
                   "lines, or share a long text as a file with /upload.")
    else:
        message = ("that line was not valid UTF-8 and was dropped: send text encoded as "
                   "UTF-8.")
    return {"type": "error", "code": code, "message": message}


def set_keepalive(sock: Any, enabled: bool) -> None:
    """Let the kernel probe a silent peer, so vanished clients are noticed.

    Set on a listening socket: the connections it accepts inherit the options
    (Linux copies them at accept), so no connection needs a call of its own.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(enabled))
    if not enabled:
        return
    for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _peer_name(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer or "-")
