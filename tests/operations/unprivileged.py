"""Running chatd's programs as an unprivileged user (``nobody``), as systemd's
DynamicUser= runs the service: the tests that prove nothing needs root.

Only root can switch users (``setpriv``, util-linux). Without root these tests
skip on a developer's machine and fail in CI (``CI=true``), where they must run.

The user must be able to run the interpreter, which chatd runs again for its
helper processes (previews, encryption). A virtualenv whose interpreter lives in
a directory closed to others (one under root's home) is replaced, for the user,
by a virtualenv of the system's interpreter of the same version that sees the
same packages (:func:`python_for`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.services import unavailable

NOBODY = "nobody"
# The console scripts the tests run, as the modules ``python -m`` runs.
MODULES = {"chatd": "chatd", "chatctl": "chatd.ops.chatctl"}


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


def open_to_others(path: str) -> bool:
    """Whether any user may reach ``path`` (every directory on its way searchable)."""
    real = Path(os.path.realpath(path))
    return all(os.stat(folder).st_mode & 0o001 for folder in [*real.parents][::-1]
               if folder != real) and bool(os.stat(real).st_mode & 0o004)


def python_for(root: Path) -> list[str]:
    """An interpreter the unprivileged user may run that imports what this one does:
    this one, or a virtualenv made in ``root`` (open to all) of the system's."""
    needed = [sys.executable, sys.base_prefix, sysconfig.get_paths()["stdlib"]]
    if all(open_to_others(path) for path in needed):
        return [sys.executable]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/bin:/usr/local/bin")
    if system is None or not open_to_others(system):
        unavailable(f"a {version} every user may run (this one is in a directory closed "
                    "to others)")
    venv = root / "python"
    subprocess.run([system, "-m", "venv", "--without-pip", str(venv)], check=True,
                   capture_output=True, timeout=60)
    packages = venv / "lib" / version / "site-packages"
    # Processed as this interpreter's own (editable installs' .pth files too).
    (packages / "same-packages.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    for path in [venv, *venv.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return [str(venv / "bin" / "python")]


def program(python: list[str], argv: list[str]) -> list[str]:
    """``argv`` naming a console script (chatd, chatctl) run by ``python`` instead."""
    return [*python, "-m", MODULES[Path(argv[0]).name], *argv[1:]]
