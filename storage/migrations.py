"""Numbered schema migrations of the SQLite database.

The schema version lives in ``PRAGMA user_version`` (0 for a new file). Each
migration runs in its own ``BEGIN IMMEDIATE`` transaction together with the
bump of ``user_version``, so a crash or an error leaves the database at the
previous version, never half-migrated. A database whose version is newer than
:data:`LATEST_VERSION` is refused: this code never downgrades silently.

Rules for new migrations: append, never edit a released one; a step is an SQL
script (statements separated by ``;``) or an async callable receiving the
connection, already inside the transaction (it must not commit). The
connection must be in autocommit mode (``isolation_level=None``).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

import aiosqlite

from storage.api import StorageError

log = logging.getLogger("storage.migrations")

MigrationStep = str | Callable[[aiosqlite.Connection], Awaitable[None]]


class Migration(NamedTuple):
    """One schema step: the version it produces, what it does, and how."""

    version: int
    description: str
    step: MigrationStep


# Names are unique case-insensitively (ASCII letters only, as NOCASE folds).
# Ids of users, rooms, memberships, notifications and tokens are AUTOINCREMENT
# so an id held in memory can never come to mean a newer row.
FOUNDATION = """
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL COLLATE NOCASE UNIQUE,
    password_hash BLOB    NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    created_at    REAL    NOT NULL,
    settings      TEXT    NOT NULL DEFAULT '{}'
);

CREATE TABLE rooms (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL,
    mode          TEXT    NOT NULL DEFAULT 'open'
                          CHECK (mode IN ('open', 'request', 'private')),
    topic         TEXT    NOT NULL DEFAULT '',
    created_at    REAL    NOT NULL,
    terminated_at REAL,
    settings      TEXT    NOT NULL DEFAULT '{}'
);
-- A terminated room frees its name for a new room.
CREATE UNIQUE INDEX rooms_active_name ON rooms (name COLLATE NOCASE)
    WHERE terminated_at IS NULL;

CREATE TABLE members (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id    INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at  REAL    NOT NULL,
    role_since REAL    NOT NULL,
    UNIQUE (room_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

-- Rooms a user joined at some time (for /myrooms); outlives the membership.
CREATE TABLE user_rooms (
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id     INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    last_joined REAL    NOT NULL,
    PRIMARY KEY (user_id, room_id)
) WITHOUT ROWID;
CREATE INDEX user_rooms_room ON user_rooms (room_id);
CREATE INDEX user_rooms_last_joined ON user_rooms (last_joined);

-- Room messages (room_id set) and direct messages (recipient_id set). Ids
-- come from the daemon. A deleted sender leaves sender_id NULL and keeps
-- sender_name; a deleted recipient takes their direct messages along.
CREATE TABLE messages (
    id           INTEGER PRIMARY KEY,
    room_id      INTEGER REFERENCES rooms (id) ON DELETE CASCADE,
    recipient_id INTEGER REFERENCES users (id) ON DELETE CASCADE,
    sender_id    INTEGER REFERENCES users (id) ON DELETE SET NULL,
    sender_name  TEXT    NOT NULL,
    text         TEXT    NOT NULL,
    ts           REAL    NOT NULL,
    kind         TEXT    NOT NULL DEFAULT 'text',
    extra        TEXT    NOT NULL DEFAULT '{}',
    delivered    INTEGER NOT NULL DEFAULT 1 CHECK (delivered IN (0, 1)),
    CHECK ((room_id IS NULL) <> (recipient_id IS NULL))
);
CREATE INDEX messages_room ON messages (room_id, id) WHERE room_id IS NOT NULL;
CREATE INDEX messages_recipient ON messages (recipient_id, id)
    WHERE recipient_id IS NOT NULL;
CREATE INDEX messages_undelivered ON messages (recipient_id, id) WHERE delivered = 0;
CREATE INDEX messages_sender ON messages (sender_id) WHERE sender_id IS NOT NULL;

CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL,
    payload    TEXT    NOT NULL DEFAULT '{}',
    created_at REAL    NOT NULL
);
CREATE INDEX notifications_user ON notifications (user_id, id);
CREATE INDEX notifications_created ON notifications (created_at);
"""

GOVERNANCE = """
CREATE TABLE bans (
    room_id    INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    actor_id   INTEGER REFERENCES users (id) ON DELETE SET NULL,
    reason     TEXT    NOT NULL DEFAULT '',
    created_at REAL    NOT NULL,
    until      REAL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
CREATE INDEX bans_user ON bans (user_id);
CREATE INDEX bans_actor ON bans (actor_id) WHERE actor_id IS NOT NULL;
CREATE INDEX bans_until ON bans (until) WHERE until IS NOT NULL;

CREATE TABLE mutes (
    room_id    INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    actor_id   INTEGER REFERENCES users (id) ON DELETE SET NULL,
    reason     TEXT    NOT NULL DEFAULT '',
    created_at REAL    NOT NULL,
    until      REAL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
CREATE INDEX mutes_user ON mutes (user_id);
CREATE INDEX mutes_actor ON mutes (actor_id) WHERE actor_id IS NOT NULL;
CREATE INDEX mutes_until ON mutes (until) WHERE until IS NOT NULL;

CREATE TABLE invitations (
    room_id    INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    inviter_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at REAL    NOT NULL,
    expires_at REAL    NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
CREATE INDEX invitations_user ON invitations (user_id);
CREATE INDEX invitations_inviter ON invitations (inviter_id);
CREATE INDEX invitations_expires ON invitations (expires_at);

CREATE TABLE join_requests (
    room_id    INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at REAL    NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
CREATE INDEX join_requests_user ON join_requests (user_id);

-- Names, not ids: the audit trail outlives the users and rooms it mentions.
CREATE TABLE audit (
    id     INTEGER PRIMARY KEY,
    ts     REAL NOT NULL,
    actor  TEXT,
    action TEXT NOT NULL,
    target TEXT,
    room   TEXT COLLATE NOCASE,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_room ON audit (room, id) WHERE room IS NOT NULL;
"""

API_TOKENS = """
CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL COLLATE NOCASE,
    token_hash TEXT    NOT NULL UNIQUE,
    created_at REAL    NOT NULL,
    expires_at REAL,
    UNIQUE (user_id, name)
);
"""

# Audit entries of a room are told apart by the room's id: a terminated
# room's name may be taken again, and its old entries must not follow.
AUDIT_ROOM_ID = """
ALTER TABLE audit ADD COLUMN room_id INTEGER;
CREATE INDEX audit_room_id ON audit (room_id, id);
"""

CONTENT_AND_KEYS = """
CREATE TABLE files (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id       INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    uploader_id   INTEGER REFERENCES users(id) ON DELETE SET NULL,
    uploader_name TEXT NOT NULL,
    name          TEXT NOT NULL,
    size          INTEGER NOT NULL CHECK (size >= 0),
    mime          TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    blob_key      TEXT NOT NULL,
    preview       TEXT NOT NULL DEFAULT '',
    created_at    REAL NOT NULL
);
CREATE INDEX files_room ON files (room_id, id);
CREATE INDEX files_uploader ON files (uploader_id);
CREATE INDEX files_blob ON files (blob_key);
CREATE TABLE user_keys (
    user_id     INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    x25519      TEXT NOT NULL,
    mlkem       TEXT,
    fingerprint TEXT NOT NULL,
    updated_at  REAL NOT NULL
);
"""

# Every message insert maintained an index of senders, kept only so that
# deleting an account would not scan the messages; accounts are deleted rarely
# and messages are written all the time, so the scan is the better trade.
DROP_SENDER_INDEX = """
DROP INDEX IF EXISTS messages_sender;
"""

# Plain room text is stored in blocks of up to 64 messages of a room a row
# (storage/blocks.py has the format). The key is the block's last message id,
# so the largest stored id is found at once; the index keeps a room's blocks
# in order (its entries end with that key). Older rows stay in messages and
# are read with the blocks. The checks refuse a row that could not be read
# back: 32 bytes of numbers per message, ids that fit the count.
MESSAGE_BLOCKS = """
CREATE TABLE message_blocks (
    last_id  INTEGER PRIMARY KEY,
    room_id  INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    first_id INTEGER NOT NULL,
    count    INTEGER NOT NULL CHECK (typeof(count) = 'integer' AND count > 0),
    numbers  BLOB    NOT NULL CHECK (typeof(numbers) = 'blob'),
    strings  TEXT    NOT NULL CHECK (typeof(strings) = 'text'),
    CHECK (first_id <= last_id AND count <= last_id - first_id + 1),
    CHECK (length(numbers) = 32 * count)
);
CREATE INDEX message_blocks_room ON message_blocks (room_id);
"""

# A user refusing another user's direct messages (/block). Not to be confused
# with message_blocks: these are blocks of users. Read whole at start-up; the
# index serves the cascade when the blocked account is deleted.
USER_BLOCKS = """
CREATE TABLE user_blocks (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at REAL    NOT NULL,
    PRIMARY KEY (user_id, blocked_id),
    CHECK (user_id <> blocked_id)
) WITHOUT ROWID;
CREATE INDEX user_blocks_blocked ON user_blocks (blocked_id);
"""

# A room's modes beyond who may join (a key, a member limit, moderated,
# secret, no external messages, topic lock), and the voice role, which the
# members table's CHECK did not allow: SQLite cannot change a CHECK, so the
# table is rebuilt with its rows, and its AUTOINCREMENT counter carried over so
# that a join order (seq) is never handed out twice.
ROOM_MODES = """
ALTER TABLE rooms ADD COLUMN key TEXT;
ALTER TABLE rooms ADD COLUMN member_limit INTEGER CHECK (member_limit IS NULL OR member_limit > 0);
ALTER TABLE rooms ADD COLUMN moderated INTEGER NOT NULL DEFAULT 0 CHECK (moderated IN (0, 1));
ALTER TABLE rooms ADD COLUMN secret INTEGER NOT NULL DEFAULT 0 CHECK (secret IN (0, 1));
ALTER TABLE rooms ADD COLUMN no_external INTEGER NOT NULL DEFAULT 1
    CHECK (no_external IN (0, 1));
ALTER TABLE rooms ADD COLUMN topic_lock INTEGER NOT NULL DEFAULT 1 CHECK (topic_lock IN (0, 1));

CREATE TABLE members_with_voice (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id    INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'voice', 'member')),
    joined_at  REAL    NOT NULL,
    role_since REAL    NOT NULL,
    UNIQUE (room_id, user_id)
);
INSERT INTO members_with_voice (seq, room_id, user_id, role, joined_at, role_since)
    SELECT seq, room_id, user_id, role, joined_at, role_since FROM members;
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'members_with_voice', seq FROM sqlite_sequence WHERE name = 'members'
    AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'members_with_voice');
UPDATE sqlite_sequence SET seq = max(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'members'))
    WHERE name = 'members_with_voice'
    AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'members');
DROP TABLE members;
ALTER TABLE members_with_voice RENAME TO members;
CREATE INDEX members_user ON members (user_id);
"""

# Incoming webhooks: a room admin's URL that posts into the room as a named
# bot. Only the SHA-256 of the secret is kept (like api_tokens); a revoked
# hook is deleted (the audit log keeps that it existed).
WEBHOOKS = """
CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id     INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL COLLATE NOCASE,
    secret_hash TEXT    NOT NULL,
    creator_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  REAL    NOT NULL,
    UNIQUE (room_id, name)
);
CREATE INDEX webhooks_creator ON webhooks (creator_id);
"""

# Bots are accounts of their own kind, owned by the user who made them (an
# owner's deletion leaves them, owner unknown, for an admin to delete). Tokens
# carry the scopes they grant (a space-separated set; existing tokens keep
# every scope, as they had) and when they were last used (written in batches,
# not per login). Resume tokens let a client log in again without bcrypt:
# only their SHA-256 is kept; one made from an API token login keeps that
# token's scopes and goes with it.
BOTS_SCOPES_RESUME = """
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'user' CHECK (kind IN ('user', 'bot'));
ALTER TABLE users ADD COLUMN owner_id INTEGER REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX users_owner ON users (owner_id) WHERE owner_id IS NOT NULL;
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT 'read post moderate admin';
ALTER TABLE api_tokens ADD COLUMN last_used_at REAL;
CREATE TABLE resume_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   TEXT    NOT NULL UNIQUE,
    created_at   REAL    NOT NULL,
    expires_at   REAL    NOT NULL,
    api_token_id INTEGER REFERENCES api_tokens (id) ON DELETE CASCADE,
    scopes       TEXT    NOT NULL
);
CREATE INDEX resume_tokens_user ON resume_tokens (user_id);
CREATE INDEX resume_tokens_api ON resume_tokens (api_token_id) WHERE api_token_id IS NOT NULL;
"""

# A conversation of direct messages is read from both ends, newest first (IRC's
# CHATHISTORY with a nick): what one user received from the other, and what they
# sent it. Partial indexes, so only direct messages (a small share of the rows;
# plain room text is in blocks) pay for them on insert. The second also lists a
# user's partners by what they sent.
CONVERSATIONS = """
CREATE INDEX messages_conversation ON messages (recipient_id, sender_id, id)
    WHERE recipient_id IS NOT NULL;
CREATE INDEX messages_sent ON messages (sender_id, recipient_id, id)
    WHERE recipient_id IS NOT NULL;
"""

# Facts about the database itself, as a cluster database has them: whether a
# daemon serving it stopped with everything written, and where the message ids
# of the numbering since its last unclean stop begin (chatd.domain.sequence).
META = """
CREATE TABLE chatd_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# An invitation is the room's decision, as a ban is: it outlives the account of
# the admin who made it (whose id goes, as a ban's actor does) instead of going
# with it. SQLite cannot change a foreign key, so the table is rebuilt.
KEPT_INVITATIONS = """
CREATE TABLE invitations_kept (
    room_id    INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    inviter_id INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at REAL    NOT NULL,
    expires_at REAL    NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
INSERT INTO invitations_kept (room_id, user_id, inviter_id, created_at, expires_at)
    SELECT room_id, user_id, inviter_id, created_at, expires_at FROM invitations;
DROP TABLE invitations;
ALTER TABLE invitations_kept RENAME TO invitations;
CREATE INDEX invitations_user ON invitations (user_id);
CREATE INDEX invitations_inviter ON invitations (inviter_id) WHERE inviter_id IS NOT NULL;
CREATE INDEX invitations_expires ON invitations (expires_at);
"""

# A webhook made from a session logged in with an API token (or a resume token
# made from one) remembers that token: once it is revoked or expired, the hook
# posts no more. No foreign key: the hook stays when its token goes, shown dead
# until an admin revokes it (an id is never handed out again, so a missing token
# is a revoked one). Hooks made before, and from password sessions, hold NULL.
WEBHOOK_TOKENS = """
ALTER TABLE webhooks ADD COLUMN token_id INTEGER;
"""

# Tokens have a kind: 'api', made by a user for a script or a bot, or 'session',
# made by the web client for a browser tab. A webhook made from a session
# logged in with an 'api' token lives as long as the token (version 15); one
# made with a 'session' token lives as the account, as a password session's.
# Every token made before is an 'api' one, as it was taken to be.
TOKEN_KINDS = """
ALTER TABLE api_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'api'
    CHECK (kind IN ('api', 'session'));
"""

# How many of a user's notifications were dropped, the oldest, to keep at most
# limits.max_notifications: counted in the transaction that drops them, so the
# user is told exactly, and reset when they read or clear their notifications.
# Users with none dropped have no row.
NOTIFICATIONS_DROPPED = """
CREATE TABLE notifications_dropped (
    user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    dropped INTEGER NOT NULL CHECK (dropped > 0)
);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "foundation: users, rooms, members, messages, associations, notifications",
              FOUNDATION),
    Migration(2, "governance: bans, mutes, invitations, join requests, audit", GOVERNANCE),
    Migration(3, "API tokens", API_TOKENS),
    Migration(4, "audit entries keep the room's id", AUDIT_ROOM_ID),
    Migration(5, "uploaded files and end-to-end public keys", CONTENT_AND_KEYS),
    Migration(6, "no index of message senders (cheaper writes)", DROP_SENDER_INDEX),
    Migration(7, "plain room text stored in blocks of messages", MESSAGE_BLOCKS),
    Migration(8, "users who block another user's direct messages", USER_BLOCKS),
    Migration(9, "room modes (key, limit, moderated, secret, n, t) and the voice role",
              ROOM_MODES),
    Migration(10, "incoming webhooks of rooms", WEBHOOKS),
    Migration(11, "bot accounts, token scopes and last use, resume tokens", BOTS_SCOPES_RESUME),
    Migration(12, "indexes of direct-message conversations", CONVERSATIONS),
    Migration(13, "facts about the database (chatd_meta)", META),
    Migration(14, "invitations outlive the account of the admin who made them",
              KEPT_INVITATIONS),
    Migration(15, "webhooks remember the API token that made them", WEBHOOK_TOKENS),
    Migration(16, "API tokens have a kind: a script's (api) or a browser tab's (session)",
              TOKEN_KINDS),
    Migration(17, "a count of the notifications each user had dropped past the bound",
              NOTIFICATIONS_DROPPED),
)

LATEST_VERSION: int = MIGRATIONS[-1].version


def split_statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (comments and triggers are safe)."""
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if _has_code(buffer):
                statements.append(buffer.strip())
            buffer = ""
    return statements


def _has_code(statement: str) -> bool:
    lines = (line.split("--", 1)[0] for line in statement.splitlines())
    return bool("".join(lines).strip(" \t;"))


def check_sequence(migrations: Sequence[Migration]) -> int:
    """Return the last version of ``migrations`` after checking they are numbered 1, 2, ..."""
    versions = [migration.version for migration in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, 3 ... in order, got {versions}")
    return len(versions)


async def user_version(conn: aiosqlite.Connection) -> int:
    """The schema version recorded in the database file."""
    rows = list(await conn.execute_fetchall("PRAGMA user_version"))
    return int(rows[0][0])


async def migrate(conn: aiosqlite.Connection, target: int | None = None,
                  migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database up to ``target`` (default: the latest version); return its version.

    Raises StorageError when the database is newer than ``migrations`` know or
    when a migration fails (that migration is rolled back entirely). A target
    below the current version changes nothing.
    """
    latest = check_sequence(migrations)
    goal = latest if target is None else target
    if not 0 <= goal <= latest:
        raise ValueError(f"target version {goal} is outside 0..{latest}")
    current = await user_version(conn)
    if current > latest:
        raise StorageError(
            f"database schema version {current} is newer than this chatd supports "
            f"(latest {latest}); refusing to open it: upgrade chatd or restore a backup")
    for migration in migrations[current:goal]:
        await _apply(conn, migration)
    return max(current, goal)


async def _apply(conn: aiosqlite.Connection, migration: Migration) -> None:
    version, description, step = migration
    log.info("migrating database schema to version %d: %s", version, description)
    try:
        await conn.execute("BEGIN IMMEDIATE")
        # Another process may have migrated while we waited for the write lock.
        if await user_version(conn) < version:
            await _run_step(conn, step)
            await conn.execute(f"PRAGMA user_version = {int(version)}")
        await conn.execute("COMMIT")
    except BaseException as exc:
        # Unconditional: statements queued before a cancellation still run.
        with contextlib.suppress(sqlite3.OperationalError):
            await conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise StorageError(
                f"migration {version} ({description}) failed and was rolled back: {exc}"
            ) from exc
        raise


async def _run_step(conn: aiosqlite.Connection, step: MigrationStep) -> None:
    if isinstance(step, str):
        for statement in split_statements(step):
            await conn.execute(statement)
    else:
        await step(conn)
