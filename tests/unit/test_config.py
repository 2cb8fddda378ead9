"""The configuration: defaults, the documented file, validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from chatd.config import Config, ConfigError, as_dict, load_config

CONF = Path(__file__).resolve().parents[2] / "conf" / "chatd.yaml"


def test_documented_file_matches_the_embedded_defaults() -> None:
    """Every key of conf/chatd.yaml exists with the built-in default, and no key is missing."""
    documented = load_config(CONF)
    assert as_dict(documented) == as_dict(Config())
    raw = yaml.safe_load(CONF.read_text(encoding="utf-8"))
    assert _keys(raw) == _keys(as_dict(Config()))


def _keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for key, value in tree.items():
        if isinstance(value, dict):
            found |= _keys(value, f"{prefix}{key}.")
        else:
            found.add(prefix + key)
    return found


def test_every_documented_key_has_a_comment() -> None:
    lines = CONF.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or not line.startswith("  "):
            continue
        above = [item.strip() for item in lines[max(0, number - 6):number]]
        assert any(item.startswith("#") for item in above), f"no comment near: {line}"


def test_no_file_means_defaults() -> None:
    assert load_config(None) == Config()


@pytest.mark.parametrize(("text", "named"), [
    ("listen:\n  prot: 1\n", "listen.prot"),
    ("nosuchsection: {}\n", "nosuchsection"),
    ("listen:\n  port: seven\n", "listen.port"),
    ("accounts:\n  registration: maybe\n", "accounts.registration"),
    ("limits:\n  login_timeout: soon\n", "limits.login_timeout"),
    ("limits:\n  login_timeout: -5\n", "limits.login_timeout"),
    ("accounts:\n  bcrypt_cost: 3\n", "accounts.bcrypt_cost"),
    ("tls:\n  enabled: true\n", "tls.enabled"),
    ("listen:\n  max_line: 10\n", "listen.max_line"),
    ("- a list\n", "top level"),
    ("listen: [1, 2]\n", "listen"),
    ("logging:\n  level: loud\n", "logging.level"),
    ("limits:\n  keepalive: 1\n", "limits.keepalive"),
])
def test_bad_values_are_refused_by_name(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=named.split(".", maxsplit=1)[0]):
        load_config(path)


def test_durations_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("rooms:\n  invitation_ttl: 2d\nlimits:\n  flood_window: 30\n",
                    encoding="utf-8")
    config = load_config(path, {"listen.port": 9000, "storage.path": "x.db"})
    assert config.rooms.invitation_ttl == 2 * 86400
    assert config.limits.flood_window == 30.0
    assert config.listen.port == 9000 and config.storage.path == "x.db"


def test_unreadable_or_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("listen: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("listen: 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="listen: must be a mapping"):
        load_config(scalar, {"listen.port": 1})
