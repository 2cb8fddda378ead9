"""chatd-client sessions (the session code, no terminal) against a real server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatd.client import ChatClient
from chatd.client.tui.keyring import Keyring
from chatd.client.tui.lines import Line
from chatd.client.tui.session import ClientSession
from tests.helpers import PASSWORD, ChatServer


class People:
    """Client sessions against one server, each with its own config directory."""

    def __init__(self, server: ChatServer, home: Path) -> None:
        self.server = server
        self.home = home
        self.open: list[ClientSession] = []

    async def session(self, name: str, pq: bool = True, home: Path | None = None,
                      ) -> ClientSession:
        keyring, _ = Keyring.open(home or self.home / name, f"127.0.0.1:{self.server.port}",
                                  pq=pq)
        client = await ChatClient.connect("127.0.0.1", self.server.port)
        session = ClientSession(client, keyring, pq=pq)
        register = self.server.services.accounts.find(name) is None
        shown = await session.login(name, PASSWORD, register=register)
        assert session.user == name, shown
        self.open.append(session)
        return session

    async def close(self) -> None:
        for session in self.open:
            await session.client.close()


async def next_message(session: ClientSession,
                       match: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """The next message record the session receives (matching ``match``); the
    sender keys handed to it before are taken in on the way, as the client does."""
    while True:
        event = await session.client.next_event(lambda e: e.get("type") == "message")
        if event.get("room_key"):
            await session.show(event)
        elif match is None or match(event):
            return event


async def received(session: ClientSession,
                   match: Callable[[dict[str, Any]], bool] | None = None) -> list[Line]:
    """The Lines for the next message the session receives."""
    return await session.show(await next_message(session, match))


def messages(shown: list[Line]) -> list[Line]:
    return [line for line in shown if line.kind == "message"]


async def secret_room(people: People, *names: str, pq: bool = True,
                      e2e: bool = True) -> list[ClientSession]:
    sessions = [await people.session(name, pq=pq) for name in names]
    await sessions[0].input("/create secret")
    for other in sessions[1:]:
        await other.input("/join secret")
    if e2e:
        await sessions[0].input("/e2e on")
    for session in sessions:
        await session.client.command("/ping")
        session.client.pending_events()
    return sessions


async def take_in(session: ClientSession) -> list[Line]:
    """What the client's pump does: show everything that arrived unasked."""
    shown = []
    for event in session.client.pending_events():
        shown += await session.show(event)
    return shown
