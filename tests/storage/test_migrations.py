"""Tests of the schema migrations: fresh databases, upgrades from every version, refusals."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite
import pytest

from storage import (
    LATEST_VERSION,
    MIGRATIONS,
    InvitationRecord,
    MessageRecord,
    Migration,
    SanctionRecord,
    SqliteStorage,
    StorageError,
    migrate,
)
from storage.blocks import BLOCK_COLUMNS, block_rows
from storage.migrations import check_sequence, split_statements, user_version

T0 = 1_700_000_000.0

Seed = Callable[[aiosqlite.Connection], Awaitable[None]]


async def connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    await conn.execute("PRAGMA foreign_keys = ON")
    return conn


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in rows} - {"sqlite_sequence"}


def file_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


async def seed_v1(conn: aiosqlite.Connection) -> None:
    await conn.execute("INSERT INTO users (id, name, password_hash, is_admin, created_at, "
                       "settings) VALUES (1, 'Alice', x'01', 1, ?, '{\"theme\":\"dark\"}')",
                       (T0,))
    await conn.execute("INSERT INTO users (id, name, password_hash, created_at) "
                       "VALUES (2, 'bob', x'02', ?)", (T0,))
    await conn.execute("INSERT INTO rooms (id, name, mode, topic, created_at) "
                       "VALUES (1, 'lobby', 'open', 'hi', ?)", (T0,))
    await conn.execute("INSERT INTO members (room_id, user_id, role, joined_at, role_since) "
                       "VALUES (1, 1, 'owner', ?, ?)", (T0, T0))
    await conn.execute("INSERT INTO user_rooms VALUES (1, 1, ?)", (T0,))
    await conn.execute("INSERT INTO messages (id, room_id, sender_id, sender_name, text, ts) "
                       "VALUES (10, 1, 1, 'Alice', 'hello', ?)", (T0,))
    await conn.execute("INSERT INTO messages (id, recipient_id, sender_id, sender_name, text, "
                       "ts, delivered) VALUES (11, 2, 1, 'Alice', 'psst', ?, 0)", (T0,))
    await conn.execute("INSERT INTO notifications (user_id, kind, payload, created_at) "
                       "VALUES (2, 'dm', '{\"from\":\"Alice\"}', ?)", (T0,))


async def seed_v2(conn: aiosqlite.Connection) -> None:
    await conn.execute("INSERT INTO bans VALUES (1, 2, 1, 'spam', ?, NULL)", (T0,))
    await conn.execute("INSERT INTO invitations VALUES (1, 2, 1, ?, ?)", (T0, T0 + 3600))
    await conn.execute("INSERT INTO audit (ts, actor, action, target, room, reason) "
                       "VALUES (?, 'Alice', 'ban', 'bob', 'lobby', 'spam')", (T0,))


async def seed_v3(conn: aiosqlite.Connection) -> None:
    await conn.execute("INSERT INTO api_tokens (user_id, name, token_hash, created_at) "
                       "VALUES (1, 'ci', 'abc', ?)", (T0,))


async def seed_v4(conn: aiosqlite.Connection) -> None:
    await conn.execute("INSERT INTO audit (ts, actor, action, target, room, reason, room_id) "
                       "VALUES (?, 'Alice', 'create', NULL, 'den', '', 7)", (T0,))


async def seed_v5(conn: aiosqlite.Connection) -> None:
    await conn.execute("INSERT INTO files (room_id, uploader_id, uploader_name, name, size, "
                       "mime, sha256, blob_key, created_at) VALUES (1, 1, 'Alice', 'a.txt', 2, "
                       "'text/plain', 'ab', 'ab', ?)", (T0,))
    await conn.execute("INSERT INTO user_keys VALUES (1, 'pub', NULL, 'fp', ?)", (T0,))


async def seed_v6(conn: aiosqlite.Connection) -> None:
    # Version 6 only drops an index: any row written after it must survive.
    await conn.execute("INSERT INTO notifications (user_id, kind, payload, created_at) "
                       "VALUES (1, 'note', '{}', ?)", (T0,))


async def seed_v7(conn: aiosqlite.Connection) -> None:
    # Plain text after version 7 goes to blocks, next to version 1's row.
    block = [MessageRecord(20 + i, 2, "bob", f"block {i}", T0 + i, room_id=1) for i in range(3)]
    [row] = block_rows(block)
    await conn.execute(f"INSERT INTO message_blocks ({BLOCK_COLUMNS}) VALUES (?,?,?,?,?,?)", row)


async def seed_v8(conn: aiosqlite.Connection) -> None:
    await conn.execute("INSERT INTO user_blocks VALUES (2, 1, ?)", (T0,))


async def seed_v9(conn: aiosqlite.Connection) -> None:
    await conn.execute("UPDATE rooms SET key = 'pw', member_limit = 9, moderated = 1 "
                       "WHERE id = 1")


async def seed_v10(conn: aiosqlite.Connection) -> None:
    await conn.execute("INSERT INTO webhooks (room_id, name, secret_hash, creator_id, "
                       "created_at) VALUES (1, 'ci', 'ab', 1, ?)", (T0,))


async def seed_v11(conn: aiosqlite.Connection) -> None:
    await conn.execute("INSERT INTO users (id, name, password_hash, created_at, kind, owner_id) "
                       "VALUES (3, 'helper', x'', ?, 'bot', 2)", (T0,))
    await conn.execute("INSERT INTO resume_tokens (user_id, token_hash, created_at, "
                       "expires_at, scopes) VALUES (2, 'r1', ?, ?, 'read')", (T0, T0 + 60))


async def seed_v12(conn: aiosqlite.Connection) -> None:
    await conn.execute("INSERT INTO messages (id, recipient_id, sender_id, sender_name, text, "
                       "ts) VALUES (12, 1, 2, 'bob', 'answer', ?)", (T0 + 12,))


async def seed_v13(conn: aiosqlite.Connection) -> None:
    await conn.execute("INSERT INTO chatd_meta (key, value) VALUES ('seeded', 'yes')")


async def seed_v14(conn: aiosqlite.Connection) -> None:
    # An invitation whose inviter's account is gone.
    await conn.execute("INSERT INTO invitations VALUES (1, 3, NULL, ?, ?)", (T0, T0 + 60))


async def seed_v15(conn: aiosqlite.Connection) -> None:
    # A hook made with alice's token 'ci' (version 3's row).
    await conn.execute("INSERT INTO webhooks (room_id, name, secret_hash, creator_id, "
                       "created_at, token_id) VALUES (1, 'deploy', 'cd', 1, ?, 1)", (T0,))


async def seed_v16(conn: aiosqlite.Connection) -> None:
    # A browser tab's token of bob's, and a hook he made with it (a password-like one).
    await conn.execute("INSERT INTO api_tokens (user_id, name, token_hash, created_at, kind) "
                       "VALUES (2, 'web-tab', 'tab', ?, 'session')", (T0,))
    await conn.execute("INSERT INTO webhooks (room_id, name, secret_hash, creator_id, "
                       "created_at) VALUES (1, 'tab', 'ef', 2, ?)", (T0,))


async def seed_v17(conn: aiosqlite.Connection) -> None:
    # Two of bob's notifications were dropped past the bound.
    await conn.execute("INSERT INTO notifications_dropped (user_id, dropped) VALUES (2, 2)")


SEEDS: dict[int, Seed] = {1: seed_v1, 2: seed_v2, 3: seed_v3, 4: seed_v4, 5: seed_v5,
                          6: seed_v6, 7: seed_v7, 8: seed_v8, 9: seed_v9, 10: seed_v10,
                          11: seed_v11, 12: seed_v12, 13: seed_v13, 14: seed_v14,
                          15: seed_v15, 16: seed_v16, 17: seed_v17}


async def build_database(path: Path, version: int) -> None:
    """A database as a release with schema ``version`` left it, with some rows."""
    conn = await connect(path)
    try:
        for step in range(1, version + 1):
            assert await migrate(conn, target=step) == step
            await conn.execute("BEGIN")
            await SEEDS[step](conn)
            await conn.execute("COMMIT")
    finally:
        await conn.close()


async def test_seeds_cover_every_version() -> None:
    assert sorted(SEEDS) == list(range(1, LATEST_VERSION + 1))


async def test_fresh_database_gets_the_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    storage = SqliteStorage(str(path))
    await storage.open()
    try:
        assert await storage.schema_version() == LATEST_VERSION
    finally:
        await storage.close()
    assert file_version(path) == LATEST_VERSION
    assert tables(path) == {
        "users", "rooms", "members", "user_rooms", "messages", "notifications", "bans",
        "mutes", "invitations", "join_requests", "audit", "api_tokens", "files", "user_keys",
        "message_blocks", "user_blocks", "webhooks",
        "resume_tokens", "chatd_meta", "notifications_dropped"}


@pytest.mark.parametrize("version", range(LATEST_VERSION))
async def test_older_database_is_upgraded_at_open(tmp_path: Path, version: int) -> None:
    path = tmp_path / f"v{version}.db"
    await build_database(path, version)
    assert file_version(path) == version

    storage = SqliteStorage(str(path))
    await storage.open()
    try:
        assert await storage.schema_version() == LATEST_VERSION
        if version >= 1:
            await check_v1_rows(storage)
        if version >= 2:
            await check_v2_rows(storage)
        if version >= 3:
            await check_v3_rows(storage)
        # The upgraded schema is fully usable.
        user = await storage.create_user("carol", b"c", False, T0)
        room, _ = await storage.create_room("den", "private", user.id, T0)
        await storage.put_sanction("mute", SanctionRecord(room.id, user.id, None, "", T0, None))
        await storage.create_token(user.id, "bot", "carol-hash", T0, None)
        await storage.set_meta("serving", "yes")
        await storage.set_meta("serving", "no")
        assert (await storage.get_meta("serving"), await storage.get_meta("none")) == ("no", None)
    finally:
        await storage.close()


async def check_v1_rows(storage: SqliteStorage) -> None:
    alice = await storage.get_user_by_name("alice")
    assert alice is not None
    assert (alice.id, alice.is_admin, alice.settings) == (1, True, {"theme": "dark"})
    [room] = await storage.load_active_rooms()
    assert (room.name, room.topic) == ("lobby", "hi")
    assert [(m.user_id, m.role) for m in await storage.load_members()] == [(1, "owner")]
    assert [a.room_name for a in await storage.list_associations(1)] == ["lobby"]
    assert (await storage.room_history(1, 10))[0].text == "hello"
    backlog = await storage.direct_backlog(2)
    assert backlog is not None and [m.text for m in backlog.messages] == ["psst"]
    # Older direct messages are found by the conversation indexes of version 12.
    assert [m.text for m in await storage.direct_history(2, 1, 1, before_id=12)] == ["psst"]
    [note] = await storage.list_notifications(2)
    assert note.payload == {"from": "Alice"}


async def check_v3_rows(storage: SqliteStorage) -> None:
    # A token made before scopes existed keeps every scope; its users stay people.
    # Made before kinds existed, it is a script's (api), as it was taken to be.
    token = await storage.find_token("abc")
    assert token is not None
    assert (token.name, token.scopes, token.last_used_at, token.kind) == \
        ("ci", "read post moderate admin", None, "api")
    alice = await storage.get_user(1)
    assert alice is not None and (alice.kind, alice.owner_id) == ("user", None)


async def check_v2_rows(storage: SqliteStorage) -> None:
    assert await storage.load_sanctions("ban") == [
        SanctionRecord(1, 2, 1, "spam", T0, None)]
    assert [i for i in await storage.load_invitations(T0) if i.user_id == 2] == [
        InvitationRecord(1, 2, 1, T0, T0 + 3600)]
    [entry] = await storage.list_audit(10, room="lobby")
    assert (entry.actor, entry.action, entry.target) == ("Alice", "ban", "bob")


async def test_an_upgraded_invitation_outlives_its_inviter(tmp_path: Path) -> None:
    """Made before version 14, alice's invitation of bob stays when her account goes."""
    path = tmp_path / "v13.db"
    await build_database(path, 13)
    storage = SqliteStorage(str(path))
    await storage.open()
    try:
        await storage.delete_user(1)
        assert await storage.load_invitations(T0) == [
            InvitationRecord(1, 2, None, T0, T0 + 3600)]
    finally:
        await storage.close()


async def test_upgraded_webhooks_are_kept_and_name_no_token(tmp_path: Path) -> None:
    """A hook made before version 15 stays, as made from a password session (no
    token): it posts as it did. A hook made since names its token."""
    path = tmp_path / "v14.db"
    await build_database(path, 14)
    storage = SqliteStorage(str(path))
    await storage.open()
    try:
        [old] = await storage.list_webhooks(1)
        assert (old.name, old.creator_id, old.secret_hash) == ("ci", 1, "ab")
        assert (old.token_id, old.token_expires_at, old.token_gone) == (None, None, False)
        [token] = await storage.load_tokens()
        new = await storage.create_webhook(1, "deploy", "cd", 1, T0, token.id)
        assert await storage.get_webhook(new.id) == new
        assert (new.token_id, new.token_gone) == (token.id, False)
    finally:
        await storage.close()


async def test_upgraded_tokens_are_a_scripts_and_new_ones_keep_their_kind(
        tmp_path: Path) -> None:
    """Every token made before version 16 is an 'api' one (what a webhook made with it
    lives as long as); a token stored since keeps the kind it was made with, read back
    by every query, and the column refuses a kind it does not know."""
    path = tmp_path / "v15.db"
    await build_database(path, 15)
    storage = SqliteStorage(str(path))
    await storage.open()
    try:
        assert [(t.name, t.kind) for t in await storage.load_tokens()] == [("ci", "api")]
        tab = await storage.create_token(2, "web-tab", "tab", T0, T0 + 60, "read",
                                         kind="session")
        script = await storage.create_token(2, "script", "script", T0, None)
        assert (tab.kind, script.kind) == ("session", "api")
        assert await storage.find_token("tab") == tab
        assert {t.name: t.kind for t in await storage.list_tokens(2)} == \
            {"web-tab": "session", "script": "api"}
        assert [t.kind for t in await storage.load_tokens()] == ["api", "session", "api"]
    finally:
        await storage.close()
    with sqlite3.connect(path) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO api_tokens (user_id, name, token_hash, created_at, kind) "
                     "VALUES (2, 'odd', 'odd', 1, 'other')")


async def test_latest_database_opens_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "latest.db"
    await build_database(path, LATEST_VERSION)
    storage = SqliteStorage(str(path))
    await storage.open()
    try:
        await check_v1_rows(storage)
        await check_v2_rows(storage)
        token = await storage.find_token("abc")
        assert token is not None and token.name == "ci"
        tab = await storage.find_token("tab")
        assert tab is not None and (tab.name, tab.kind) == ("web-tab", "session")
        assert [(m.id, m.sender_id, m.text) for m in await storage.room_history(1, 10)] == [
            (10, 1, "hello"), (20, 2, "block 0"), (21, 2, "block 1"), (22, 2, "block 2")]
        assert await storage.max_message_id() == 22
        assert [m.text for m in await storage.direct_history(1, 2, 10)] == ["psst", "answer"]
    finally:
        await storage.close()


async def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    await build_database(path, LATEST_VERSION)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    storage = SqliteStorage(str(path))
    with pytest.raises(StorageError, match=f"version {LATEST_VERSION + 1} is newer"):
        await storage.open()
    with pytest.raises(StorageError, match="not open"):
        await storage.list_users()
    assert file_version(path) == LATEST_VERSION + 1


async def test_migrate_goes_step_by_step_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "steps.db"
    conn = await connect(path)
    try:
        assert await migrate(conn, target=0) == 0
        assert await user_version(conn) == 0
        assert await migrate(conn, target=1) == 1
        assert "bans" not in tables(path)
        assert await migrate(conn) == LATEST_VERSION
        assert await migrate(conn) == LATEST_VERSION
        assert await migrate(conn, target=1) == LATEST_VERSION  # never downgrades
        with pytest.raises(ValueError, match="outside"):
            await migrate(conn, target=LATEST_VERSION + 1)
        with pytest.raises(ValueError, match="outside"):
            await migrate(conn, target=-1)
    finally:
        await conn.close()


async def test_failed_migration_is_rolled_back(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    broken = [*MIGRATIONS[:1],
              Migration(2, "half done", "CREATE TABLE extra (x); INSERT INTO nowhere VALUES (1);")]
    conn = await connect(path)
    try:
        with pytest.raises(StorageError, match=r"migration 2 \(half done\) failed.*nowhere"):
            await migrate(conn, migrations=broken)
        assert await user_version(conn) == 1
        assert not conn.in_transaction
    finally:
        await conn.close()
    assert "extra" not in tables(path)
    assert "users" in tables(path)


async def test_callable_migration_runs_in_the_transaction(tmp_path: Path) -> None:
    async def backfill(conn: aiosqlite.Connection) -> None:
        await conn.execute("CREATE TABLE counters (n INTEGER)")
        await conn.executemany("INSERT INTO counters VALUES (?)", [(i,) for i in range(5)])

    async def explode(conn: aiosqlite.Connection) -> None:
        await conn.execute("INSERT INTO counters VALUES (99)")
        raise RuntimeError("boom")

    path = tmp_path / "callable.db"
    plan = [Migration(1, "counters", backfill), Migration(2, "explodes", explode)]
    conn = await connect(path)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            await migrate(conn, migrations=plan)
        assert await user_version(conn) == 1
        rows = await conn.execute_fetchall("SELECT n FROM counters ORDER BY n")
        assert [row[0] for row in rows] == [0, 1, 2, 3, 4]
    finally:
        await conn.close()


async def test_migrations_must_be_numbered_in_order() -> None:
    assert check_sequence(MIGRATIONS) == LATEST_VERSION == MIGRATIONS[-1].version
    with pytest.raises(ValueError, match="numbered"):
        check_sequence([Migration(1, "a", ""), Migration(3, "c", "")])
    with pytest.raises(ValueError, match="numbered"):
        check_sequence([Migration(2, "b", ""), Migration(1, "a", "")])


def test_split_statements() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE t (x TEXT DEFAULT 'a;b');
    CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN
        UPDATE t SET x = 'y;' WHERE rowid = new.rowid;
    END;
    ;
    -- trailing comment
    INSERT INTO t VALUES ('no final semicolon')
    """
    statements = split_statements(script)
    assert len(statements) == 3
    assert statements[0].endswith("CREATE TABLE t (x TEXT DEFAULT 'a;b');")
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    assert statements[2].endswith("VALUES ('no final semicolon')\n    ;")
    with sqlite3.connect(":memory:") as conn:
        for statement in statements:
            conn.execute(statement)
        assert conn.execute("SELECT x FROM t").fetchone()[0] == "y;"


def test_every_migration_script_splits_into_statements() -> None:
    for migration in MIGRATIONS:
        assert isinstance(migration.step, str)
        statements = split_statements(migration.step)
        assert statements and all(sqlite3.complete_statement(s) for s in statements)


async def test_two_processes_migrating_one_file_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    first, second = SqliteStorage(path), SqliteStorage(path)
    await asyncio.gather(first.open(), second.open())
    try:
        assert await first.schema_version() == await second.schema_version() == LATEST_VERSION
        await first.create_user("alice", b"x", False, T0)
        assert [u.name for u in await second.list_users()] == ["alice"]
    finally:
        await asyncio.gather(first.close(), second.close())


async def test_several_openers_racing_to_create_a_new_file(tmp_path: Path) -> None:
    # Entering WAL on a new file fails at once (no busy wait) for the loser of
    # the race about one time in ten: every opener must still succeed.
    for attempt in range(15):
        path = str(tmp_path / f"race{attempt}.db")
        openers = [SqliteStorage(path) for _ in range(3)]
        await asyncio.gather(*(storage.open() for storage in openers))
        try:
            for storage in openers:
                assert (await storage.pragmas())["journal_mode"] == "wal"
                assert await storage.schema_version() == LATEST_VERSION
        finally:
            await asyncio.gather(*(storage.close() for storage in openers))
