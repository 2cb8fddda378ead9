"""What every part of the benchmark shares: constants, names, logging, small helpers.

Importing this module also puts the repository root on ``sys.path``, so that
``chatd`` and ``storage`` import when the benchmark runs from a checkout.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import resource
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PASSWORD = "bench-pw"
HOST = "127.0.0.1"
# The text of a fan-out message after its sequence number: a typical chat line.
PAYLOAD = b"lorem ipsum dolor sit amet, consectetur adipiscing elit"
CLK_TCK = os.sysconf("SC_CLK_TCK")
ALL_SCENARIOS = ("fanout", "latency", "scaling", "persistence", "connections", "ws", "resume")
# What runs without --only: ws (the web listener) and resume (logins after a
# restart) are asked for by name.
DEFAULT_SCENARIOS = ALL_SCENARIOS[:5]
# Unacknowledged deliveries (senders x window x room size) a run may have in
# flight: bounds the server's output buffers (10 senders x 32 x 1000 members).
MAX_IN_FLIGHT = 320_000
HISTORY_ROOM = "hist"


# --json-only: no progress lines (set by set_quiet before any worker is forked).
QUIET = False


def log(msg: str) -> None:
    """A progress line on stderr, unless --json-only."""
    if not QUIET:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def set_quiet(quiet: bool) -> None:
    """--json-only: no progress lines on stderr (forked load generators inherit it)."""
    global QUIET  # noqa: PLW0603
    QUIET = quiet


def room_name(layout: tuple[int, int], k: int) -> str:
    clients, rooms = layout
    return f"c{clients}r{rooms}n{k}"


def user_name(i: int) -> str:
    return f"b{i}"


def token(i: int) -> str:
    """User i's API token (clients log in with /auth: no bcrypt on the way). It has
    the form of a real token (``chatd_`` and 43 base64url characters): IRC's PASS
    takes a secret of that form as a token, anything else as a password."""
    return f"chatd_bench-{i:037d}"


def die_with_parent() -> None:
    """In a child: get SIGTERM when the bench process dies, however it dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def raise_nofile() -> None:
    """Raise this process's open-files limit to its hard limit (many sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pct(sorted_values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of already sorted values; NaN when empty."""
    if not sorted_values:
        return math.nan
    k = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]
