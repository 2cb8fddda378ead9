"""Where the bytes of uploaded files live, behind one small interface.

A blob is addressed by the SHA-256 of its content (hex), so two uploads of
the same file share one blob; the file records in storage say which blobs
are still in use. Two backends exist: a local directory (the default) and an
S3-compatible object store, chosen by ``files.backend``.

Every disk or network operation runs in a worker thread: the event loop
never waits for a disk or for the object store.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import quote

from chatd.config import ConfigError
from chatd.hardlinks import linked

if TYPE_CHECKING:
    from chatd.config import FilesConfig

log = logging.getLogger(__name__)

CHUNK = 48 * 1024
# How much of an S3 object one request reads (S3Blobs.read).
S3_RANGE = 1024 * 1024
# The name a blob is copied under before it is renamed into place (LocalBlobs._copy).
COPYING = ".put-"
# A temporary copy's name, as tempfile.mkstemp makes it with that prefix and suffix.
COPY_NAME = re.compile(re.escape(COPYING) + r"[A-Za-z0-9_]+\.tmp")
# A blob's name, as chatd makes it (a SHA-256 in hex): a listing holds no other
# (a temporary copy, an operator's file, another's object under an S3 prefix).
BLOB_KEY = re.compile(r"[0-9a-f]{64}")
# The most keys one S3 listing request returns (ListObjectsV2's own bound).
S3_PAGE = 1000


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """A blob in the store, and when it was written (seconds since the epoch)."""

    key: str
    written: float


@dataclass(frozen=True, slots=True)
class BlobPage:
    """Blobs of a store in key order (BlobStore.page)."""

    blobs: list[StoredBlob]
    # The last name the listing looked at, for the next page to start after; None
    # when it reached the store's end.
    resume: str | None
    # Temporary copies (LocalBlobs._copy) a crash left in the part of the store
    # looked at, removed on the way (BlobStore.page).
    copies_removed: int = 0


class BlobStore(Protocol):
    """The operations the file service needs from a blob backend."""

    async def put(self, staged: Path, key: str) -> None:
        """Store the finished upload ``staged`` as the blob ``key``; nothing when the
        blob is there already (the same key is the same content). ``staged`` stays,
        for its owner to remove: a removal of the last file of the same content
        may delete the blob before the new file's row is in, and the blob is then
        put again from it (chatd.content.files, Files.store)."""
        ...

    async def holds(self, key: str) -> bool:
        """Whether the blob ``key`` is stored."""
        ...

    def read(self, key: str, chunk_size: int = CHUNK) -> AsyncIterator[bytes]:
        """The blob's bytes, ``chunk_size`` at a time (raises FileNotFoundError)."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob; a missing blob is not an error."""
        ...

    async def presigned_url(self, key: str, filename: str, mime: str) -> str | None:
        """A time-limited download link, when the backend can give one."""
        ...

    async def page(self, after: str, limit: int, stale: float) -> BlobPage:
        """The blobs whose keys come after ``after``, in key order, from at most
        ``limit`` names looked at (housekeeping's sweep of blobs no file uses).
        A temporary copy met on the way, written before ``stale`` (a time), is
        removed: a process killed while copying a blob into place left it."""
        ...


def private_dirs(path: Path) -> None:
    """Make ``path`` and each missing directory above it readable by the owner
    alone (0700, whatever the umask): they hold private uploads, and a
    directory others may write to lets them replace or delete blobs.
    Directories that exist are left as they are (an operator's choice)."""
    missing: list[Path] = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another upload
            directory.mkdir(0o700)
            os.chmod(directory, 0o700)  # the umask may have taken bits of 0700 itself


def files_dir(config: FilesConfig, database: str) -> Path:
    """The local files directory: ``files.dir``, or "files" beside the database."""
    return Path(config.dir) if config.dir else Path(database).resolve().parent / "files"


def warn_unshared(config: FilesConfig, database: str) -> None:
    """At a cluster node's start: a local blob directory holds the files uploaded
    through this node only, so unless every node mounts one shared directory,
    a file uploaded on one node cannot be downloaded from another."""
    if config.backend == "local":
        log.warning("files.dir is a local directory in cluster mode: it must be one "
                    "directory shared by all nodes (a network file system mounted at the "
                    "same path), or use files.backend: s3",
                    extra={"fields": {"dir": str(files_dir(config, database))}})


def open_blob_store(config: FilesConfig, database: str) -> BlobStore:
    """The backend the configuration asks for (raises ConfigError when unusable)."""
    if config.backend == "s3":
        return S3Blobs(config)
    return LocalBlobs(files_dir(config, database) / "blobs")


class LocalBlobs:
    """Blobs as files in a directory, two levels deep: ``ab/abcdef...``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if len(key) < 3 or not key.isalnum():
            raise ValueError(f"bad blob key {key!r}")
        return self.root / key[:2] / key

    async def put(self, staged: Path, key: str) -> None:
        await asyncio.to_thread(self._put, staged, self._path(key))

    async def holds(self, key: str) -> bool:
        """Whether the blob ``key`` is in this directory."""
        return await asyncio.to_thread(self._path(key).is_file)

    @staticmethod
    def _put(staged: Path, target: Path) -> None:
        if target.exists():
            return  # the same content is already stored: keep one copy
        private_dirs(target.parent)
        # Staging lives under the same files directory: a second name for the staged
        # file, made at once (a reader never sees part of it), costs no copy and
        # leaves the staged name for a second put.
        # Where the files directory has no hard links (or the staged file is on
        # another file system), the blob is copied into place instead.
        try:
            if not linked(staged, target):
                LocalBlobs._copy(staged, target)
        except FileExistsError:
            return  # put meanwhile by another upload

    @staticmethod
    def _copy(staged: Path, target: Path) -> None:
        """Copy ``staged`` to ``target`` where it cannot be linked: under a temporary
        name beside it (owner-only, as a staged file is), then renamed into place,
        so a reader never sees part of a blob. A blob put meanwhile by another
        upload is the same content: the rename replaces it harmlessly."""
        fd, name = tempfile.mkstemp(prefix=COPYING, suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as copy, staged.open("rb") as source:
                shutil.copyfileobj(source, copy, CHUNK * 16)
            os.replace(name, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise

    async def read(self, key: str, chunk_size: int = CHUNK) -> AsyncIterator[bytes]:
        handle: BinaryIO = await asyncio.to_thread(self._path(key).open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)

    async def presigned_url(self, key: str, filename: str, mime: str) -> str | None:
        return None

    async def page(self, after: str, limit: int, stale: float) -> BlobPage:
        return await asyncio.to_thread(self._page, after, limit, stale)

    def _page(self, after: str, limit: int, stale: float) -> BlobPage:
        """Each two-letter directory from ``after``'s on, in order, read whole (one
        of 256: a bounded read) until ``limit`` blobs are found; the stale copies of
        each directory read are removed."""
        found: list[StoredBlob] = []
        removed = 0
        for shard in self._shards(after[:2]):
            names = _listed(shard)
            removed += _remove_stale_copies(shard, names, stale)
            for key in self._keys(shard, names, after):
                with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                    found.append(StoredBlob(key, (shard / key).stat().st_mtime))
                if len(found) >= limit:
                    return BlobPage(found, key, removed)
        return BlobPage(found, None, removed)

    def _shards(self, first: str) -> list[Path]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []  # nothing uploaded yet
        return [self.root / name for name in sorted(names)
                if len(name) == 2 and name >= first and (self.root / name).is_dir()]

    @staticmethod
    def _keys(shard: Path, names: list[str], after: str) -> list[str]:
        return sorted(name for name in names if BLOB_KEY.fullmatch(name) and name > after
                      and name.startswith(shard.name))


def _listed(shard: Path) -> list[str]:
    try:
        return os.listdir(shard)
    except FileNotFoundError:
        return []  # removed meanwhile


def _remove_stale_copies(shard: Path, names: list[str], stale: float) -> int:
    """Remove the temporary copies among ``names`` written before ``stale``: a copy
    younger than that may be one a running put is writing (on this process or,
    sharing the directory, on another node), which renames it into place."""
    removed = 0
    for name in names:
        if not COPY_NAME.fullmatch(name):
            continue
        path = shard / name
        with contextlib.suppress(FileNotFoundError):  # renamed or removed meanwhile
            if path.stat().st_mtime <= stale:
                path.unlink()
                log.info("a blob's temporary copy left by a crash was removed",
                         extra={"fields": {"copy": str(path)}})
                removed += 1
    return removed


class S3Blobs:
    """Blobs as objects ``<s3_prefix><sha256>`` in an S3-compatible bucket.

    boto3 is imported only when this backend is chosen (``pip install
    'chatd[s3]'``); its calls block, so each one runs in a thread.
    """

    def __init__(self, config: FilesConfig) -> None:
        if not config.s3_bucket:
            raise ConfigError("files.s3_bucket: needed when files.backend is s3")
        try:
            boto3 = importlib.import_module("boto3")
            botocore_config = importlib.import_module("botocore.config")
        except ImportError:
            raise ConfigError("files.backend: s3 needs boto3 (pip install 'chatd[s3]')") from None
        session = boto3.session.Session(
            aws_access_key_id=config.s3_access_key or None,
            aws_secret_access_key=config.s3_secret_key or None,
            region_name=config.s3_region or None)
        self._client: Any = session.client(
            "s3", endpoint_url=config.s3_endpoint or None,
            config=botocore_config.Config(signature_version="s3v4"))
        self._bucket = config.s3_bucket
        self._prefix = config.s3_prefix
        self._ttl = int(config.s3_url_ttl)

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def put(self, staged: Path, key: str) -> None:
        if not await self.holds(key):
            await asyncio.to_thread(self._client.upload_file, str(staged), self._bucket,
                                    self._key(key))

    async def holds(self, key: str) -> bool:
        return await asyncio.to_thread(self._exists, self._key(key))

    def _exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
        except self._client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    async def read(self, key: str, chunk_size: int = CHUNK) -> AsyncIterator[bytes]:
        """The object a range at a time: a download paced by a slow reader holds no
        connection to the store open meanwhile (a store drops an idle one, and the
        file would end midway), and an object deleted midway is FileNotFoundError
        at the next range, as it is before the first."""
        start = 0
        while True:
            data = await asyncio.to_thread(self._range, self._key(key), start)
            for offset in range(0, len(data), chunk_size):
                yield data[offset:offset + chunk_size]
            if len(data) < S3_RANGE:
                return
            start += len(data)

    def _range(self, key: str, start: int) -> bytes:
        """``S3_RANGE`` bytes of object ``key`` from ``start`` (fewer at its end, none
        past it)."""
        try:
            reply = self._client.get_object(Bucket=self._bucket, Key=key,
                                            Range=f"bytes={start}-{start + S3_RANGE - 1}")
        except self._client.exceptions.NoSuchKey:
            raise FileNotFoundError(key) from None
        except self._client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""  # the object ends where the last range did (or is empty)
            raise
        body = reply["Body"]
        try:
            return bytes(body.read())
        finally:
            with contextlib.suppress(Exception):
                body.close()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._client.delete_object, Bucket=self._bucket,
                                Key=self._key(key))

    async def presigned_url(self, key: str, filename: str, mime: str) -> str | None:
        params = {"Bucket": self._bucket, "Key": self._key(key),
                  "ResponseContentType": mime,
                  # RFC 6266/5987: any file name survives the header unharmed.
                  "ResponseContentDisposition": f"attachment; filename*=UTF-8''{quote(filename)}"}
        url = await asyncio.to_thread(self._client.generate_presigned_url, "get_object",
                                      Params=params, ExpiresIn=self._ttl)
        return str(url)

    async def page(self, after: str, limit: int, stale: float) -> BlobPage:
        # An object is written whole or not at all: no temporary copy is ever left.
        return await asyncio.to_thread(self._page, after, limit)

    def _page(self, after: str, limit: int) -> BlobPage:
        """ListObjectsV2 under the prefix, a page of up to ``S3_PAGE`` keys a request,
        until ``limit`` keys were looked at. Objects under the prefix that are no
        blob (another program's, in a shared bucket) count, but are never listed."""
        found: list[StoredBlob] = []
        request: dict[str, Any] = {"Bucket": self._bucket, "Prefix": self._prefix}
        if after:
            request["StartAfter"] = self._prefix + after
        looked = 0
        while looked < limit:
            reply = self._client.list_objects_v2(**request, MaxKeys=min(S3_PAGE, limit - looked))
            for item in reply.get("Contents", []):
                after = item["Key"][len(self._prefix):]
                looked += 1
                if BLOB_KEY.fullmatch(after):
                    found.append(StoredBlob(after, item["LastModified"].timestamp()))
            if not reply.get("IsTruncated"):
                return BlobPage(found, None)
            request["ContinuationToken"] = reply["NextContinuationToken"]
        return BlobPage(found, after)
