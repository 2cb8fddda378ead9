"""The small part of systemd's protocols chatd speaks, without extra packages.

- ``sd_notify``: datagrams to ``$NOTIFY_SOCKET`` (READY=1, RELOADING=1,
  STOPPING=1, WATCHDOG=1, STATUS=...). Outside systemd it does nothing.
- Socket activation: listening sockets passed as file descriptors 3.. with
  ``$LISTEN_FDS`` and ``$LISTEN_PID``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Mapping

SD_LISTEN_FDS_START = 3


def notify(*lines: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``lines`` (like ``"READY=1"``) to the service manager; False if none."""
    address = (env if env is not None else os.environ).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # the abstract socket namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(address)
            sock.sendall("\n".join(lines).encode())
        except OSError:
            return False
    return True


def reloading() -> bool:
    """Tell systemd a reload began (it wants the monotonic time with it)."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={usec}")


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between watchdog pings (half of ``WatchdogSec``), or None."""
    env = env if env is not None else os.environ
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000 / 2


async def watchdog(interval: float) -> None:
    """Ping systemd's watchdog while the event loop is alive enough to run this."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def listen_sockets(env: Mapping[str, str] | None = None) -> list[socket.socket]:
    """The listening sockets systemd passed to this process, if any."""
    env = env if env is not None else os.environ
    pid, count = env.get("LISTEN_PID"), env.get("LISTEN_FDS")
    # As sd_listen_fds(3): the sockets are this process's only when LISTEN_PID names
    # it. A LISTEN_FDS without it (left in a shell's environment) would have chatd
    # take whatever descriptors 3.. happen to be for its listeners, and fail on them.
    if not count or pid != str(os.getpid()):
        return []
    sockets = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)):
        with contextlib.suppress(OSError):
            os.set_inheritable(fd, False)
        sockets.append(socket.socket(fileno=fd))
    return sockets
