"""Lines sent together: handled in order, queued only behind a command that waits."""

from __future__ import annotations

import json

from chatd.net.connection import Connection
from tests.commands.conftest import Chat, MemoryTransport, settle
from tests.helpers import PASSWORD


class ReadingTransport(MemoryTransport):
    """A memory transport that records when the connection stops and resumes reading."""

    def __init__(self, peer: str) -> None:
        super().__init__(peer)
        self.reading: list[bool] = []

    def pause_reading(self) -> None:
        self.reading.append(False)

    def resume_reading(self) -> None:
        self.reading.append(True)


def connect(chat: Chat) -> tuple[Connection, ReadingTransport]:
    transport = ReadingTransport("10.0.1.1")
    conn = Connection(chat.server.listeners)
    conn.connection_made(transport)
    return conn, transport


def finals(transport: MemoryTransport) -> list[dict[str, object]]:
    records = [json.loads(line) for line in bytes(transport.written).decode().splitlines()
               if line.startswith("{")]
    return [r for r in records if r["type"] in ("ok", "error")]


async def test_lines_behind_a_waiting_command_are_answered_in_order(chat: Chat) -> None:
    await (await chat.user("alice")).say("/logout")  # the account exists
    conn, transport = connect(chat)
    # The login waits for bcrypt; the three lines after it arrive in the same packet.
    conn.data_received(f"/format json\n/login alice {PASSWORD}\n@a /ping\n@b /whoami\n"
                       "@c /ping\n".encode())
    assert conn.worker is not None
    await settle(conn)
    answered = finals(transport)
    assert [r["type"] for r in answered] == ["ok", "ok", "ok", "ok", "ok"]
    assert [r.get("label") for r in answered[2:]] == ["a", "b", "c"]
    assert answered[3]["user"] == "alice"
    # Lines after the queue drained are handled at once again, in order.
    conn.data_received(b"@d /ping\n@e /ping\n")
    await settle(conn)
    assert [r.get("label") for r in finals(transport)[5:]] == ["d", "e"]
    conn.connection_lost(None)


async def test_too_many_queued_lines_stop_reading_until_handled(chat: Chat) -> None:
    await (await chat.user("bob")).say("/logout")
    limit = chat.server.config.limits.input_queue
    conn, transport = connect(chat)
    pings = "".join(f"@p{i} /ping\n" for i in range(limit + 1))
    conn.data_received(f"/format json\n/login bob {PASSWORD}\n{pings}".encode())
    assert transport.reading == [False]  # more than the bound wait behind the login
    await settle(conn)
    assert transport.reading == [False, True]
    labels = [r.get("label") for r in finals(transport)[2:]]
    assert labels == [f"p{i}" for i in range(limit + 1)]
    conn.connection_lost(None)


async def test_a_line_cut_in_two_packets_is_one_line(chat: Chat) -> None:
    conn, transport = connect(chat)
    conn.data_received(b"/format json\n@x /pi")
    conn.data_received(b"ng\n")
    await settle(conn)
    assert [r.get("label") for r in finals(transport)] == [None, "x"]
    conn.connection_lost(None)
