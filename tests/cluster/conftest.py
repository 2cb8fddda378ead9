"""The cluster tests' marker: ``-m cluster`` selects them, ``-m "not cluster"``
leaves them out (they start PostgreSQL, Redis and node processes)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: starts cluster nodes on PostgreSQL and Redis")
