"""PostgreSQL persistence lag: from a post's acknowledgement to its row.

While a paced load runs, a probe (a thread of the parent with its own event
loop) posts into a room of its own on one node, one message every
``INTERVAL`` seconds, and notes when each is acknowledged (its echo, which
carries the id); a PostgreSQL connection polls for the acknowledged ids every
``POLL`` seconds and notes when each row appears. The probe's messages take
the same path as the load's (the node's writer, or the stream's persister),
so their lag is the load's.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from .common import pct
from .probe import Probe, ProbeError

INTERVAL = 0.02
POLL = 0.005
# How long the probe waits for its last messages' rows after the load.
DRAIN = 15.0


class LagProbe(threading.Thread):
    """Posts, and polls PostgreSQL for the posts' rows, until stopped."""

    def __init__(self, port: int, index: int, postgres_url: str, room: str) -> None:
        super().__init__(name="lag-probe", daemon=True)
        self.port, self.index, self.url, self.room = port, index, postgres_url, room
        self.acked: dict[int, float] = {}
        self.stored: dict[int, float] = {}
        self.refused = 0
        self.error: str | None = None
        self._stop_posting = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # reported with the figures
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.ready.set()

    def finish(self) -> None:
        self._stop_posting.set()
        self.join(DRAIN + 30)

    async def _main(self) -> None:
        import asyncpg  # noqa: PLC0415 - the cluster extra

        probe = await Probe(self.index).open(self.port)
        connection = await asyncpg.connect(self.url)
        try:
            await probe.enter(self.room)
            self.ready.set()
            poller = asyncio.get_running_loop().create_task(self._poll(connection))
            await self._post(probe)
            async with asyncio.timeout(DRAIN):
                while True:  # the poller's rows, polled from the database
                    if len(self.stored) >= len(self.acked):
                        break
                    await asyncio.sleep(POLL)
            poller.cancel()
        except TimeoutError:
            pass
        finally:
            await probe.close()
            await connection.close()

    async def _post(self, probe: Probe) -> None:
        n = 0
        due = time.monotonic()
        while not self._stop_posting.is_set():
            n += 1
            try:
                echo = await probe.post(f"lag probe {n}")
                self.acked[int(echo["id"])] = time.monotonic()
            except (ProbeError, TimeoutError):
                self.refused += 1
            due += INTERVAL
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def _poll(self, connection: Any) -> None:
        while True:
            waiting = [i for i in self.acked if i not in self.stored]
            if waiting:
                rows = await connection.fetch(
                    "SELECT id FROM messages WHERE id = ANY($1::bigint[])", waiting)
                now = time.monotonic()
                for row in rows:
                    self.stored[int(row["id"])] = now
            await asyncio.sleep(POLL)

    def figures(self) -> dict[str, Any]:
        lags = sorted(self.stored[i] - t for i, t in self.acked.items() if i in self.stored)
        out: dict[str, Any] = {"probes": len(self.acked), "stored": len(self.stored),
                               "refused": self.refused, "error": self.error}
        if lags:
            out.update(p50_ms=round(1000 * pct(lags, 50), 1),
                       p99_ms=round(1000 * pct(lags, 99), 1),
                       max_ms=round(1000 * lags[-1], 1))
        return out
