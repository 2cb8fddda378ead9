"""A raw IRC client for conversation tests: lines over asyncio streams, parsed."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
import struct
from typing import Any

from chatd.irc.codec import IrcMessage, parse
from tests.helpers import PASSWORD

# The numerics that end the welcome: the end of the MOTD, or its absence.
END_OF_WELCOME = ("376", "422")


class IrcClient:
    """One IRC connection; ``lines`` keeps every raw line received."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.lines: list[str] = []
        self.nick = "*"

    @classmethod
    async def connect(cls, port: int, tls: ssl.SSLContext | None = None) -> IrcClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
        return cls(reader, writer)

    def send(self, *lines: str) -> None:
        for line in lines:
            self.writer.write(line.encode() + b"\r\n")

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def raw(self, timeout: float = 5.0) -> str:
        """The next raw line (without its line end); EOFError when the server closed."""
        data = await asyncio.wait_for(self.reader.readline(), timeout)
        if not data:
            raise EOFError("the server closed the connection")
        assert data.endswith(b"\r\n"), data
        line = data[:-2].decode()
        self.lines.append(line)
        return line

    async def read(self, timeout: float = 5.0) -> IrcMessage:
        return parse(await self.raw(timeout))

    async def expect(self, *commands: str, timeout: float = 5.0) -> IrcMessage:
        """The next message whose command is one of ``commands`` (others are skipped)."""
        while True:
            message = await self.read(timeout)
            if message.command in commands:
                return message

    async def until(self, *commands: str, timeout: float = 5.0) -> list[IrcMessage]:
        """Every message up to and including the next one with one of ``commands``."""
        seen = []
        while True:
            message = await self.read(timeout)
            seen.append(message)
            if message.command in commands:
                return seen

    async def nothing(self, within: float = 0.2) -> None:
        """Assert that no line arrives for ``within`` seconds."""
        try:
            line = await self.raw(within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected line: {line}")

    async def closed(self, timeout: float = 5.0) -> list[str]:
        """The lines until the server closes the connection."""
        got = []
        while True:
            try:
                got.append(await self.raw(timeout))
            except EOFError:
                return got

    async def register(self, nick: str, password: str | None = None,
                       caps: tuple[str, ...] = ()) -> list[IrcMessage]:
        """NICK/USER (with PASS and capabilities), through the end of the welcome."""
        if caps:
            self.send("CAP LS 302", f"CAP REQ :{' '.join(caps)}")
        if password is not None:
            self.send(f"PASS {password}")
        self.send(f"NICK {nick}", f"USER {nick} 0 * :{nick} real")
        if caps:
            self.send("CAP END")
        lines = await self.until(*END_OF_WELCOME)
        welcome = next(m for m in lines if m.command == "001")
        self.nick = welcome.params[0]
        return lines

    async def sasl(self, account: str, password: str) -> IrcMessage:
        """Run SASL PLAIN; returns the 903 or the 904."""
        self.send("AUTHENTICATE PLAIN")
        assert (await self.expect("AUTHENTICATE")).params == ("+",)
        payload = base64.b64encode(f"{account}\0{account}\0{password}".encode()).decode()
        self.send(f"AUTHENTICATE {payload}")
        return await self.expect("903", "904")

    def reset(self) -> None:
        """Drop the connection as a crashed client or a lost network does: a TCP
        reset, which ends the server's connection at once, whatever command it is
        running (after a close, FIN, it would answer its queued lines first)."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


async def login(port: int, name: str, **kwargs: Any) -> IrcClient:
    """A registered IRC client of account ``name`` (PASS name:password)."""
    client = await IrcClient.connect(port)
    await client.register(name, password=f"{name}:{PASSWORD}", **kwargs)
    return client
