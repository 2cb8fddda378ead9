"""A small asyncio client for chatd's JSON format: for bots, tests and tools.

    client = await ChatClient.connect("127.0.0.1", 7777)
    await client.command("/login alice secret")
    await client.command("/join general")
    async for event in client.events():
        ...

Every command is sent with a fresh label, and :meth:`ChatClient.command`
returns its final reply with the informational lines that came before it.
Lines without a label (messages, events, notices) go to the event queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from chatd.protocol.codec import clean_text

DEFAULT_TIMEOUT = 10.0
# How many times ChatClient.walk walks the pages of a list that changed meanwhile.
LIST_WALKS = 3


class ClientError(Exception):
    """A command ended with an ``error`` reply (see :attr:`reply`)."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(f"{reply.get('code')}: {reply.get('message')}")
        self.reply = reply
        self.code: str = reply.get("code", "")


@dataclass
class Reply:
    """A command's final line and the lines it produced before."""

    final: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.final.get("type") == "ok"

    def __getitem__(self, key: str) -> Any:
        return self.final[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.final.get(key, default)


class Notifications(list[dict[str, Any]]):
    """Every notification, the oldest first, and ``dropped``: how many older ones the
    server deleted past its bound (``limits.max_notifications``) and told this walk.
    The server tells that count once, to the first listing of the newest page after
    the drops: a walk that did not keep it would leave nobody to hear it."""

    def __init__(self, items: list[dict[str, Any]], dropped: int) -> None:
        super().__init__(items)
        self.dropped = dropped


def _add_told(tally: dict[str, int] | None, reply: Reply) -> None:
    """Add the counts ``tally`` names that ``reply`` carries (see ChatClient.walk)."""
    if tally is None:
        return
    for counted in tally:
        tally[counted] += int(reply.get(counted) or 0)


class ChatClient:
    """A JSON-mode connection to a chatd server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._labels = itertools.count(1)
        self._waiting: dict[str, tuple[list[dict[str, Any]], asyncio.Future[dict[str, Any]]]] = {}
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.banner = ""
        # The longest line the server takes, in bytes, as its /format ok said (None
        # from a server of a version before it said so).
        self.max_line: int | None = None
        self._task: asyncio.Task[None] | None = None
        # When the last line came (time.monotonic()): a connection silent for long
        # may be one whose peer vanished without a word (a keepalive checks it).
        self.last_received = time.monotonic()

    @classmethod
    async def connect(cls, host: str = "127.0.0.1", port: int = 7777,
                      timeout: float = DEFAULT_TIMEOUT, **tls: Any) -> ChatClient:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=1 << 22, **tls), timeout)
        client = cls(reader, writer)
        writer.write(b"/format json\r\n")
        # Text lines (the banner, a multi-line MOTD) come first; the first JSON
        # line is the format's own ok.
        banner: list[str] = []
        async with asyncio.timeout(timeout):
            while not (line := await reader.readline()).startswith(b"{"):
                if not line:
                    writer.close()
                    raise ConnectionError("; ".join(banner) or "connection closed")
                banner.append(line.decode(errors="replace").rstrip("\r\n"))
        client.banner = "\n".join(banner)
        said = _first_reply(line, writer).get("max_line")
        client.max_line = said if isinstance(said, int) and said > 0 else None
        client._task = asyncio.ensure_future(client._read())
        return client

    async def _read(self) -> None:
        try:
            while line := await self._reader.readline():
                self.last_received = time.monotonic()
                record = json.loads(line)
                # Every record of the protocol is an object; any other JSON (a list, a
                # number) carries nothing to act on, and is skipped rather than fatal.
                if isinstance(record, dict):
                    self._dispatch(record)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            for _, future in self._waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))
            self._events.put_nowait({"type": "closed"})

    def _dispatch(self, obj: dict[str, Any]) -> None:
        label = obj.get("label")
        # A label that is no string is none of ours (and would not even be a key).
        waiting = self._waiting.get(label) if isinstance(label, str) else None
        if waiting is None:
            self._events.put_nowait(obj)
            return
        lines, future = waiting
        if obj.get("type") in ("ok", "error") and not future.done():
            future.set_result(obj)
        else:
            lines.append(obj)

    async def command(self, line: str, check: bool = True,
                      timeout: float = DEFAULT_TIMEOUT) -> Reply:
        """Send ``/command ...`` and wait for its final line."""
        label = f"c{next(self._labels)}"
        sent = f"@{label} {line}".encode()
        if self.max_line is not None and len(sent) > self.max_line:
            # The server would drop it with an unlabelled error (its label is in the
            # line it drops): refused here as the server would, not waited for.
            reply = Reply({"type": "error", "code": "line-too-long", "message":
                           f"that line is {len(sent)} bytes, over the server's limit of "
                           f"{self.max_line}: it was not sent."}, [])
        else:
            reply = await self._answer(label, sent, timeout)
        if check and reply.get("type") == "error":
            raise ClientError(reply.final)
        return reply

    async def members(self, room: str, timeout: float = DEFAULT_TIMEOUT
                      ) -> list[dict[str, Any]]:
        """Every member of ``room`` (``user``, ``role``, ``online``, and ``bot`` on bots),
        each once: ``/who`` answers a page at a time, and this asks for each (see
        :meth:`walk`). The page always follows the room: a room by its id is one too
        (``/who 7 2``)."""
        return (await self.walk(f"/who {room}", timeout, members="user"))["members"]

    async def my_rooms(self, timeout: float = DEFAULT_TIMEOUT
                       ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``/myrooms`` whole: the rooms this user is in, and those it was in before."""
        walked = await self.walk("/myrooms", timeout, rooms="id", past="id")
        return walked["rooms"], walked["past"]

    async def notifications(self, timeout: float = DEFAULT_TIMEOUT) -> Notifications:
        """Every notification, the oldest first (``/notifications`` pages from the
        newest), with how many older ones were dropped (see :class:`Notifications`)."""
        told = {"dropped": 0}
        walked = await self.walk("/notifications", timeout, tally=told, notifications="id")
        return Notifications(sorted(walked["notifications"], key=lambda n: int(n["id"])),
                             told["dropped"])

    async def walk(self, command: str, timeout: float = DEFAULT_TIMEOUT,
                   tally: dict[str, int] | None = None, **keys: str) -> dict[str, list[Any]]:
        """Every item of a list that ``command`` answers a page at a time (``/myrooms``,
        ``/who general``, ``/stickers`` ...): for each list field of its replies named in
        ``keys``, the items of every page in page order, each once (``keys`` names the
        item's field that tells it apart: ``rooms="id"``). The page number goes last.

        An item added, removed or moved between two pages moves the others across
        them, so that one would come twice and another never: a walk whose total
        changed, or that did not find that many items, is walked again
        (``LIST_WALKS`` walks at most; the last one's items then). Lists told apart by
        the same field are one list in parts (``/myrooms``' rooms, then its past ones):
        an item found in two of them moved across the pages (a room left after the
        first page), and the walk is walked again too, though the count came out
        right (the item twice, the one it moved past never). An item that is a plain
        value (a name in ``/keys room``'s ``missing``) is told apart by itself, as the
        field ``keys`` names for it: ``keys="user", missing="user"`` are one list of
        members, with a key and without.

        ``tally`` names counts the replies carry that are told once and then taken
        (``/notifications``' ``dropped``): each is added to it from every page read, of
        every walk, so that a walk walked again loses none of it."""
        walked: dict[str, list[Any]] = {}
        for _ in range(LIST_WALKS):
            walked, steady = await self._walk_once(command, keys, timeout, tally)
            if steady:
                break
        return walked

    async def _walk_once(self, command: str, keys: dict[str, str], timeout: float,
                         tally: dict[str, int] | None = None
                         ) -> tuple[dict[str, list[Any]], bool]:
        """One walk of ``command``'s pages: its items, each once, and whether the list
        stood still meanwhile."""
        seen: dict[str, dict[str, Any]] = {listed: {} for listed in keys}
        # The list each item was found in, by its key field and value (see walk).
        found_in: dict[tuple[str, str], str] = {}
        moved = False
        totals: set[int] = set()
        page = pages = 1
        while page <= pages:
            reply = await self._patient(f"{command} {page}", timeout)
            _add_told(tally, reply)
            for listed, key in keys.items():
                for item in reply.get(listed) or []:
                    value = str(item[key] if isinstance(item, dict) else item)
                    seen[listed].setdefault(value, item)
                    moved |= found_in.setdefault((key, value), listed) != listed
            counted = sum(len(items) for items in seen.values())
            totals.add(int(reply.get("total", counted)))
            pages = int(reply.get("pages", 1))
            page += 1
        found = {listed: list(items.values()) for listed, items in seen.items()}
        return found, not moved and totals == {sum(len(items) for items in found.values())}

    async def _patient(self, line: str, timeout: float) -> Reply:
        """``line``'s reply, asked again after the wait a ``rate-limited`` refusal names:
        a list of many pages takes more commands in a row than the server's burst
        (``limits.command_burst``) allows; ClientError for any other refusal."""
        while True:
            reply = await self.command(line, check=False, timeout=timeout)
            if reply.get("code") != "rate-limited":
                break
            await asyncio.sleep(int(reply.get("retry_ms") or 1000) / 1000)
        if not reply.ok:
            raise ClientError(reply.final)
        return reply

    async def _answer(self, label: str, sent: bytes, timeout: float) -> Reply:
        """Send the labelled line ``sent``; its final line, and the lines before it."""
        if self._task is not None and self._task.done():
            # The connection is gone, and its reader has failed what was waiting:
            # a command asked after that would wait its whole timeout for nothing.
            raise ConnectionError("connection closed")
        lines: list[dict[str, Any]] = []
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[label] = (lines, future)
        try:
            self._writer.write(sent + b"\r\n")
            final = await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(label, None)
        return Reply(final, lines)

    def send_line(self, line: str) -> None:
        """Send a raw line (a plain message, for example); no reply is awaited."""
        self._writer.write(f"{line}\r\n".encode())

    async def say(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Send a plain line to the current room; returns its echoed ``message``."""
        self.send_line(text if not text.startswith("/") else "/" + text)
        # The echo carries the text as the server keeps it (no control characters,
        # a TAB as a space, no trailing whitespace).
        echoed = as_kept(text)
        return await self.next_event(lambda e: e.get("type") in ("message", "error")
                                     and e.get("text", echoed) == echoed, timeout)

    async def next_event(self, match: Any = None, timeout: float = DEFAULT_TIMEOUT
                         ) -> dict[str, Any]:
        """The next unlabelled line (matching ``match``, a predicate, if given)."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self._events.get()
                if match is None or match(event) or event.get("type") == "closed":
                    return event

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            event = await self._events.get()
            if event.get("type") == "closed":
                return
            yield event

    def pending_events(self) -> list[dict[str, Any]]:
        """Events already received and not yet taken."""
        taken = []
        while not self._events.empty():
            taken.append(self._events.get_nowait())
        return taken

    def discard_events(self, unwanted: Callable[[dict[str, Any]], bool]) -> None:
        """Drop the events received and not yet taken that ``unwanted`` picks (the
        others keep their order)."""
        kept = [event for event in self.pending_events() if not unwanted(event)]
        for event in kept:
            self._events.put_nowait(event)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
            await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _first_reply(line: bytes, writer: asyncio.StreamWriter) -> dict[str, Any]:
    """The /format ok that starts a connection. A line cut short (the server closed
    while writing it) or that is no JSON object is a lost connection, as the
    reader takes any later one: the caller (a bot) reconnects rather than stops."""
    try:
        reply = json.loads(line)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        writer.close()
        raise ConnectionError("the server's first reply was cut short or is not JSON")
    return reply


def as_kept(text: str) -> str:
    """``text`` as the server keeps a plain line (docs/PROTOCOL.md, section 1)."""
    return clean_text(text).rstrip()


class LineClient:
    """A raw text-mode connection, as a person on telnet has: lines in, lines out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str = "127.0.0.1", port: int = 7777,
                      timeout: float = DEFAULT_TIMEOUT) -> LineClient:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=1 << 22), timeout)
        return cls(reader, writer)

    def send(self, data: str | bytes) -> None:
        self.writer.write(data if isinstance(data, bytes) else f"{data}\r\n".encode())

    async def line(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        raw = await asyncio.wait_for(self.reader.readline(), timeout)
        if not raw:
            raise ConnectionError("connection closed")
        return raw.decode().rstrip("\r\n")

    async def until(self, predicate: Any, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
        """Read lines until one satisfies ``predicate``; returns all read."""
        seen: list[str] = []
        async with asyncio.timeout(timeout):
            while True:
                seen.append(await self.line(timeout))
                if predicate(seen[-1]):
                    return seen

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
            await self.writer.wait_closed()
