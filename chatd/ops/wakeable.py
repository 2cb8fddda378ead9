"""A sleep a reload can cut short: a scheduled job whose interval or due time a
reload changes is woken, and measures its wait again (backups, housekeeping)."""

from __future__ import annotations

import asyncio
import contextlib


class Wakeable:
    """Sleeps of one loop; :meth:`wake` ends the current one early."""

    def __init__(self) -> None:
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def sleep(self, seconds: float) -> None:
        """Up to ``seconds``, or until woken (a wake before the sleep began is spent)."""
        self._woken.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), seconds)
