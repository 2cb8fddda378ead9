"""Tests of chatd's protection features: rate limits, flood control, failed-login
limits, API tokens, connection limits, slow consumers and resilience.

Shared helpers live here: a server started with chosen limits (the test
defaults raise every rate limit; these tests put them back down), clients that
connect from another loopback address (so per-IP limits can be told apart), and
small functions to read replies by code rather than by prose.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from chatd.client import ChatClient, LineClient
from chatd.domain.clock import ManualClock
from tests.helpers import ChatServer, Clients, start_server
from tests.helpers import error_of as error_of
from tests.helpers import messages as messages
from tests.helpers import room_with as room_with
from tests.helpers import settle as settle

# The daemon's own defaults for the limits that TEST_OVERRIDES raises.
PRODUCTION_LIMITS: dict[str, Any] = {
    "limits__message_rate": 5.0,
    "limits__message_burst": 10.0,
    "limits__command_rate": 20.0,
    "limits__command_burst": 40.0,
}


class ProtectionClients(Clients):
    """``Clients`` that can also connect from another 127.x.y.z source address."""

    async def from_ip(self, ip: str) -> ChatClient:
        client = await ChatClient.connect("127.0.0.1", self.server.port, local_addr=(ip, 0))
        self._open.append(client)
        return client

    async def raw_from(self, ip: str) -> LineClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", self.server.port, limit=1 << 22, local_addr=(ip, 0)), 10)
        client = LineClient(reader, writer)
        self._open.append(client)
        return client


@asynccontextmanager
async def serving(db_path: Path, clock: ManualClock, **overrides: Any
                  ) -> AsyncIterator[tuple[ChatServer, ProtectionClients]]:
    """A real server with ``overrides`` (``section__key=value``) and its clients."""
    server = await start_server(db_path, clock=clock, **overrides)
    clients = ProtectionClients(server)
    try:
        yield server, clients
    finally:
        await clients.close()
        await server.stop()








def is_event(name: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    """A predicate for an ``event`` line named ``name`` with ``fields``."""
    def match(obj: dict[str, Any]) -> bool:
        return (obj.get("type") == "event" and obj.get("event") == name
                and all(obj.get(k) == v for k, v in fields.items()))
    return match


def is_error(code: str) -> Callable[[dict[str, Any]], bool]:
    return lambda obj: obj.get("type") == "error" and obj.get("code") == code


def text_error_code(line: str) -> str | None:
    """The code of a text-mode error line (``! code: message``), else None."""
    if not line.startswith("! "):
        return None
    return line[2:].partition(":")[0]


