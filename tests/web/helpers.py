"""Clients of the web listener: a WebSocket speaking the line protocol, and HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from chatd.domain.scopes import ALL_SCOPES, Scope
from tests.helpers import PASSWORD, ChatServer

TIMEOUT = 5.0


async def lines_until(ws: ClientConnection, *commands: str) -> list[str]:
    """IRC lines over /irc (one per message, no line end) until one whose command is
    one of ``commands``."""
    seen: list[str] = []
    async with asyncio.timeout(TIMEOUT):
        while True:
            message = await ws.recv()
            line = message.decode() if isinstance(message, bytes) else message
            assert "\r" not in line and "\n" not in line
            seen.append(line)
            words = line.split(" ")
            if (words[1] if line.startswith(("@", ":")) else words[0]) in commands:
                return seen


def base(server: ChatServer) -> str:
    assert server.web is not None
    return f"http://127.0.0.1:{server.web.port}"


def ws_url(server: ChatServer, path: str = "/ws") -> str:
    assert server.web is not None
    return f"ws://127.0.0.1:{server.web.port}{path}"


class WsChat:
    """A browser's view of /ws: JSON lines in text messages."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._count = 0

    @classmethod
    async def open(cls, server: ChatServer, **kwargs: Any) -> WsChat:
        ws = await connect(ws_url(server, "/ws?format=json"), subprotocols=["text.chatd"],
                           **kwargs)
        chat = cls(ws)
        banner = await chat.record()
        assert banner["type"] == "notice", banner
        return chat

    async def record(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        message = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(message, str)
        assert "\n" not in message
        value = json.loads(message)
        assert isinstance(value, dict)
        return value

    async def until(self, predicate: Any, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while True:
                seen.append(await self.record())
                if predicate(seen[-1]):
                    return seen

    async def command(self, line: str) -> dict[str, Any]:
        """Send ``line`` labelled; the final ok or error of its reply."""
        self._count += 1
        label = f"w{self._count}"
        await self.ws.send(f"@{label} {line}")
        seen = await self.until(lambda r: r.get("label") == label
                                and r.get("type") in ("ok", "error"))
        return seen[-1]

    async def login(self, name: str) -> None:
        reply = await self.command(f"/register {name} {PASSWORD}")
        if reply["type"] == "error":
            reply = await self.command(f"/login {name} {PASSWORD}")
        assert reply["type"] == "ok", reply

    async def close(self) -> None:
        await self.ws.close()


async def token_for(server: ChatServer, name: str,
                    scopes: frozenset[Scope] = ALL_SCOPES) -> str:
    """An API token of ``name`` (the account made if needed), as /token create makes;
    every scope unless told (the scope checks have their own test)."""
    accounts = server.services.accounts
    user = accounts.find(name) or await accounts.create(name, PASSWORD)
    tokens = server.services.tokens
    secret, _ = await tokens.create(user, f"t{len(tokens.of(user))}", None, scopes)
    return secret


def http(server: ChatServer, token: str | None = None, **headers: str) -> httpx.AsyncClient:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.AsyncClient(base_url=base(server), headers=headers, timeout=TIMEOUT)


class RawWs:
    """A WebSocket by hand, for what a well-behaved library will not send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 head: str) -> None:
        self.reader = reader
        self.writer = writer
        self.head = head

    @classmethod
    async def open(cls, server: ChatServer, path: str = "/ws", protocol: str = "text.chatd",
                   **headers: str) -> RawWs:
        assert server.web is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", server.web.port)
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{server.web.port}",
                 "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
                 f"Sec-WebSocket-Protocol: {protocol}",
                 *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        return cls(reader, writer, head.decode("latin-1"))

    def send(self, payload: bytes, opcode: int = 1, fin: bool = True,
             masked: bool = True) -> None:
        first = (0x80 if fin else 0) | opcode
        size = len(payload)
        mask_bit = 0x80 if masked else 0
        if size < 126:
            header = bytes((first, mask_bit | size))
        elif size < 65536:
            header = bytes((first, mask_bit | 126)) + size.to_bytes(2, "big")
        else:
            header = bytes((first, mask_bit | 127)) + size.to_bytes(8, "big")
        if masked:
            key = b"\x01\x02\x03\x04"
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            header += key
        self.writer.write(header + payload)

    async def frame(self, timeout: float = TIMEOUT) -> tuple[int, bytes]:
        """The next frame from the server: (opcode, payload)."""
        async with asyncio.timeout(timeout):
            first, second = await self.reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                size = int.from_bytes(await self.reader.readexactly(2), "big")
            elif size == 127:
                size = int.from_bytes(await self.reader.readexactly(8), "big")
            return first & 0x0F, await self.reader.readexactly(size)

    async def text_until(self, predicate: Any) -> list[str]:
        seen: list[str] = []
        while True:
            opcode, payload = await self.frame()
            if opcode == 1:
                seen.append(payload.decode())
                if predicate(seen[-1]):
                    return seen
            elif opcode == 8:
                raise ConnectionError(f"closed: {payload!r}")

    async def close_code(self) -> int:
        """Read until the server's close frame; its code."""
        while True:
            opcode, payload = await self.frame()
            if opcode == 8:
                return int.from_bytes(payload[:2], "big")

    def close(self) -> None:
        self.writer.close()
