"""Persistence of chatd: the Storage protocol, its records, and the SQLite backend.

This package is a leaf: it imports nothing from ``chatd`` or ``commands``,
and all of chatd's SQL lives here.
"""

from storage.api import Conflict, Refused, Storage, StorageError
from storage.migrations import LATEST_VERSION, MIGRATIONS, Migration, migrate
from storage.records import (
    AssociationRecord,
    AuditRecord,
    DirectBacklog,
    InvitationRecord,
    JoinRequestRecord,
    JsonDict,
    MemberRecord,
    MessageRecord,
    NotificationRecord,
    ResumeRecord,
    RoomRecord,
    SanctionRecord,
    TokenRecord,
    UserBlockRecord,
    UserRecord,
)
from storage.sqlite import SqliteStorage
from storage.writer import MessageWriter

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "AssociationRecord",
    "AuditRecord",
    "Conflict",
    "DirectBacklog",
    "InvitationRecord",
    "JoinRequestRecord",
    "JsonDict",
    "MemberRecord",
    "MessageRecord",
    "MessageWriter",
    "Migration",
    "NotificationRecord",
    "Refused",
    "ResumeRecord",
    "RoomRecord",
    "SanctionRecord",
    "SqliteStorage",
    "Storage",
    "StorageError",
    "TokenRecord",
    "UserBlockRecord",
    "UserRecord",
    "migrate",
]
