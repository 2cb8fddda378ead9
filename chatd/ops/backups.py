"""Backups: scheduled ones with retention, and the stream behind ``chatctl backup``.

Each backup is a consistent copy made through SQLite's online backup API
while the daemon keeps running. Scheduled backups are files named by time in
``backup.dir`` (``<database>-YYYYmmdd-HHMMSS.db``, UTC); only the newest
``backup.keep`` of this database are kept, and no other file is ever removed. The
next is due an interval after the last (found in the directory at start), so a
reload or a restart never puts it off. Every backup file is
owner-only (0600): it holds password hashes and private history.

``chatctl backup`` gets its copy over the control socket, so the daemon never
writes outside its own state directory (under systemd it may not). The
stream, after the usual answer line, is a series of frames: a JSON line
``{"name": ..., "size": N, "mtime": T}`` followed by exactly N bytes, ended by
``{"end": true, "files": F, "bytes": B}``. The first frame is the database
(``chatd.db``); with ``files`` the local blobs follow as ``blobs/ab/abcd...``.
The daemon reads files in worker threads and waits for the socket to drain
between chunks: memory stays bounded, the event loop free.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from chatd.ops.leader import SoleLeader
from chatd.ops.wakeable import Wakeable

if TYPE_CHECKING:
    from chatd.config import BackupConfig
    from chatd.ops.leader import Leader
    from storage.api import Storage

log = logging.getLogger(__name__)
SUFFIX = ".db"
DATABASE_NAME = "chatd.db"
BLOBS = "blobs"
CHUNK = 64 * 1024
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


class StreamError(Exception):
    """The backup stream broke off or is not what the daemon sends."""


class Backups:
    """Takes a backup every ``interval`` seconds into ``directory``.

    Scheduled backups are a singleton job: only the leader takes them (see
    :mod:`chatd.ops.leader`). ``chatctl backup`` is not: it copies whatever
    the asked daemon serves.
    """

    def __init__(self, storage: Storage, config: BackupConfig, database: str,
                 leader: Leader | None = None) -> None:
        self._storage = storage
        self._leader: Leader = leader or SoleLeader()
        self._database = database
        self._task: asyncio.Task[None] | None = None
        self.config = config
        self._directory = self._folder(config)
        # Named after their database (daemons may share a directory); only names of
        # exactly this shape are ever pruned.
        stem = Path(database).stem
        self._prefix = f"{stem}-"
        self._own = re.compile(rf"{re.escape(stem)}-(\d{{8}}-\d{{6}}){re.escape(SUFFIX)}")
        # When the last scheduled backup was tried (wall clock), and when scheduling
        # began: the next is due an interval after the later of them, so neither a
        # reload nor a restart puts it off.
        self._last: float | None = None
        self._since: float | None = None
        self._sleep = Wakeable()

    def _folder(self, config: BackupConfig) -> Path:
        return Path(config.dir or state_directory(self._database) / "backups")

    def start(self) -> None:
        if self.config.interval > 0 and self._task is None:
            self._since = self._since or time.time()
            self._task = asyncio.ensure_future(self._loop())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def reconfigure(self, config: BackupConfig) -> None:
        """Apply a reloaded configuration: new directory, interval or retention. The
        running loop is woken, never cancelled: a reload never breaks off a backup
        being taken, and the next one's time is measured again."""
        self.config = config
        self._directory = self._folder(config)
        if config.interval <= 0:
            self.stop()
        elif self._task is None:
            self.start()
        else:
            self._sleep.wake()

    async def _loop(self) -> None:
        while True:
            try:
                await self._until_due()
                async with self._leader.lead("backup") as leading:
                    if leading:
                        await self.take()
            except OSError as exc:  # the directory: said in one line, naming it
                log.error("scheduled backup failed", extra={"fields": {
                    "dir": str(self._directory), "error": exc.strerror or str(exc)}})
            except Exception:  # logged; the next interval tries again
                log.exception("scheduled backup failed")
            finally:
                self._last = time.time()

    async def _until_due(self) -> None:
        """Wait until the next scheduled backup is due: an interval after the last one
        (tried by this process, or found in the directory), or after scheduling began
        when there is none; a reload wakes the wait, which is measured again."""
        while True:
            last = (self._last or await asyncio.to_thread(self._newest) or self._since
                    or time.time())
            left = last + self.config.interval - time.time()
            if left <= 0:
                return
            await self._sleep.sleep(left)

    def _newest(self) -> float | None:
        """The time of the newest backup of this database in the directory (a name
        that is no real time is skipped; one in the future counts as now)."""
        times = []
        for match in filter(None, map(self._own.fullmatch, self._names())):
            with contextlib.suppress(ValueError):
                times.append(calendar.timegm(time.strptime(match.group(1), "%Y%m%d-%H%M%S")))
        return min(max(times), time.time()) if times else None

    def _names(self) -> list[str]:
        try:
            return [entry.name for entry in os.scandir(self._directory)]
        except OSError:
            return []

    async def take(self, now: float | None = None) -> Path:
        """Make one backup now and prune old ones; returns its path."""
        await asyncio.to_thread(_make_directory, self._directory)
        stamp = _stamp(now or time.time())
        path = self._directory / f"{self._prefix}{stamp}{SUFFIX}"
        await asyncio.to_thread(remove_leftovers, self._directory, self._database)
        async with private_copy(self._storage, self._directory, self._database) as copy:
            await asyncio.to_thread(os.replace, copy, path)
        removed = await asyncio.to_thread(self._prune, stamp)
        log.info("backup", extra={"fields": {"path": str(path), "pruned": removed}})
        return path

    def _prune(self, taken: str) -> int:
        """Remove all but the newest ``backup.keep`` backups, ``taken`` the stamp of the
        one just made. A name later than it can only come from a clock that was wrong
        (or is no real time): it counts as older than every other. Taken as newest, it
        was never pruned, and once ``keep`` such names existed each new backup was
        removed the moment it was made."""

        def age(name: str) -> tuple[bool, str]:
            stamp = name[len(self._prefix):-len(SUFFIX)]
            return stamp <= taken, stamp

        backups = sorted((name for name in self._names() if self._own.fullmatch(name)),
                         key=age)
        stale = backups[:-self.config.keep] if self.config.keep > 0 else []
        for old in stale:
            os.unlink(self._directory / old)
        return len(stale)


def _make_directory(directory: Path) -> None:
    """The backup directory, made 0700 when missing; a file in its place is said
    to be one (mkdir alone would only say "File exists", each interval)."""
    if directory.exists() and not directory.is_dir():
        raise OSError(f"backup.dir {directory} is not a directory")
    directory.mkdir(PRIVATE_DIR, parents=True, exist_ok=True)


def _stamp(moment: float) -> str:
    """A backup's time as its name holds it (UTC), which sorts as the times do."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(moment))


def state_directory(database: str) -> Path:
    """The daemon's own directory: the database's (StateDirectory= under systemd)."""
    return Path(database).resolve().parent


def _leftover_prefix(database: str) -> str:
    """Private copies are named after their database: daemons may share a directory."""
    return f".{Path(database).name}.backup-"


def remove_leftovers(directory: Path, database: str) -> int:
    """Remove private copies a daemon killed in the middle of a backup left behind."""
    stale = list(directory.glob(f"{_leftover_prefix(database)}*.tmp"))
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return len(stale)


@contextlib.asynccontextmanager
async def private_copy(storage: Storage, directory: Path, database: str
                       ) -> AsyncIterator[Path]:
    """A consistent copy of the database, 0600 in a 0700 directory made in ``directory``.

    Nobody else can open the copy while it is written; the private directory
    (and the copy, unless moved away) is removed afterwards.
    """
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, ".tmp", _leftover_prefix(database),
                                          str(directory)))
    try:
        copy = folder / DATABASE_NAME
        await storage.backup(str(copy))
        await asyncio.to_thread(os.chmod, copy, PRIVATE_FILE)
        yield copy
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


# -- the daemon's side of the stream ------------------------------------------

async def send_files(writer: asyncio.StreamWriter, database: Path,
                     blobs: Path | None) -> dict[str, int]:
    """Send the database copy, then (with ``blobs``) every local blob; how many, how big."""
    files, total = 1, await _send_file(writer, DATABASE_NAME, database)
    if blobs is not None:
        for name, path in await asyncio.to_thread(_blob_files, blobs):
            size = await _send_file(writer, name, path)
            if size >= 0:
                files, total = files + 1, total + size
    return {"files": files, "bytes": total}


async def send_end(writer: asyncio.StreamWriter, totals: dict[str, int]) -> None:
    """The last frame: chatctl takes the backup as complete only once it arrives."""
    writer.write(json.dumps({"end": True, **totals}).encode() + b"\n")
    await writer.drain()


def _blob_files(root: Path) -> list[tuple[str, Path]]:
    """The local blobs, ``ab/abcd...``, named as in the stream."""
    if not root.is_dir():
        return []
    return [(f"{BLOBS}/{path.parent.name}/{path.name}", path)
            for path in sorted(root.glob("*/*")) if path.is_file()]


async def _send_file(writer: asyncio.StreamWriter, name: str, path: Path) -> int:
    """One frame; -1 when the file is gone (a blob deleted since the listing)."""
    try:
        handle: IO[bytes] = await asyncio.to_thread(path.open, "rb")
    except FileNotFoundError:
        return -1
    with handle:
        info = os.fstat(handle.fileno())
        header = {"name": name, "size": info.st_size, "mtime": int(info.st_mtime)}
        writer.write(json.dumps(header).encode() + b"\n")
        remaining = info.st_size
        while remaining:
            chunk = await asyncio.to_thread(handle.read, min(CHUNK, remaining))
            if not chunk:  # never for a blob (immutable) nor our own copy
                raise OSError(f"{path} shrank while it was sent")
            writer.write(chunk)
            await writer.drain()
            remaining -= len(chunk)
    return info.st_size


# -- chatctl's side ------------------------------------------------------------

class RawSink:
    """Writes the one file of the stream as it is (the database alone)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out

    def begin(self, name: str, size: int, mtime: int) -> None:
        if name != DATABASE_NAME:
            raise StreamError(f"unexpected {name!r} in a database-only backup")

    def write(self, chunk: bytes) -> None:
        self.out.write(chunk)

    def end(self, size: int) -> None:
        return None

    def close(self) -> None:
        self.out.flush()


class TarSink:
    """Writes the stream as a tar archive, each file streamed without holding it."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.written = 0

    def _put(self, data: bytes) -> None:
        self.out.write(data)
        self.written += len(data)

    def begin(self, name: str, size: int, mtime: int) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, mtime, PRIVATE_FILE
        self._put(info.tobuf(tarfile.PAX_FORMAT))

    def write(self, chunk: bytes) -> None:
        self._put(chunk)

    def end(self, size: int) -> None:
        self._put(bytes(-size % tarfile.BLOCKSIZE))

    def close(self) -> None:
        self._put(bytes(2 * tarfile.BLOCKSIZE))  # the end-of-archive marker
        self._put(bytes(-self.written % tarfile.RECORDSIZE))
        self.out.flush()


Sink = RawSink | TarSink


async def receive_stream(reader: asyncio.StreamReader, sink: Sink) -> dict[str, Any]:
    """Copy every frame into ``sink``; the end frame."""
    while True:
        frame = _frame(await reader.readline())
        if frame.get("end"):
            sink.close()
            return frame
        name, size = str(frame["name"]), int(frame["size"])
        sink.begin(name, size, int(frame.get("mtime", 0)))
        remaining = size
        while remaining:
            chunk = await reader.read(min(CHUNK, remaining))
            if not chunk:
                raise StreamError("chatd closed the connection in the middle of the backup")
            sink.write(chunk)
            remaining -= len(chunk)
        sink.end(size)


def _frame(line: bytes) -> dict[str, Any]:
    if not line:
        raise StreamError("chatd closed the connection in the middle of the backup")
    try:
        frame = json.loads(line)
    except ValueError:
        frame = None
    if not isinstance(frame, dict) or not (frame.get("end") or "name" in frame):
        raise StreamError("the backup stream is garbled")
    return frame
