"""Tests of the Storage implementations: SQLite files in pytest's tmp_path and
fresh PostgreSQL databases of the session's private server.

Every test runs on both backends (the ``storage`` fixture), except those of
SQLite's own features (its pragmas, its query plans, its file backups), which
take ``sqlite_storage``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import (
    LATEST_VERSION,
    Conflict,
    DirectBacklog,
    InvitationRecord,
    JoinRequestRecord,
    MessageRecord,
    Refused,
    SanctionRecord,
    SqliteStorage,
    Storage,
    StorageError,
    UserBlockRecord,
    UserRecord,
)
from storage.api import Unavailable
from storage.messages import HISTORY_SQL, MAX_MESSAGE_ID_SQL
from tests.backends import both

T0 = 1_700_000_000.0


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "chat.db")


backend = both


@pytest.fixture
async def sqlite_storage(db_path: str) -> AsyncIterator[SqliteStorage]:
    store = SqliteStorage(db_path)
    await store.open()
    yield store
    await store.close()


async def new_user(storage: Storage, name: str, is_admin: bool = False) -> int:
    return (await storage.create_user(name, b"hash-" + name.encode(), is_admin, T0)).id


async def new_room(storage: Storage, name: str, owner_id: int, mode: str = "open") -> int:
    room, _ = await storage.create_room(name, mode, owner_id, T0)
    return room.id


def room_msg(message_id: int, room_id: int, sender_id: int = 1) -> MessageRecord:
    return MessageRecord(id=message_id, sender_id=sender_id, sender_name=f"user{sender_id}",
                         text=f"message {message_id}", ts=T0 + message_id, room_id=room_id)


def direct_msg(message_id: int, sender_id: int, recipient_id: int,
               delivered: bool = False) -> MessageRecord:
    return MessageRecord(id=message_id, sender_id=sender_id, sender_name=f"user{sender_id}",
                         text=f"dm {message_id}", ts=T0 + message_id, recipient_id=recipient_id,
                         delivered=delivered)


async def backlog(storage: Storage, user_id: int,
                  limit: int | None = None) -> list[MessageRecord]:
    """The undelivered direct messages to ``user_id`` that direct_backlog reads."""
    found = await storage.direct_backlog(user_id, limit)
    assert found is not None
    return found.messages


def sanction(room_id: int, user_id: int, until: float | None = None,
             actor_id: int | None = None, reason: str = "spam") -> SanctionRecord:
    return SanctionRecord(room_id, user_id, actor_id, reason, T0, until)


def count_rows(path: str, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def count_messages(path: str) -> int:
    """Stored messages: rows of messages and the messages in blocks."""
    with sqlite3.connect(path) as conn:
        return int(conn.execute(
            "SELECT (SELECT COUNT(*) FROM messages) + "
            "(SELECT COALESCE(SUM(count), 0) FROM message_blocks)").fetchone()[0])


def names_in(directory: Path, prefix: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(prefix))


# -- lifecycle ---------------------------------------------------------------


async def test_open_configures_the_connection(sqlite_storage: SqliteStorage, db_path: str) -> None:
    assert await sqlite_storage.pragmas() == {
        "journal_mode": "wal", "foreign_keys": 1, "synchronous": 1, "busy_timeout": 5000}
    assert await sqlite_storage.schema_version() == LATEST_VERSION
    with sqlite3.connect(db_path) as other:  # WAL is a property of the file
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_foreign_keys_are_enforced(storage: Storage) -> None:
    with pytest.raises(StorageError, match=r"(?i)foreign key"):
        await storage.add_member(room_id=42, user_id=42, role="member", joined_at=T0)


async def test_open_and_close_twice_are_harmless(unopened: Callable[[], Storage]) -> None:
    store = unopened()
    await store.open()
    await store.open()
    await new_user(store, "alice")
    await store.close()
    await store.close()
    await store.open()  # the same object can be opened again
    assert [u.name for u in await store.list_users()] == ["alice"]
    await store.close()


async def test_use_before_open_and_after_close_raises(unopened: Callable[[], Storage],
                                                     db_path: str) -> None:
    store = unopened()
    with pytest.raises(StorageError, match="not open"):
        await store.list_users()
    await store.open()
    await store.close()
    with pytest.raises(StorageError, match="not open"):
        await store.create_user("bob", b"x", False, T0)
    with pytest.raises(StorageError, match=r"not open|pg_dump"):
        await store.backup(db_path + ".bak")


async def test_open_failure_is_a_storage_error(tmp_path: Path) -> None:
    store = SqliteStorage(str(tmp_path / "missing-dir" / "chat.db"))
    with pytest.raises(StorageError, match="unable to open"):
        await store.open()


async def test_an_unopenable_database_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "a-directory.db"
    path.mkdir()
    with pytest.raises(StorageError, match=f"cannot open the database {path}: "):
        await SqliteStorage(str(path)).open()


async def test_a_database_locked_by_another_process_is_unavailable_not_broken(
        sqlite_storage: SqliteStorage, db_path: str) -> None:
    """A sqlite3 shell or backup tool holding the write lock past busy_timeout:
    the dispatcher answers busy with retry_ms (Unavailable), not internal-error."""
    await sqlite_storage._db().execute("PRAGMA busy_timeout = 50")  # (5 s by default)
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(Unavailable, match="locked by another process"):
            await sqlite_storage.create_user("alice", b"hash", False, 0.0)
        other.execute("ROLLBACK")
        assert (await sqlite_storage.create_user("alice", b"hash", False, 0.0)).name == "alice"
    finally:
        other.close()


async def test_data_survives_close_and_reopen(unopened: Callable[[], Storage]) -> None:
    store = unopened()
    await store.open()
    alice = await new_user(store, "alice")
    room = await new_room(store, "lobby", alice)
    await store.append_messages([room_msg(1, room, alice)])
    await store.close()

    again = unopened()
    await again.open()
    try:
        assert (await again.get_user(alice)) is not None
        assert [r.name for r in await again.load_active_rooms()] == ["lobby"]
        assert [m.text for m in await again.room_history(room, 10)] == ["message 1"]
        assert await again.max_message_id() == 1
    finally:
        await again.close()


async def test_in_memory_database_works_but_cannot_be_backed_up(tmp_path: Path) -> None:
    store = SqliteStorage(":memory:")
    await store.open()
    try:
        await new_user(store, "alice")
        assert len(await store.list_users()) == 1
        with pytest.raises(StorageError, match="in-memory"):
            await store.backup(str(tmp_path / "copy.db"))
    finally:
        await store.close()


async def test_concurrent_operations_do_not_share_transactions(storage: Storage) -> None:
    owner = await new_user(storage, "owner")
    results = await asyncio.gather(
        *(storage.create_user(f"user{i}", b"x", False, T0) for i in range(20)),
        storage.create_room("ghost", "open", 9999, T0),  # fails: no such owner
        *(storage.add_notification(owner, "ping", {"i": i}, T0) for i in range(20)),
        return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and isinstance(failures[0], StorageError)
    assert len(await storage.list_users()) == 21
    assert await storage.count_notifications(owner) == 20
    assert await storage.load_active_rooms() == []


async def test_cancelled_operation_leaves_the_connection_usable(storage: Storage) -> None:
    for delay in range(6):
        task = asyncio.create_task(storage.create_user(f"c{delay}", b"x", False, T0))
        for _ in range(delay):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await new_user(storage, f"after{delay}")  # no transaction left open
    names = {u.name for u in await storage.list_users()}
    assert {f"after{d}" for d in range(6)} <= names


# -- users -------------------------------------------------------------------


async def test_user_round_trip(storage: Storage) -> None:
    created = await storage.create_user("Alice", b"\x00hash", True, T0)
    assert created == UserRecord(created.id, "Alice", b"\x00hash", True, T0, {})
    assert await storage.get_user(created.id) == created
    assert await storage.get_user_by_name("aLICE") == created
    assert await storage.get_user(created.id + 1) is None
    assert await storage.get_user_by_name("bob") is None


async def test_user_names_are_unique_case_insensitively(storage: Storage) -> None:
    await new_user(storage, "Alice")
    with pytest.raises(Conflict):
        await storage.create_user("ALICE", b"x", False, T0)
    assert [u.name for u in await storage.list_users()] == ["Alice"]


async def test_user_updates(storage: Storage) -> None:
    bob = await new_user(storage, "bob")
    carol = await new_user(storage, "carol")
    await storage.set_password(bob, b"new")
    await storage.set_admin(bob, True)
    settings_ = {"color": "blue", "ignore": ["x", "y"], "nested": {"n": 1.5, "ok": None}}
    await storage.set_user_settings(bob, settings_)
    user = await storage.get_user(bob)
    assert user is not None
    assert (user.password_hash, user.is_admin, user.settings) == (b"new", True, settings_)
    await storage.set_admin(bob, False)
    assert (await storage.get_user(bob)) == UserRecord(bob, "bob", b"new", False, T0, settings_)
    # A merge replaces only its keys (two nodes changing two settings at once keep both).
    await storage.merge_user_settings(bob, {"color": "off", "theme": "dark"})
    merged = await storage.get_user(bob)
    assert merged is not None and merged.settings == settings_ | {"color": "off", "theme": "dark"}
    assert [u.id for u in await storage.list_users()] == [bob, carol]


async def test_corrupt_json_is_a_storage_error(sqlite_storage: SqliteStorage, db_path: str) -> None:
    alice = await new_user(sqlite_storage, "alice")
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE users SET settings = '[1, 2]' WHERE id = ?", (alice,))
    with pytest.raises(StorageError, match="JSON object"):
        await sqlite_storage.get_user(alice)


async def test_deleted_user_ids_are_never_reused(storage: Storage) -> None:
    first = await new_user(storage, "first")
    await storage.delete_user(first)
    assert await new_user(storage, "second") > first


async def test_delete_user_cascades_but_keeps_their_messages(storage: Storage) -> None:
    owner = await new_user(storage, "owner")
    gone = await new_user(storage, "gone")
    room = await new_room(storage, "lobby", owner)
    await storage.add_member(room, gone, "member", T0 + 1)
    await storage.add_notification(gone, "mention", {}, T0)
    await storage.put_sanction("ban", sanction(room, gone))
    await storage.put_sanction("mute", sanction(room, owner, actor_id=gone))
    await storage.put_invitation(InvitationRecord(room, gone, owner, T0, T0 + 99))
    await storage.put_invitation(InvitationRecord(room, owner, gone, T0, T0 + 99))
    await storage.put_join_request(JoinRequestRecord(room, gone, T0))
    await storage.create_token(gone, "bot", "hash-gone", T0, None)
    await storage.append_messages([room_msg(1, room, gone), direct_msg(2, gone, owner),
                                   direct_msg(3, owner, gone)])

    await storage.delete_user(gone)

    assert await storage.get_user(gone) is None
    assert [m.user_id for m in await storage.load_members()] == [owner]
    assert await storage.list_associations(gone) == []
    assert await storage.count_notifications(gone) == 0
    assert await storage.load_sanctions("ban") == []
    assert [s.actor_id for s in await storage.load_sanctions("mute")] == [None]
    # Their invitation goes; the one they made stays, as their mute of the owner does.
    assert await storage.load_invitations(T0) == [
        InvitationRecord(room, owner, None, T0, T0 + 99)]
    assert await storage.load_join_requests() == []
    assert await storage.find_token("hash-gone") is None
    [kept] = await storage.room_history(room, 10)
    assert (kept.sender_id, kept.sender_name, kept.text) == (0, "user2", "message 1")
    [from_gone] = await backlog(storage, owner)
    assert (from_gone.id, from_gone.sender_id) == (2, 0)
    assert await storage.max_message_id() == 2  # the DM to the deleted user went with them


# -- rooms and memberships ----------------------------------------------------


async def test_create_room_inserts_room_owner_and_association(storage: Storage) -> None:
    owner = await new_user(storage, "owner")
    room, member = await storage.create_room("Lobby", "request", owner, T0)
    assert (room.name, room.mode, room.topic, room.created_at) == ("Lobby", "request", "", T0)
    assert (room.terminated_at, room.settings) == (None, {})
    assert (member.room_id, member.user_id, member.role) == (room.id, owner, "owner")
    assert member.joined_at == member.role_since == T0
    assert await storage.load_active_rooms() == [room]
    assert await storage.load_members() == [member]
    [assoc] = await storage.list_associations(owner)
    assert (assoc.room_id, assoc.room_name, assoc.last_joined) == (room.id, "Lobby", T0)
    assert assoc.room_terminated is False


async def test_create_room_is_atomic(storage: Storage) -> None:
    with pytest.raises(StorageError):
        await storage.create_room("lobby", "open", 12345, T0)  # no such owner
    assert await storage.load_active_rooms() == []
    owner = await new_user(storage, "owner")
    with pytest.raises(StorageError, match=r"(?i)check"):
        await storage.create_room("lobby", "secret", owner, T0)  # unknown mode
    assert await storage.load_active_rooms() == []


async def test_active_room_names_are_unique_and_reusable_after_termination(
        storage: Storage) -> None:
    owner = await new_user(storage, "owner")
    first = await new_room(storage, "Lobby", owner)
    with pytest.raises(Conflict):
        await storage.create_room("LOBBY", "open", owner, T0)
    await storage.terminate_room(first, T0 + 5)
    second = await new_room(storage, "lobby", owner)
    assert second != first
    assert [r.id for r in await storage.load_active_rooms()] == [second]
    with pytest.raises(Conflict):
        await storage.create_room("LoBbY", "open", owner, T0)
    await storage.terminate_room(second, T0 + 6)
    await new_room(storage, "LOBBY", owner)  # twice terminated: still reusable


async def test_terminated_rooms_leave_active_lists(storage: Storage) -> None:
    owner = await new_user(storage, "owner")
    gone = await new_room(storage, "gone", owner)
    kept = await new_room(storage, "kept", owner)
    await storage.terminate_room(gone, T0 + 10)
    await storage.terminate_room(gone, T0 + 20)  # keeps the first time
    assert [r.id for r in await storage.load_active_rooms()] == [kept]
    assert [m.room_id for m in await storage.load_members()] == [kept]
    by_room = {a.room_id: a for a in await storage.list_associations(owner)}
    assert by_room[gone].room_terminated and not by_room[kept].room_terminated


async def test_room_updates(storage: Storage) -> None:
    owner = await new_user(storage, "owner")
    room = await new_room(storage, "lobby", owner)
    await storage.set_room_topic(room, "Welcome! ☕")
    await storage.set_room_mode(room, "private")
    await storage.set_room_settings(room, {"slow_mode": 5, "motd": "hi"})
    [loaded] = await storage.load_active_rooms()
    assert (loaded.topic, loaded.mode) == ("Welcome! ☕", "private")
    assert loaded.settings == {"slow_mode": 5, "motd": "hi"}


async def test_members_join_order_and_conflicts(storage: Storage) -> None:
    owner, bob, carol = [await new_user(storage, n) for n in ("owner", "bob", "carol")]
    room_b = await new_room(storage, "b", owner)
    room_a = await new_room(storage, "a", owner)
    m1 = await storage.add_member(room_b, carol, "member", T0 + 1)
    m2 = await storage.add_member(room_a, bob, "admin", T0 + 1)
    m3 = await storage.add_member(room_b, bob, "member", T0 + 1)
    assert m1.seq < m2.seq < m3.seq
    assert (m2.role, m2.joined_at, m2.role_since) == ("admin", T0 + 1, T0 + 1)
    with pytest.raises(Conflict):
        await storage.add_member(room_b, bob, "member", T0 + 2)
    members = await storage.load_members()
    assert [(m.room_id, m.user_id) for m in members] == [
        (room_b, owner), (room_b, carol), (room_b, bob), (room_a, owner), (room_a, bob)]


async def test_remove_member_keeps_the_association(storage: Storage) -> None:
    owner, bob = await new_user(storage, "owner"), await new_user(storage, "bob")
    room = await new_room(storage, "lobby", owner)
    await storage.add_member(room, bob, "member", T0 + 1)
    await storage.remove_member(room, bob)
    assert [m.user_id for m in await storage.load_members()] == [owner]
    [assoc] = await storage.list_associations(bob)
    assert assoc.last_joined == T0 + 1
    await storage.add_member(room, bob, "member", T0 + 50)  # rejoin: upsert
    [assoc] = await storage.list_associations(bob)
    assert assoc.last_joined == T0 + 50


async def test_set_roles(storage: Storage) -> None:
    owner, bob, carol = [await new_user(storage, n) for n in ("owner", "bob", "carol")]
    room = await new_room(storage, "lobby", owner)
    await storage.add_member(room, bob, "member", T0 + 1)
    await storage.add_member(room, carol, "member", T0 + 1)
    await storage.set_roles(room, [(owner, "admin"), (bob, "owner"), (carol, "member")], T0 + 9)
    await storage.set_roles(room, [], T0 + 10)
    roles = {m.user_id: (m.role, m.role_since) for m in await storage.load_members()}
    assert roles == {owner: ("admin", T0 + 9), bob: ("owner", T0 + 9),
                     carol: ("member", T0 + 1)}  # unchanged role keeps its date
    with pytest.raises(StorageError, match=r"(?i)check"):
        await storage.set_roles(room, [(bob, "member"), (carol, "king")], T0 + 11)
    roles_after = {m.user_id: m.role for m in await storage.load_members()}
    assert roles_after[bob] == "owner"  # the failed call changed nothing


async def test_list_associations_newest_first(storage: Storage) -> None:
    owner, bob = await new_user(storage, "owner"), await new_user(storage, "bob")
    rooms = [await new_room(storage, name, owner) for name in ("r1", "r2", "r3")]
    for room, joined in zip(rooms, (T0 + 5, T0 + 9, T0 + 1), strict=True):
        await storage.add_member(room, bob, "member", joined)
    assocs = await storage.list_associations(bob)
    assert [(a.room_name, a.last_joined) for a in assocs] == [
        ("r2", T0 + 9), ("r1", T0 + 5), ("r3", T0 + 1)]
    assert {a.user_id for a in assocs} == {bob}


async def test_delete_stale_associations_spares_banned_users(storage: Storage) -> None:
    owner, bob, carol = [await new_user(storage, n) for n in ("owner", "bob", "carol")]
    old = await new_room(storage, "old", owner)  # owner joined at T0
    await storage.add_member(old, bob, "member", T0 + 1)
    await storage.add_member(old, carol, "member", T0 + 100)
    await storage.put_sanction("ban", sanction(old, bob))
    await storage.put_sanction("mute", sanction(old, owner))  # a mute does not protect
    assert await storage.delete_stale_associations(T0 + 50) == 0  # members keep theirs
    for left in (owner, bob):
        await storage.remove_member(old, left)
    assert await storage.delete_stale_associations(T0 + 50) == 1  # owner's
    assert await storage.list_associations(owner) == []
    assert len(await storage.list_associations(bob)) == 1
    assert len(await storage.list_associations(carol)) == 1
    await storage.delete_sanction("ban", old, bob)
    assert await storage.delete_stale_associations(T0 + 50) == 1
    assert await storage.delete_stale_associations(T0 + 50) == 0


# -- messages ------------------------------------------------------------------


async def test_room_history_order_limit_and_before(storage: Storage) -> None:
    alice, bob = await new_user(storage, "alice"), await new_user(storage, "bob")
    lobby = await new_room(storage, "lobby", alice)
    other = await new_room(storage, "other", alice)
    batch = [room_msg(i, lobby if i % 3 else other, alice) for i in range(1, 31)]
    batch.append(direct_msg(31, alice, bob))
    await storage.append_messages(batch)
    lobby_ids = [i for i in range(1, 31) if i % 3]
    assert [m.id for m in await storage.room_history(lobby, 100)] == lobby_ids
    assert [m.id for m in await storage.room_history(lobby, 5)] == lobby_ids[-5:]
    assert [m.id for m in await storage.room_history(lobby, 3, before_id=20)] == [16, 17, 19]
    assert await storage.room_history(lobby, 3, before_id=1) == []
    assert await storage.room_history(lobby, 0) == []
    assert [m.id for m in await storage.room_history(other, 2)] == [27, 30]
    assert await storage.max_message_id() == 31


async def test_message_round_trip(storage: Storage) -> None:
    alice = await new_user(storage, "alice")
    room = await new_room(storage, "lobby", alice)
    sticker = MessageRecord(id=7, sender_id=alice, sender_name="alice", text="", ts=T0 + 0.25,
                            room_id=room, kind="sticker",
                            extra={"name": "wave", "size": [64, 64], "alt": "👋"})
    system = MessageRecord(id=8, sender_id=0, sender_name="*", text="topic changed",
                           ts=T0 + 1, room_id=room)
    await storage.append_messages([sticker, system])
    assert await storage.room_history(room, 10) == [sticker, system]


async def test_max_message_id_of_empty_table(storage: Storage) -> None:
    assert await storage.max_message_id() == 0
    await storage.append_messages([])
    assert await storage.max_message_id() == 0


async def test_append_messages_is_one_transaction(storage: Storage) -> None:
    alice = await new_user(storage, "alice")
    room = await new_room(storage, "lobby", alice)
    await storage.append_messages([room_msg(1, room, alice)])
    with pytest.raises(Conflict):
        await storage.append_messages([room_msg(2, room, alice), room_msg(1, room, alice)])
    with pytest.raises(Conflict, match="twice"):
        await storage.append_messages([room_msg(5, room, alice), room_msg(5, room, alice)])
    with pytest.raises(StorageError):
        await storage.append_messages([room_msg(3, room, alice), room_msg(4, 999, alice)])
    assert [m.id for m in await storage.room_history(room, 10)] == [1]


async def test_messages_of_users_deleted_before_the_write(storage: Storage) -> None:
    alice, bob, gone = [await new_user(storage, n) for n in ("alice", "bob", "gone")]
    room = await new_room(storage, "lobby", alice)
    await storage.delete_user(gone)
    await storage.append_messages([room_msg(1, room, gone), direct_msg(2, alice, gone),
                                   direct_msg(3, gone, bob)])
    [kept] = await storage.room_history(room, 10)
    assert (kept.sender_id, kept.sender_name) == (0, f"user{gone}")
    assert [(m.id, m.sender_id) for m in await backlog(storage, bob)] == [
        (3, 0)]
    assert await storage.max_message_id() == 3  # the DM to the deleted user was dropped
    assert await storage.direct_backlog(gone) is None  # the account is gone


async def test_history_uses_the_room_index(sqlite_storage: SqliteStorage, db_path: str) -> None:
    with sqlite3.connect(db_path) as conn:
        plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {HISTORY_SQL}",
                                                       (1, 100, 10)))
    assert "USING INDEX messages_room (room_id=? AND id<?)" in plan
    assert "TEMP B-TREE" not in plan


async def test_direct_message_delivery(storage: Storage) -> None:
    alice, bob = await new_user(storage, "alice"), await new_user(storage, "bob")
    room = await new_room(storage, "lobby", alice)
    await storage.append_messages([
        direct_msg(5, alice, bob), room_msg(6, room, alice), direct_msg(7, bob, alice),
        direct_msg(8, alice, bob), direct_msg(9, alice, bob, delivered=True)])
    assert await storage.recipients_of_undelivered() == sorted([alice, bob])
    pending = await backlog(storage, bob)
    assert [m.id for m in pending] == [5, 8]
    assert all(m.recipient_id == bob and m.room_id is None and not m.delivered
               for m in pending)
    assert await storage.direct_backlog(bob, 1) == DirectBacklog(  # the newest, of all
        [direct_msg(8, alice, bob)], undelivered=2, oldest=5)
    assert await storage.mark_direct_delivered(bob, 5) == 1
    assert await storage.mark_direct_delivered(bob, 4) == 0
    assert [m.id for m in await backlog(storage, bob)] == [8]
    assert await storage.mark_direct_delivered(bob, 8) == 1
    assert await storage.mark_direct_delivered(alice, 8) == 1
    assert await storage.direct_backlog(bob) == DirectBacklog([], undelivered=0, oldest=None)
    assert await storage.recipients_of_undelivered() == []
    assert await backlog(storage, alice) == []
    assert await storage.room_history(room, 10) == [room_msg(6, room, alice)]


@settings(max_examples=25, deadline=None)
@given(rooms=st.lists(st.sampled_from([1, 2]), max_size=40), page=st.integers(1, 7))
def test_paging_back_through_history_yields_every_message_once(
        rooms: list[int], page: int) -> None:
    async def scenario() -> None:
        store = SqliteStorage(":memory:")
        await store.open()
        try:
            owner = await new_user(store, "owner")
            for name in ("one", "two"):
                await new_room(store, name, owner)
            await store.append_messages(
                [room_msg(i, room, owner) for i, room in enumerate(rooms, start=1)])
            seen: list[int] = []
            before: int | None = None
            while chunk := await store.room_history(1, page, before_id=before):
                assert len(chunk) <= page
                assert [m.id for m in chunk] == sorted(m.id for m in chunk)
                seen[:0] = [m.id for m in chunk]
                before = chunk[0].id
            assert seen == [i for i, room in enumerate(rooms, start=1) if room == 1]
        finally:
            await store.close()

    asyncio.run(scenario())


# -- notifications ----------------------------------------------------------


async def test_notifications(storage: Storage) -> None:
    alice, bob = await new_user(storage, "alice"), await new_user(storage, "bob")
    first = await storage.add_notification(alice, "mention", {"room": "lobby", "by": "bob"}, T0)
    second = await storage.add_notification(alice, "invite", {"room": "den"}, T0 + 10)
    await storage.add_notification(bob, "mention", {}, T0 + 20)
    assert first.id < second.id
    assert await storage.list_notifications(alice) == [first, second]
    # The newest ones, oldest first.
    assert await storage.list_notifications(alice, 1) == [second]
    assert await storage.list_notifications(alice, 5) == [first, second]
    # A page of them: the newest after the newest ``skip`` (/notifications 2).
    assert await storage.list_notifications(alice, 1, 1) == [first]
    assert await storage.list_notifications(alice, 5, 2) == []
    assert second.payload == {"room": "den"}
    assert await storage.count_notifications(alice) == 2
    assert await storage.delete_notifications_before(T0 + 10) == 1
    assert await storage.list_notifications(alice) == [second]
    assert await storage.clear_notifications(alice) == 1
    assert await storage.clear_notifications(alice) == 0
    assert await storage.count_notifications(alice) == 0
    assert await storage.count_notifications(bob) == 1


# -- bans and mutes --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ban", "mute"])
async def test_sanctions(storage: Storage, kind: str) -> None:
    owner, bob, carol = [await new_user(storage, n) for n in ("owner", "bob", "carol")]
    room = await new_room(storage, "lobby", owner)
    await storage.put_sanction(kind, sanction(room, bob, until=T0 + 60, actor_id=owner))
    await storage.put_sanction(kind, sanction(room, carol, until=None, reason="forever"))
    await storage.put_sanction(kind, sanction(room, bob, until=T0 + 30, reason="again"))
    other = "mute" if kind == "ban" else "ban"
    assert await storage.load_sanctions(other) == []
    assert await storage.load_sanctions(kind) == [
        sanction(room, bob, until=T0 + 30, reason="again"),
        sanction(room, carol, until=None, reason="forever")]
    assert await storage.expired_sanctions(kind, T0 + 29) == []
    assert await storage.expired_sanctions(kind, T0 + 30) == [
        sanction(room, bob, until=T0 + 30, reason="again")]
    # Deleted as run out only while it is: neither early nor one without an end.
    assert await storage.delete_sanction(kind, room, bob, ran_out_by=T0 + 29) is False
    assert await storage.delete_sanction(kind, room, carol, ran_out_by=T0 + 30) is False
    assert await storage.delete_sanction(kind, room, bob, ran_out_by=T0 + 30) is True
    assert [s.user_id for s in await storage.load_sanctions(kind)] == [carol]
    assert await storage.delete_sanction(kind, room, carol) is True
    assert await storage.delete_sanction(kind, room, carol) is False
    assert await storage.load_sanctions(kind) == []


async def test_unknown_sanction_kind(storage: Storage) -> None:
    owner = await new_user(storage, "owner")
    with pytest.raises(ValueError, match="'kick'"):
        await storage.put_sanction("kick", sanction(1, owner))
    with pytest.raises(ValueError):
        await storage.delete_sanction("bans", 1, owner)
    with pytest.raises(ValueError):
        await storage.load_sanctions("")
    with pytest.raises(ValueError):
        await storage.expired_sanctions("Ban", T0)


# -- invitations and join requests -------------------------------------------------


async def test_invitations_are_single_use_and_expire(storage: Storage) -> None:
    owner, bob, carol = [await new_user(storage, n) for n in ("owner", "bob", "carol")]
    room = await new_room(storage, "den", owner, mode="private")
    await storage.put_invitation(InvitationRecord(room, bob, owner, T0, T0 + 10))
    renewed = InvitationRecord(room, bob, owner, T0 + 5, T0 + 100)
    await storage.put_invitation(renewed)  # upsert
    expiring = InvitationRecord(room, carol, owner, T0, T0 + 20)
    await storage.put_invitation(expiring)
    assert await storage.load_invitations(T0 + 1) == [expiring, renewed]
    assert await storage.load_invitations(T0 + 20) == [renewed]
    assert await storage.take_invitation(room, bob, T0 + 50) == renewed
    assert await storage.take_invitation(room, bob, T0 + 50) is None  # used up
    assert await storage.take_invitation(room, carol, T0 + 20) is None  # expired ...
    assert await storage.load_invitations(T0) == []  # ... and deleted
    assert await storage.take_invitation(room, owner, T0) is None


async def test_delete_expired_invitations(storage: Storage) -> None:
    owner, bob, carol = [await new_user(storage, n) for n in ("owner", "bob", "carol")]
    room = await new_room(storage, "den", owner)
    await storage.put_invitation(InvitationRecord(room, bob, owner, T0, T0 + 10))
    await storage.put_invitation(InvitationRecord(room, carol, owner, T0, T0 + 30))
    assert await storage.delete_expired_invitations(T0 + 10) == 1
    assert [i.user_id for i in await storage.load_invitations(T0)] == [carol]
    assert await storage.delete_expired_invitations(T0 + 10) == 0
    assert await storage.delete_invitation(room, carol)
    assert not await storage.delete_invitation(room, carol)
    assert await storage.load_invitations(T0) == []


async def test_join_requests(storage: Storage) -> None:
    owner, bob, carol = [await new_user(storage, n) for n in ("owner", "bob", "carol")]
    room = await new_room(storage, "club", owner, mode="request")
    assert await storage.put_join_request(JoinRequestRecord(room, bob, T0 + 1)) is True
    assert await storage.put_join_request(JoinRequestRecord(room, carol, T0 + 2)) is True
    # Asked again: the time is refreshed, and it is no new request.
    assert await storage.put_join_request(JoinRequestRecord(room, bob, T0 + 3)) is False
    assert await storage.load_join_requests() == [
        JoinRequestRecord(room, carol, T0 + 2), JoinRequestRecord(room, bob, T0 + 3)]
    assert await storage.delete_join_request(room, bob) is True
    assert await storage.delete_join_request(room, bob) is False
    assert await storage.load_join_requests() == [JoinRequestRecord(room, carol, T0 + 2)]


# -- audit ---------------------------------------------------------------------


async def test_audit_log(storage: Storage) -> None:
    await storage.append_audit(T0, "alice", "ban", "bob", "Lobby", "spam")
    await storage.append_audit(T0 + 1, None, "expire", "bob", "lobby", "")
    await storage.append_audit(T0 + 2, "root", "shutdown", None, None, "maintenance")
    await storage.append_audit(T0 + 3, "carol", "kick", "dave", "den", "")
    entries = await storage.list_audit(10)
    assert [e.action for e in entries] == ["ban", "expire", "shutdown", "kick"]
    assert entries[0].id < entries[1].id
    first = entries[0]
    assert (first.ts, first.actor, first.target, first.room, first.reason) == (
        T0, "alice", "bob", "Lobby", "spam")
    assert (entries[1].actor, entries[2].target, entries[2].room) == (None, None, None)
    assert [e.action for e in await storage.list_audit(2)] == ["shutdown", "kick"]
    assert [e.action for e in await storage.list_audit(10, room="LOBBY")] == ["ban", "expire"]
    assert [e.action for e in await storage.list_audit(1, room="lobby")] == ["expire"]
    assert await storage.list_audit(10, room="nowhere") == []
    assert await storage.list_audit(0) == []


async def test_audit_of_a_room_by_id_and_the_rooms_that_ended(storage: Storage) -> None:
    """A name taken again after its room ended: entries follow the room's id, and the
    ended room is found by id, or by name (any case) as the one that ended last."""
    owner = await new_user(storage, "owner")
    first = await new_room(storage, "Den", owner)
    await storage.append_audit(T0, "owner", "create", None, "Den", "", first)
    await storage.append_audit(T0 + 1, "owner", "promote", "bob", "Den", "", first)
    await storage.append_audit(T0 + 2, "bob", "owner", "carol", "Den", "", first)
    await storage.append_audit(T0 + 3, "owner", "kick", "dave", "Den", "", first)
    await storage.terminate_room(first, T0 + 4)
    second = await new_room(storage, "den", owner)
    await storage.append_audit(T0 + 5, "erin", "create", None, "den", "", second)
    assert [e.actor for e in await storage.list_audit(10, room_id=second)] == ["erin"]
    assert [e.action for e in await storage.list_audit(2, room_id=first)] == ["owner", "kick"]
    assert await storage.audit_admins(first) == {"owner", "bob", "carol"}
    assert await storage.audit_admins(second) == {"erin"}
    assert await storage.ended_room(room_id=first) == (first, "Den")
    assert await storage.ended_room(room_id=second) is None
    assert await storage.ended_room(name="DEN") == (first, "Den")
    await storage.terminate_room(second, T0 + 6)
    assert await storage.ended_room(name="den") == (second, "den")
    assert await storage.ended_room(name="nowhere") is None


# -- API tokens ------------------------------------------------------------------


async def test_tokens(storage: Storage) -> None:
    alice, bob = await new_user(storage, "alice"), await new_user(storage, "bob")
    ci = await storage.create_token(alice, "ci", "h1", T0, T0 + 3600)
    bot = await storage.create_token(alice, "bot", "h2", T0 + 1, None)
    bobs = await storage.create_token(bob, "ci", "h3", T0, None)  # names are per user
    with pytest.raises(Conflict):
        await storage.create_token(alice, "CI", "h4", T0, None)
    with pytest.raises(Conflict):
        await storage.create_token(bob, "other", "h1", T0, None)  # the same secret
    assert (ci.user_id, ci.name, ci.token_hash, ci.expires_at) == (alice, "ci", "h1", T0 + 3600)
    assert await storage.find_token("h2") == bot
    assert await storage.find_token("nope") is None
    assert await storage.list_tokens(alice) == [ci, bot]
    assert await storage.delete_token(alice, "ci") is True
    assert await storage.delete_token(alice, "ci") is False
    assert await storage.list_tokens(alice) == [bot]
    assert await storage.list_tokens(bob) == [bobs]


# -- blocks of users --------------------------------------------------------------


async def test_user_blocks(storage: Storage) -> None:
    alice, bob, carol = [await new_user(storage, name) for name in ("alice", "bob", "carol")]
    await storage.put_user_block(UserBlockRecord(alice, bob, T0))
    await storage.put_user_block(UserBlockRecord(alice, carol, T0 + 1))
    await storage.put_user_block(UserBlockRecord(carol, alice, T0 + 2))
    await storage.put_user_block(UserBlockRecord(alice, bob, T0 + 9))  # kept as it was
    assert await storage.load_user_blocks() == [
        UserBlockRecord(alice, bob, T0), UserBlockRecord(alice, carol, T0 + 1),
        UserBlockRecord(carol, alice, T0 + 2)]
    assert await storage.list_user_blocks(alice) == [
        UserBlockRecord(alice, bob, T0), UserBlockRecord(alice, carol, T0 + 1)]
    assert await storage.list_user_blocks(bob) == []
    with pytest.raises(StorageError):
        await storage.put_user_block(UserBlockRecord(bob, bob, T0))  # nobody blocks themselves
    assert await storage.delete_user_block(alice, carol) is True
    assert await storage.delete_user_block(alice, carol) is False
    await storage.delete_user(alice)  # blocks by and of a deleted account go with it
    assert await storage.load_user_blocks() == []


# -- backup ----------------------------------------------------------------------


async def test_backup_is_a_readable_copy(sqlite_storage: SqliteStorage, tmp_path: Path) -> None:
    alice, bob = await new_user(sqlite_storage, "alice"), await new_user(sqlite_storage, "bob")
    room = await new_room(sqlite_storage, "lobby", alice)
    await sqlite_storage.put_sanction("ban", sanction(room, bob))
    await sqlite_storage.append_messages([room_msg(i, room, alice) for i in range(1, 101)])
    target = str(tmp_path / "backups" / "copy.db")
    (tmp_path / "backups").mkdir()
    await sqlite_storage.backup(target)
    await sqlite_storage.append_messages([room_msg(101, room, alice)])  # after: not in the copy

    with sqlite3.connect(target) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not (tmp_path / "backups" / "copy.db.partial").exists()
    copy = SqliteStorage(target)
    await copy.open()
    try:
        assert await copy.list_users() == await sqlite_storage.list_users()
        assert await copy.load_sanctions("ban") == await sqlite_storage.load_sanctions("ban")
        assert await copy.room_history(room, 1000) == (
            await sqlite_storage.room_history(room, 1000))[:100]
        assert await copy.schema_version() == LATEST_VERSION
    finally:
        await copy.close()
    await sqlite_storage.backup(target)  # replaces an existing backup
    assert count_messages(target) == 101


async def test_backup_while_writing_is_consistent(sqlite_storage: SqliteStorage,
                                                  tmp_path: Path) -> None:
    alice = await new_user(sqlite_storage, "alice")
    room = await new_room(sqlite_storage, "lobby", alice)

    async def write() -> None:
        for start in range(1, 2001, 100):
            await sqlite_storage.append_messages(
                [room_msg(i, room, alice) for i in range(start, start + 100)])

    target = str(tmp_path / "copy.db")
    await asyncio.gather(write(), sqlite_storage.backup(target))
    copied = count_messages(target)
    assert copied % 100 == 0  # whole batches only
    with sqlite3.connect(target) as conn:
        assert conn.execute(MAX_MESSAGE_ID_SQL).fetchone()[0] == copied


async def test_backup_failure_leaves_no_partial_file(
        sqlite_storage: SqliteStorage, tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        await sqlite_storage.backup(str(tmp_path / "missing" / "copy.db"))
    taken = tmp_path / "taken"
    taken.mkdir()  # the copy succeeds, replacing a directory by it fails
    with pytest.raises(StorageError):
        await sqlite_storage.backup(str(taken))
    assert names_in(tmp_path, "taken") == ["taken"]  # no taken.partial left behind


async def test_stale_associations_spare_current_members(storage: Storage) -> None:
    owner = await storage.create_user("owner", b"h", False, 1.0)
    room, _ = await storage.create_room("keep", "open", owner.id, 1.0)
    assert await storage.delete_stale_associations(before=100.0) == 0
    assert [a.room_id for a in await storage.list_associations(owner.id)] == [room.id]
    await storage.remove_member(room.id, owner.id)
    assert await storage.delete_stale_associations(before=100.0) == 1


async def test_history_of_terminated_rooms_is_deleted_after_retention(storage: Storage) -> None:
    owner = await storage.create_user("owner", b"h", False, 1.0)
    ended, _ = await storage.create_room("ended", "open", owner.id, 1.0)
    live, _ = await storage.create_room("live", "open", owner.id, 1.0)
    await storage.append_messages([
        MessageRecord(1, owner.id, "owner", "old", 2.0, room_id=ended.id),
        MessageRecord(2, owner.id, "owner", "kept", 2.0, room_id=live.id)])
    await storage.terminate_room(ended.id, 10.0)
    assert await storage.delete_terminated_history(before=5.0) == 0
    assert await storage.delete_terminated_history(before=11.0) == 1
    assert [m.text for m in await storage.room_history(live.id, 10)] == ["kept"]
    assert await storage.room_history(ended.id, 10) == []


async def test_files_and_keys_round_trip(storage: Storage) -> None:
    from storage.records import FileRecord, KeyRecord

    owner = await storage.create_user("owner", b"h", False, 1.0)
    room, _ = await storage.create_room("files", "open", owner.id, 1.0)
    draft = FileRecord(0, room.id, owner.id, "owner", "a.txt", 5, "text/plain", "ab12",
                       "ab12", "hello", 2.0)
    stored = await storage.add_file(draft)
    assert stored.id > 0 and stored.name == "a.txt"
    assert await storage.get_file(stored.id) == stored
    assert await storage.list_files(room.id) == [stored]
    assert await storage.user_file_usage(owner.id) == (1, 5)
    assert await storage.files_of_terminated_rooms(10.0) == []
    await storage.terminate_room(room.id, 3.0)
    assert await storage.files_of_terminated_rooms(10.0) == [stored]
    dropped: list[str] = []

    async def drop(key: str) -> None:
        dropped.append(key)

    # The deletion names the blob its row used; the blob is dropped after it.
    assert await storage.delete_file(stored.id) == "ab12"
    assert await storage.delete_file(stored.id) is None
    assert dropped == []
    assert await storage.drop_unused_blob("ab12", drop)
    assert dropped == ["ab12"]
    assert await storage.get_user_keys([]) == []
    await storage.put_user_key(KeyRecord(owner.id, "x1", None, "fp1", 1.0))
    await storage.put_user_key(KeyRecord(owner.id, "x2", "m2", "fp2", 2.0))
    assert await storage.get_user_keys([owner.id, 999]) == [
        KeyRecord(owner.id, "x2", "m2", "fp2", 2.0)]


async def test_message_text_round_trips_exactly(storage: Storage, backend: str) -> None:
    """Batches travel as bound parameters: any text must come back unchanged."""
    owner = await storage.create_user("owner", b"h", False, 1.0)
    room, _ = await storage.create_room("texts", "open", owner.id, 1.0)
    texts = ['quote " and \\ backslash', "line\nbreak\ttab", "emoji 😀 and ünïcödé",
             "", "{\"looks\": [\"like json\"]}", "a" * 4000]
    if backend == "sqlite":  # PostgreSQL's text has no NUL (the codecs remove it)
        texts.append("nul \x00 byte")
    batch = [MessageRecord(i + 1, owner.id, "owner", text, 1.5 + i / 1000,
                           room_id=room.id, extra={"k": text} if i % 2 else {})
             for i, text in enumerate(texts)]
    batch.append(MessageRecord(len(texts) + 1, -7, "guest", "from a guest", 3.0,
                               room_id=room.id))
    await storage.append_messages(batch)
    stored = await storage.room_history(room.id, 100)
    assert [m.text for m in stored] == [*texts, "from a guest"]
    assert [m.extra for m in stored[:-1]] == [m.extra for m in batch[:-1]]
    assert [m.ts for m in stored] == [m.ts for m in batch]
    assert stored[-1].sender_id == 0 and stored[-1].sender_name == "guest"


async def test_a_text_the_database_cannot_hold_is_refused(storage: Storage,
                                                          backend: str) -> None:
    """Refused, not a passing failure: the writer drops such a message instead of
    retrying it forever (PostgreSQL's text cannot hold NUL)."""
    owner = await storage.create_user("owner", b"h", False, 1.0)
    room, _ = await storage.create_room("nul", "open", owner.id, 1.0)
    nul = MessageRecord(1, owner.id, "owner", "nul \x00", 2.0, room_id=room.id)
    if backend == "sqlite":
        await storage.append_messages([nul])
        assert [m.text for m in await storage.room_history(room.id, 1)] == ["nul \x00"]
    else:
        with pytest.raises(Refused):
            await storage.append_messages([nul])


async def test_a_batch_larger_than_a_chunk_keeps_its_order(storage: Storage) -> None:
    from storage.chunks import CHUNK_ROWS

    owner = await storage.create_user("owner", b"h", False, 1.0)
    room, _ = await storage.create_room("chunks", "open", owner.id, 1.0)
    count = CHUNK_ROWS * 2 + 7
    await storage.append_messages([
        MessageRecord(i, owner.id, "owner", f"m{i}", float(i), room_id=room.id)
        for i in range(1, count + 1)])
    stored = await storage.room_history(room.id, count)
    assert [m.id for m in stored] == list(range(1, count + 1))
    assert await storage.max_message_id() == count
