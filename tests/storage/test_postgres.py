"""What is PostgreSQL's own in its backend: the schema in step with SQLite's, the
migration runner, the lock of a sole node, errors and the database's facts.

(The Storage behaviour both backends share is tested in test_sqlite.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.backends import PostgresDatabases, import_asyncpg

asyncpg = import_asyncpg()

from storage import (  # noqa: E402 - after the driver's check
    MIGRATIONS,
    Conflict,
    InvitationRecord,
    Refused,
    StorageError,
)
from storage.postgres import (  # noqa: E402
    PG_LATEST_VERSION,
    PG_MIGRATIONS,
    PgMigration,
    PostgresStorage,
)
from storage.postgres.host import changed, translated, where  # noqa: E402
from storage.postgres.schema import migrate, schema_version  # noqa: E402

T0 = 1_700_000_000.0


def test_both_backends_list_the_same_migrations() -> None:
    """PostgreSQL's steps are SQLite's, version by version, with the same descriptions
    (taken from storage.migrations), so that a version means the same schema in both."""
    assert [(m.version, m.description) for m in PG_MIGRATIONS] == [
        (m.version, m.description) for m in MIGRATIONS]
    assert MIGRATIONS[-1].version == PG_LATEST_VERSION


def test_changed_rows_and_where_hide_what_they_should() -> None:
    assert changed("DELETE 3") == 3
    assert changed("INSERT 0 12") == 12
    assert changed("CREATE TABLE") == 0
    assert where("postgresql://chatd:s3cret@db.example:6543/chat") == "db.example:6543/chat"
    assert where("postgresql://localhost") == "localhost:5432/"
    assert "s3cret" not in where("postgresql://chatd:s3cret@[::1/chat")


@pytest.fixture
def fresh_url(postgres_databases: PostgresDatabases) -> str:
    """A database without any table: the node creates the schema itself."""
    return postgres_databases.empty()


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


async def test_a_node_creates_the_schema_of_an_empty_database(fresh_url: str) -> None:
    storage = PostgresStorage(fresh_url)
    await storage.open()
    try:
        assert await storage.schema_version() == PG_LATEST_VERSION
        user = await storage.create_user("alice", b"h", False, T0)
        assert await storage.get_user_by_name("ALICE") == user
    finally:
        await storage.close()
    async with connected(fresh_url) as conn:
        tables = {row[0] for row in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"users", "rooms", "members", "messages", "audit", "files", "user_blocks",
            "chatd_schema", "chatd_meta"} <= tables
    assert "message_blocks" not in tables  # every message is a row here


async def test_migrating_step_by_step_and_refusing_a_newer_database(fresh_url: str) -> None:
    async with connected(fresh_url) as conn:
        assert await migrate(conn, target=3) == 3
        assert await schema_version(conn) == 3
        assert await migrate(conn, target=2) == 3  # never downgrades
        assert await migrate(conn) == PG_LATEST_VERSION
        await conn.execute("UPDATE chatd_schema SET version = version + 1")
        with pytest.raises(StorageError, match="newer than this chatd supports"):
            await migrate(conn)
        with pytest.raises(ValueError, match="outside"):
            await migrate(conn, target=PG_LATEST_VERSION + 5)
        with pytest.raises(ValueError, match="numbered"):
            await migrate(conn, migrations=(PgMigration(2, "skips one", ""),))
    storage = PostgresStorage(fresh_url)
    with pytest.raises(StorageError, match="newer"):
        await storage.open()


async def test_a_failing_migration_leaves_the_previous_version(fresh_url: str) -> None:
    broken = (*PG_MIGRATIONS[:1], PgMigration(2, "broken", "CREATE TABLE x (); SELEC 1"))
    async with connected(fresh_url) as conn:
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await migrate(conn, migrations=broken)
        assert await schema_version(conn) == 1
        assert await conn.fetchval("SELECT to_regclass('x')") is None


async def test_nodes_starting_at_once_migrate_once(fresh_url: str) -> None:
    nodes = [PostgresStorage(fresh_url) for _ in range(4)]
    await asyncio.gather(*(node.open() for node in nodes))
    try:
        assert {await node.schema_version() for node in nodes} == {PG_LATEST_VERSION}
    finally:
        await asyncio.gather(*(node.close() for node in nodes))


async def test_a_sole_node_keeps_others_out_until_it_closes(postgres_url: str) -> None:
    first = PostgresStorage(postgres_url, sole_node=True)
    await first.open()
    second = PostgresStorage(postgres_url, sole_node=True)
    with pytest.raises(StorageError, match="another chatd node is serving this database"):
        await second.open()
    await first.close()
    await second.open()  # the lock went with the first node
    await second.close()


async def test_an_unreachable_server_is_a_storage_error_without_the_password(
        postgres_url: str) -> None:
    from tests.services import free_port

    url = f"postgresql://chatd:hunter2@127.0.0.1:{free_port()}/nowhere"
    for sole in (False, True):
        storage = PostgresStorage(url, sole_node=sole)
        with pytest.raises(StorageError) as caught:
            await storage.open()
        assert "127.0.0.1" in str(caught.value) and "hunter2" not in str(caught.value)
        await storage.close()


async def test_the_pool_connects_again_after_losing_its_connections(
        postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url)
    await storage.open()
    try:
        await storage.create_user("alice", b"h", False, T0)
        async with connected(postgres_url) as admin:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        with contextlib.suppress(StorageError):  # the first call may find the corpse
            await storage.list_users()
        assert [u.name for u in await storage.list_users()] == ["alice"]
    finally:
        await storage.close()


@pytest.mark.parametrize(("raised", "expected"), [
    (lambda: asyncpg.UniqueViolationError("taken"), Conflict),
    (lambda: asyncpg.ForeignKeyViolationError("no such room"), Refused),
    (lambda: asyncpg.CharacterNotInRepertoireError("NUL"), Refused),
    (lambda: asyncpg.ConnectionDoesNotExistError("gone"), StorageError),
    (lambda: asyncpg.InterfaceError("pool closed"), StorageError),
    (lambda: asyncpg.InternalClientError("cannot switch to state 11"), StorageError),
    (lambda: ConnectionRefusedError("refused"), StorageError),
])
def test_driver_errors_become_storage_errors(raised: Any, expected: type[Exception]) -> None:
    with pytest.raises(expected) as caught, translated():
        raise raised()
    if expected is StorageError:
        assert not isinstance(caught.value, Refused)  # may pass on a retry


async def test_facts_about_the_database(postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url)
    await storage.open()
    try:
        assert await storage.get_meta("blob_store") is None
        await storage.set_meta("blob_store", "one")
        await storage.set_meta("blob_store", "two")
        assert await storage.get_meta("blob_store") == "two"
        with pytest.raises(StorageError, match="pg_dump"):
            await storage.backup("/nowhere")
    finally:
        await storage.close()


async def test_names_fold_ascii_case_only_as_sqlite_does(postgres_url: str) -> None:
    """SQLite's NOCASE folds A-Z alone: names apart there must stay apart here."""
    storage = PostgresStorage(postgres_url)
    await storage.open()
    try:
        await storage.create_user("Ärger", b"h", False, T0)
        await storage.create_user("ärger", b"h", False, T0)  # another name for NOCASE
        assert (await storage.get_user_by_name("äRGER")).name == "ärger"  # type: ignore[union-attr]
    finally:
        await storage.close()


async def test_the_modes_migration_keeps_members_and_admits_the_voice_role(
        fresh_url: str) -> None:
    async with connected(fresh_url) as conn:
        await migrate(conn, target=8)
        await conn.execute("INSERT INTO users (name, password_hash, created_at) "
                           "VALUES ('alice', '\\x01', 1), ('bob', '\\x02', 1)")
        await conn.execute("INSERT INTO rooms (name, created_at) VALUES ('dev', 1)")
        await conn.execute("INSERT INTO members (room_id, user_id, role, joined_at, role_since) "
                           "VALUES (1, 1, 'owner', 1, 1), (1, 2, 'member', 1, 1)")
        await conn.execute("INSERT INTO api_tokens (user_id, name, token_hash, created_at) "
                           "VALUES (1, 'old', 'h', 1)")
        await migrate(conn)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE members SET role = 'king'")
    storage = PostgresStorage(fresh_url)
    await storage.open()
    try:
        [room] = await storage.load_active_rooms()
        assert (room.key, room.member_limit, room.moderated, room.secret, room.no_external,
                room.topic_lock) == (None, None, False, False, True, True)
        assert [(m.user_id, m.seq) for m in await storage.load_members()] == [(1, 1), (2, 2)]
        voiced = await storage.add_member(room.id, (await storage.create_user(
            "carol", b"h", False, T0)).id, "voice", T0)
        assert voiced.role == "voice" and voiced.seq == 3
        [old] = await storage.load_tokens()
        assert (old.scopes, old.last_used_at) == ("read post moderate admin", None)
        assert [u.kind for u in await storage.list_users()] == ["user"] * 3
        with pytest.raises(Refused):
            await storage.set_room_modes(room.id, None, 0, False, False, True, True)
    finally:
        await storage.close()


async def test_an_upgraded_invitation_outlives_its_inviter(fresh_url: str) -> None:
    """Made before version 14, alice's invitation of bob stays when her account goes."""
    async with connected(fresh_url) as conn:
        await migrate(conn, target=13)
        await conn.execute("INSERT INTO users (name, password_hash, created_at) "
                           "VALUES ('alice', '\\x01', 1), ('bob', '\\x02', 1)")
        await conn.execute("INSERT INTO rooms (name, created_at) VALUES ('dev', 1)")
        await conn.execute("INSERT INTO invitations VALUES (1, 2, 1, 1, 100)")
        await migrate(conn)
    storage = PostgresStorage(fresh_url)
    await storage.open()
    try:
        await storage.delete_user(1)
        assert await storage.load_invitations(1) == [InvitationRecord(1, 2, None, 1, 100)]
    finally:
        await storage.close()


async def test_upgraded_webhooks_are_kept_and_name_no_token(fresh_url: str) -> None:
    """A hook made before version 15 stays, as made from a password session."""
    async with connected(fresh_url) as conn:
        await migrate(conn, target=14)
        await conn.execute("INSERT INTO users (name, password_hash, created_at) "
                           "VALUES ('alice', '\\x01', 1)")
        await conn.execute("INSERT INTO rooms (name, created_at) VALUES ('dev', 1)")
        await conn.execute("INSERT INTO api_tokens (user_id, name, token_hash, created_at) "
                           "VALUES (1, 'ci', 'h', 1)")
        await conn.execute("INSERT INTO webhooks (room_id, name, secret_hash, creator_id, "
                           "created_at) VALUES (1, 'ci', 'ab', 1, 1)")
        await migrate(conn)
    storage = PostgresStorage(fresh_url)
    await storage.open()
    try:
        [old] = await storage.list_webhooks(1)
        assert (old.name, old.secret_hash, old.token_id, old.token_gone) == \
            ("ci", "ab", None, False)
        new = await storage.create_webhook(1, "deploy", "cd", 1, 2, token_id=1)
        assert (new.token_id, new.token_gone) == (1, False)
        assert await storage.get_webhook(new.id) == new
    finally:
        await storage.close()


async def test_upgraded_tokens_are_a_scripts_and_new_ones_keep_their_kind(
        fresh_url: str) -> None:
    """Every token made before version 16 is an 'api' one; one stored since keeps the
    kind it was made with, and the column refuses a kind it does not know."""
    async with connected(fresh_url) as conn:
        await migrate(conn, target=15)
        await conn.execute("INSERT INTO users (name, password_hash, created_at) "
                           "VALUES ('alice', '\\x01', 1)")
        await conn.execute("INSERT INTO api_tokens (user_id, name, token_hash, created_at) "
                           "VALUES (1, 'ci', 'h', 1)")
        await migrate(conn)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("INSERT INTO api_tokens (user_id, name, token_hash, created_at, "
                               "kind) VALUES (1, 'odd', 'odd', 1, 'other')")
    storage = PostgresStorage(fresh_url)
    await storage.open()
    try:
        assert [(t.name, t.kind) for t in await storage.load_tokens()] == [("ci", "api")]
        tab = await storage.create_token(1, "web-tab", "tab", 2, 60, "read", kind="session")
        assert tab.kind == "session" and await storage.find_token("tab") == tab
        assert {t.name: t.kind for t in await storage.list_tokens(1)} == \
            {"ci": "api", "web-tab": "session"}
    finally:
        await storage.close()


async def test_only_one_of_two_nodes_rotating_a_resume_token_gets_a_new_one(
        postgres_url: str) -> None:
    nodes = [PostgresStorage(postgres_url) for _ in range(2)]
    await asyncio.gather(*(node.open() for node in nodes))
    try:
        alice = await nodes[0].create_user("alice", b"h", False, T0)
        old = await nodes[0].create_resume_token(alice.id, "r0", T0, T0 + 60, None, "read")
        rotated = await asyncio.gather(*(
            node.rotate_resume_token(old.id, f"r{i + 1}", T0 + 1, T0 + 61)
            for i, node in enumerate(nodes)))
        [winner] = [r for r in rotated if r is not None]
        assert [r.token_hash for r in await nodes[1].load_resume_tokens(T0)] == [
            winner.token_hash]
    finally:
        await asyncio.gather(*(node.close() for node in nodes))
