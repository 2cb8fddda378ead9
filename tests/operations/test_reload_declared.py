"""Reload by declaration: every part a reload reaches is registered with the
keys it reads, every "applied" key is read by one, and a reload reaches them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatd.app.compose import build_app
from chatd.app.reloads import Applies, Registered, Reloads
from chatd.config import RELOAD_POLICY, Config
from tests.helpers import test_config as config_for
from tests.operations import running_daemon, write_config


def test_every_applied_key_is_read_by_a_registered_part(tmp_path: Path) -> None:
    app = build_app(config_for(tmp_path / "chatd.db"), process=True)
    assert app.reloads.unread() == []
    # ... and the check has teeth: without the process's parts, their keys are unread.
    bare = build_app(config_for(tmp_path / "chatd.db"))
    unread = bare.reloads.unread()
    assert unread and {key.partition(".")[0] for key in unread} == {"logging", "backup"}


def test_a_registration_names_real_keys() -> None:
    reloads = Reloads()
    part = Applies("nothing", lambda config: None)
    reloads.register(part, "limits", "files.max_size")
    with pytest.raises(ValueError, match=r"limits\.nope"):
        reloads.register(part, "limits.nope")
    with pytest.raises(ValueError, match="colour"):
        reloads.register(part, "colour")


def test_every_declared_key_exists(tmp_path: Path) -> None:
    """A declaration names a section or a key of the configuration, never a stray name."""
    app = build_app(config_for(tmp_path / "chatd.db"), process=True)
    declared = {key for entry in app.reloads.entries for key in entry.keys}
    for key in declared:
        assert any(k == key or k.startswith(key + ".") for k in RELOAD_POLICY), key


class Recorder:
    """Stands in front of a registered part: records the configuration, passes it on."""

    def __init__(self, inner: Registered) -> None:
        self.inner = inner
        self.seen: list[Config] = []

    def reconfigure(self, config: Config) -> None:
        self.seen.append(config)
        self.inner.target.reconfigure(config)


async def test_a_reload_reaches_every_registered_part(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        recorders = [Recorder(entry) for entry in daemon.reloads.entries]
        daemon.reloads.entries = [Registered(r, r.inner.keys) for r in recorders]
        daemon.config_path = str(write_config(
            tmp_path / "chatd.yaml", server={"motd": "new"}, files={"max_size": 12345},
            backup={"keep": 3}, crypto={"max_envelope": 4096, "max_pending_keys": 7},
            limits={"flood_threshold": 4}, rooms={"invitation_ttl": 60},
            storage={"path": str(tmp_path / "chatd.db")},
            control={"path": str(tmp_path / "ctl.sock")}))
        assert daemon.reload() is None
        config = daemon.config
        assert config.server.motd == "new"
        for recorder in recorders:
            assert recorder.seen == [config], recorder.inner
        # The parts hold the new values.
        services = daemon.services
        assert services.config is config
        assert daemon.listeners.config is config
        assert services.protection.config is config
        assert services.admission.config is config
        assert services.files.config.max_size == 12345
        assert services.e2e.config.max_envelope == 4096
        assert services.e2e.config.max_pending_keys == 7
        assert daemon.backups.config.keep == 3
