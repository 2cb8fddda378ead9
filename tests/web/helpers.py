"""Clients of the web listener: a WebSocket speaking the line protocol, and HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import PASSWORD, ChatServer

TIMEOUT = 5.0


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


async def token_for(server: ChatServer, name: str) -> str:
    """An API token of ``name`` (the account made if needed), as /token create makes."""
    accounts = server.services.accounts
    user = accounts.find(name) or await accounts.create(name, PASSWORD)
    secret, _ = await server.services.tokens.create(user, f"t{len(await server.services.tokens.list(user))}", None)
    return secret


def http(server: ChatServer, token: str | None = None, **headers: str) -> httpx.AsyncClient:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.AsyncClient(base_url=base(server), headers=headers, timeout=TIMEOUT)
