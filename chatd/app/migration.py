"""``chatd migrate --to postgresql://...``: from embedded mode to a cluster database.

The embedded database (``storage.path``) is copied whole into the PostgreSQL
database (see :mod:`storage.postgres.copy`), which must be empty unless
``--force``. Uploaded files stay where they are: their metadata is copied,
and where their bytes live (the blob store) is recorded in the target and,
when there are files, printed for the nodes' ``files`` settings, with a few of the
files (:data:`BLOB_SAMPLE_KEY`) by which a node learns that the operator moved them
to its own files directory. The daemon must be stopped: what it wrote after the copy
would be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import sys

from chatd.config import Config
from chatd.content.blobs import LocalBlobs, files_dir
from chatd.domain.sequence import IDS_FROM_META, NOT_SERVING, RESERVED_META, SERVING_META
from chatd.ops.control import answers, control_path
from chatd.ops.dblock import DatabaseInUse, DatabaseLock
from storage.api import Storage, StorageError

BLOB_STORE_KEY = "blob_store"
# A few of the carried files (id and blob key: the oldest, one midway, the newest):
# where the nodes look to learn whether the files were moved to their directory.
BLOB_SAMPLE_KEY = "blob_sample"

log = logging.getLogger(__name__)


def blob_store(config: Config) -> dict[str, str]:
    """Where the embedded daemon keeps uploaded files' bytes."""
    files = config.files
    if files.backend == "s3":
        return {"backend": "s3", "endpoint": files.s3_endpoint, "bucket": files.s3_bucket,
                "region": files.s3_region, "prefix": files.s3_prefix}
    return {"backend": "local", "dir": str(files_dir(files, config.storage.path).resolve())}


async def migrate_to_postgres(config: Config, target: str, force: bool) -> int:
    """Copy the embedded database into ``target``; the exit status of the command."""
    database = config.storage.path
    if not await asyncio.to_thread(os.path.isfile, database):
        return _fail(f"no embedded database at {database} (give --config or --db)")
    running = f"a daemon is running on {database}: stop it first, so that nothing it " \
              "writes after the copy is lost"
    if config.control.enabled and await answers(control_path(database, config.control.path)):
        return _fail(running)
    lock = DatabaseLock(database)  # held by a daemon with its own control socket, or none
    try:
        lock.acquire()
    except DatabaseInUse:
        return _fail(running)
    try:
        return await _copy(config, database, target, force)
    finally:
        lock.release()


async def _copy(config: Config, database: str, target: str, force: bool) -> int:
    numbering = await asyncio.to_thread(_numbering, database)
    if numbering.get(SERVING_META, NOT_SERVING) != NOT_SERVING:
        return _fail(f"the daemon on {database} did not stop cleanly: start it once and stop "
                     "it (chatd serve, then SIGTERM), which records what the crash may have "
                     "lost, then migrate")
    try:
        from storage.postgres.copy import copy_database  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        return _fail(f"the PostgreSQL driver is missing ({exc.name}): install chatd with its "
                     "cluster extra (pip install 'chatd[cluster]')")
    blobs = blob_store(config)
    # Where the carried files' bytes are, for the nodes to check at start; with no
    # file carried there is nothing to find, and the nodes choose freely.
    sample = await asyncio.to_thread(_sample_of_files, database)
    carried_blobs = {BLOB_STORE_KEY: json.dumps(blobs, sort_keys=True),
                     BLOB_SAMPLE_KEY: json.dumps(sample)} if sample else {}
    # The numbering goes along: every id the daemon issued (RESERVED_META, after a
    # clean stop: its last one, kept or not) stays below the ids nodes issue, and
    # after a crash the ids from IDS_FROM_META on are not doubted by a sole node.
    carried: dict[str, str] = {key: numbering[key]
                               for key in (RESERVED_META, IDS_FROM_META) if key in numbering}
    try:
        counts = await copy_database(database, target, replace=force,
                                     meta={**carried_blobs, **carried},
                                     whole=IDS_FROM_META not in numbering)
    except StorageError as exc:
        return _fail(str(exc))
    _report(database, counts, blobs)
    return 0


def _sample_of_files(database: str) -> list[tuple[int, str]]:
    """The id and blob key of the oldest uploaded file, one midway and the newest;
    none when the embedded database has no upload (none before the table)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
            count = int(conn.execute("SELECT count(*) FROM files").fetchone()[0])
            rows = [conn.execute("SELECT id, blob_key FROM files ORDER BY id LIMIT 1 "
                                 "OFFSET ?", (offset,)).fetchone()
                    for offset in sorted({0, count // 2, count - 1}) if count]
    except sqlite3.OperationalError:  # no such table: no upload was ever possible
        return []
    return [(int(file_id), str(key)) for file_id, key in rows]


async def warn_if_files_elsewhere(config: Config, storage: Storage) -> None:
    """At a cluster node's start: the files ``chatd migrate`` carried are where it
    recorded them. A node whose files settings name another place starts, but every
    one of those files is missing there (``no-such-file``): it says so, and where."""
    recorded = await storage.get_meta(BLOB_STORE_KEY)
    if recorded is None:
        return
    carried, here = json.loads(recorded), blob_store(config)
    if carried == here:
        return
    if await _moved_here(config, storage):
        log.info("the uploaded files chatd migrate carried were moved to this node's "
                 "files directory", extra={"fields": {"carried": _place(carried),
                                                      "here": _place(here)}})
        return
    if carried.get("backend") == "local":
        fix = f"set files.dir: {carried.get('dir')} (a directory every node shares)"
    else:
        fix = "give every node the files settings of that bucket"
    log.warning("the uploaded files chatd migrate carried are kept elsewhere than this "
                "node's files settings say: %s, or they cannot be downloaded", fix,
                extra={"fields": {"carried": _place(carried), "here": _place(here)}})


async def _moved_here(config: Config, storage: Storage) -> bool:
    """Whether the operator moved the carried files into this node's files directory:
    every sampled file still recorded (one deleted since took its blob along) has its
    blob there. A directory holding one of them only is not enough: a blob is named
    by its content, so an upload of the same bytes puts one there too. Nothing is
    known of a database migrated without a sample, nor of a bucket (asking it costs
    a request per blob): the warning stays until the settings name the recorded place."""
    sampled = await storage.get_meta(BLOB_SAMPLE_KEY)
    if sampled is None or config.files.backend != "local":
        return False
    blobs = LocalBlobs(files_dir(config.files, config.storage.path) / "blobs")
    still = [key for file_id, key in json.loads(sampled)
             if await _still_recorded(storage, file_id, key)]
    return bool(still) and all([await blobs.holds(key) for key in still])


async def _still_recorded(storage: Storage, file_id: int, key: str) -> bool:
    record = await storage.get_file(file_id)
    return record is not None and record.blob_key == key


def _place(blobs: dict[str, str]) -> str:
    """A blob store in a few words: a directory, or a bucket and its prefix."""
    if blobs.get("backend") == "local":
        return blobs.get("dir", "")
    return f"s3://{blobs.get('bucket', '')}/{blobs.get('prefix', '')}"


def _numbering(database: str) -> dict[str, str]:
    """What the embedded database records of its daemons' numbering (chatd_meta):
    whether one is serving or crashed, and whether one ever crashed (ids_from).
    Nothing for a database from before the table."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT key, value FROM chatd_meta").fetchall()
    except sqlite3.OperationalError:  # no such table: never numbered by this version
        return {}
    return {str(key): str(value) for key, value in rows}


def _report(database: str, counts: dict[str, int], blobs: dict[str, str]) -> None:
    copied = ", ".join(f"{table} {count}" for table, count in counts.items())
    print(f"copied {database} into the cluster database: {copied}")
    if not counts.get("files"):
        # Nothing to carry: the nodes' files settings are free to choose, and asking
        # for this directory would send the operator to share one that holds nothing.
        print("no uploaded files to carry: choose the nodes' files settings freely "
              "(one directory all nodes share, or S3)")
    elif blobs["backend"] == "local":
        print(f"uploaded files stay in {blobs['dir']}: give every node files.dir: "
              f"{blobs['dir']} (a directory they all share), or move them to S3")
    else:
        print(f"uploaded files stay in the bucket {blobs['bucket']} "
              f"(prefix {blobs['prefix']}): give every node the same files settings")
    print("then set cluster.enabled: true, cluster.node_id and cluster.postgres, "
          "and start the node")


def _fail(message: str) -> int:
    print(f"chatd: {message}", file=sys.stderr)
    return 1
