"""Room modes and the voice role in storage: SQLite's migration that adds them, and
their rows on both backends."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage import SqliteStorage, Storage, migrate
from tests.backends import both
from tests.storage.test_migrations import T0, connect

MODES_VERSION = 9

backend = both


async def test_the_upgrade_keeps_members_and_their_join_order(tmp_path: Path) -> None:
    path = tmp_path / "v8.db"
    conn = await connect(path)
    try:
        await migrate(conn, target=MODES_VERSION - 1)
        await conn.execute("INSERT INTO users (id, name, password_hash, created_at) "
                           "VALUES (1, 'alice', x'01', ?), (2, 'bob', x'02', ?)", (T0, T0))
        await conn.execute("INSERT INTO rooms (id, name, created_at) VALUES (1, 'dev', ?)",
                           (T0,))
        for user_id in (1, 2, 1):  # the last join's seq (3) outlives its row
            await conn.execute("INSERT OR REPLACE INTO members (room_id, user_id, role, "
                               "joined_at, role_since) VALUES (1, ?, 'member', ?, ?)",
                               (user_id, T0, T0))
        await conn.execute("DELETE FROM members WHERE user_id = 1")
        await migrate(conn)
    finally:
        await conn.close()
    storage = SqliteStorage(str(path))
    await storage.open()
    try:
        [room] = await storage.load_active_rooms()
        assert (room.key, room.member_limit, room.moderated, room.secret, room.no_external,
                room.topic_lock) == (None, None, False, False, True, True)
        assert [(m.user_id, m.seq) for m in await storage.load_members()] == [(2, 2)]
        joined = await storage.add_member(1, 1, "voice", T0)
        assert joined.seq == 4 and joined.role == "voice"
    finally:
        await storage.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT name FROM sqlite_sequence WHERE name LIKE 'members%'"
                           ).fetchall() == [("members",)]
        with pytest.raises(sqlite3.IntegrityError):
            raw.execute("UPDATE members SET role = 'king'")


async def test_modes_are_stored_and_loaded(storage: Storage) -> None:
    user = await storage.create_user("alice", b"x", False, T0)
    room, _ = await storage.create_room("dev", "open", user.id, T0)
    await storage.set_room_modes(room.id, "pw", 12, True, True, False, False)
    [loaded] = await storage.load_active_rooms()
    assert (loaded.key, loaded.member_limit, loaded.moderated, loaded.secret,
            loaded.no_external, loaded.topic_lock) == ("pw", 12, True, True, False, False)
    await storage.set_room_modes(room.id, None, None, False, False, True, True)
    [cleared] = await storage.load_active_rooms()
    assert (cleared.key, cleared.member_limit) == (None, None)


async def test_a_room_without_a_stored_owner_has_no_member_row(storage: Storage) -> None:
    room = await storage.create_unowned_room("lobby", "open", T0)
    assert [r.name for r in await storage.load_active_rooms()] == ["lobby"]
    assert room.id > 0 and await storage.load_members() == []
