"""The cluster's shared services for --cluster: a private PostgreSQL and Redis.

They are the tests' servers (``tests/services.py``, whose classes need no
pytest): child processes on free loopback ports, their files in temporary
directories, stopped by their process id. Redis keeps an append-only file, so
that a restart (the Redis-restart measurement) keeps the id counter, as a
production Redis with persistence does.

Also the CPU of a process tree from /proc: PostgreSQL runs a process per
connection under its postmaster, and its CPU is reported beside the nodes'.
"""

from __future__ import annotations

import os
import pwd
import shutil
from typing import Any

from .common import CLK_TCK


class ServicesMissing(RuntimeError):
    """PostgreSQL or Redis is not installed (Debian packages postgresql, redis-server)."""


def start_services() -> tuple[Any, Any]:
    """A running private PostgreSQL and Redis (append-only file on), or ServicesMissing."""
    from tests.services import (  # noqa: PLC0415 - the repository root is on sys.path
        PostgresServer,
        RedisServer,
        _scratch,
        postgres_programs,
    )

    programs = postgres_programs()
    redis_program = shutil.which("redis-server")
    if programs is None or redis_program is None:
        raise ServicesMissing("--cluster needs PostgreSQL's initdb and redis-server "
                              "(Debian packages postgresql and redis-server)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise ServicesMissing("PostgreSQL refuses root, and there is no postgres "
                                  "account to run it (Debian package postgresql)") from None
    postgres = PostgresServer(_scratch("pg"), programs).start()
    try:
        redis = RedisServer(_scratch("redis"), redis_program, appendonly=True).start()
    except BaseException:
        postgres.remove()
        raise
    return postgres, redis


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                data = f.read()
        except OSError:
            continue
        parent = int(data[data.rindex(")") + 2:].split()[1])
        tree.setdefault(parent, []).append(int(entry))
    return tree


def tree_cpu(pid: int) -> float:
    """utime + stime of ``pid`` and its live descendants, in seconds (the CPU of
    processes that ended meanwhile is counted in their parent's cutime, not here:
    PostgreSQL's connections live as long as the nodes' pools)."""
    tree = _children()
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/stat") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(")") + 2:].split()
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        todo += tree.get(current, [])
    return total
