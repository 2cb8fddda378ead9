"""One daemon per database file: a lock the serving process holds for its life.

Two daemons on one SQLite file would each number messages from the same
largest id, and the second's writes of the same ids would be refused and
lost. The control socket check (:meth:`chatd.ops.control.ControlServer.
refuse_if_taken`) catches a second daemon only when both use the same socket
and it is enabled; this lock is on the database file itself.

It is ``flock``: the kernel releases it when the process ends, however it
ends, so a crash leaves nothing stale. SQLite's own locks are POSIX record
locks, which are independent of ``flock`` on Linux; closing a descriptor of
the file drops the process's POSIX locks, so the descriptor here stays open
until the database is closed.
"""

from __future__ import annotations

import fcntl
import os


class DatabaseInUse(OSError):
    """Another process serves the database."""


class DatabaseLock:
    """An exclusive ``flock`` on the database file (created owner-only if new)."""

    __slots__ = ("_fd", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`DatabaseInUse` at once (never waits)."""
        if self._fd is not None or _in_memory(self.path):
            return
        if not os.path.isdir(os.path.dirname(os.path.abspath(self.path))):
            return  # opening the database names the missing directory
        fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatabaseInUse(f"another chatd serves the database {self.path}; stop it "
                                "first, or give this one its own --db") from None
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def missing(self) -> str | None:
        """What happened to the database file, when the path no longer leads to
        the file this daemon serves (deleted, or replaced by another); None while
        it does. SQLite keeps writing to the file it opened, so everything written
        from then on would be gone at the next start."""
        if self._fd is None:
            return None
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return "was deleted"
        held = os.fstat(self._fd)
        if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            return "was replaced by another file"
        return None

    def release(self) -> None:
        """After the database is closed."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _in_memory(path: str) -> bool:
    return path == ":memory:" or path.startswith("file:")
