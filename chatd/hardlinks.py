"""A second name for a file, made at once: the way a file written under a
temporary name is put in place without ever replacing one that exists.

A hard link appears whole (no reader sees part of the file) and fails when the
name is taken, where a rename would replace what is there. Some file systems
(network and FUSE mounts) have none, and a link across file systems is
refused: the caller then puts the file in place its own way.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Final

# What os.link fails with where the file system has no hard links, or the two
# names are on different file systems.
NO_LINKS: Final = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV})


def linked(source: Path, target: Path) -> bool:
    """Give ``source`` the name ``target`` too; False where no hard link can be made
    there (the caller copies or renames instead). FileExistsError when ``target``
    exists; any other failure is raised as it is."""
    try:
        os.link(source, target)
    except OSError as exc:  # (FileExistsError's EEXIST is not among NO_LINKS)
        if exc.errno not in NO_LINKS:
            raise
        return False
    return True
