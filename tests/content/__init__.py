"""Rich content over the real protocol: helpers shared by the upload, preview and sticker tests."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from chatd.client import ChatClient, LineClient, Reply
from chatd.content.blobs import LocalBlobs
from tests.helpers import PASSWORD, ChatServer, Clients

Event = dict[str, Any]


def b64_lines(data: bytes, width: int = 76) -> list[str]:
    """``data`` as base64 lines of ``width`` characters (any width, not just multiples of 4)."""
    text = base64.b64encode(data).decode()
    return [text[i:i + width] for i in range(0, len(text), width)] or []


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload(client: ChatClient, name: str, data: bytes, room: str = "", *,
                 checksum: str | None = "auto", size: int | None = None, width: int = 76,
                 lines: list[str] | None = None) -> Reply:
    """``/upload`` then the data lines and "."; returns the final reply (ok or error)."""
    digest = sha(data) if checksum == "auto" else checksum
    words = [name, str(len(data) if size is None else size), digest or "", room]
    command = asyncio.ensure_future(
        client.command("/upload " + " ".join(w for w in words if w), check=False, timeout=30))
    await asyncio.sleep(0)  # the command line is written before the data
    for line in b64_lines(data, width) if lines is None else lines:
        client.send_line(line)
    client.send_line(".")
    return await command


async def download(client: ChatClient, file_id: int) -> tuple[bytes, Reply]:
    """``/download`` in JSON: the bytes of its data records and the final reply."""
    reply = await client.command(f"/download {file_id}", timeout=30)
    records = [line for line in reply.lines if line["type"] == "data"]
    assert all(r["file_id"] == file_id for r in records)
    return b"".join(base64.b64decode(r["data"]) for r in records), reply


async def member_of(owner: ChatClient, room: str, *members: ChatClient) -> None:
    await owner.command(f"/create {room}")
    for member in members:
        await member.command(f"/join {room}")


async def text_client(clients: Clients, name: str) -> LineClient:
    """A raw text-mode connection logged in as ``name``."""
    client = await clients.raw()
    await client.line()  # banner
    verb = "login" if clients.server.services.accounts.find(name) else "register"
    await text_run(client, f"/{verb} {name} {PASSWORD}")
    return client


async def text_run(client: LineClient, *lines: str) -> list[str]:
    """Send ``lines``; return what arrives up to a labelled /ping barrier."""
    for line in lines:
        client.send(line)
    client.send("@sync /ping")
    return (await client.until(lambda s: s.startswith("@sync ")))[:-1]


class HeldPut:
    """The next blob put (of any server in this process), held once it is done until
    the block ends: its upload waits between its put and whatever comes after."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._reached = asyncio.Event()
        self._released = asyncio.Event()
        self._armed = True
        put = LocalBlobs.put

        async def held(blobs: LocalBlobs, staged: Path, key: str) -> None:
            await put(blobs, staged, key)
            if self._armed:
                self._armed = False
                self._reached.set()
                await self._released.wait()

        monkeypatch.setattr(LocalBlobs, "put", held)

    async def __aenter__(self) -> HeldPut:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._released.set()

    async def reached(self, upload: asyncio.Future[Reply]) -> None:
        """Until the put is held; fails if ``upload`` ends first (bounded)."""
        waiting = asyncio.ensure_future(self._reached.wait())
        try:
            async with asyncio.timeout(10):
                await asyncio.wait([upload, waiting], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        assert self._reached.is_set(), f"the upload ended unheld: {upload.result()}"


def blob_path(server: ChatServer, key: str) -> Path:
    return server.services.files.staging.parent / "blobs" / key[:2] / key


def staged_files(server: ChatServer) -> list[Path]:
    return list(server.services.files.staging.glob("*"))


async def no_staged_files(server: ChatServer, timeout: float = 5.0) -> bool:
    """True once the staging directory is empty (cleanup may finish just after a reply)."""
    for _ in range(round(timeout / 0.02)):
        if not staged_files(server):
            return True
        await asyncio.sleep(0.02)  # the file system has no event to wait for
    return False


def blob_paths(server: ChatServer) -> list[Path]:
    root = server.services.files.staging.parent / "blobs"
    return [p for p in root.rglob("*") if p.is_file()]


# The base64 alphabet: a text-mode line of only these is a download's data.
_DATA = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


async def interrupted_download(server: ChatServer, name: str, file_id: int,
                               cut: Callable[[], Awaitable[object]]) -> tuple[bytes, str]:
    """A text-mode ``/download`` that ``cut`` interferes with once its first data line
    has arrived: the bytes of its data block (read up to its "."), and the line after
    it (the final reply). The reader's small receive buffer keeps the server from
    reading far ahead of it. Fails if the block never ends."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 16)
    try:
        writer.write(f"/login {name} {PASSWORD}\r\n/download {file_id}\r\n".encode())
        async with asyncio.timeout(30):
            line = b""
            while not (line and set(line) <= _DATA):
                line = (await reader.readline()).rstrip(b"\r\n")
            await cut()
            data = [line]
            while (line := (await reader.readline()).rstrip(b"\r\n")) != b".":
                assert line, "the server closed the connection inside the data block"
                assert set(line) <= _DATA, line
                data.append(line)
            final = (await reader.readline()).decode().rstrip("\r\n")
            writer.write(b"/ping\r\n")  # the connection goes on
            assert (await reader.readline()).startswith(b"* pong")
        return b"".join(base64.b64decode(d) for d in data), final
    finally:
        writer.close()


# -- sample files, drawn by the tests ------------------------------------------------------


def image(fmt: str, size: tuple[int, int] = (120, 80), mode: str = "RGB") -> bytes:
    """A small picture: a dark square on a light background."""
    from PIL import Image, ImageDraw

    picture = Image.new(mode, size, "white")
    draw = ImageDraw.Draw(picture)
    draw.rectangle((size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4),
                   fill="black")
    draw.ellipse((5, 5, 25, 25), fill="red")
    out = io.BytesIO()
    picture.save(out, fmt)
    return out.getvalue()


def pdf(title: str = "Quarterly Report", author: str = "Alice Example",
        pages: int = 3) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=612, height=792)
    writer.add_metadata({"/Title": title, "/Author": author, "/Producer": "chatd tests",
                         "/CreationDate": "D:20260102030405Z"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def text_file(lines: int = 15) -> bytes:
    return "".join(f"line {n}: the quick brown fox\n" for n in range(1, lines + 1)).encode()


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header claiming a huge image, with almost no data: a decompression bomb."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))
