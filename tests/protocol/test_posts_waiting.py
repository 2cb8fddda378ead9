"""A connection's posts that wait for their place (a cluster's poster) and the lines
after them: a command, or the end of input, comes after every earlier line's answer.

The poster here is the domain's Poster port answered by the test, at the moment a
cluster's Redis would answer; the command's bytes are handed to the connection in
the very next turn of the loop, the narrowest moment the order can slip."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from chatd.app.app import App
from chatd.domain.limits import RateRefused
from chatd.net.connection import Connection
from tests.helpers import PASSWORD


class HeldPoster:
    """Posts whose outcome the test decides, as a cluster's script answer would."""

    def __init__(self) -> None:
        self.held: list[asyncio.Future[int]] = []

    def ready(self) -> bool:
        return True

    def post(self, *_: Any) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.held.append(future)
        return future


async def _posted_and_held(server: App) -> tuple[asyncio.StreamReader, asyncio.StreamWriter,
                                                 HeldPoster, Connection]:
    """ann's connection (JSON), with a plain line posted and its answer held."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(f"/format json\n/register ann {PASSWORD}\n/create lobby\n@ready /ping\n"
                 .encode())
    await _until_label(reader, "ready")
    poster = HeldPoster()
    server.services.messaging.poster = poster
    writer.write(b"hello\n")
    async with asyncio.timeout(5):
        while not poster.held:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    [connection] = [session.out for session in server.services.presence.sessions
                    if isinstance(session.out, Connection)]
    return reader, writer, poster, connection


async def _until_label(reader: asyncio.StreamReader, label: str) -> list[dict[str, Any]]:
    """The JSON records up to the one labelled ``label``."""
    records = []
    async with asyncio.timeout(5):
        while not records or records[-1].get("label") != label:
            line = await reader.readline()
            assert line, f"the connection ended before {label!r} was answered: {records}"
            if line.startswith(b"{"):
                records.append(json.loads(line))
    return records


async def test_a_command_read_as_a_post_is_refused_waits_for_the_refusal(
        server: App) -> None:
    reader, writer, poster, connection = await _posted_and_held(server)
    poster.held[0].set_exception(RateRefused(0.2))
    asyncio.get_running_loop().call_soon(connection.data_received, b"@end /ping\n")
    records = await _until_label(reader, "end")
    assert [r["type"] for r in records] == ["error", "ok"]
    assert records[0]["code"] == "rate-limited"
    writer.close()


async def test_the_end_of_input_as_a_post_is_refused_still_sends_the_refusal(
        server: App) -> None:
    reader, writer, poster, connection = await _posted_and_held(server)
    poster.held[0].set_exception(RateRefused(0.2))
    asyncio.get_running_loop().call_soon(connection.eof_received)
    async with asyncio.timeout(5):
        rest = [json.loads(line) for line in (await reader.read()).splitlines()]
    assert [(r["type"], r.get("code")) for r in rest] == [("error", "rate-limited")]
    writer.close()
