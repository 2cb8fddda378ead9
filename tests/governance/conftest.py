"""Governance runs on both storage backends: every decision persisted in SQLite
must be persisted alike in PostgreSQL."""

from __future__ import annotations

from tests.backends import both

backend = both
