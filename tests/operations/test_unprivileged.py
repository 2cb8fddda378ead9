"""chatd needs no root: ``chatd serve`` and ``chatctl`` as an unprivileged user (nobody),
with a database and a files directory of its own, as systemd's DynamicUser= runs it.

CI runs as root, so every other test would pass where root's privileges hid a fault
(a file that only root could create, read or chmod). Everything chatd makes here
belongs to that user and is closed to others (0600 files, 0700 directories), though
the umask (0022, a shell's usual one) would leave it open.
"""

from __future__ import annotations

import asyncio
import pwd
import signal
import stat
import subprocess
from pathlib import Path

from chatd.client import ChatClient
from chatd.ops.control import control_path
from tests.content import upload
from tests.helpers import PASSWORD
from tests.operations import CHATCTL, CHATD, ChatdProcess, umask, wait_for, write_config
from tests.operations.unprivileged import (
    as_user,
    nobody,
    open_directory,
    owned_by,
    program,
    python_for,
)


def made_by_chatd(*folders: Path) -> dict[str, tuple[int, int, bool]]:
    """Every path under ``folders`` (the folders too): its owner, permission bits and
    whether it is a directory."""
    found: dict[str, tuple[int, int, bool]] = {}
    for folder in folders:
        for path in [folder, *folder.rglob("*")]:
            info = path.lstat()
            found[str(path)] = (info.st_uid, stat.S_IMODE(info.st_mode),
                                stat.S_ISDIR(info.st_mode))
    return found


def run_as(user: pwd.struct_passwd, python: list[str], *argv: str
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(as_user(user, program(python, list(argv))), capture_output=True,
                          text=True, timeout=60, check=False)


async def test_chatd_serves_as_an_unprivileged_user_and_keeps_its_files_private() -> None:
    user = nobody()
    with open_directory() as root, umask(0o022):
        state = owned_by(user, root / "state")  # as StateDirectory= makes it
        uploads = owned_by(user, root / "uploads")
        db = state / "chatd.db"
        # Scheduled backups too (a second apart), into "backups" beside the database.
        config = write_config(root / "chatd.yaml", storage={"path": str(db)},
                              files={"dir": str(uploads)}, backup={"interval": "1s"})
        config.chmod(0o644)  # root's, readable: nothing of root's is writable by it
        python = python_for(root)
        daemon = ChatdProcess(
            as_user(user, program(python, [str(CHATD), "serve", "--config", str(config)])),
            root / "chatd.log")
        daemon.control_path = control_path(str(db), "")
        with daemon:
            host, port = await daemon.ready()
            alice = await ChatClient.connect(host, port)
            try:
                assert (await alice.command(f"/register alice {PASSWORD}")).ok
                assert (await alice.command("/create lounge")).ok
            finally:
                await alice.close()
            # Logged in again over a new connection, then posts and uploads.
            alice = await ChatClient.connect(host, port)
            try:
                assert (await alice.command(f"/login alice {PASSWORD}")).ok
                assert (await alice.command("/join lounge")).ok
                assert (await alice.say("nothing here needs root"))["type"] == "message"
                reply = await upload(alice, "note.txt", b"private words\n", "lounge")
                assert reply.final["type"] == "ok", reply.final
                history = (await alice.command("/history lounge 10"))["messages"]
                assert "nothing here needs root" in [m.get("text") for m in history]
            finally:
                await alice.close()

            # The console as the same user: status, a reload, a backup it writes itself.
            status = await asyncio.to_thread(run_as, user, python, str(CHATCTL), "--config",
                                             str(config), "status")
            assert status.returncode == 0, status.stderr
            reloaded = await asyncio.to_thread(run_as, user, python, str(CHATCTL), "--config",
                                               str(config), "reload", "--strict")
            assert reloaded.returncode == 0, reloaded.stderr
            backup = state / "backup.db"
            saved = await asyncio.to_thread(run_as, user, python, str(CHATCTL), "--config",
                                            str(config), "backup", str(backup))
            assert saved.returncode == 0, saved.stderr
            await wait_for(lambda: list((state / "backups").glob("chatd-*.db")))
            running = await asyncio.to_thread(made_by_chatd, state, uploads)
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait() == 0, daemon.log()
        log = daemon.log()
        assert "Permission denied" not in log and "Traceback" not in log, log
        # Its helper processes ran as well (the preview of the upload).
        assert "level=warning" not in log and "level=error" not in log, log

    names = {Path(path).name for path in running}
    assert {"chatd.db", "chatd.db-wal", "chatd.db-shm", "chatd.db.sock",
            "backup.db", "backups"} <= names, names
    assert any(Path(path).parent.name == "blobs" or "blobs" in Path(path).parts
               for path in running), running
    # Its own, and closed to others: 0700 directories, 0600 files (the socket too).
    others = {path: f"{uid} {mode:04o}" for path, (uid, mode, _) in running.items()
              if uid != user.pw_uid or mode & 0o077}
    assert others == {}, others
    assert {path: f"{mode:04o}" for path, (_, mode, folder) in running.items()
            if mode != (0o700 if folder else 0o600)} == {}
