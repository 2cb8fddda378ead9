"""The daemon under test: ``python -m chatd serve`` as a subprocess, read through /proc."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import CLK_TCK, ROOT, die_with_parent, log


def bench_config(workdir: Path, name: str, storage: dict[str, Any] | None = None,
                 web: bool = False) -> dict[str, Any]:
    config: dict[str, Any] = {
        "accounts": {"bcrypt_cost": 4},
        "limits": {"message_rate": 1e7, "message_burst": 1e7,
                   "command_rate": 1e7, "command_burst": 1e7,
                   "max_connections": 100_000, "max_connections_per_ip": 100_000,
                   "output_buffer": 64 * 1024 * 1024, "login_timeout": 600,
                   # Logins from one address arrive at once: in a cluster each holds
                   # a token of the shared per-address bucket until it is checked.
                   "auth_failures": 100_000,
                   # Every account and room of a run is made from one address.
                   "registrations": 0, "room_creations": 0},
        "storage": storage or {},
        "control": {"path": str(workdir / f"{name}.sock")},
    }
    if web:
        config["web"] = {"enabled": True, "host": "127.0.0.1", "port": 0}
    return config


class Daemon:
    """``python -m chatd serve`` on 127.0.0.1, port 0, its log in the work directory."""

    def __init__(self, workdir: Path, db: Path, name: str, config: dict[str, Any]) -> None:
        self.workdir, self.db, self.name, self.config = workdir, db, name, config
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        # The web listener's port (its web= address in the log), when it has one.
        self.web_port = 0
        self.log_path = workdir / f"{name}.log"

    def start(self, timeout: float = 60.0) -> None:
        import yaml  # noqa: PLC0415

        cfg = self.workdir / f"{self.name}.yaml"
        cfg.write_text(yaml.safe_dump(self.config))
        cmd = [sys.executable, "-m", "chatd", "serve", "--config", str(cfg), "--db", str(self.db),
               "--port", "0", "--log-level", "info"]
        with open(self.log_path, "wb") as logfile:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=logfile, cwd=ROOT,
                                         preexec_fn=die_with_parent)  # noqa: PLW1509
        deadline = time.monotonic() + timeout
        pattern = re.compile(r'msg="started" ([^\n]*)')
        while time.monotonic() < deadline:
            found = pattern.search(self.log_path.read_text(errors="replace"))
            if found:
                # Each listener by name: line="..." web="..." (several addresses when
                # a name binds several sockets; the first one is enough here).
                named = dict(re.findall(r'\b(line|web)="?([^"\s]+)', found.group(1)))
                self.port = int(named["line"].rpartition(":")[2])
                if self.config.get("web"):
                    self.web_port = int(named["web"].rpartition(":")[2])
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"chatd did not start (log {self.log_path}):\n{tail}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_durable(self, target: int) -> float | None:
        """The monotonic time message ``target`` was seen stored (None: not in time)."""
        from .database import wait_durable  # noqa: PLC0415

        return wait_durable(self.db, target)

    def cpu(self) -> float:
        """utime + stime of the daemon (all threads), in seconds."""
        user, system = self.cpu_split()
        return user + system

    def cpu_split(self) -> tuple[float, float]:
        """(utime, stime) of the daemon (all threads), in seconds, from /proc/<pid>/stat."""
        with open(f"/proc/{self.pid}/stat") as f:
            data = f.read()
        fields = data[data.rindex(")") + 2:].split()
        return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK

    def main_thread_cpu(self) -> float:
        """utime + stime of the event-loop thread alone; the rest of cpu() is the
        other threads (the SQLite connection's thread, the executor of bcrypt)."""
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/stat") as f:
                data = f.read()
        except OSError:
            return 0.0
        fields = data[data.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def nofile(self) -> str:
        with open(f"/proc/{self.pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft, hard = line.split()[3:5]
                    return f"{soft}/{hard}"
        return "?"

    def status(self) -> dict[str, Any]:
        from chatd.ops.control_client import ControlClient  # noqa: PLC0415

        path = self.config["control"]["path"]
        return dict(asyncio.run(asyncio.wait_for(ControlClient(path).call("status"), 10)))

    def wait_idle(self, timeout: float = 20.0) -> None:
        """Until the daemon holds no connection (the previous phase's are closed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status()["connections"] == 0:
                return
            time.sleep(0.1)
        log("warning: connections still open after the phase")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.exit_code = proc.returncode

    def log_problems(self) -> dict[str, Any]:
        """Warnings and errors the daemon logged (slow consumers dropped, tracebacks)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return {}
        bad = [line for line in lines if is_problem(line)]
        return {"exit_code": getattr(self, "exit_code", None), "warnings_and_errors": len(bad),
                "samples": [line[:300] for line in bad[:5]]}


# A log line's level (each line starts with its time: "time=... level=warning ...").
_PROBLEM = re.compile(r"(?:^| )level=(?:warning|error) ")


def is_problem(line: str) -> bool:
    """A warning or an error line of the daemon's log."""
    return _PROBLEM.search(line) is not None


def machine_busy() -> tuple[float, float]:
    """CPU seconds the whole machine spent busy, and the part of it in softirq
    (from /proc/stat). Softirq time -- much of loopback TCP's work -- is charged
    to no process, so it appears neither as the daemon's nor the load generator's."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLK_TCK, values[6] / CLK_TCK
