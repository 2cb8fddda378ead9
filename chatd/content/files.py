"""Uploaded files: the rules, storing with a preview, downloads, removal, retention.

An upload is checked before its data is read (:meth:`Files.check_upload`),
streamed into a staging file by :class:`chatd.protocol.upload.Upload`, then stored by
:meth:`Files.store`: previewed in a bounded child process, moved into the blob
store, recorded, and announced to the room as a ``message`` of kind "file".
A download streams the blob back in chunks, paced by the connection's output
so a large file never piles up in memory.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from chatd.content import previews
from chatd.content.blobs import CHUNK, files_dir, private_dirs
from chatd.content.orphans import OrphanSweep
from chatd.domain.messaging import refuse_plain
from chatd.domain.names import quoted
from chatd.domain.permissions import administers
from chatd.domain.ports import Endpoint, settled
from chatd.domain.scopes import Scope, missing_scope
from chatd.errors import ChatError, Code, Remedy, Step
from storage.api import OverQuota
from storage.quotas import Measure, Quota
from storage.records import FileRecord

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from chatd.config import FilesConfig
    from chatd.content.blobs import BlobStore
    from chatd.domain.accounts import User
    from chatd.domain.clock import Clock
    from chatd.domain.messaging import Messaging
    from chatd.domain.room import Room
    from chatd.domain.rooms import Rooms
    from storage.api import Storage

log = logging.getLogger(__name__)

# Download pieces: 57 bytes make the 76-character lines of `base64 -w 76` in text
# mode; JSON records of 12 KiB stay far below the 64 KiB line limit of common readers.
TEXT_PIECE = 57
JSON_PIECE = 12 * 1024
# A download waits at most this long for a connection that reads nothing.
STALL_LIMIT = 60.0
PACE = 0.01
# Staged uploads older than this were left by a crash; housekeeping removes them.
STALE_STAGING = 86400.0
MAX_NAME = 128
# A file name the announcement shows as it is: nothing in it could be read as the
# announcement's own words (its size in parentheses, the colon before /download).
_PLAIN_NAME = re.compile(r'[^\s():"]+')
# The line protocol's record of lines shown in text format only (its TEXT_ONLY):
# a download's bare base64 lines.
_TEXT_ONLY = "text"


class Reader(Endpoint, Protocol):
    """A connection downloading a file: it says when its output falls behind."""

    @property
    def congested(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Staged:
    """A received upload waiting in the staging directory, already verified."""

    path: Path
    name: str
    size: int
    sha256: str


def valid_filename(name: str) -> str:
    """A file name is 1-128 printable characters (a space only between others),
    with no path separators. Checked as given, since it is stored as given: a
    line break in a name (the HTTP API's ``name``) would reach a text client as
    a line of its own."""
    if (not 1 <= len(name) <= MAX_NAME or not name.isprintable() or name != name.strip()
            or name in (".", "..") or any(ch in name for ch in "/\\")):
        raise ChatError(Code.BAD_ARGUMENTS, "a file name is 1-128 printable characters, "
                        "without / or \\ and with no space at either end.")
    return name


def shown_name(name: str) -> str:
    """``name`` as the announcement's text shows it: in double quotes when it holds a
    space, a parenthesis, a colon or a double quote, so that a name such as
    ``x (1 B, text/plain): /download 7`` cannot pass for the announcement of
    another file."""
    return name if _PLAIN_NAME.fullmatch(name) else quoted(name)


def file_object(record: FileRecord, url: str | None = None, *,
                preview: bool = True) -> dict[str, Any]:
    """The ``file`` object of the wire contract; without its ``preview`` where a file
    is listed or downloaded, not shown (/files, /myfiles, /download)."""
    obj: dict[str, Any] = {"id": record.id, "name": record.name, "size": record.size,
                           "mime": record.mime, "sha256": record.sha256,
                           "uploader": record.uploader_name, "preview": record.preview,
                           "room_id": record.room_id, "time": record.created_at}
    if not preview:
        del obj["preview"]
    if url is not None:
        obj["url"] = url
    return obj


class Files:
    """Uploaded files of the rooms, their blobs and their previews."""

    def __init__(self, config: FilesConfig, database: str, storage: Storage, blobs: BlobStore,
                 messaging: Messaging, rooms: Rooms, clock: Clock) -> None:
        self.config = config
        self.staging = files_dir(config, database) / "incoming"
        self._storage = storage
        self._blobs = blobs
        self._messaging = messaging
        self._rooms = rooms
        self._clock = clock
        # Bytes announced by each user's uploads still receiving their data: staged
        # on the disk, so counted against the quota from the /upload line on.
        self._receiving: dict[int, int] = {}
        self._previews = asyncio.Semaphore(previews.MAX_RUNNING)
        self._orphans = OrphanSweep(storage, blobs)

    def reconfigure(self, config: FilesConfig) -> None:
        """New limits apply at once; the backend and directory need a restart."""
        self.config = config

    # -- uploads ---------------------------------------------------------------

    async def accept_upload(self, user: User, room: Room, name: str,
                            size: int) -> Callable[[], None]:
        """:meth:`check_upload` for an upload whose data is still to come, staged on
        the disk as it arrives: its size counts against the quota from now until
        the callable returned is called (once it is staged whole, or dropped).
        Else uploads on several connections at once, each within the quota, would
        stage far more than it."""
        others = self._receiving.get(user.id, 0)
        # Counted before the check waits for the database: two at once see each other.
        self._receiving[user.id] = others + size

        def done() -> None:
            left = self._receiving.pop(user.id, 0) - size
            if left > 0:
                self._receiving[user.id] = left

        try:
            await self.check_upload(user, room, name, size, receiving=others)
        except BaseException:
            done()
            raise
        return done

    async def check_upload(self, user: User, room: Room, name: str, size: int,
                           receiving: int | None = None) -> None:
        """Refuse an upload before its data is read, when that can be known.
        ``receiving``: the bytes of the user's other uploads in progress (by
        default, all of them)."""
        valid_filename(name)
        if not room.is_member(user.id):
            raise ChatError(Code.NOT_IN_ROOM, f"you are not in #{room.name}.",
                            remedy=room.way_in())
        # What keeps a member's messages out keeps their files out, in the same words
        # (a timed mute says how long is left, and its fields until when).
        self._messaging.refuse_silenced(room, user)
        # A file is plaintext: an end-to-end room refuses it before its data comes.
        refuse_plain(room)
        # Its announcement is a message: one that would be refused now is refused
        # before the data and the preview (a CPU-second for a large image) cost anything.
        self._messaging.refuse_spent(room, user)
        if size > self.config.max_size:
            raise _too_large(self.config.max_size)
        if receiving is None:
            receiving = self._receiving.get(user.id, 0)
        await self._check_quota(user, size, receiving)

    async def _check_quota(self, user: User, size: int, receiving: int = 0) -> None:
        """Refuse, before its data comes, an upload the quotas would refuse now;
        the decision is the database's, with the file's row (:meth:`store`).
        ``receiving``: the bytes of the user's uploads still coming, on the disk
        already."""
        files, used = await self._storage.user_file_usage(user.id)
        held = (files, used + receiving)
        for quota, count in zip(self._quotas(user, size), held, strict=True):
            if quota.passed_by(count):
                raise _over_quota(quota, count)

    def _quotas(self, user: User, size: int) -> tuple[Quota, Quota]:
        """A new file of ``size`` bytes of ``user``'s counts against these, in the
        order ``user_file_usage`` reads them. Bytes alone would let a user keep
        empty files without end, each a row that /files and /myfiles read whole."""
        return (Quota(Measure.FILES, user.id, self.config.max_files),
                Quota(Measure.FILE_BYTES, user.id, self.config.quota, size))

    async def stage(self) -> tuple[Path, BinaryIO]:
        """A new, empty staging file for an upload, opened for writing."""
        return await asyncio.to_thread(self._stage)

    def _stage(self) -> tuple[Path, BinaryIO]:
        private_dirs(self.staging)
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=self.staging)
        return Path(name), os.fdopen(fd, "wb", buffering=0)

    async def store(self, session: Endpoint, room: Room, staged: Staged,
                    label: str | None) -> FileRecord:
        """Preview, store and announce a verified upload; returns its record. The
        staged file is removed once its blob is stored, or the upload refused."""
        user = _uploader(session)
        head = await asyncio.to_thread(previews.read_head, staged.path)
        mime = previews.sniff(head, staged.name)
        config = self.config
        job = previews.Job(str(staged.path), mime, staged.size, config.preview_width,
                           config.preview_max_pixels, config.preview_memory,
                           int(config.preview_timeout) + 1)
        async with self._previews:
            preview = await previews.preview(job, config.preview_timeout)
        try:
            record = await self._recorded(user, room, staged, mime, preview)
        finally:
            await asyncio.to_thread(staged.path.unlink, True)  # a blob now, or refused
        url = await self._blobs.presigned_url(record.sha256, record.name, record.mime)
        text = (f"shared {shown_name(record.name)} ({previews.human_size(record.size)}, "
                f"{record.mime}): /download {record.id}")
        try:
            # The connection may have closed while the preview ran: a file nobody
            # announced is kept by nobody (it would count against the quota, unseen).
            _uploader(session)
            await settled(self._messaging.post_kind(session, room, text, "file",
                                                    {"file": file_object(record, url)}, label))
        except ChatError:
            await self._forget(record)  # refused (muted meanwhile, say): keep nothing
            raise
        log.info("file stored", extra={"fields": {
            "session": session.id, "file": record.id, "room": room.name, "size": record.size,
            "mime": record.mime}})
        return record

    async def _recorded(self, user: User, room: Room, staged: Staged, mime: str,
                        preview: str) -> FileRecord:
        """Put ``staged``'s blob, then add the file's row; the row's transaction
        holds no lock nor database connection while the blob is uploaded.

        Counted with the insert: uploads ending at once, through one node or
        several, cannot each take the last place. Under the blob's lock, in that
        transaction, the blob is made sure of (a removal of the last file of the
        same content may have deleted it since the put); a refused upload drops
        the blob again under the same lock, unless a file uses it (storage.api,
        add_file)."""
        key = staged.sha256
        await self._blobs.put(staged.path, key)
        try:
            return await self._storage.add_file(FileRecord(
                0, room.id, user.id, user.name, staged.name, staged.size, mime,
                staged.sha256, key, preview, self._clock.time()),
                self._quotas(user, staged.size), partial(self._ensure, staged.path))
        except BaseException as refused:
            await self._drop_unused(key)
            if isinstance(refused, OverQuota):
                raise _over_quota(refused.quota, refused.held) from None
            raise

    async def _ensure(self, staged: Path, key: str) -> None:
        """Put the blob ``key`` again when it is gone since the upload's put: a removal
        of the last file of the same content deleted it between the two (rare)."""
        if not await self._blobs.holds(key):
            await self._blobs.put(staged, key)

    async def _drop_unused(self, key: str) -> None:
        """Drop the blob ``key`` when no file uses it (a refused upload's, a removed
        file's). A failure is logged, not raised: what was decided (the refusal, the
        removal) is what the user must be told, and housekeeping's sweep drops the
        blob later (chatd.content.orphans)."""
        try:
            await self._storage.drop_unused_blob(key, self._blobs.delete)
        except Exception:
            log.warning("a blob no file uses could not be dropped; housekeeping will",
                        exc_info=True, extra={"fields": {"blob": key}})

    # -- reading -----------------------------------------------------------------

    async def readable(self, user: User, file_id: int) -> FileRecord:
        """A file ``user`` may download: members of its room (and server admins)."""
        record = await self._storage.get_file(file_id)
        room = self._rooms.get(record.room_id) if record is not None else None
        if record is None or room is None or _hides(room, user):
            raise _no_such_file(file_id)
        if not (room.is_member(user.id) or user.is_admin):
            raise ChatError(Code.NOT_IN_ROOM, f"file {file_id} belongs to #{room.name}; "
                            "only its members can have it.", remedy=room.way_in())
        return record

    async def listing(self, user: User, room: Room) -> list[FileRecord]:
        if not (room.is_member(user.id) or user.is_admin):
            raise ChatError(Code.NOT_IN_ROOM, f"only members of #{room.name} see its files.",
                            remedy=room.way_in())
        return await self._storage.list_files(room.id)

    async def uploads(self, user: User) -> list[FileRecord]:
        """Every file ``user`` uploaded that is still kept, in any room (left or ended
        ones too): what counts against their quota."""
        return await self._storage.user_files(user.id)

    async def url(self, record: FileRecord) -> str | None:
        return await self._blobs.presigned_url(record.blob_key, record.name, record.mime)

    async def contents(self, record: FileRecord) -> AsyncIterator[bytes]:
        """The file's bytes in chunks, for :meth:`stream` and for a front end that sends
        them itself (an HTTP download). What stops them is the error a reader is told:
        no-such-file when the contents are missing (before or midway), file-unreadable
        when the store fails or they end before the file's size (a blob cut short must
        not pass for the file)."""
        size = 0
        try:
            async for chunk in self._blobs.read(record.blob_key, CHUNK):
                size += len(chunk)
                yield chunk
        except FileNotFoundError:
            when = " (gone while it was being sent: what was sent is incomplete)" \
                if size else ""
            raise ChatError(Code.NO_SUCH_FILE, f"the contents of file {record.id} are "
                            f"missing{when}.") from None
        except Exception:
            # (A blob store's failures are its own: OSError from a disk, the S3
            # client's errors from the network. Each is the same to the reader.)
            log.warning("reading the blob of file %d failed", record.id, exc_info=True)
            raise ChatError(Code.FILE_UNREADABLE, f"the stored contents of file {record.id} "
                            "could not be read; try again later.") from None
        if size != record.size:
            raise ChatError(Code.FILE_UNREADABLE, f"the stored contents of file {record.id} "
                            f"end after {size} of its {record.size} bytes; what was sent "
                            "is incomplete.")

    async def stream(self, session: Reader, record: FileRecord, label: str | None,
                     text: bool) -> None:
        """Send the file as base64: bare lines then "." in ``text`` format, else
        ``data`` records (the JSON format).

        Once a data line is out, the text block always ends with its ".", a failure
        midway too (the blob gone, the store failing, a stalled reader), and only then
        comes the error: a client reads the block to its "." and must not take the
        error, or the next reply, for data, nor wait for a "." that never comes."""
        sent = Sent()
        try:
            if not await self._send_blob(session, record, label, text, sent):
                return  # the connection is gone: nobody to tell anything
        except BaseException:
            if text and sent.lines:
                session.send({"type": _TEXT_ONLY, "lines": ["."]}, label)
            raise
        if text:
            session.send({"type": _TEXT_ONLY, "lines": ["."]}, label)

    async def _send_blob(self, session: Reader, record: FileRecord, label: str | None,
                         text: bool, sent: Sent) -> bool:
        """The file's bytes, paced, as :meth:`stream` frames them. False when the
        connection went away."""
        piece = TEXT_PIECE if text else JSON_PIECE
        carry = b""
        async for chunk in self.contents(record):
            carry += chunk
            whole = len(carry) - len(carry) % piece
            sent.add(_emit(session, record, carry[:whole], piece, text, label))
            carry = carry[whole:]
            if not await _paced(session):
                return False  # nobody to send the rest to
        sent.add(_emit(session, record, carry, piece, text, label))
        return True

    # -- removal and retention ------------------------------------------------------

    async def remove(self, user: User, file_id: int, *, governs: bool = True) -> FileRecord:
        """Delete a file: its uploader, an admin of its room, or a server admin.

        ``governs`` says whether the caller may use those roles at all: removing
        another's file is governing the room, which a token grants only with its
        moderate scope (post acts for the account itself: its own files)."""
        record = await self._storage.get_file(file_id)
        if record is None:
            raise _no_such_file(file_id)
        if record.uploader_id == user.id:
            return await self._removed(record)
        room = self._rooms.get(record.room_id)
        if room is not None and _hides(room, user):
            raise _no_such_file(file_id)
        if not administers(user, room):
            raise ChatError(Code.NOT_PERMITTED, "only its uploader or an admin of its room "
                            f"can remove file {file_id}.")
        if not governs:
            raise missing_scope(Scope.MODERATE, "/rmfile of another's file")
        return await self._removed(record)

    async def _removed(self, record: FileRecord) -> FileRecord:
        """``record``, deleted by this removal: another removal of it at once (on any
        node) that deleted it first leaves this one ``no-such-file``, as one after it."""
        if not await self._forget(record):
            raise _no_such_file(record.id)
        return record

    async def _forget(self, record: FileRecord) -> bool:
        """Delete ``record``, then its blob when no other file uses it (decided under
        the blob's lock: storage.api, delete_file); False when it was gone already.
        Once the row's deletion is committed: a deletion that fails to commit must
        leave the row its blob."""
        key = await self._storage.delete_file(record.id)
        if key is not None:
            await self._drop_unused(key)
        return key is not None

    async def purge_terminated(self, before: float) -> int:
        """Delete the files of rooms terminated before ``before``; returns how many."""
        records = await self._storage.files_of_terminated_rooms(before)
        deleted = [await self._forget(record) for record in records]
        await asyncio.to_thread(self._sweep_staging)
        return sum(deleted)

    async def delete_orphans(self, now: float, grace: float, batch: int) -> int:
        """Delete blobs no file uses, written before ``now - grace``, among the next
        ``batch`` of the store (chatd.content.orphans); returns how many."""
        return await self._orphans.run(now, grace, batch)

    def _sweep_staging(self) -> None:
        """Remove uploads staged long ago: left behind by a crash mid-upload."""
        if not self.staging.is_dir():
            return
        limit = time.time() - STALE_STAGING
        for path in self.staging.glob("upload-*.part"):
            try:
                if path.stat().st_mtime < limit:
                    path.unlink()
            except OSError:
                continue


class Sent:
    """How many of a download's lines (or records) went out."""

    def __init__(self) -> None:
        self.lines = 0

    def add(self, data: bytes) -> None:
        if data:
            self.lines += 1


def _emit(session: Reader, record: FileRecord, data: bytes, piece: int, text: bool,
          label: str | None) -> bytes:
    """Queue ``data`` as base64: one text block of lines, or one record per piece;
    returns ``data``."""
    if not data:
        return data
    pieces = [data[i:i + piece] for i in range(0, len(data), piece)]
    if text:
        lines = [base64.b64encode(p).decode("ascii") for p in pieces]
        session.send({"type": _TEXT_ONLY, "lines": lines}, label)
        return data
    for part in pieces:
        session.send({"type": "data", "file_id": record.id,
                      "data": base64.b64encode(part).decode("ascii")}, label)
    return data


async def _paced(session: Reader) -> bool:
    """Let the chunk just queued go out; wait while the connection is behind.
    False when the connection has closed.

    The connection drops a reader whose unsent output passes
    ``limits.output_buffer``; waiting below the congestion mark (a quarter of
    it) keeps a download from ever getting there.
    """
    await asyncio.sleep(0)
    waited = 0.0
    while session.congested and not session.closing:
        if waited >= STALL_LIMIT:
            raise ChatError(Code.IDLE_TIMEOUT, "the download stopped: your connection read "
                            f"nothing for {STALL_LIMIT:g} seconds.")
        await asyncio.sleep(PACE)
        waited += PACE
    return not session.closing


def _readable(*sizes: int) -> list[str]:
    """``sizes`` as a person reads them (``2.9 KiB``), or in bytes (``3,010 bytes``) when
    rounding would show two different sizes alike: "3.0 KiB, over your quota of
    3.0 KiB" tells nothing."""
    shown = [previews.human_size(size) for size in sizes]
    if len(set(shown)) < len(set(sizes)):
        return [f"{size:,} bytes" for size in sizes]
    return shown


def _uploader(session: Endpoint) -> User:
    """Who is uploading on ``session``: none once its connection has closed."""
    if session.user is None:
        raise ChatError(Code.NOT_LOGGED_IN, "you were logged out during the upload.")
    return session.user


def _hides(room: Room, user: User) -> bool:
    """Whether ``room``'s files are hidden from ``user``: a secret room's from whoever
    is not in it. File ids count up from 1, and a refusal naming the file's room would
    tell its name to a stranger trying each, as a secret room's id does not
    (:meth:`Rooms.require_as`); so such a file is one that does not exist."""
    return room.modes.secret and not (user.is_admin or room.is_member(user.id))


def _no_such_file(file_id: int) -> ChatError:
    return ChatError(Code.NO_SUCH_FILE, f"there is no file {file_id}.",
                     remedy=Remedy(Step.LIST_FILES))


def _over_quota(quota: Quota, held: int) -> ChatError:
    """The refusal of a file past ``quota``, of which the user holds ``held``."""
    if quota.measure is Measure.FILES:
        return ChatError(Code.QUOTA_EXCEEDED, f"you have {quota.most} files, the most one "
                         "may keep.", remedy=Remedy(Step.REMOVE_FILES), quota=quota.most)
    # In sizes a person reads; the fields keep the bytes for programs.
    after, allowed, before = _readable(held + quota.adding, quota.most, held)
    return ChatError(Code.QUOTA_EXCEEDED, f"that would take your files to {after}, over "
                     f"your quota of {allowed} ({before} used).",
                     remedy=Remedy(Step.REMOVE_FILES), used=held, quota=quota.most)


def _too_large(limit: int) -> ChatError:
    return ChatError(Code.FILE_TOO_LARGE, f"files may have at most {limit} bytes "
                     f"({previews.human_size(limit)}).", max_size=limit)
