"""The configuration may hold secrets (a database password in a URL, the S3 secret key):
install-service makes it readable by root and the service's group alone, the units give
their dynamic user that group, and chatd warns when a file holding one is open to all."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import re
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

from chatd.ops.control import control_path
from tests.operations import CHATCTL, ChatdProcess, wait_for, write_config
from tests.operations.test_systemd import install_service
from tests.operations.test_systemd_reload import as_systemd_runs, unit_command
from tests.operations.unprivileged import (
    as_user,
    nobody,
    open_directory,
    owned_by,
    program,
    python_for,
)
from tests.services import unavailable

SECRET = "hunter2-never-logged"


@contextlib.contextmanager
def new_group() -> Iterator[str]:
    """A group name no group has yet; the group install-service makes of it is removed."""
    name = f"chatdt{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        subprocess.run(["groupdel", name], capture_output=True, check=False)


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


async def test_the_installed_configuration_is_read_by_the_services_group_alone() -> None:
    user = nobody()
    if shutil.which("groupadd") is None or shutil.which("systemd-analyze") is None:
        unavailable("groupadd and systemd-analyze (Debian packages: passwd, systemd)")
    with open_directory() as root, new_group() as group:
        done = install_service(root, GROUP=group)
        assert done.returncode == 0, done.stderr
        assert f"created the system group {group}" in done.stdout
        gid = grp.getgrnam(group).gr_gid
        config = root / "etc" / "chatd" / "chatd.yaml"
        info = config.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 0, gid)
        units = root / "etc" / "systemd" / "system"
        unit = (units / "chatd.service").read_text()
        assert re.search(rf"^SupplementaryGroups={group}$", unit, re.MULTILINE), unit
        assert re.search(r"^DynamicUser=yes$", unit, re.MULTILINE)
        verified = run(["systemd-analyze", "verify", str(units / "chatd.service")])
        assert [ln for ln in (verified.stdout + verified.stderr).splitlines()
                if "chatd.service" in ln] == []

        # The daemon as the unit runs it: an unprivileged user with that group.
        state = owned_by(user, root / "state")
        db = state / "chatd.db"
        write_config(config, storage={"path": str(db)},
                     files={"s3_secret_key": SECRET})  # kept 0640 root:group
        assert stat.S_IMODE(config.stat().st_mode) == 0o640
        # The unit's commands, by an interpreter the user may run.
        python = python_for(root)
        start = program(python, unit_command(unit, "ExecStart"))
        reload = program(python, unit_command(unit, "ExecReload"))
        daemon = ChatdProcess(as_user(user, start, (gid,)), root / "chatd.log")
        daemon.control_path = control_path(str(db), "")
        with daemon:
            await daemon.ready()
            reloaded = await asyncio.to_thread(
                run, as_user(user, as_systemd_runs(reload, daemon), (gid,)))
            assert reloaded.returncode == 0, reloaded.stderr
            assert "every user may read it" not in daemon.log()  # 0640: no warning
        assert SECRET not in daemon.log()

        # Without the group the file is closed to it: the start fails, saying so.
        refused = await asyncio.to_thread(run, as_user(user, start))
        assert refused.returncode == 2
        assert "configuration error" in refused.stderr and "ermission denied" in refused.stderr


def test_an_existing_configuration_open_to_all_is_closed(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "chatd"
    etc.mkdir(parents=True)
    config = etc / "chatd.yaml"
    config.write_text("server:\n  name: mine\n")
    config.chmod(0o644)
    done = install_service(tmp_path)
    assert done.returncode == 0, done.stderr
    assert config.read_text() == "server:\n  name: mine\n"
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert config.stat().st_gid == os.getgid()  # the helper's GROUP: this process's own
    assert f"made {config} readable by its owner and group" in done.stdout
    again = install_service(tmp_path)  # already private: nothing to say
    assert again.returncode == 0 and "made " not in again.stdout


def test_the_cluster_nodes_configurations_are_private_too(tmp_path: Path) -> None:
    done = install_service(tmp_path, "--cluster", "n1")
    assert done.returncode == 0, done.stderr
    node = tmp_path / "etc" / "chatd" / "n1.yaml"
    assert stat.S_IMODE(node.stat().st_mode) == 0o640
    unit = (tmp_path / "etc" / "systemd" / "system" / "chatd@.service").read_text()
    group = grp.getgrgid(os.getgid()).gr_name
    assert re.search(rf"^SupplementaryGroups={group}$", unit, re.MULTILINE), unit


async def test_a_configuration_holding_a_secret_open_to_all_is_warned_about(
        tmp_path: Path) -> None:
    db = tmp_path / "chatd.db"
    config = write_config(tmp_path / "chatd.yaml", files={"s3_secret_key": SECRET})
    config.chmod(0o644)
    with ChatdProcess.serve(tmp_path, config, db) as daemon:
        await daemon.ready()
        warned = await daemon.wait_log("every user may read it")
        assert "level=warning" in warned and "keys=files.s3_secret_key" in warned
        assert "mode=0644" in warned

        config.chmod(0o640)  # closed: a reload says nothing
        closed = await asyncio.to_thread(
            run, [str(CHATCTL), "--socket", daemon.control_path, "reload"])
        assert closed.returncode == 0, closed.stderr
        config.chmod(0o604)
        opened = await asyncio.to_thread(
            run, [str(CHATCTL), "--socket", daemon.control_path, "reload"])
        assert opened.returncode == 0, opened.stderr
        await wait_for(lambda: daemon.log().count("every user may read it") == 2)
        assert daemon.log().count('msg="reloaded"') == 2
    assert SECRET not in daemon.log()

    plain = write_config(tmp_path / "plain.yaml")  # open to all, but no secret: no word
    plain.chmod(0o644)
    with ChatdProcess.serve(tmp_path, plain, db) as daemon:
        await daemon.ready()
    assert "every user may read it" not in daemon.log()


def test_the_secrets_a_configuration_holds_are_named_by_key() -> None:
    from chatd.config import load_config, secrets_held

    assert secrets_held(load_config(None)) == []
    cluster = {"cluster.enabled": True, "cluster.node_id": "n1"}
    held = load_config(None, {**cluster, "cluster.postgres": "postgresql://chatd:pw@db/chatd",
                              "cluster.redis": "redis://:pw@127.0.0.1:6379/0"})
    assert secrets_held(held) == ["cluster.postgres", "cluster.redis"]
    bare = load_config(None, {**cluster, "cluster.postgres": "postgresql://chatd@db/chatd"})
    assert secrets_held(bare) == []
    query = load_config(None, {**cluster,
                               "cluster.postgres": "postgresql://db/chatd?password=pw"})
    assert secrets_held(query) == ["cluster.postgres"]
