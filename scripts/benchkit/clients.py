"""The load generator's raw-socket clients (``asyncio.Protocol``, not ``ChatClient``).

``FanClient`` is a room member of a fan-out or latency run: it logs in with
/auth in the JSON format, sends within its window when it is a sender, and
checks every message it receives. ``FanWorker`` holds the state one
load-generator process shares between its clients. ``IdleClient`` logs in and
stays (the connections scenario).
"""

from __future__ import annotations

import array
import asyncio
import json
import re
import time
from collections import Counter
from typing import Any

from .common import PASSWORD, PAYLOAD, token, user_name

ID_RE = re.compile(rb'"id":(\d+)')
FROM_RE = re.compile(rb'"from":"([^"]*)"')
SENT_AT_RE = re.compile(rb'"text":"\d+ (\d+\.\d+)"')


class FanClient(asyncio.Protocol):
    """One member connection: logs in, then counts and checks every message it receives.

    Checks (every message, at C speed per received chunk): ids strictly increase
    on the connection (the server numbers messages globally and posts them one
    after another, so any decrease or repeat is a reordering or a duplicate), and
    at the end each sender's message count equals what it sent (loss).
    """

    def __init__(self, worker: FanWorker, index: int, room: str, senders: list[str],
                 expected_each: int, sender: bool, window: int) -> None:
        self.worker = worker
        self.name = user_name(index)
        self.token = token(index)
        self.name_b = self.name.encode()
        self.room = room
        self.senders = senders
        self.expected = expected_each * len(senders)
        self.expected_each = expected_each
        self.is_sender = sender
        self.window = window
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.handshake = True
        self.pending_labels = {"l", "s"} if sender else {"l"}
        self.partial = b""
        self.count = 0
        self.last_id = 0
        self.reordered = 0
        self.duplicates = 0
        self.froms: Counter[bytes] = Counter()
        self.errors: Counter[str] = Counter()
        self.others = 0
        self.sent = 0
        self.acked = 0
        self.done = False
        self.first_send = 0.0
        self.phase = 0.0
        # The server's port (a cluster's node) this client connects to; 0: the run's.
        self.port = 0

    # -- connection ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        hello = f"/format json\n@l /auth {self.token}\n"
        if self.is_sender:
            hello += f"@s /switch {self.room}\n"
        self.transport.write(hello.encode())  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"{self.name}: connection lost in login"))
        elif not self.done:
            self.errors["connection-lost"] += 1
            self.worker.client_finished(self)

    def data_received(self, data: bytes) -> None:
        if self.partial:
            data = self.partial + data
        cut = data.rfind(b"\n") + 1
        self.partial = data[cut:]
        if not cut:
            return
        chunk = data[:cut] if cut < len(data) else data
        if self.handshake:
            chunk = self._handshake(chunk)
            if not chunk:
                return
        self._messages(chunk)

    def _handshake(self, chunk: bytes) -> bytes:
        """Consume login replies; return what follows them."""
        lines = chunk.split(b"\n")
        for i, line in enumerate(lines):
            if not line.startswith(b"{"):
                continue  # the text banner
            obj = json.loads(line)
            label = obj.get("label")
            if label in self.pending_labels:
                if obj.get("type") != "ok":
                    self.ready.set_exception(RuntimeError(f"{self.name}: {line!r}"))
                    return b""
                self.pending_labels.discard(label)
                if not self.pending_labels:
                    self.handshake = False
                    self.ready.set_result(None)
                    return b"\n".join(lines[i + 1:])
        return b""

    # -- the measured part -------------------------------------------------------

    def _messages(self, chunk: bytes) -> None:
        # Every line must be a message with an id: any other line (an error has
        # no id) makes the counts differ and takes the careful path.
        ids = ID_RE.findall(chunk)
        if len(ids) != chunk.count(b"\n"):
            self._slow(chunk)
            return
        self._account(list(map(int, ids)), chunk)

    def _account(self, ids: list[int], chunk: bytes) -> None:
        n = len(ids)
        if not n:
            return
        if ids[0] <= self.last_id or (n > 1 and sorted(set(ids)) != ids):
            self._inversions(ids)
        self.last_id = max(self.last_id, ids[-1])
        self.count += n
        worker = self.worker
        if worker.latency:
            now = time.monotonic()
            worker.latencies.extend(now - float(t) for t in SENT_AT_RE.findall(chunk))
        if self.is_sender:
            # Senders also check who sent what: their own echoes are their acks.
            froms = FROM_RE.findall(chunk)
            self.froms.update(froms)
            if not worker.latency:
                self.acked += froms.count(self.name_b)
                self.fill()
        if self.count >= self.expected and not self.done:
            worker.client_finished(self)

    def _inversions(self, ids: list[int]) -> None:
        last, seen = self.last_id, set()
        for i in ids:
            if i in seen:
                self.duplicates += 1
            elif i <= last:
                self.reordered += 1
            seen.add(i)
            last = max(last, i)

    def _slow(self, chunk: bytes) -> None:
        """A chunk with something else than messages: look at every line."""
        for line in chunk.split(b"\n"):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                self.errors["not-json"] += 1
                continue
            kind = obj.get("type")
            if kind == "message":
                self._account([int(obj["id"])], line + b"\n")
            elif kind == "error":
                self.errors[str(obj.get("code"))] += 1
                if len(self.worker.samples) < 5:
                    self.worker.samples.append(line.decode(errors="replace")[:300])
            else:
                self.others += 1

    def fill(self) -> None:
        """Send until the window is full or every message went."""
        room = self.window - (self.sent - self.acked)
        left = self.worker.messages - self.sent
        n = min(room, left)
        if n <= 0 or self.transport is None:
            return
        start = self.sent
        self.sent += n
        if not self.first_send:
            self.first_send = time.monotonic()
        self.transport.write(b"".join(b"%d %s\n" % (seq, PAYLOAD)
                                      for seq in range(start + 1, start + n + 1)))

    def send_stamped(self) -> None:
        """Latency mode: one message carrying its send time."""
        assert self.transport is not None
        self.sent += 1
        self.transport.write(b"%d %.6f\n" % (self.sent, time.monotonic()))

    def verdict(self) -> dict[str, int]:
        """Loss and surplus: a receiver counts every message (its ids strictly
        increase, so there is no duplicate among them); a sender also checks the
        messages of each sender of its room, its own echoes included."""
        missing = max(0, self.expected - self.count)
        extra = max(0, self.count - self.expected)
        if self.is_sender:
            deficit = 0
            for sender in self.senders:
                got = self.froms.get(sender.encode(), 0)
                deficit += max(0, self.expected_each - got)
                extra += max(0, got - self.expected_each)
            missing = max(missing, deficit)
            extra += sum(c for s, c in self.froms.items() if s.decode() not in self.senders)
        return {"missing": missing, "extra": extra}


class FanWorker:
    """One load-generator process of a fan-out or latency run."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.latency: bool = spec["mode"] == "latency"
        self.messages: int = spec["messages"]
        self.latencies = array.array("d")
        self.samples: list[str] = []
        self.clients: list[FanClient] = []
        self.unfinished = 0
        self.finished = asyncio.get_running_loop().create_future()
        self.t_last = 0.0

    def client_finished(self, client: FanClient) -> None:
        client.done = True
        self.unfinished -= 1
        self.t_last = time.monotonic()
        if self.unfinished <= 0 and not self.finished.done():
            self.finished.set_result(None)


class IdleClient(asyncio.Protocol):
    """A connection that logs in (text format) and then just stays."""

    def __init__(self, index: int, password: bool = False) -> None:
        self.login = f"/login {user_name(index)} {PASSWORD}\n" if password else \
            f"/auth {token(index)}\n"
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buf = b""
        self.t_done = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.login.encode())  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        if self.ready.done():
            return
        self.buf += data
        if b"Welcome back" in self.buf:
            self.t_done = time.monotonic()
            self.ready.set_result(None)
            self.buf = b""
        elif b"! " in self.buf:
            line = self.buf[self.buf.index(b"! "):].split(b"\n")[0]
            self.ready.set_exception(RuntimeError(line.decode(errors="replace")))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed: {self.buf[-200:]!r}"))
