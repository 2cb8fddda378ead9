"""The files and stickers configuration: defaults, documented in conf/chatd.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chatd.config import ConfigError, as_dict, load_config

CONF = Path(__file__).resolve().parents[2] / "conf" / "chatd.yaml"


@pytest.mark.parametrize("section", ["files", "stickers"])
def test_every_key_is_documented_with_its_default(section: str) -> None:
    documented = yaml.safe_load(CONF.read_text())[section]
    defaults = as_dict(load_config(None))[section]
    assert set(documented) == set(defaults)
    assert as_dict(load_config(CONF))[section] == defaults


def test_defaults() -> None:
    files = load_config(None).files
    assert (files.backend, files.max_size, files.quota, files.preview_width) == (
        "local", 10 * 1024 * 1024, 100 * 1024 * 1024, 60)


def test_bad_values_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"files\.backend"):
        load_config(None, {"files.backend": "ftp"})
    with pytest.raises(ConfigError, match=r"stickers\.colour"):
        load_config(None, {"stickers.colour": True})
