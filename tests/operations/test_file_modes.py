"""The files chatd creates beside its database are its owner's alone, whatever the umask."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
from pathlib import Path

from chatd.client import ChatClient
from tests.content import upload
from tests.helpers import PASSWORD
from tests.operations import CHATD, ChatdProcess, umask, write_config

# Written by the tests themselves, not by chatd.
OURS = {"chatd.log", "chatd.yaml"}



def modes(folder: Path) -> dict[str, int]:
    """Permission bits of every file chatd made in ``folder``."""
    return {entry.name: stat.S_IMODE(entry.stat().st_mode)
            for entry in os.scandir(folder) if entry.name not in OURS}


async def test_database_files_are_created_owner_only(tmp_path: Path) -> None:
    config = write_config(tmp_path / "chatd.yaml")
    with umask(0o022), ChatdProcess.serve(tmp_path, config) as daemon:
        host, port = await daemon.ready()
        client = await ChatClient.connect(host, port)
        try:
            await client.command(f"/register alice {PASSWORD}")
            await client.command("/create lounge")
            assert (await client.say("a private line"))["type"] == "message"
        finally:
            await client.close()
        found = await asyncio.to_thread(modes, tmp_path)
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
    assert {"chatd.db", "chatd.db-wal", "chatd.db-shm"} <= set(found), found
    assert all(mode & 0o077 == 0 for mode in found.values()), {
        name: f"{mode:04o}" for name, mode in found.items()}


async def test_existing_database_files_open_to_others_are_made_owner_only(
        tmp_path: Path) -> None:
    config = write_config(tmp_path / "chatd.yaml")
    db = tmp_path / "chatd.db"
    with umask(0o022), ChatdProcess.serve(tmp_path, config) as daemon:
        await daemon.ready()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
    await asyncio.to_thread(os.chmod, db, 0o644)
    with umask(0o022), ChatdProcess.serve(tmp_path, config) as daemon:
        await daemon.ready()
        assert stat.S_IMODE((await asyncio.to_thread(os.stat, db)).st_mode) == 0o600
        warned = await daemon.wait_log(r'msg="database file was open to other users')
        assert f"path={db}" in warned and "mode=0644" in warned


async def test_upload_directories_are_owner_only_even_with_no_umask(tmp_path: Path) -> None:
    """files/, its staging and blob directories hold private uploads: a directory
    others may write to would let them replace or delete another user's blobs."""
    config = write_config(tmp_path / "chatd.yaml")
    with umask(0o000), ChatdProcess.serve(tmp_path, config) as daemon:
        host, port = await daemon.ready()
        client = await ChatClient.connect(host, port)
        try:
            await client.command(f"/register alice {PASSWORD}")
            await client.command("/create lounge")
            reply = await upload(client, "note.txt", b"private words\n", "lounge")
            assert reply.final["type"] == "ok", reply.final
        finally:
            await client.close()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
    made = [path for path in (tmp_path / "files").rglob("*") if path.is_dir()]
    directories = [tmp_path / "files", *made]
    assert len(directories) >= 4  # files, incoming, blobs, blobs/<ab>
    assert {str(d.relative_to(tmp_path)): f"{stat.S_IMODE(d.stat().st_mode):04o}"
            for d in directories} == {
        str(d.relative_to(tmp_path)): "0700" for d in directories}


async def test_a_db_option_naming_another_file_leaves_its_mode_alone(tmp_path: Path) -> None:
    """--db given the configuration file (meant for --config) or a directory: chatd
    fails to open it as a database, and never makes it owner-only on the way (the
    service's own user could no longer read its configuration)."""
    config = write_config(tmp_path / "chatd.yaml")
    folder = tmp_path / "state"
    folder.mkdir()
    for path in (config, folder):
        path.chmod(0o755 if path.is_dir() else 0o644)
    text = config.read_text()
    with ChatdProcess.serve(tmp_path, config, config) as daemon:
        assert await daemon.wait() == 1
    assert "cannot start" in daemon.log() and "Traceback" not in daemon.log()
    for target in (config, folder):
        made = await asyncio.to_thread(
            subprocess.run, [str(CHATD), "useradd", "alice", "--db", str(target)],
            input=f"{PASSWORD}\n", capture_output=True, text=True, timeout=30, check=False)
        assert made.returncode == 1, made.stderr
        assert "cannot open the database" in made.stderr and "owner-only" not in made.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o644 and config.read_text() == text
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
