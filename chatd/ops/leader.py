"""Who runs the singleton jobs: housekeeping and scheduled backups.

Some jobs must run once for the whole service, not once per process:
expiring sanctions, trimming history, ending empty rooms, taking the
scheduled backup. They ask a :class:`Leader` before each run. Today chatd is
one process, so :class:`SoleLeader` always answers yes. A cluster replaces it
with a lock every node competes for (``pg_try_advisory_lock`` in PostgreSQL,
or ``SET NX PX`` with a renewed expiry in Redis): the node holding it runs the
jobs, the others skip their turn, and when the holder dies its lock lapses
and another node gains it at its next run.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Protocol


class Leader(Protocol):
    """Decides whether this process runs a singleton job now."""

    def is_leader(self) -> bool:
        """Whether this process leads at the moment (for status and tests)."""

    def lead(self, job: str) -> contextlib.AbstractAsyncContextManager[bool]:
        """Hold the lead for one run of ``job``: the value says whether to run it.

        A cluster's implementation takes the job's lock on entry (False when
        another node holds it) and releases it on exit, so losing the lead
        between runs is noticed at the next one.
        """


class SoleLeader:
    """The only process: it always leads."""

    def is_leader(self) -> bool:
        return True

    @contextlib.asynccontextmanager
    async def lead(self, job: str) -> AsyncIterator[bool]:
        yield True
