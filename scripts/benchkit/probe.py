"""A client of the parent process for the cluster's timing probes.

The load generator's clients count messages at C speed; the probes measure
single events instead (a post stored, a user seen offline, the flow back after
Redis returned), so one plain asyncio connection in the JSON format does:
commands answered by label, posts acknowledged by their own echo (which
carries the message's id), and the messages of others noted with the time
they arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from typing import Any

from .common import HOST, token, user_name

TIMEOUT = 10.0


class ProbeError(RuntimeError):
    """A probe's command or post was refused (the server's error reply)."""


class Probe:
    """One logged-in connection: commands by label, posts by echo, arrivals by text."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.name = user_name(index)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._labels: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._posts: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._order: deque[str] = deque()
        self._serial = 0
        # Text of others' messages -> monotonic time it arrived.
        self.arrived: dict[str, float] = {}

    async def open(self, port: int) -> Probe:
        self._reader, self._writer = await asyncio.open_connection(HOST, port, limit=1 << 22)
        self._task = asyncio.get_running_loop().create_task(self._read())
        self._writer.write(b"/format json\n")
        await self.command(f"/auth {token(self.index)}")
        return self

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await self._task

    async def command(self, line: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Run a command; its reply (ProbeError when it is an error)."""
        self._serial += 1
        label = f"q{self._serial}"
        future = asyncio.get_running_loop().create_future()
        self._labels[label] = future
        assert self._writer is not None
        self._writer.write(f"@{label} {line}\n".encode())
        try:
            async with asyncio.timeout(timeout):
                reply = await future
        finally:
            self._labels.pop(label, None)
        if reply.get("type") == "error":
            name = line.split(maxsplit=1)[0]
            raise ProbeError(f"{name}: {reply.get('code')}: {reply.get('message')}")
        return reply

    async def enter(self, room: str, wait: float = 5.0) -> None:
        """Create ``room``, or join it when it exists; plain lines then go to it.

        On a cluster's node the room another node just made is unknown for a
        moment (it is announced on the log): the join is tried again meanwhile,
        for ``wait`` seconds at most."""
        try:
            await self.command(f"/create {room}")
            return
        except ProbeError:
            pass
        deadline = time.monotonic() + wait
        while True:
            try:
                await self.command(f"/join {room}")
                break
            except ProbeError as exc:
                if "no-such-room" not in str(exc) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.02)
        await self.command(f"/switch {room}")

    async def post(self, text: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Post ``text`` (unique) to the current room; its echo, or ProbeError."""
        future = asyncio.get_running_loop().create_future()
        self._posts[text] = future
        self._order.append(text)
        assert self._writer is not None
        self._writer.write(f"{text}\n".encode())
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._posts.pop(text, None)
            with contextlib.suppress(ValueError):
                self._order.remove(text)

    async def _read(self) -> None:
        assert self._reader is not None
        while line := await self._reader.readline():
            if line.startswith(b"{"):
                self._dispatch(json.loads(line))
        for future in [*self._labels.values(), *self._posts.values()]:
            if not future.done():
                future.set_exception(ConnectionError("the server closed the connection"))

    def _dispatch(self, reply: dict[str, Any]) -> None:
        label = reply.get("label")
        if label in self._labels:
            future = self._labels[label]
        elif reply.get("type") == "message" and reply.get("from") == self.name:
            future = self._posts.get(reply.get("text", ""))  # type: ignore[assignment]
        elif reply.get("type") == "message":
            self.arrived.setdefault(reply.get("text", ""), time.monotonic())
            return
        elif reply.get("type") == "error" and self._order:
            # An unlabelled error answers the oldest post waiting.
            future = self._posts.get(self._order[0])  # type: ignore[assignment]
            if future is not None and not future.done():
                future.set_exception(ProbeError(f"{reply.get('code')}: {reply.get('message')}"))
            return
        else:
            return
        if future is not None and not future.done():
            future.set_result(reply)
