"""A burst of /encrypt requests waits for process starts; it never fails."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from chatd.domain.clock import Clock
from tests.helpers import Clients, start_server


async def test_process_starts_stay_within_the_spawn_rate(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real clock: the starts are measured in real seconds.
    server = await start_server(db_path, Clock(), crypto__max_concurrent=4,
                                crypto__spawn_rate=2)
    service = server.services.crypto
    starts: list[float] = []
    real_spawn = service._spawn

    async def recording(*args: Any) -> bytes:
        starts.append(time.monotonic())
        return await real_spawn(*args)

    monkeypatch.setattr(service, "_spawn", recording)
    clients = Clients(server)
    try:
        users = [await clients.user(f"user{i}") for i in range(5)]
        replies = await asyncio.gather(*(
            u.command(f"/encrypt chacha20-poly1305 low pw{i} text {i}", timeout=30)
            for i, u in enumerate(users)))
        assert all(reply.ok for reply in replies)
        # The sliding window: never more than 2 starts within any one second.
        starts.sort()
        pairs = zip(starts, starts[2:], strict=False)
        assert all(later - earlier >= 1.0 for earlier, later in pairs)
    finally:
        await clients.close()
        await server.stop()
