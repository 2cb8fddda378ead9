"""Blobs no file uses any more, and that none is about to: found and deleted by
housekeeping.

An upload puts its blob before the transaction that adds its row. When that
transaction fails and dropping the blob fails too, or the process dies between
the two, the blob is left with no row, and no removal of a file will ever
delete it. Housekeeping looks at a batch of blobs a pass, in key order from
where the last pass stopped, and deletes each one that is older than the grace
(longer than any upload takes between its put and its row) and used by no row:
under the blob's lock, as a removal does (storage.api, drop_unused_blob), so an
upload of the same content making sure of its blob at that moment either finds
it or puts it again. A local store's temporary copy, left by a process killed
while copying a blob into place, is removed on the way past the same grace
(and ``COPY_IDLE`` at least).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd.content.blobs import BlobStore
    from storage.api import Storage

log = logging.getLogger(__name__)

# Seconds a temporary copy must have been left untouched to be taken for a crash's,
# whatever the grace: a put writes its copy without a pause, and a grace of 0
# would otherwise remove a copy from under the put writing it.
COPY_IDLE = 60.0


class OrphanSweep:
    """The sweep, and where in the store its next pass starts (this process's own:
    a pass led by another node starts from the beginning)."""

    def __init__(self, storage: Storage, blobs: BlobStore) -> None:
        self._storage = storage
        self._blobs = blobs
        self._after = ""

    async def run(self, now: float, grace: float, batch: int) -> int:
        """Look at the next ``batch`` blobs (none when 0); delete those no row uses
        written before ``now - grace``. Returns how many were deleted."""
        if batch <= 0:
            return 0
        # A temporary copy met on the way is removed past the same grace (a put's copy
        # takes less than the time between an upload's put and its row), or COPY_IDLE.
        page = await self._blobs.page(self._after, batch, now - max(grace, COPY_IDLE))
        self._after = page.resume or ""  # at the end: the next pass starts again
        old = [blob.key for blob in page.blobs if blob.written <= now - grace]
        used = await self._storage.used_blobs(old) if old else set()
        deleted = 0
        for key in old:
            if key not in used and await self._storage.drop_unused_blob(key, self._blobs.delete):
                log.info("a blob no file uses was deleted", extra={"fields": {"blob": key}})
                deleted += 1
        return deleted
