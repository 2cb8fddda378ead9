"""Every console script answers --version with its name and chatd's version."""

from __future__ import annotations

import subprocess

import pytest

from chatd import __version__
from tests.operations import BIN


@pytest.mark.parametrize("script", ["chatd", "chatctl", "chatd-client", "chatd-crypt"])
def test_version(script: str) -> None:
    done = subprocess.run([str(BIN / script), "--version"], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{script} {__version__}\n"
