"""The daemon's side of /encrypt and /decrypt: chatd-crypt as a subprocess.

A password KDF costs up to a second of CPU and 256 MiB; run in the daemon it
would stall every connection. So each request runs ``python -m
chatd.crypto.cli`` in its own process, at most ``crypto.max_concurrent`` at a
time, killed after ``crypto.timeout``. The password travels through an
inherited pipe (``--password-fd``): never on the command line, where ``ps``
shows it to every local user, and never in a log line. The input travels on
the child's stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import chatd
from chatd.crypto import CryptError, armor, kdf
from chatd.domain.limits import Kind
from chatd.errors import ChatError, Code

if TYPE_CHECKING:
    from chatd.config import CryptoConfig
    from chatd.domain.protection import Protection

log = logging.getLogger(__name__)

# Far below a pipe's capacity, so writing it before the child starts never blocks.
MAX_PASSWORD = 1024
EXIT_FAILED = 1
_ERROR_PREFIX = "chatd-crypt: error: "
# The costliest key derivation the daemon runs for a user: the costliest chatd-crypt
# writes. A header asking for more was made by hand, to hold a process (and up to
# 1 GiB) for many seconds in the slots every user shares.
MOST_COST = "high"
_PROJECT_ROOT = str(Path(chatd.__file__).resolve().parent.parent)


class CryptoService:
    """Runs chatd-crypt subprocesses with a concurrency cap and a time limit."""

    def __init__(self, config: CryptoConfig, protection: Protection) -> None:
        self.config = config
        self._slots = asyncio.Semaphore(config.max_concurrent)
        # Charges process starts (crypto.spawn_rate, read from the configuration in force).
        self._protection = protection
        self._waiting = 0
        self.running = 0

    def reconfigure(self, config: CryptoConfig) -> None:
        """New limits apply at once, except max_concurrent (fixed at start-up)."""
        self.config = config

    async def encrypt(self, alg: str, cost: str, password: str, text: str,
                      kdf: str = "scrypt") -> str:
        """The armored encryption of ``text`` under ``password``."""
        data = self._checked_input(text.encode("utf-8"), "text")
        out = await self.run(["encrypt", "--alg", alg, "--cost", cost, "--kdf", kdf],
                             password, data)
        return out.decode("ascii").strip()

    async def decrypt(self, password: str, armored: str) -> bytes:
        """The plaintext bytes of ``armored`` (chatd-crypt's armored text)."""
        data = self._checked_input("".join(armored.split()).encode("utf-8"), "armored data")
        _refuse_costly(data)
        return await self.run(["decrypt"], password, data)

    def _checked_input(self, data: bytes, what: str) -> bytes:
        limit = self.config.max_input
        if len(data) > limit:
            raise ChatError(Code.BAD_ARGUMENTS,
                            f"the {what} is {len(data)} bytes; at most {limit} are accepted.")
        return data

    async def run(self, args: list[str], password: str, data: bytes) -> bytes:
        """Run chatd-crypt with ``args``; its stdout, or ``bad-arguments`` with its error."""
        secret = password.encode("utf-8")
        if not secret or len(secret) > MAX_PASSWORD:
            raise ChatError(Code.BAD_ARGUMENTS,
                            f"the password must be 1 to {MAX_PASSWORD} bytes.")
        if self._slots.locked() and self._waiting >= self.config.max_waiting:
            raise ChatError(Code.RATE_LIMITED, "the server is busy encrypting for others; "
                            "try again in a moment.", retry_ms=1000)
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        self.running += 1
        try:
            # Waiting is right here: the user asked for the result and gets it a
            # little later; a burst of requests never becomes a burst of processes.
            await self._protection.wait_for(Kind.CRYPTO_SPAWN, None)
            return await self._spawn(args, secret, data)
        finally:
            self.running -= 1
            self._slots.release()

    async def _spawn(self, args: list[str], secret: bytes, data: bytes) -> bytes:
        read_end, write_end = os.pipe()
        try:
            os.write(write_end, secret)
        finally:
            os.close(write_end)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "chatd.crypto.cli", *args, "--password-fd", str(read_end),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, pass_fds=(read_end,), env=_child_env())
        finally:
            os.close(read_end)
        return await self._collect(proc, args[0], data)

    async def _collect(self, proc: asyncio.subprocess.Process, op: str, data: bytes) -> bytes:
        try:
            async with asyncio.timeout(self.config.timeout):
                out, err = await proc.communicate(data)
        except TimeoutError:
            log.warning("chatd-crypt timed out", extra={"fields": {
                "op": op, "timeout": self.config.timeout, "pid": proc.pid}})
            raise ChatError(Code.BAD_ARGUMENTS, f"{op}ion took longer than {self.config.timeout:g}"
                            "s and was stopped; try a lower cost.") from None
        finally:
            if proc.returncode is None:  # timed out, or the command was cancelled
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc.returncode == 0:
            return out
        return self._failure(op, proc.returncode, err)

    @staticmethod
    def _failure(op: str, code: int | None, err: bytes) -> bytes:
        lines = err.decode("utf-8", errors="replace").strip().splitlines()
        reason = lines[-1] if lines else ""
        if code == EXIT_FAILED and reason.startswith(_ERROR_PREFIX):
            raise ChatError(Code.BAD_ARGUMENTS, reason.removeprefix(_ERROR_PREFIX) + ".")
        # chatd-crypt's own errors never echo the input or password, but an
        # unexpected crash might: log only the status.
        log.error("chatd-crypt failed", extra={"fields": {"op": op, "status": code}})
        raise ChatError(Code.INTERNAL_ERROR, f"{op}ion failed on the server; it has been logged.")


def _refuse_costly(data: bytes) -> None:
    """``bad-arguments`` for armored data whose key derivation costs more than
    MOST_COST. Damaged data passes: chatd-crypt says what is wrong with it."""
    try:
        header, _ = armor.parse(data)
    except CryptError:
        return
    if header.kdf is not None and kdf.costlier_than(header.kdf, MOST_COST):
        raise ChatError(Code.BAD_ARGUMENTS, f"its key derivation ({header.kdf.name} "
                        f"{header.kdf.text}) costs more than the {MOST_COST} cost level, "
                        "the most the server runs; decrypt it with chatd-crypt instead.")


def _child_env() -> dict[str, str]:
    """The daemon's environment, minus any password, able to import chatd."""
    env = {k: v for k, v in os.environ.items() if k != "CHATD_CRYPT_PASSWORD"}
    paths = [_PROJECT_ROOT, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env
