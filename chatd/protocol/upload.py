"""Receiving an upload: base64 lines up to a line holding a single ".".

``/upload`` installs an :class:`Upload` as the session's line sink, so every
line that follows is data until the "." line, and the command's final reply
(``ok`` with ``file_id``, or one ``error``) comes after it. The data is
decoded line by line (lines of any length; a group of four characters may
straddle two lines), hashed as it arrives and written to a staging file in
pieces by a worker thread, so neither memory nor the event loop carries the
file. Whatever ends an upload early (bad base64, more bytes than announced,
a damaged line, a disconnect) removes the staging file; the lines up to "."
are then read and thrown away, so the rest of the file is never taken for
commands or messages.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import logging
import string
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final

from chatd.content.files import Staged
from chatd.errors import ChatError, Code
from chatd.protocol.dispatch import crashed
from chatd.protocol.hints import line_message
from chatd.protocol.results import ok

if TYPE_CHECKING:
    from collections.abc import Callable

    from chatd.content.files import Files
    from chatd.domain.room import Room
    from chatd.protocol.context import Context

log = logging.getLogger(__name__)

END = "."
# Decoded bytes gathered before one write to the staging file.
WRITE_AT = 256 * 1024


# What a group of base64 may hold (padding included).
_BASE64_CHARS: Final = frozenset(string.ascii_letters + string.digits + "+/=")


class Base64Lines:
    """An incremental base64 decoder over lines of any length.

    A line's characters past the last whole group of four wait for the next
    line. Padding may close any group (pieces encoded separately and sent one
    after another decode too); unpadded final groups are accepted at the end.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, line: str) -> bytes:
        """The bytes of ``line`` (raises ValueError on anything but base64)."""
        text = self._pending + line
        whole = len(text) - len(text) % 4
        rest = text[whole:]
        if not _BASE64_CHARS.issuperset(rest):
            # Refused on this line, not at the end when the group is completed.
            raise ValueError(f"not a base64 character: {rest!r}")
        self._pending = rest
        return _decode(text[:whole])

    def end(self) -> bytes:
        """The bytes of what is left at the end (raises ValueError if it cannot be)."""
        rest, self._pending = self._pending, ""
        if len(rest) == 1:
            raise ValueError("a lone base64 character at the end")
        return _decode(rest + "=" * (-len(rest) % 4)) if rest else b""


def _decode(text: str) -> bytes:
    """Decode whole groups of four; each padded group ends one piece."""
    try:
        if "=" not in text:
            return binascii.a2b_base64(text, strict_mode=True)
        pieces, start = [], 0
        while (pad := text.find("=", start)) >= 0:
            end = (pad // 4 + 1) * 4
            pieces.append(binascii.a2b_base64(text[start:end], strict_mode=True))
            start = end
        pieces.append(binascii.a2b_base64(text[start:], strict_mode=True))
        return b"".join(pieces)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


class Upload:
    """One upload in progress: the session's line sink until the "." line."""

    def __init__(self, ctx: Context, files: Files, room: Room | None, name: str, size: int,
                 sha256: str | None, error: ChatError | None = None,
                 counted: Callable[[], None] | None = None) -> None:
        self._ctx = ctx
        self._files = files
        self._room = room
        self._name = name
        self._size = size
        self._sha256 = sha256
        # Set once the upload has failed: lines up to "." are then discarded.
        self._error = error
        self._decoder = Base64Lines()
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self._received = 0
        self._lines = 0
        self._path: Path | None = None
        self._file: BinaryIO | None = None
        # A write is running in a thread: cleaning up must wait for it.
        self._busy = False
        self._gone = False
        self._ended = False  # the "." arrived: the final reply alone tells the rest
        # Ends the count of this upload against the quota (Files.accept_upload):
        # called once its staging file is stored or removed.
        self._counted = counted

    async def open(self) -> None:
        """Create the staging file and say what to send (or that it is refused)."""
        if self._error is None:
            try:
                self._path, self._file = await self._files.stage()
            except OSError:
                # A full or broken disk: the upload fails as any other does, reading
                # its data lines up to "." (a crash here would leave no sink, and the
                # file's lines would be posted to the room as messages).
                log.exception("upload staging failed", extra={"fields": {
                    "session": self._ctx.session.id}})
                self._error = _unstorable()
                self._uncount()
        if self._error is not None:
            self._tell_failed(self._error)
            return
        self._ctx.notice(f"send {self._name} ({_bytes(self._size)}) as base64 lines, then a "
                         "line with a single \".\". Commands wait until then.", upload="ready")

    # -- the LineSink protocol --------------------------------------------------

    def line(self, text: str) -> asyncio.Future[None] | None:
        """One received line: data, or the final "."."""
        if text == END:
            self._ended = True
            self._ctx.session.line_sink = None
            return asyncio.ensure_future(self._finish())
        self._lines += 1
        if self._error is not None or not text:
            return None
        try:
            data = self._decoder.feed(text)
        except ValueError:
            self._fail(ChatError(Code.BAD_ARGUMENTS,
                                 f"line {self._lines} of the upload is not base64."))
            return None
        if self._take(data) and len(self._buffer) >= WRITE_AT:
            return asyncio.ensure_future(self._write())
        return None

    def abort(self, code: str) -> None:
        """A damaged line fails the upload; a disconnect ends it without a reply."""
        if code == "disconnected":
            self._gone = True
            self._cleanup()
            return
        self._fail(ChatError(Code.BAD_ARGUMENTS,
                             f"line {self._lines + 1} of the upload was damaged ({code})."))

    # -- receiving ----------------------------------------------------------------

    def _take(self, data: bytes) -> bool:
        """Count, hash and buffer ``data``; False when it is more than announced."""
        self._received += len(data)
        if self._received > self._size:
            limit = self._files.config.max_size
            self._fail(ChatError(Code.FILE_TOO_LARGE, f"files may have at most {limit} bytes.",
                                 max_size=limit) if self._received > limit else
                       ChatError(Code.BAD_ARGUMENTS, f"more than the announced "
                                 f"{_bytes(self._size)} arrived."))
            return False
        self._hash.update(data)
        self._buffer += data
        return True

    async def _write(self) -> None:
        data, self._buffer = bytes(self._buffer), bytearray()
        if self._file is None or not data:
            return
        self._busy = True
        try:
            await asyncio.to_thread(self._file.write, data)
        except OSError:
            log.exception("upload write failed", extra={"fields": {
                "session": self._ctx.session.id}})
            self._fail(_unstorable())
        finally:
            self._busy = False
        if self._error is not None or self._gone:
            self._cleanup()

    def _fail(self, error: ChatError) -> None:
        if self._error is None:
            self._error = error
            self._tell_failed(error)
        self._cleanup()

    def _tell_failed(self, error: ChatError) -> None:
        """An early word, so a client can stop sending; the final error follows the "."."""
        if not (self._gone or self._ended):
            # A usage ends without a full stop: the sentence after it must not run on.
            said = line_message(error, self._ctx.usage)
            message = said if said.endswith(".") else f"{said}."
            self._ctx.notice(f"upload failed ({error.code.value}): {message} The lines "
                             "up to a line with a single \".\" are discarded.",
                             upload="failed", code=error.code.value)

    def _cleanup(self) -> None:
        """Close and remove the staging file (later, if a write is running)."""
        self._buffer = bytearray()
        if self._busy:
            return
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            self._path = None
        self._uncount()

    def _uncount(self) -> None:
        if self._counted is not None:
            self._counted()
            self._counted = None

    # -- the "." line ----------------------------------------------------------------

    async def _finish(self) -> None:
        try:
            await self._store_and_reply()
        finally:
            self._uncount()  # stored or dropped: it is on the disk no more

    async def _store_and_reply(self) -> None:
        ctx = self._ctx
        try:
            staged = await self._complete()
            assert self._room is not None  # an upload without a room was refused up front
            record = await self._files.store(ctx.session, self._room, staged, ctx.label)
        except ChatError as exc:
            self._cleanup()
            ctx.reply_error(exc)
            return
        except Exception:
            self._cleanup()
            crashed(ctx)
            return
        self._path = None  # stored as a blob, and removed by Files.store
        ctx.reply_ok(ok(f"uploaded {record.name} as file {record.id}.", file_id=record.id,
                        name=record.name, size=record.size, mime=record.mime,
                        sha256=record.sha256, room=self._room.name))

    async def _complete(self) -> Staged:
        """Write the rest, close the staging file and check size and checksum."""
        if self._error is not None:
            raise self._error
        try:
            tail = self._decoder.end()
        except ValueError:
            raise ChatError(Code.BAD_ARGUMENTS, "the upload ends in the middle of a base64 "
                            "group.") from None
        self._take(tail)
        await self._write()
        if self._error is not None:
            raise self._error
        assert self._file is not None and self._path is not None
        await asyncio.to_thread(self._file.close)
        self._file = None
        if self._received != self._size:
            raise ChatError(Code.BAD_ARGUMENTS, f"{_bytes(self._received)} arrived, but the "
                            f"upload announced {self._size}.", received=self._received)
        digest = self._hash.hexdigest()
        if self._sha256 is not None and digest != self._sha256:
            raise ChatError(Code.CHECKSUM_MISMATCH, "the data's SHA-256 is not the one the "
                            "upload announced.", sha256=digest)
        return Staged(self._path, self._name, self._size, digest)


def _unstorable() -> ChatError:
    """The disk refused the staging file (made or written)."""
    return ChatError(Code.INTERNAL_ERROR, "the server could not store the upload.")


def _bytes(count: int) -> str:
    """``1 byte``, ``3 bytes``."""
    return f"{count} byte{'s' * (count != 1)}"
