"""Load-generator processes: what runs in each worker, and the parent's handle on them.

Each worker is a forked process running one (uv)loop with many clients from
``clients``; it talks to the parent over a pipe: "ready"/"armed" when its
clients are connected (or about to connect), "go" from the parent, "done" with
its counts, "close" from the parent at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import signal
import time
from collections import Counter
from typing import Any

from .clients import FanClient, FanWorker, IdleClient
from .common import HOST, die_with_parent, raise_nofile
from .wsclient import WsAdapter


def _worker_entry(kind: str, spec: dict[str, Any], pipe: Any) -> None:
    die_with_parent()
    raise_nofile()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and cleans up
    if kind.startswith("irc"):
        from .ircload import irc_fan_worker, irc_idle_worker  # noqa: PLC0415 - imports load

        main: Any = {"ircfan": irc_fan_worker, "ircidle": irc_idle_worker}[kind]
    else:
        main = {"fanout": fan_worker, "idle": idle_worker}[kind]
    try:
        import uvloop  # noqa: PLC0415

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(main(spec, pipe))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the parent went away: nothing to report to
    finally:
        pipe.close()


async def pipe_recv(pipe: Any, timeout: float) -> Any:
    """The parent's next message, without blocking the event loop."""
    loop = asyncio.get_running_loop()
    if not pipe.poll():
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(pipe.fileno(), wake)
        try:
            await asyncio.wait_for(ready, timeout)
        finally:
            loop.remove_reader(pipe.fileno())
            # add_reader made the descriptor non-blocking: a large send would fail.
            os.set_blocking(pipe.fileno(), True)
    return pipe.recv()


async def _connect_all(clients: list[Any], port: int, timeout: float,
                       concurrency: int = 64, ws: bool = False
                       ) -> tuple[list[Any], Counter[str]]:
    """Connect and log in every client (bounded concurrency, over /ws when ``ws``);
    the failures by kind."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    failures: Counter[str] = Counter()
    done: list[Any] = []

    async def one(client: Any) -> None:
        async with gate:
            try:
                await asyncio.wait_for(loop.create_connection(
                    (lambda: WsAdapter(client)) if ws else (lambda: client), HOST,
                    getattr(client, "port", 0) or port), timeout)
                await asyncio.wait_for(client.ready, timeout)
                done.append(client)
            except (OSError, RuntimeError, TimeoutError) as exc:
                failures[_failure_kind(exc)] += 1
                if client.transport is not None:
                    client.transport.abort()

    await asyncio.gather(*(one(c) for c in clients))
    return done, failures


def _failure_kind(exc: BaseException) -> str:
    text = str(exc)
    for code in ("too-many-connections", "auth-failed", "rate-limited"):
        if code in text:
            return code
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    return type(exc).__name__


async def fan_worker(spec: dict[str, Any], pipe: Any) -> None:
    worker = FanWorker(spec)
    for c in spec["clients"]:
        client = FanClient(worker, c["index"], c["room"], c["senders"], spec["messages"],
                           c["sender"], spec["window"])
        client.phase = c.get("phase", 0.0)
        client.port = c.get("port", 0)
        worker.clients.append(client)
    clients, failures = await _connect_all(worker.clients, spec["port"], spec["timeout"],
                                           ws=spec.get("ws", False))
    worker.unfinished = len(clients)
    pipe.send(("ready", {"connected": len(clients), "failures": dict(failures)}))
    command = await pipe_recv(pipe, spec["timeout"] * 4)
    if command != "go":
        return
    cpu0 = sum(os.times()[:2])
    t_go = time.monotonic()
    senders = [c for c in clients if c.is_sender]
    if worker.latency:
        pacer = asyncio.ensure_future(_pace(senders, spec, t_go))
    else:
        for client in senders:
            client.fill()
    if not clients:
        worker.finished.set_result(None)
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.shield(worker.finished), spec["timeout"])
    except TimeoutError:
        timed_out = True
        worker.t_last = time.monotonic()
    if worker.latency:
        pacer.cancel()
    pipe.send(("done", _fan_report(worker, clients, failures, timed_out, t_go,
                                   sum(os.times()[:2]) - cpu0)))
    await pipe_recv(pipe, 600)  # "close"
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    await asyncio.sleep(0.05)


async def _pace(senders: list[FanClient], spec: dict[str, Any], t_go: float) -> None:
    """Latency mode: each sender sends ``rate`` messages a second, evenly spread."""
    rate, total = spec["rate"], spec["messages"]
    period = 1.0 / rate
    due = [t_go + period * client.phase for client in senders]
    while True:
        now = time.monotonic()
        for i, client in enumerate(senders):
            while due[i] <= now and client.sent < total:
                client.send_stamped()
                due[i] += period
        pending = [d for d, c in zip(due, senders, strict=True) if c.sent < total]
        if not pending:
            return
        await asyncio.sleep(max(0.0, min(pending) - time.monotonic()))


def _fan_report(worker: FanWorker, clients: list[FanClient], failures: Counter[str],
                timed_out: bool, t_go: float, cpu: float) -> dict[str, Any]:
    errors: Counter[str] = Counter()
    missing = extra = received = expected = reordered = duplicates = others = 0
    max_id = 0
    by_port: Counter[int] = Counter()
    first_send = min((c.first_send for c in clients if c.first_send), default=t_go)
    for client in clients:
        verdict = client.verdict()
        missing += verdict["missing"]
        extra += verdict["extra"]
        received += client.count
        by_port[client.port] += client.count
        expected += client.expected
        reordered += client.reordered
        duplicates += client.duplicates
        others += client.others
        errors.update(client.errors)
        max_id = max(max_id, client.last_id)
    return {"clients": len(clients), "failures": dict(failures), "received": received,
            "expected": expected, "missing": missing, "extra": extra, "reordered": reordered,
            "duplicates": duplicates, "others": others, "errors": dict(errors),
            "error_samples": worker.samples, "timed_out": timed_out, "t_go": t_go,
            "received_by_port": dict(by_port), "first_send": first_send,
            "t_last": worker.t_last, "max_id": max_id, "cpu": cpu,
            "latencies": worker.latencies.tobytes() if worker.latency else b""}


async def idle_worker(spec: dict[str, Any], pipe: Any) -> None:
    clients = [IdleClient(i, spec["password"]) for i in spec["indexes"]]
    pipe.send(("armed", None))
    if await pipe_recv(pipe, 120) != "go":
        return
    t0 = time.monotonic()
    done, failures = await _connect_all(clients, spec["port"], spec["timeout"],
                                        concurrency=spec["concurrency"],
                                        ws=spec.get("ws", False))
    t_end = max((c.t_done for c in done), default=t0)
    pipe.send(("ready", {"connected": len(done), "failures": dict(failures), "t0": t0,
                         "t_end": t_end}))
    await pipe_recv(pipe, 600)  # "close"
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    await asyncio.sleep(0.1)


class Workers:
    """The load-generator processes of one phase."""

    def __init__(self, kind: str, specs: list[dict[str, Any]]) -> None:
        ctx = mp.get_context("fork")
        self.pipes = []
        self.procs = []
        for spec in specs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_entry, args=(kind, spec, child), daemon=True)
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)

    def gather(self, expect: str, timeout: float) -> list[Any]:
        """One message of kind ``expect`` from every worker."""
        deadline = time.monotonic() + timeout
        out = []
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            while not pipe.poll(0.05):
                if not proc.is_alive():
                    raise RuntimeError(f"load generator {proc.pid} died "
                                       f"(exit code {proc.exitcode})")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"load generator {proc.pid}: no {expect!r} in {timeout}s")
            kind, payload = pipe.recv()
            if kind != expect:
                raise RuntimeError(f"load generator sent {kind!r}, expected {expect!r}")
            out.append(payload)
        return out

    def send(self, message: str) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(message)

    def close(self) -> None:
        self.send("close")
        for proc in self.procs:
            proc.join(10)
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        for pipe in self.pipes:
            pipe.close()
