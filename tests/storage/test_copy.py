"""Copying an embedded database into PostgreSQL (``chatd migrate``): every table,
every row, ids kept, blocks of room text unpacked, identities continued."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import import_asyncpg

asyncpg = import_asyncpg()

from storage import (  # noqa: E402 - after the driver's check
    InvitationRecord,
    JoinRequestRecord,
    MessageRecord,
    SanctionRecord,
    SqliteStorage,
    StorageError,
    UserBlockRecord,
)
from storage.blocks import read_block  # noqa: E402
from storage.postgres import PostgresStorage  # noqa: E402
from storage.postgres.copy import (  # noqa: E402
    NOT_COPIED_AS_IS,
    TABLES,
    Table,
    copy_database,
    sqlite_tables,
)
from storage.records import FileRecord, KeyRecord, RoomRecord, TokenRecord  # noqa: E402

T0 = 1_700_000_000.0


@pytest.fixture
async def populated(tmp_path: Path) -> AsyncIterator[str]:
    """An embedded database with rows in every table, and the traces of deletions:
    ids with gaps, a deleted sender whose messages stay (in rows and in blocks)."""
    path = str(tmp_path / "embedded.db")
    db = SqliteStorage(path)
    await db.open()
    try:
        await _fill(db)
    finally:
        await db.close()
    yield path


async def _fill(db: SqliteStorage) -> None:
    alice = (await db.create_user("Alice", b"\x00hash-a", True, T0)).id
    bob = (await db.create_user("bob", b"hash-b", False, T0 + 1)).id
    gone = (await db.create_user("gone", b"hash-g", False, T0 + 2)).id
    carol = (await db.create_user("carol", b"hash-c", False, T0 + 3)).id
    await db.set_user_settings(bob, {"timestamps": True, "format": "json"})
    lobby, _ = await db.create_room("Lobby", "open", alice, T0 + 10)
    den, _ = await db.create_room("den", "private", alice, T0 + 11)
    old, _ = await db.create_room("old", "request", bob, T0 + 12)
    await db.set_room_topic(lobby.id, "héllo")
    await db.set_room_settings(lobby.id, {"rate": 3})
    for user in (bob, gone, carol):
        await db.add_member(lobby.id, user, "member", T0 + 20)
    await db.set_roles(lobby.id, [(bob, "admin"), (carol, "voice")], T0 + 21)
    await db.set_room_modes(lobby.id, "pw", 12, True, True, False, False)
    await db.add_member(old.id, carol, "member", T0 + 22)
    await db.terminate_room(old.id, T0 + 23)
    plain = [MessageRecord(i, [alice, bob, gone][i % 3], "someone", f"plain {i}", T0 + 30 + i,
                           room_id=lobby.id) for i in range(1, 150)]
    other = [
        MessageRecord(150, alice, "Alice", "/me waves", T0 + 200, room_id=lobby.id,
                      kind="action"),
        MessageRecord(151, gone, "gone", "a sticker", T0 + 201, room_id=lobby.id,
                      kind="sticker", extra={"name": "cat"}),
        MessageRecord(152, -3, "guest", "from IRC", T0 + 202, room_id=den.id),
        MessageRecord(153, alice, "Alice", "dm", T0 + 203, recipient_id=bob, delivered=False),
        MessageRecord(154, bob, "bob", "seen", T0 + 204, recipient_id=alice),
    ]
    await db.append_messages(plain + other)
    await db.add_notification(carol, "mention", {"room": "Lobby", "id": 3}, T0 + 40)
    await db.put_sanction("ban", SanctionRecord(den.id, carol, alice, "spam", T0 + 50, None))
    await db.put_sanction("mute", SanctionRecord(lobby.id, carol, None, "", T0 + 51, T0 + 99))
    await db.put_invitation(InvitationRecord(den.id, bob, alice, T0 + 52, T0 + 9999))
    await db.put_join_request(JoinRequestRecord(den.id, gone, T0 + 53))
    await db.append_audit(T0 + 54, "Alice", "kick", "gone", "Lobby", "bye", lobby.id)
    await db.append_audit(T0 + 55, None, "expire", "carol", None, "")
    bot_token = await db.create_token(bob, "Bot", "tokenhash", T0 + 56, None, "read post")
    await db.create_token(gone, "temp", "tokenhash2", T0 + 56, T0 + 60)
    # A browser tab's token, whose kind the copy carries.
    await db.create_token(alice, "web-tab", "tokenhash4", T0 + 56, T0 + 99, kind="session")
    await db.set_tokens_used([(bot_token.id, T0 + 57)])
    await db.create_resume_token(alice, "resume-a", T0 + 57, T0 + 999, None,
                                 "read post moderate admin")
    await db.create_resume_token(bob, "resume-b", T0 + 57, T0 + 999, bot_token.id, "read post")
    await db.create_user("helper", b"!", False, T0 + 57, kind="bot", owner_id=bob)
    await db.create_user("orphan", b"!", False, T0 + 57, kind="bot", owner_id=gone)
    await db.create_webhook(lobby.id, "CI", "hookhash", alice, T0 + 58)
    await db.create_webhook(lobby.id, "gone's", "hookhash2", gone, T0 + 58)
    # Made with bob's bot token, and with a token of bob's revoked since.
    await db.create_webhook(lobby.id, "bot", "hookhash3", bob, T0 + 58, bot_token.id)
    revoked = await db.create_token(bob, "revoked", "tokenhash3", T0 + 58, None)
    await db.create_webhook(lobby.id, "dead", "hookhash4", bob, T0 + 58, revoked.id)
    await db.delete_token(bob, "revoked")
    await db.add_file(FileRecord(0, lobby.id, alice, "Alice", "a.png", 42, "image/png",
                                 "ab" * 32, "ab" * 32, "[art]", T0 + 57))
    await db.add_file(FileRecord(0, lobby.id, gone, "gone", "b.txt", 3, "text/plain",
                                 "cd" * 32, "cd" * 32, "", T0 + 58))
    await db.put_user_key(KeyRecord(alice, "x25519-a", "mlkem-a", "fp-a", T0 + 59))
    await db.put_user_key(KeyRecord(bob, "x25519-b", None, "fp-b", T0 + 59))
    await db.put_user_block(UserBlockRecord(carol, bob, T0 + 60))
    await db.delete_user(gone)  # its ids stay in blocks; rows forget it (NULL)
    await db.clear_notifications(alice)


def sqlite_rows(path: str, table: Table) -> list[tuple[Any, ...]]:
    """The table's rows as PostgreSQL holds them (0/1 columns as booleans)."""
    flags = [column in table.booleans for column in table.columns]
    with sqlite3.connect(path) as conn:
        rows = conn.execute(f"SELECT {', '.join(table.columns)} FROM {table.name}").fetchall()
    return sorted(tuple(bool(v) if flag and v is not None else v for v, flag in zip(
        row, flags, strict=True)) for row in rows)


def sqlite_messages(path: str) -> list[tuple[Any, ...]]:
    """Every message: rows of messages, and those of blocks, unpacked."""
    messages_table = next(t for t in TABLES if t.name == "messages")
    rows = sqlite_rows(path, messages_table)
    with sqlite3.connect(path) as conn:
        users = {row[0] for row in conn.execute("SELECT id FROM users")}
        blocks = conn.execute("SELECT room_id, count, numbers, strings FROM message_blocks")
        for block in blocks.fetchall():
            rows += [(m.id, m.room_id, None, m.sender_id if m.sender_id in users else None,
                      m.sender_name, m.text, m.ts, "text", "{}", True)
                     for m in read_block(*block)]
    return sorted(rows)


async def postgres_rows(url: str, table: Table) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(f"SELECT {', '.join(table.columns)} FROM {table.name}")
    finally:
        await conn.close()
    return sorted(tuple(row) for row in rows)


def test_every_table_of_the_embedded_schema_is_copied(tmp_path: Path) -> None:
    """A migration adding a table to SQLite fails this test until the copy takes it."""
    import asyncio

    path = str(tmp_path / "schema.db")

    async def create() -> None:
        db = SqliteStorage(path)
        await db.open()
        await db.close()

    asyncio.run(create())
    copied = {table.name for table in TABLES}
    assert set(sqlite_tables(path)) - set(NOT_COPIED_AS_IS) == copied
    for table in TABLES:  # and every column of it
        with sqlite3.connect(path) as conn:
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table.name})")}
        assert columns == set(table.columns), table.name


async def test_a_populated_database_round_trips_table_by_table(populated: str,
                                                               postgres_url: str) -> None:
    counts = await copy_database(populated, postgres_url, meta={"blob_store": "here"})
    for table in TABLES:
        expected = (sqlite_messages(populated) if table.name == "messages"
                    else sqlite_rows(populated, table))
        assert await postgres_rows(postgres_url, table) == expected, table.name
        assert counts[table.name] == len(expected), table.name
    assert counts["messages"] == 154 and counts["users"] == 5
    assert counts["webhooks"] == 3 and counts["resume_tokens"] == 2
    assert counts["notifications"] == 1 and counts["audit"] == 2

    node = PostgresStorage(postgres_url)
    await node.open()
    try:
        assert await node.get_meta("blob_store") == "here"
        # Read through the backend as the daemon does: the same answers as SQLite's.
        embedded = SqliteStorage(populated)
        await embedded.open()
        try:
            for room in await embedded.load_active_rooms():
                assert await node.room_history(room.id, 500) == \
                    await embedded.room_history(room.id, 500)
            assert await node.list_users() == await embedded.list_users()
            assert await node.load_members() == await embedded.load_members()
            bob = await embedded.get_user_by_name("bob")
            assert bob is not None
            assert await node.direct_backlog(bob.id) == \
                await embedded.direct_backlog(bob.id)
        finally:
            await embedded.close()
        assert await node.load_active_rooms() == await embedded_rooms(populated)
        assert await node.load_tokens() == await embedded_tokens(populated)
        assert {t.name: t.kind for t in await node.load_tokens()} == \
            {"Bot": "api", "web-tab": "session"}
        # Each hook names the token that made it: the live one's, the revoked one's.
        assert [(h.name, h.token_id is not None, h.token_gone)
                for h in await node.list_webhooks(1)] == \
            [("CI", False, False), ("bot", True, False), ("dead", True, True)]
        # Identities go on after the copied ids (6 users were made, one deleted).
        assert (await node.create_user("dave", b"h", False, T0)).id == 7
        room, member = await node.create_room("new", "open", 7, T0)
        assert room.id == 4 and member.seq > max(m.seq for m in await node.load_members()
                                                 if m.room_id != room.id)
        assert await node.max_message_id() == 154
    finally:
        await node.close()


async def embedded_rooms(path: str) -> list[RoomRecord]:
    embedded = SqliteStorage(path)
    await embedded.open()
    try:
        return await embedded.load_active_rooms()
    finally:
        await embedded.close()


async def embedded_tokens(path: str) -> list[TokenRecord]:
    embedded = SqliteStorage(path)
    await embedded.open()
    try:
        return await embedded.load_tokens()
    finally:
        await embedded.close()


async def test_a_target_holding_data_is_refused_unless_replaced(populated: str,
                                                                postgres_url: str) -> None:
    node = PostgresStorage(postgres_url)
    await node.open()
    await node.create_user("already", b"h", False, T0)
    await node.close()
    with pytest.raises(StorageError, match=r"not empty \(rows in users\)"):
        await copy_database(populated, postgres_url)
    users = next(t for t in TABLES if t.name == "users")
    assert [row[1] for row in await postgres_rows(postgres_url, users)] == ["already"]

    await copy_database(populated, postgres_url, replace=True)
    assert await postgres_rows(postgres_url, users) == sqlite_rows(populated, users)


async def test_a_served_target_is_refused(populated: str, postgres_url: str) -> None:
    serving = PostgresStorage(postgres_url, sole_node=True)
    await serving.open()
    try:
        with pytest.raises(StorageError, match="another chatd node"):
            await copy_database(populated, postgres_url)
    finally:
        await serving.close()


async def test_a_target_served_by_cluster_nodes_is_refused_even_when_replacing(
        populated: str, postgres_url: str) -> None:
    # Nodes sharing a database through Redis take no node lock: their sessions name them.
    nodes = [PostgresStorage(postgres_url, name=name)
             for name in ("chatd/n1", "chatd/n1/locks", "chatd/n2")]
    for node in nodes:
        await node.open()
    try:
        await nodes[0].create_user("served", b"h", False, T0)
        with pytest.raises(StorageError, match=r"nodes are serving the target database "
                                               r"\(n1, n2\)"):
            await copy_database(populated, postgres_url, replace=True)
    finally:
        for node in nodes:
            await node.close()
    users = next(t for t in TABLES if t.name == "users")
    assert [row[1] for row in await postgres_rows(postgres_url, users)] == ["served"]
    # Once they stopped, replacing is the operator's choice.
    await copy_database(populated, postgres_url, replace=True)
    assert await postgres_rows(postgres_url, users) == sqlite_rows(populated, users)


async def test_an_old_embedded_database_is_migrated_before_the_copy(
        tmp_path: Path, postgres_url: str) -> None:
    import aiosqlite

    from storage.migrations import migrate

    path = tmp_path / "old.db"
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        await migrate(conn, target=6)  # before blocks and user blocks existed
        await conn.execute("INSERT INTO users (name, password_hash, created_at) "
                           "VALUES ('old', x'00', 1.0)")
    finally:
        await conn.close()
    counts = await copy_database(str(path), postgres_url)
    assert counts["users"] == 1 and counts["user_blocks"] == 0
    users = next(t for t in TABLES if t.name == "users")
    assert [row[1] for row in await postgres_rows(postgres_url, users)] == ["old"]
