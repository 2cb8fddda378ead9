"""The resume scenario: after a restart, clients log in again with resume tokens.

Optional (``--only resume``). A daemon of its own, on a database of its own,
at the default bcrypt cost (12):

1. each of N users gets a resume token by logging in with its API token and
   ``--resume`` (cheap: no bcrypt, so the set-up does not take minutes);
2. a sample of password logins with ``--resume`` (bcrypt at cost 12), for the
   comparison: how long N of them would take at the measured rate;
3. the daemon is stopped (SIGTERM) and started again;
4. all N clients connect at once and send ``/login --resume <token>``: the
   time from the restart (the new process spawned) to the last ``ok``, and
   the daemon's CPU per login.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from .common import HOST, PASSWORD, log, token, user_name
from .context import Context
from .daemon import Daemon, bench_config

DEFAULT_COST = 12


async def _prepare(path: Path, users: int) -> None:
    """``users`` accounts sharing one bcrypt hash at cost 12, each with an API token."""
    import bcrypt  # noqa: PLC0415 - the parent alone needs these

    from chatd.domain.tokens import token_hash  # noqa: PLC0415
    from storage.sqlite import SqliteStorage  # noqa: PLC0415

    storage = SqliteStorage(str(path))
    await storage.open()
    try:
        now = time.time()
        password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(DEFAULT_COST))
        for i in range(users):
            user = await storage.create_user(user_name(i), password_hash, False, now)
            await storage.create_token(user.id, "bench", token_hash(token(i)), now, None)
    finally:
        await storage.close()


async def _login(port: int, line: str, timeout: float) -> dict[str, Any]:
    """Connect, switch to JSON, send one login line; its final reply (or the failure)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    except (OSError, TimeoutError) as exc:
        return {"type": "error", "code": f"connect: {type(exc).__name__}"}
    try:
        writer.write(f"/format json\r\n{line}\r\n".encode())
        async with asyncio.timeout(timeout):
            while raw := await reader.readline():
                if raw.startswith(b"{"):
                    record = json.loads(raw)
                    if record.get("command") in ("login", "auth") and \
                            record["type"] in ("ok", "error"):
                        return dict(record)
        return {"type": "error", "code": "closed"}
    except TimeoutError:
        return {"type": "error", "code": "timeout"}
    finally:
        writer.close()


async def _wave(port: int, lines: list[str], timeout: float) -> tuple[list[dict[str, Any]], float]:
    """Every line's login at once, on a connection each; the replies and the wall time."""
    started = time.monotonic()
    replies = await asyncio.gather(*(_login(port, line, timeout) for line in lines))
    return list(replies), time.monotonic() - started


def _failures(replies: list[dict[str, Any]]) -> dict[str, int]:
    failed: dict[str, int] = {}
    for reply in replies:
        if reply.get("type") != "ok":
            failed[str(reply.get("code"))] = failed.get(str(reply.get("code")), 0) + 1
    return failed


def run_resume(ctx: Context, clients: int, sample: int) -> dict[str, Any]:
    db = ctx.workdir / "resume.db"
    log(f"resume: preparing {clients} users at bcrypt cost {DEFAULT_COST}")
    asyncio.run(_prepare(db, clients))
    config = bench_config(ctx.workdir, "resume")
    config["accounts"] = {"bcrypt_cost": DEFAULT_COST}
    daemon = ctx.extra_daemon(Daemon(ctx.workdir, db, "resume", config))
    timeout = ctx.plan.phase_timeout * 5
    out: dict[str, Any] = {"clients": clients, "bcrypt_cost": DEFAULT_COST}
    try:
        daemon.start()
        log(f"resume: {clients} API-token logins with --resume (the tokens to resume with)")
        replies, _ = asyncio.run(_wave(daemon.port, [f"/auth {token(i)} --resume"
                                                     for i in range(clients)], timeout))
        tokens = [r.get("resume", "") for r in replies]
        out["setup_failures"] = _failures(replies)
        log(f"resume: {sample} password logins at cost {DEFAULT_COST}, for comparison")
        cpu0 = daemon.cpu()
        replies, wall = asyncio.run(_wave(
            daemon.port, [f"/login {user_name(i)} {PASSWORD}" for i in range(sample)], timeout))
        cpu = daemon.cpu() - cpu0
        ok = sample - sum(_failures(replies).values())
        out["password"] = {"logins": sample, "ok": ok, "wall_s": round(wall, 3),
                           "logins_per_s": round(ok / max(wall, 1e-9), 1),
                           "server_cpu_per_login_ms": round(1000 * cpu / max(1, ok), 2),
                           "estimated_s_for_all": round(clients * wall / max(1, ok), 1),
                           "failures": _failures(replies)}
        log("resume: restarting the daemon")
        daemon.stop()
        restarted = time.monotonic()
        daemon.start()
        started_s = time.monotonic() - restarted
        cpu0 = daemon.cpu()
        replies, wall = asyncio.run(_wave(daemon.port, [f"/login --resume {t}" for t in tokens],
                                          timeout))
        cpu = daemon.cpu() - cpu0
        ok = clients - sum(_failures(replies).values())
        out["resume"] = {"logins": clients, "ok": ok, "daemon_start_s": round(started_s, 3),
                         "wall_s": round(wall, 3),
                         "restart_to_all_logged_in_s": round(time.monotonic() - restarted, 3),
                         "logins_per_s": round(ok / max(wall, 1e-9), 1),
                         "server_cpu_per_login_ms": round(1000 * cpu / max(1, ok), 3),
                         "failures": _failures(replies)}
    finally:
        daemon.stop()
    return out


def scenario_resume(ctx: Context) -> dict[str, Any]:
    return run_resume(ctx, ctx.plan.resume_clients, ctx.plan.resume_password_sample)
