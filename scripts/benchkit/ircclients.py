"""The load generator's IRC clients: the same code drives chatd, ngIRCd and InspIRCd.

``IrcFanClient`` registers (``PASS <token>`` first for chatd, plain
``NICK``/``USER`` for the others), waits for the end of the MOTD, joins its
channel and sends ``PING :ready``; the ``PONG`` says the server has done
everything before it. Then it sends (when it is a sender) and counts what it
receives.

IRC servers do not echo a sender's own message, so a sender's window is
acknowledged with ``PING``: after every batch of messages it sends
``PING :<seq>``, and the server's ``PONG`` (which comes after it has handled
the messages before it) frees that batch's slots. Receivers count the
``PRIVMSG`` lines of each sender at C speed per received chunk; the texts
carry ``<seq> <payload>`` (closed loop) or ``<seq> <send time>`` (paced: the
time is CLOCK_MONOTONIC, system-wide). IRC has no message ids: loss and
surplus are checked per sender, order is not.
"""

from __future__ import annotations

import array
import asyncio
import re
import time
from collections import Counter
from typing import Any

from .common import PAYLOAD, token, user_name

FROM_RE = re.compile(rb"^:([^!\s]+)!\S* PRIVMSG ", re.M)
STAMP_RE = re.compile(rb"^:([^!\s]+)!\S* PRIVMSG \S+ :(\d+) (\d+\.\d+)", re.M)
PONG_RE = re.compile(rb"^:\S+ PONG \S+ :?(\d+)\r?$", re.M)
END_OF_MOTD = (b"376", b"422")
REFUSED = (b"464", b"465")


def command_of(line: bytes) -> bytes:
    """A line's command or numeric (``ERROR`` for a server's closing line): never
    a number that merely appears in its text (``There are 465 users``)."""
    if line.startswith(b"ERROR"):
        return b"ERROR"
    parts = line.split(b" ", 2)
    return parts[1] if line.startswith(b":") and len(parts) > 1 else parts[0]


def registration(index: int, login: str) -> bytes:
    """The lines that log user ``index`` in: chatd's takes its API token first."""
    name = user_name(index)
    lines = f"PASS {token(index)}\r\n" if login == "token" else ""
    return f"{lines}NICK {name}\r\nUSER {name} 0 * :{name}\r\n".encode()


class IrcState:
    """What one load-generator process's IRC clients share."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.paced: bool = spec["mode"] == "paced"
        self.messages: int = spec["messages"]
        self.latencies = array.array("d")
        # Paced runs: each message's latency to the last of this process's
        # receivers, by sender and seq: the parent takes the largest over all of them.
        self.to_last: dict[bytes, float] = {}
        self.samples: list[str] = []
        self.unfinished = 0
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.t_last = 0.0

    def client_finished(self, client: IrcFanClient) -> None:
        client.done = True
        self.unfinished -= 1
        self.t_last = time.monotonic()
        if self.unfinished <= 0 and not self.finished.done():
            self.finished.set_result(None)


class IrcFanClient(asyncio.Protocol):
    """One IRC connection of a room or direct-message run."""

    def __init__(self, state: IrcState, index: int, target: str, channel: str | None,
                 senders: list[str], sender: bool, window: int, login: str) -> None:
        self.state = state
        self.index = index
        self.name = user_name(index)
        self.target = target.encode()  # where its messages go: #channel or a nick
        self.channel = channel
        self.senders = senders  # who sends to it (never itself)
        self.expected_each = state.messages
        self.expected = state.messages * len(senders)
        self.is_sender = sender
        self.login = login
        # The window, in whole batches of one PING each (at most 100 messages:
        # InspIRCd stalls a client whose unread input passes about 16 KB).
        self.batch = max(1, min(window, 100) // 4)
        self.window = self.batch * max(1, min(window, 100) // self.batch)
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.stage = 0  # 0: registering, 1: joining, 2: measured
        self.partial = b""
        self.count = 0
        self.froms: Counter[bytes] = Counter()
        self.errors: Counter[str] = Counter()
        self.others = 0
        self.sent = 0
        self.acked = 0
        self.done = False
        self.phase = 0.0
        self.first_send = 0.0

    # -- connection and handshake ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(registration(self.index, self.login))  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"{self.name}: closed while logging in"))
        elif self.stage == 2 and not self.done:
            self.errors["connection-lost"] += 1
            self.state.client_finished(self)

    def data_received(self, data: bytes) -> None:
        if self.partial:
            data = self.partial + data
        cut = data.rfind(b"\n") + 1
        self.partial = data[cut:]
        if not cut:
            return
        chunk = data[:cut] if cut < len(data) else data
        if self.stage < 2:
            chunk = self._handshake(chunk)
            if not chunk:
                return
        self._messages(chunk)

    def _handshake(self, chunk: bytes) -> bytes:
        """Registration, then the join: what follows the ``PONG :ready``."""
        assert self.transport is not None
        lines = chunk.split(b"\n")
        for i, line in enumerate(lines):
            command = command_of(line)
            if command == b"PING":
                self.transport.write(b"PONG " + line[5:].strip() + b"\r\n")
            elif command in REFUSED or command == b"ERROR":
                self.ready.set_exception(RuntimeError(f"{self.name}: {line!r}"))
                self.transport.close()
                return b""
            elif self.stage == 0 and command in END_OF_MOTD:
                self.stage = 1
                join = f"JOIN {self.channel}\r\n".encode() if self.channel else b""
                self.transport.write(join + b"PING :ready\r\n")
            elif self.stage == 1 and command == b"PONG" and line.rstrip().endswith(b"ready"):
                self.stage = 2
                self.ready.set_result(None)
                return b"\n".join(lines[i + 1:])
        return b""

    # -- the measured part --------------------------------------------------------------

    def _messages(self, chunk: bytes) -> None:
        state = self.state
        lines = chunk.count(b"\n")
        if state.paced:
            stamped = STAMP_RE.findall(chunk)
            if len(stamped) != lines:
                self._slow(chunk)
                return
            self._stamped(stamped)
            return
        froms = FROM_RE.findall(chunk)
        pongs = PONG_RE.findall(chunk) if self.is_sender else ()
        if len(froms) + len(pongs) != lines:
            self._slow(chunk)
            return
        self.froms.update(froms)
        self.count += len(froms)
        if pongs:
            self.acked = max(self.acked, int(pongs[-1]))
            self.fill()
        if self.count >= self.expected and not self.done:
            state.client_finished(self)

    def _stamped(self, stamped: list[tuple[bytes, bytes, bytes]]) -> None:
        state = self.state
        now = time.monotonic()
        to_last = state.to_last
        for sender, seq, sent_at in stamped:
            latency = now - float(sent_at)
            state.latencies.append(latency)
            key = sender + b":" + seq
            if to_last.get(key, -1.0) < latency:
                to_last[key] = latency
        self.froms.update(s for s, _, _ in stamped)
        self.count += len(stamped)
        if self.count >= self.expected and not self.done:
            state.client_finished(self)

    def _slow(self, chunk: bytes) -> None:
        """A chunk with other lines than messages and acks: one line at a time."""
        assert self.transport is not None
        for raw in chunk.split(b"\n"):
            line = raw.rstrip(b"\r")
            if not line:
                continue
            if line.startswith(b"PING "):
                self.transport.write(b"PONG " + line[5:] + b"\r\n")
            elif self.state.paced and STAMP_RE.match(line):
                self._stamped(STAMP_RE.findall(line + b"\n"))
            elif not self.state.paced and (FROM_RE.match(line) or PONG_RE.match(line)):
                self._messages(line + b"\n")
            elif line.startswith(b"ERROR") or re.match(rb"^:\S+ [45]\d\d ", line):
                code = line.split(b" ")[1].decode(errors="replace") \
                    if line.startswith(b":") else "ERROR"
                self.errors[code] += 1
                if len(self.state.samples) < 5:
                    self.state.samples.append(line.decode(errors="replace")[:300])
            else:
                self.others += 1  # e.g. a later member's JOIN

    def fill(self) -> None:
        """Closed loop: send until the window is full or every message went, with a
        PING after each batch (its PONG acknowledges the batch)."""
        n = min(self.window - (self.sent - self.acked), self.state.messages - self.sent)
        if n <= 0 or self.transport is None:
            return
        if not self.first_send:
            self.first_send = time.monotonic()
        out = []
        last = self.state.messages
        for seq in range(self.sent + 1, self.sent + n + 1):
            out.append(b"PRIVMSG %s :%d %s\r\n" % (self.target, seq, PAYLOAD))
            if seq % self.batch == 0 or seq == last:
                out.append(b"PING :%d\r\n" % seq)
        self.sent += n
        self.transport.write(b"".join(out))

    def send_stamped(self) -> None:
        """Paced: one message carrying its send time."""
        assert self.transport is not None
        self.sent += 1
        self.transport.write(b"PRIVMSG %s :%d %.6f\r\n" %
                             (self.target, self.sent, time.monotonic()))

    def verdict(self) -> dict[str, int]:
        """Loss and surplus, per sender: each one's count must be exactly its messages."""
        missing = extra = 0
        for sender in self.senders:
            got = self.froms.get(sender.encode(), 0)
            missing += max(0, self.expected_each - got)
            extra += max(0, got - self.expected_each)
        extra += sum(c for s, c in self.froms.items() if s.decode() not in self.senders)
        return {"missing": missing, "extra": extra}


class IrcIdleClient(asyncio.Protocol):
    """A connection that registers (logs in) and stays; ready at the end of the MOTD."""

    def __init__(self, index: int, login: str) -> None:
        self.index, self.login = index, login
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buf = b""
        self.t_done = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(registration(self.index, self.login))  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        data = self.buf + data
        cut = data.rfind(b"\n") + 1
        self.buf = data[cut:]
        for line in data[:cut].split(b"\n"):
            command = command_of(line)
            if command == b"PING":
                self.transport.write(b"PONG " + line[5:].strip() + b"\r\n")
            elif self.ready.done():
                continue
            elif command in END_OF_MOTD:
                self.t_done = time.monotonic()
                self.ready.set_result(None)
            elif command in REFUSED or command == b"ERROR":
                self.ready.set_exception(RuntimeError(line.decode(errors="replace")[:200]))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed: {self.buf[-200:]!r}"))
