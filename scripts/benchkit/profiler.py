"""--profile: py-spy on the daemon during the measured part of a run, and its summary."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .common import die_with_parent, log


class Profiler:
    """py-spy record on the daemon for the measured window of a phase (--profile)."""

    def __init__(self, directory: Path | None, pid: int, name: str) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.out = None if directory is None else directory / f"{name}.txt"
        exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or \
            shutil.which("py-spy")
        if self.out is None or exe is None:
            if self.out is not None:
                log("py-spy not found: no profile (pip install py-spy into .venv)")
            self.out = None
            return
        self.proc = subprocess.Popen(
            [exe, "record", "-p", str(pid), "-r", "250", "-f", "raw", "--nonblocking",
             "-o", str(self.out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent)  # noqa: PLW1509 - no threads here
        time.sleep(0.5)  # let it attach before the measured part starts

    def stop(self) -> dict[str, Any] | None:
        if self.proc is None or self.out is None:
            return None
        proc, self.proc = self.proc, None  # a second stop (a finally clause) does nothing
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return summarise_profile(self.out) if self.out.exists() else None


def summarise_profile(path: Path, top: int = 20) -> dict[str, Any]:
    """Self and inclusive sample shares per function, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * c / total, 1)) for f, c in counter.most_common(top)]

    return {"samples": total, "self": share(own), "inclusive": share(inclusive),
            "file": str(path)}
