"""Which storage a daemon gets: SQLite embedded, PostgreSQL in cluster mode, and
the embedded daemon never loading the PostgreSQL (or Redis) client."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chatd.app.compose import make_storage
from chatd.config import ConfigError, load_config
from storage import SqliteStorage
from tests.services import import_needed

CLUSTER = {"cluster.enabled": True, "cluster.node_id": "n1",
           "cluster.postgres": "postgresql://chatd@127.0.0.1:1/chatd"}


def test_embedded_mode_is_sqlite(tmp_path: Path) -> None:
    storage = make_storage(load_config(None, {"storage.path": str(tmp_path / "c.db")}))
    assert isinstance(storage, SqliteStorage)


def test_cluster_mode_is_postgres_as_a_sole_node() -> None:
    import_needed("asyncpg", "asyncpg (chatd's cluster extra)")
    from storage.postgres import PostgresStorage

    storage = make_storage(load_config(None, CLUSTER))
    assert isinstance(storage, PostgresStorage)
    assert storage.where == "127.0.0.1:1/chatd"
    assert storage._sole_node and storage._name == "chatd/n1"


def test_cluster_mode_without_the_driver_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # import asyncpg fails
    for name in [m for m in sys.modules if m.startswith("storage.postgres")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ConfigError, match=r"chatd\[cluster\]"):
        make_storage(load_config(None, CLUSTER))


def test_the_embedded_daemon_imports_no_cluster_client(tmp_path: Path) -> None:
    """Start and stop an embedded daemon in a fresh interpreter: neither asyncpg nor
    a Redis client may have been imported (the embedded default stays lean)."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        import chatd.cli
        from chatd.app.compose import build_app
        from chatd.config import load_config

        async def main():
            app = build_app(load_config(None, {{"storage.path": {str(tmp_path / "c.db")!r},
                                                "listen.port": 0}}))
            await app.start()
            await app.stop()

        asyncio.run(main())
        loaded = sorted(m for m in sys.modules
                        if m.split(".")[0] in ("asyncpg", "redis") or m == "storage.postgres")
        print(",".join(loaded) or "none")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "none"
