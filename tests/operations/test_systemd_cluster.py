"""Cluster nodes under systemd: the template unit chatd@.service and
``scripts/install-service --cluster NODE...``."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from chatd.config import load_config
from tests.operations.test_systemd import ROOT, install_service
from tests.services import unavailable

TEMPLATE = ROOT / "scripts" / "chatd@.service"


def test_install_service_cluster_writes_the_template_and_each_nodes_configuration(
        tmp_path: Path) -> None:
    done = install_service(tmp_path, "--cluster", "n1", "n2")
    assert done.returncode == 0, done.stderr
    units = tmp_path / "etc" / "systemd" / "system"
    prefix, etc = tmp_path / "opt" / "chatd", tmp_path / "etc" / "chatd"
    unit = (units / "chatd@.service").read_text()
    assert re.search(rf"^ExecStart={prefix}/bin/chatd serve --config {etc}/%i.yaml$", unit,
                     re.MULTILINE), unit
    assert f"Documentation=file://{tmp_path}/usr/share/doc/chatd/CLUSTER.md" in unit
    assert (tmp_path / "usr" / "share" / "doc" / "chatd" / "CLUSTER.md").exists()
    assert not (units / "chatd.service").exists()
    for n, port in ((1, 7777), (2, 7787)):
        config = load_config(etc / f"n{n}.yaml")
        assert config.cluster.enabled and config.cluster.node_id == f"n{n}"
        assert config.cluster.redis and config.cluster.postgres
        assert config.storage.path == f"/var/lib/chatd/n{n}/chatd.db"
        assert config.backup.interval == 0
        assert config.listen.port == port
    assert "systemctl enable --now chatd@n1 chatd@n2" in done.stdout


def test_install_service_cluster_keeps_a_nodes_existing_configuration(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "chatd"
    etc.mkdir(parents=True)
    (etc / "n1.yaml").write_text("server:\n  name: mine\n")
    done = install_service(tmp_path, "--cluster", "n1")
    assert done.returncode == 0, done.stderr
    assert (etc / "n1.yaml").read_text() == "server:\n  name: mine\n"
    assert f"kept {etc}/n1.yaml" in done.stdout


@pytest.mark.parametrize("args", [("--cluster",), ("--cluster", "bad name"),
                                  ("--cluster", "n" * 33), ("--nodes", "n1")])
def test_install_service_refuses_bad_node_names(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = install_service(tmp_path, *args)
    assert done.returncode == 2 and "install-service:" in done.stderr
    assert not (tmp_path / "etc").exists()


def test_the_template_starts_after_redis_and_postgresql() -> None:
    unit = TEMPLATE.read_text()
    for key in ("Wants", "After"):
        [line] = re.findall(rf"^{key}=(.*)$", unit, re.MULTILINE)
        assert {"redis-server.service", "postgresql.service"} <= set(line.split()), key
    assert re.search(r"^StateDirectory=chatd/%i$", unit, re.MULTILINE)
    assert re.search(r"^Type=notify$", unit, re.MULTILINE)


def test_installed_template_verifies(tmp_path: Path) -> None:
    """systemd-analyze verify on the template as installed, and on an instance of it."""
    if shutil.which("systemd-analyze") is None:
        unavailable("systemd-analyze (Debian package: systemd)")
    done = install_service(tmp_path, "--cluster", "n1")
    assert done.returncode == 0, done.stderr
    units = tmp_path / "etc" / "systemd" / "system"
    instance = tmp_path / "instance" / "chatd@n1.service"
    instance.parent.mkdir()
    shutil.copy(units / "chatd@.service", instance)
    result = subprocess.run(["systemd-analyze", "verify", str(units / "chatd@.service"),
                             str(instance)], capture_output=True, text=True, timeout=60,
                            check=False)
    output = (result.stdout + result.stderr).splitlines()
    assert [line for line in output if "chatd@" in line] == [], output
    if result.returncode != 0:
        # Complaints about the environment (no systemd running...) are not the unit's fault.
        assert output, f"systemd-analyze failed silently ({result.returncode})"
