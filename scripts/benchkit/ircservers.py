"""The servers --compare drives over IRC: chatd's IRC listener, ngIRCd and InspIRCd.

Each is started by the benchmark as a child process (known by its PID, never
looked up by name) with a configuration of its own in the work directory:
loopback, a free port, no DNS or ident lookups, no connection limits, and
flood protection relaxed as a benchmark needs (every server would otherwise
throttle a client that sends thousands of lines a second). ngIRCd and
InspIRCd come from Debian's packages (``scripts/bench`` installs them when
missing); a server whose program is absent is reported as such and left out.

Every server exposes what a measured phase reads: its CPU (utime + stime
from ``/proc/<pid>/stat``), its resident memory, and how many connections
it holds (its established TCP connections, from ``/proc/net/tcp``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from .common import CLK_TCK, HOST, die_with_parent, log
from .daemon import Daemon, bench_config

# The Debian package of each external server's program (scripts/bench installs them).
PACKAGES = {"ngircd": "ngircd", "inspircd": "inspircd"}
ALL_SERVERS = ("chatd", "ngircd", "inspircd")


def free_port() -> int:
    """A port nothing listens on now (the server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def proc_cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process, all its threads, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def established(port: int) -> int:
    """TCP connections established to ``port`` on loopback (the server's side of
    each), from /proc/net/tcp: whatever else the server has open."""
    wanted = f":{port:04X}"
    count = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split(None, 4)
            if fields[3] == "01" and fields[1].endswith(wanted):
                count += 1
    return count


class IrcServer:
    """A C IRC server as a child process: its config file, log, PID and port."""

    program = ""
    # Connections the load generator sets up at once (over all its processes).
    handshakes = 8

    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir, self.name = workdir, name
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path = workdir / f"{name}.log"
        self.exit_code: int | None = None
        # The bench never waits for an IRC server's storage: it has none.
        self.db: Path | None = None

    # -- what a subclass provides --------------------------------------------------

    def config_text(self) -> str:
        raise NotImplementedError

    def command(self, config: Path) -> list[str]:
        raise NotImplementedError

    @classmethod
    def version(cls) -> str:
        raise NotImplementedError

    # -- life cycle ------------------------------------------------------------------

    @classmethod
    def executable(cls) -> str | None:
        """The program's path (Debian puts both servers in /usr/sbin, which a
        user's PATH may lack)."""
        return shutil.which(cls.program) or shutil.which(cls.program, path="/usr/sbin:/sbin")

    @classmethod
    def available(cls) -> bool:
        return cls.executable() is not None

    def start(self, timeout: float = 20.0) -> None:
        self.port = free_port()
        config = self.workdir / f"{self.name}.conf"
        config.write_text(self.config_text())
        with open(self.log_path, "wb") as logfile:
            self.proc = subprocess.Popen(self.command(config), stdin=subprocess.DEVNULL,
                                         stdout=logfile, stderr=subprocess.STDOUT,
                                         cwd=self.workdir,
                                         preexec_fn=die_with_parent)  # noqa: PLW1509
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.5):
                return
            time.sleep(0.05)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"{self.name} did not start (log {self.log_path}):\n{tail}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.exit_code = proc.returncode

    # -- what a phase reads ------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_split(self) -> tuple[float, float]:
        return proc_cpu_split(self.pid)

    def cpu(self) -> float:
        return sum(self.cpu_split())

    def main_thread_cpu(self) -> float:
        return self.cpu()

    def rss_kib(self) -> int:
        return proc_rss_kib(self.pid)

    def connections(self) -> int:
        return established(self.port)

    def wait_idle(self, timeout: float = 20.0) -> None:
        """Until the server holds no client connection (the last phase's are closed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connections() == 0:
                return
            time.sleep(0.1)
        log(f"warning: {self.name} still holds connections after the phase")

    def log_problems(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "warnings_and_errors": 0, "samples": []}


class Ngircd(IrcServer):
    """ngIRCd (Debian's ``ngircd``), in the foreground (``-n``).

    Flood protection: every user gets mode F ("relaxed flood protection",
    which lets a client send many commands a second) through DefaultUserModes,
    and MaxPenaltyTime = 0 turns the per-command penalty delays off.
    """

    program = "ngircd"
    # Its listen backlog is short: a refused SYN is retried after a second or more.
    handshakes = 8

    def config_text(self) -> str:
        return f"""[Global]
    Name = ngircd.bench
    Info = chatd benchmark
    Listen = {HOST}
    Ports = {self.port}
    PidFile = {self.workdir / (self.name + '.pid')}
    MotdPhrase = bench
[Limits]
    MaxConnections = 0
    MaxConnectionsIP = 0
    MaxJoins = 0
    MaxNickLength = 30
    MaxPenaltyTime = 0
    PingTimeout = 3600
    PongTimeout = 600
[Options]
    DNS = no
    Ident = no
    PAM = no
    DefaultUserModes = F
    OperCanUseMode = yes
"""

    def command(self, config: Path) -> list[str]:
        return [str(self.executable()), "-n", "-f", str(config)]

    @classmethod
    def version(cls) -> str:
        out = subprocess.run([str(cls.executable()), "--version"], capture_output=True,
                             text=True, check=False).stdout
        found = re.search(r"ngIRCd (\S+?)-", out)
        return found.group(1) if found else "?"


class Inspircd(IrcServer):
    """InspIRCd (Debian's ``inspircd``), in the foreground (``--nofork``).

    One connect class for everyone with the flood protection relaxed: no
    fakelag, a command rate and flood threshold far above what the benchmark
    sends, queues large enough for a sender's window and a receiver's backlog,
    no per-IP clone limit, and no host name resolution.
    """

    program = "inspircd"
    # It completes registrations on its once-a-second timer: many at once.
    handshakes = 512

    def config_text(self) -> str:
        d = self.workdir
        return f"""<server name="inspircd.bench" description="chatd benchmark" network="bench">
<admin name="bench" nick="bench" email="bench@localhost">
<bind address="{HOST}" port="{self.port}" type="clients">
<connect name="bench" allow="*" maxchans="100" timeout="600" pingfreq="3600"
         hardsendq="64M" softsendq="64M" recvq="1M" threshold="100000"
         commandrate="100000000" fakelag="no" localmax="1000000" globalmax="1000000"
         maxconnwarn="no" resolvehostnames="no" useident="no" limit="1000000">
<performance softlimit="1000000" clonesonconnect="no" quietbursts="yes" netbuffersize="65536"
             somaxconn="4096">
<dns timeout="1">
<options allowcoreunload="no">
<pid file="{d / (self.name + '.pid')}">
<files motd="{d / (self.name + '.motd')}">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default"
     target="{d / (self.name + '.ircd.log')}">
"""

    def start(self, timeout: float = 20.0) -> None:
        (self.workdir / f"{self.name}.motd").write_text("bench\n")
        super().start(timeout)

    def command(self, config: Path) -> list[str]:
        cmd = [str(self.executable()), "--nofork", "--config", str(config)]
        if os.geteuid() == 0:  # it refuses to run as root without being told
            cmd.append("--runasroot")
        return cmd

    @classmethod
    def version(cls) -> str:
        out = subprocess.run([str(cls.executable()), "--version"], capture_output=True,
                             text=True, check=False).stdout
        found = re.search(r"InspIRCd-(\S+)", out)
        return found.group(1) if found else "?"


class ChatdIrc:
    """chatd with its IRC listener on a free port (the line listener also runs,
    unused): the bench daemon's configuration, on the prepared database."""

    handshakes = 128

    def __init__(self, workdir: Path, db: Path, name: str) -> None:
        config = bench_config(workdir, name)
        self.daemon = Daemon(workdir, db, name, config)
        self.name = name
        self.db: Path | None = db

    def start(self) -> None:
        port = free_port()
        self.daemon.config["irc"] = {"enabled": True, "host": HOST, "port": port}
        self.daemon.start()
        self.port = port

    @classmethod
    def version(cls) -> str:
        from chatd import __version__  # noqa: PLC0415

        return str(__version__)

    def __getattr__(self, name: str) -> Any:
        # cpu, cpu_split, main_thread_cpu, rss_kib, pid, stop, wait_idle, log_problems
        return getattr(self.daemon, name)

    # Counted from /proc/net/tcp like the C servers': the control socket may be
    # slow to answer while thousands of log-ins are being handled.
    connections = IrcServer.connections
    wait_idle = IrcServer.wait_idle


def server_versions(names: list[str]) -> dict[str, str]:
    classes: dict[str, Any] = {"chatd": ChatdIrc, "ngircd": Ngircd, "inspircd": Inspircd}
    return {n: classes[n].version() for n in names}


def make_server(kind: str, workdir: Path, db: Path, name: str) -> Any:
    if kind == "chatd":
        return ChatdIrc(workdir, db, name)
    return {"ngircd": Ngircd, "inspircd": Inspircd}[kind](workdir, name)


def missing_servers(names: list[str]) -> list[str]:
    """The external servers asked for whose program is not installed."""
    return [n for n in names if n != "chatd" and
            not {"ngircd": Ngircd, "inspircd": Inspircd}[n].available()]
