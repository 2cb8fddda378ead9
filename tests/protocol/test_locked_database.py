"""Another process holding the SQLite database (a sqlite3 shell, a backup tool):
what waits, what is said, and nothing lost."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from storage.sqlite import SqliteStorage
from tests.helpers import ChatServer, Clients, eventually


async def test_audit_entries_wait_out_a_locked_database_in_one_line(
        server: ChatServer, clients: Clients, db_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """Another process holds the database (a sqlite3 shell): the noted entries
    (log-ins) are kept, said in one warning line, and written once it is free."""
    storage = server.storage
    assert isinstance(storage, SqliteStorage)
    await storage._db().execute("PRAGMA busy_timeout = 20")  # (5 s by default)
    await clients.user("alice")
    await server.services.audit.flush()  # the first log-in's entry, written
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        await clients.user("alice")  # a second log-in: its entry is noted, not written
        await eventually(lambda: any("audit entries failed" in r.getMessage()
                                     for r in caplog.records))
        other.execute("ROLLBACK")
    finally:
        other.close()
    failed = [r for r in caplog.records if "audit entries failed" in r.getMessage()]
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in failed)
    entries = await server.services.audit.entries(10)
    assert [e.action for e in entries].count("login") == 2
