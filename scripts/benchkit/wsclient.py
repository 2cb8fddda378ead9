"""A line-protocol load-generator client carried over the web listener's /ws.

:class:`WsAdapter` wraps a TCP client (``FanClient``, ``IdleClient``): the
HTTP upgrade, then one masked text frame per line sent and one line per frame
received, so the same checks (loss, order, errors) apply. The mask key is
zero (legal, RFC 6455 5.3), so the generator spends nothing on masking.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: text.chatd\r\n\r\n")
_ZERO_MASK = b"\x00\x00\x00\x00"


def _masked(line: bytes) -> bytes:
    size = len(line)
    if size < 126:
        return bytes((0x81, 0x80 | size)) + _ZERO_MASK + line
    if size < 65536:
        return struct.pack("!BBH", 0x81, 0x80 | 126, size) + _ZERO_MASK + line
    return struct.pack("!BBQ", 0x81, 0x80 | 127, size) + _ZERO_MASK + line


class WsTransport(asyncio.Transport):
    """What the inner client writes to: its lines become one frame each."""

    def __init__(self, raw: asyncio.Transport) -> None:
        super().__init__()
        self.raw = raw

    def write(self, data: bytes | bytearray | memoryview) -> None:
        lines = bytes(data).split(b"\n")
        self.raw.write(b"".join(_masked(line) for line in lines[:-1]))

    def close(self) -> None:
        self.raw.close()

    def abort(self) -> None:
        self.raw.abort()

    def is_closing(self) -> bool:
        return self.raw.is_closing()


class WsAdapter(asyncio.Protocol):
    """Carries a line-protocol client over /ws."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.buf = bytearray()
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw: asyncio.Transport = transport  # type: ignore[assignment]
        self.raw.write(HANDSHAKE)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.open and not self._opened():
            return
        lines = self._lines()
        if lines:
            lines.append(b"")
            self.inner.data_received(b"\n".join(lines))

    def _opened(self) -> bool:
        """The upgrade's answer has arrived: hand the inner client its transport."""
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        if b" 101 " not in bytes(buf[:end].split(b"\r\n", 1)[0]):
            self.raw.close()
            return False
        del buf[:end + 4]
        self.open = True
        self.inner.connection_made(WsTransport(self.raw))
        return True

    def _lines(self) -> list[bytes]:
        """The payloads of the complete text frames buffered (server frames: unmasked)."""
        buf, lines, used = self.buf, [], 0
        size = len(buf)
        while size - used >= 2:
            length, start = buf[used + 1] & 0x7F, used + 2
            if length >= 126:
                extra = 2 if length == 126 else 8
                if size - used < 2 + extra:
                    break
                length, start = int.from_bytes(buf[start:start + extra], "big"), start + extra
            if size - start < length:
                break
            if buf[used] & 0x0F == 1:  # text: one line; control frames are skipped
                lines.append(bytes(buf[start:start + length]))
            used = start + length
        del buf[:used]
        return lines

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)
