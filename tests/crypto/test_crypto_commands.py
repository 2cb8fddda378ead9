"""/encrypt and /decrypt through a real server: subprocesses, limits, secrecy."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatd.crypto import armor, kdf
from chatd.domain.clock import Clock
from tests.helpers import ChatServer, Clients, start_server

SECRET_PW = "pw-hunter2-never-logged"


@pytest.fixture
async def spawned(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every chatd-crypt subprocess the server starts: its argv, env and process."""
    seen: list[dict[str, Any]] = []
    real = asyncio.create_subprocess_exec

    async def spy(*argv: str, **kwargs: Any) -> asyncio.subprocess.Process:
        proc = await real(*argv, **kwargs)
        seen.append({"argv": list(argv), "env": kwargs.get("env") or {}, "proc": proc})
        return proc

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spy)
    return seen


async def ok(clients: Clients, line: str, user: str = "alice") -> dict[str, Any]:
    client = await clients.user(user)
    return (await client.command(line)).final


@pytest.mark.parametrize("alg", ["aes-256-gcm", "chacha20-poly1305", "fernet"])
async def test_encrypt_then_decrypt(clients: Clients, alg: str,
                                    spawned: list[dict[str, Any]]) -> None:
    alice = await clients.user("alice")
    enc = await alice.command(f"/encrypt {alg} low {SECRET_PW} meet  me at noon")
    assert enc["result"].startswith(f"chatd-crypt:1:{alg}:scrypt:n=16384,")
    assert enc["message"] == enc["result"]  # what text mode shows
    dec = await alice.command(f"/decrypt {SECRET_PW} {enc['result']}")
    assert dec["result"] == "meet  me at noon"
    assert len(spawned) == 2 and all(s["proc"].returncode == 0 for s in spawned)


async def test_password_never_on_argv_env_or_logs(clients: Clients,
                                                  spawned: list[dict[str, Any]],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    alice = await clients.user("alice")
    enc = await alice.command(f"/encrypt aes-256-gcm low {SECRET_PW} top secret")
    await alice.command(f"/decrypt wrong-{SECRET_PW} {enc['result']}", check=False)
    await alice.command(f"/decrypt {SECRET_PW} {enc['result']}")
    await alice.command(f"/encrypt nope low {SECRET_PW} x", check=False)
    for run in spawned:
        assert not any(SECRET_PW in arg for arg in run["argv"])
        assert not any(SECRET_PW in value for value in run["env"].values())
        assert "--password-fd" in run["argv"]
    assert SECRET_PW not in caplog.text and "top secret" not in caplog.text


async def test_errors_are_one_clear_reply(clients: Clients) -> None:
    alice = await clients.user("alice")
    enc = await alice.command(f"/encrypt chacha20-poly1305 low {SECRET_PW} hello")
    wrong = await alice.command(f"/decrypt other {enc['result']}", check=False)
    assert wrong["code"] == "bad-arguments" and "wrong password" in wrong["message"]
    cut = await alice.command(f"/decrypt {SECRET_PW} {enc['result'][:40]}", check=False)
    assert cut["code"] == "bad-arguments"
    tampered = enc["result"][:-1] + ("A" if enc["result"][-1] != "A" else "B")
    bad = await alice.command(f"/decrypt {SECRET_PW} {tampered}", check=False)
    assert bad["code"] == "bad-arguments" and "Traceback" not in bad["message"]
    assert (await alice.command("/encrypt rot13 low pw x", check=False))["code"] == \
        "bad-arguments"
    assert (await alice.command("/encrypt fernet extreme pw x", check=False))["code"] == \
        "bad-arguments"


def forged(kdf_name: str, params: tuple[tuple[str, int], ...]) -> str:
    """Armored data whose header asks for the key derivation ``params``, within
    chatd-crypt's bounds but past any cost level it writes."""
    header = armor.Header("aes-256-gcm", kdf.KdfSpec(kdf_name, params), os.urandom(16),
                          os.urandom(12))
    return armor.to_armor(header, os.urandom(32))


@pytest.mark.parametrize("armored", [
    forged(kdf.SCRYPT, (("n", 2**20), ("r", 8), ("p", 1))),  # 1 GiB of memory
    forged(kdf.SCRYPT, (("n", 2**15), ("r", 8), ("p", 16))),  # twice high's work
    forged(kdf.PBKDF2, (("i", 3_000_000),)),
])
async def test_a_key_derivation_costlier_than_high_is_not_run(
        clients: Clients, spawned: list[dict[str, Any]], armored: str) -> None:
    # Any user could otherwise hold the shared subprocess slots, and up to 1 GiB a
    # process, for many seconds a request with data chatd-crypt never writes.
    alice = await clients.user("alice")
    refused = await alice.command(f"/decrypt {SECRET_PW} {armored}", check=False)
    assert refused["code"] == "bad-arguments"
    assert "costs more than the high cost level" in refused["message"]
    assert spawned == []


async def test_what_chatd_crypt_writes_at_the_high_cost_level_decrypts(
        clients: Clients) -> None:
    assert not any(kdf.costlier_than(kdf.for_cost(name, cost), "high")
                   for name in kdf.KDFS for cost in kdf.COSTS)
    alice = await clients.user("alice")
    high = await alice.command(f"/encrypt aes-256-gcm high {SECRET_PW} hello")
    assert (await alice.command(f"/decrypt {SECRET_PW} {high['result']}"))["result"] == "hello"


@pytest.fixture
async def small_server(db_path: Path) -> AsyncIterator[ChatServer]:
    server = await start_server(db_path, crypto__max_input=64)
    yield server
    await server.stop()


async def test_input_size_is_limited(small_server: ChatServer) -> None:
    clients = Clients(small_server)
    try:
        alice = await clients.user("alice")
        reply = await alice.command(f"/encrypt fernet low pw {'x' * 65}", check=False)
        assert reply["code"] == "bad-arguments" and "at most 64" in reply["message"]
        assert (await alice.command(f"/encrypt fernet low pw {'x' * 64}")).ok
    finally:
        await clients.close()


async def test_eight_concurrent_requests_two_at_a_time(db_path: Path,
                                                       spawned: list[dict[str, Any]],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # The real clock: sixteen starts exceed a second's spawn_rate, and the
    # budget refills with time, which a manual clock would hold still.
    server = await start_server(db_path, Clock(), crypto__max_concurrent=2)
    service = server.services.crypto
    peak = 0
    real_spawn = service._spawn

    async def counting(*args: Any) -> bytes:
        nonlocal peak
        peak = max(peak, service.running)
        return await real_spawn(*args)

    monkeypatch.setattr(service, "_spawn", counting)
    clients = Clients(server)
    try:
        users = [await clients.user(f"user{i}") for i in range(8)]
        replies = await asyncio.gather(*(
            u.command(f"/encrypt aes-256-gcm low pw{i} message {i}", timeout=30)
            for i, u in enumerate(users)))
        assert all(r.ok for r in replies) and len(spawned) == 8
        assert peak == 2
        back = await asyncio.gather(*(
            u.command(f"/decrypt pw{i} {r['result']}", timeout=30)
            for i, (u, r) in enumerate(zip(users, replies, strict=True))))
        assert [b["result"] for b in back] == [f"message {i}" for i in range(8)]
    finally:
        await clients.close()
        await server.stop()


async def test_a_slow_subprocess_is_killed(db_path: Path,
                                           spawned: list[dict[str, Any]]) -> None:
    server = await start_server(db_path, crypto__timeout=0.05)
    clients = Clients(server)
    try:
        alice = await clients.user("alice")
        reply = await alice.command("/encrypt aes-256-gcm high pw slow", check=False)
        assert reply["code"] == "bad-arguments" and "took longer" in reply["message"]
        assert spawned[0]["proc"].returncode is not None  # killed and reaped
        assert (await alice.command("/ping")).ok  # the connection lives on
    finally:
        await clients.close()
        await server.stop()


async def test_busy_server_refuses_beyond_the_waiting_limit(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = await start_server(db_path, crypto__max_concurrent=1, crypto__max_waiting=0)
    service = server.services.crypto
    started = asyncio.Event()
    real_spawn = service._spawn

    async def signalling(*args: Any) -> bytes:
        started.set()
        return await real_spawn(*args)

    monkeypatch.setattr(service, "_spawn", signalling)
    clients = Clients(server)
    try:
        one, two = await clients.user("one"), await clients.user("two")
        first = asyncio.ensure_future(one.command("/encrypt aes-256-gcm low pw a"))
        await asyncio.wait_for(started.wait(), 10)
        reply = await two.command("/encrypt aes-256-gcm low pw b", check=False)
        assert reply["code"] == "rate-limited" and reply["retry_ms"] == 1000
        assert (await first).ok
    finally:
        await clients.close()
        await server.stop()


async def test_decrypt_refuses_binary_plaintext_and_cleans_controls(clients: Clients) -> None:
    alice = await clients.user("alice")
    enc = await alice.command("/encrypt aes-256-gcm low pw a\x1b[31mred")  # ESC is stripped
    dec = await alice.command(f"/decrypt pw {enc['result']}")
    assert "\x1b" not in dec["message"]


async def test_file_option(clients: Clients, server: ChatServer) -> None:
    alice = await clients.user("alice")
    await alice.command("/create vault")
    if getattr(server.services, "files", None) is None:
        reply = await alice.command("/encrypt --file fernet low pw x", check=False)
        assert reply["message"] == "files are not available on this server."
        return
    reply = await alice.command("/encrypt --file fernet low pw filed")
    assert isinstance(reply["file_id"], int)
    shared = [line for line in reply.lines if line.get("type") == "message"]
    assert shared and shared[0]["file"]["name"] == "encrypted.chatd-crypt.txt"


async def test_file_option_without_a_files_service(clients: Clients,
                                                   server: ChatServer) -> None:
    alice = await clients.user("alice")
    await alice.command("/create vault")
    if hasattr(server.services, "files"):
        del server.services.files
    reply = await alice.command("/encrypt --file fernet low pw x", check=False)
    assert reply["code"] == "bad-arguments"
    assert reply["message"].startswith("files are not available on this server. Usage: /encrypt")


async def test_text_mode_shows_the_result(clients: Clients) -> None:
    raw = await clients.raw()
    await raw.line()
    raw.send("/register tina secret-pw")
    await raw.line()
    raw.send("/encrypt aes-256-gcm low pw hello text mode")
    line = await raw.line(timeout=15)
    assert line.startswith("* chatd-crypt:1:aes-256-gcm:")


async def test_an_empty_plaintext_is_said_to_be_empty(clients: Clients) -> None:
    made = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "chatd.crypto.cli", "encrypt", "--cost", "low"],
        input=b"", capture_output=True, timeout=30, check=True,
        env={**os.environ, "CHATD_CRYPT_PASSWORD": SECRET_PW})
    alice = await clients.user("alice")
    dec = await alice.command(f"/decrypt {SECRET_PW} {made.stdout.decode().strip()}")
    assert (dec["result"], dec["message"]) == ("", "(the plaintext is empty)")
