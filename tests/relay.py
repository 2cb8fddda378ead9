"""A loopback TCP relay between a client under test and the server: what a test needs
of the network in between, a connection cut at a given line, or one gone silent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class Relay:
    """Relays each connection to the server on ``port`` (``async with``; its own
    port is :attr:`port`).

    ``cut_at``: the connection is dropped, unanswered, at the first line from the
    client containing it. :meth:`freeze`: every connection open at that moment goes
    silent both ways, nothing closed, as when a peer vanishes without a word; later
    connections are relayed as usual. ``hold``: the first line from the client
    containing it, and every one after it, waits until :meth:`release` (a server
    slow to answer). ``broken_first``: the first connection is sent
    these bytes and closed without reaching the server (a server killed while it
    wrote). ``inject``: (marker, lines), the lines slipped in after each line from
    the server holding the marker (what a server of another version might send).
    ``rewrite``: each line from the server is sent as it makes it (a reply changed
    in the middle: the same, or other lines). :attr:`connections` counts the
    connections accepted.
    """

    def __init__(self, port: int, cut_at: bytes | None = None, *,
                 broken_first: bytes | None = None,
                 inject: tuple[bytes, bytes] | None = None,
                 rewrite: Callable[[bytes], bytes] | None = None,
                 hold: bytes | None = None) -> None:
        self.upstream = port
        self.cut_at = cut_at
        self.hold = hold
        self._released = asyncio.Event()
        self.broken_first = broken_first
        self.inject = inject
        self.rewrite = rewrite
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._frozen: dict[int, bool] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def release(self) -> None:
        """Let the lines waiting at :attr:`hold` (and any later) through."""
        self._released.set()

    async def _until_released(self, line: bytes) -> None:
        """Wait for :meth:`release` if ``line`` (or one before it) is held."""
        if self.hold is not None and self.hold in line:
            await self._released.wait()

    def freeze(self) -> None:
        for connection in self._frozen:
            self._frozen[connection] = True

    async def _relay(self, client_r: asyncio.StreamReader,
                     client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.broken_first is not None and self.connections == 1:
            client_w.write(self.broken_first)
            await client_w.drain()
            client_w.close()
            return
        await self._pipe(client_r, client_w)

    def _forward(self, client_w: asyncio.StreamWriter, data: bytes) -> None:
        """``data`` from the server to the client (as :attr:`rewrite` makes it), and what
        :attr:`inject` adds after it."""
        client_w.write(data if self.rewrite is None else self.rewrite(data))
        if self.inject is not None and self.inject[0] in data:
            client_w.write(self.inject[1])

    async def _pipe(self, client_r: asyncio.StreamReader,
                    client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream)
        connection = id(client_w)
        self._frozen[connection] = False

        def silent() -> bool:
            return self._frozen.get(connection, False)

        async def up() -> None:
            while (line := await client_r.readline()) and not (
                    self.cut_at is not None and self.cut_at in line):
                await self._until_released(line)
                if not silent():  # frozen: swallowed, the server waits
                    server_w.write(line)

        async def down() -> None:
            # (By lines when something is slipped in after one, or one is rewritten.)
            lines = self.inject is not None or self.rewrite is not None
            while data := await (server_r.readline() if lines else server_r.read(65536)):
                if not silent():
                    self._forward(client_w, data)

        pumps = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
        self._tasks.update(pumps)
        try:
            # Either end closing (or the cut) ends the relay, and so the other end.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.difference_update(pumps)
            self._frozen.pop(connection, None)
            for writer in (client_w, server_w):
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
