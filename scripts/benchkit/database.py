"""The benchmark database: prepared before the daemon starts, polled for durability.

Users with one precomputed bcrypt hash and one API token each, the rooms of
every layout, and the history room with many stored messages, written through
``storage.sqlite.SqliteStorage``; then, while a daemon runs, its largest
stored message id read through a read-only SQLite connection.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

from .common import HISTORY_ROOM, PASSWORD, room_name, token, user_name
from .plan import Plan


async def prepare_database(path: Path, plan: Plan) -> dict[str, float]:
    """Users, rooms, memberships and the history room, through SqliteStorage."""
    import bcrypt  # noqa: PLC0415 - the parent alone needs these

    from chatd.domain.tokens import token_hash  # noqa: PLC0415
    from storage.records import MessageRecord  # noqa: PLC0415
    from storage.sqlite import SqliteStorage  # noqa: PLC0415

    timings: dict[str, float] = {}
    storage = SqliteStorage(str(path))
    await storage.open()
    try:
        now = time.time()
        started = time.perf_counter()
        password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4))
        ids = [(await storage.create_user(user_name(i), password_hash, False, now)).id
               for i in range(plan.users)]
        for i, user_id in enumerate(ids):
            await storage.create_token(user_id, "bench", token_hash(token(i)), now, None)
        timings["users_s"] = time.perf_counter() - started
        started = time.perf_counter()
        for layout in plan.layouts:
            clients, rooms = layout
            per = clients // rooms
            for k in range(rooms):
                members = ids[k * per:(k + 1) * per]
                room, _ = await storage.create_room(room_name(layout, k), "open", members[0], now)
                for user_id in members[1:]:
                    await storage.add_member(room.id, user_id, "member", now)
        timings["rooms_s"] = time.perf_counter() - started
        if plan.history_messages:
            started = time.perf_counter()
            room, _ = await storage.create_room(HISTORY_ROOM, "open", ids[0], now)
            total, batch = plan.history_messages, 50_000
            for first in range(1, total + 1, batch):
                last = min(total, first + batch - 1)
                await storage.append_messages([
                    MessageRecord(n, ids[0], user_name(0), f"stored message number {n}",
                                  now - (total - n) * 0.01, room_id=room.id)
                    for n in range(first, last + 1)])
            timings["history_s"] = time.perf_counter() - started
    finally:
        await storage.close()
    return timings


def durable_max_id(db: Path) -> int:
    from storage.messages import MAX_MESSAGE_ID_SQL  # noqa: PLC0415

    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        return int(conn.execute(MAX_MESSAGE_ID_SQL).fetchone()[0])


def wait_durable(db: Path, target: int, timeout: float = 30.0) -> float | None:
    """Poll the database until message ``target`` is stored; the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if durable_max_id(db) >= target:
            return time.monotonic()
        time.sleep(0.005)
    return None
