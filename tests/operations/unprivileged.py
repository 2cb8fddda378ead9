"""Running chatd's programs as an unprivileged user (``nobody``), as systemd's
DynamicUser= runs the service: the tests that prove nothing needs root.

Only root can switch users (``setpriv``, util-linux). Without root these tests
skip on a developer's machine and fail in CI (``CI=true``), where they must run.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.services import unavailable

NOBODY = "nobody"


def nobody() -> pwd.struct_passwd:
    """The unprivileged account (skips, or fails in CI, when it cannot be used)."""
    if os.geteuid() != 0:
        unavailable("root, to run chatd as an unprivileged user")
    if shutil.which("setpriv") is None:
        unavailable("setpriv (Debian package: util-linux)")
    try:
        return pwd.getpwnam(NOBODY)
    except KeyError:
        unavailable(f"the {NOBODY} account")


def as_user(user: pwd.struct_passwd, argv: list[str], groups: tuple[int, ...] = ()
            ) -> list[str]:
    """``argv`` run as ``user`` (its own group), with the supplementary ``groups`` alone."""
    listed = f"--groups={','.join(str(g) for g in groups)}" if groups else "--clear-groups"
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", listed,
            "--", *argv]


@contextlib.contextmanager
def open_directory() -> Iterator[Path]:
    """A directory every user may enter (pytest's tmp_path is root's alone), removed after."""
    path = Path(tempfile.mkdtemp(prefix="chatd-test-", dir="/tmp"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def owned_by(user: pwd.struct_passwd, path: Path, mode: int = 0o700) -> Path:
    """Make the directory ``path``, owned by ``user`` with ``mode``."""
    path.mkdir(mode=mode)
    os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)
    return path
