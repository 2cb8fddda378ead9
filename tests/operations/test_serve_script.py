"""scripts/serve: the development daemon, run through the script itself.

The script is copied into a checkout of its own whose .venv is already
installed (its stamp newer than setup.cfg), with the chatd under test as
.venv/bin/chatd: nothing is installed, and the daemon is the real one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.operations import CHATCTL, CHATD, ChatdProcess, write_config

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30


def checkout(tmp_path: Path) -> Path:
    """A copy of scripts/serve with an installed-looking .venv holding the chatd under test."""
    root = tmp_path / "checkout"
    (root / "scripts" / "lib").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "serve", root / "scripts" / "serve")
    shutil.copy2(ROOT / "scripts" / "lib" / "venv.sh", root / "scripts" / "lib" / "venv.sh")
    (root / "setup.cfg").write_text("")
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "chatd").symlink_to(CHATD)
    stamp = root / ".venv" / ".installed-fast,client"
    stamp.write_text("")
    later = os.stat(root / "setup.cfg").st_mtime + 10
    os.utime(stamp, (later, later))
    return root


async def test_serve_with_a_configuration_uses_its_database(tmp_path: Path) -> None:
    """scripts/serve --config FILE: the file's storage.path, not var/chatd.db (a --db
    the script added would override the file without a word)."""
    root = checkout(tmp_path)
    db = tmp_path / "mine" / "chatd.db"
    db.parent.mkdir()
    config = write_config(tmp_path / "chatd.yaml", storage={"path": str(db)})
    with ChatdProcess(["bash", str(root / "scripts" / "serve"), "--config", str(config),
                       "--port", "0"], tmp_path / "chatd.log") as daemon:
        daemon.control_path = f"{db}.sock"
        await daemon.ready()
        status = await asyncio.to_thread(
            subprocess.run, [str(CHATCTL), "--config", str(config), "status"],
            capture_output=True, text=True, timeout=TIMEOUT, check=False)
        assert status.returncode == 0, status.stderr
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
    assert db.exists() and not (root / "var").exists()


async def test_serve_without_options_uses_var_chatd_db(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    db = root / "var" / "chatd.db"
    with ChatdProcess(["bash", str(root / "scripts" / "serve"), "--port", "0"],
                      tmp_path / "chatd.log") as daemon:
        daemon.control_path = f"{db}.sock"
        await daemon.ready()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
    assert db.exists()


async def test_serve_with_a_configuration_without_a_database_uses_var_chatd_db(
        tmp_path: Path) -> None:
    """A file that names no storage.path (only ports, say) keeps the script's default,
    var/chatd.db, not a chatd.db in whatever directory the script was run from."""
    root = checkout(tmp_path)
    config = write_config(tmp_path / "chatd.yaml", server={"name": "trial"})
    db = root / "var" / "chatd.db"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with ChatdProcess(["bash", str(root / "scripts" / "serve"), "--config", str(config),
                       "--port", "0"], tmp_path / "chatd.log", cwd=elsewhere) as daemon:
        daemon.control_path = f"{db}.sock"
        await daemon.ready()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
    assert db.exists() and not list(elsewhere.iterdir())
