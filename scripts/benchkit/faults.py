"""The cluster's failures, timed: a Redis restart and a node killed with SIGKILL.

**Redis restart.** A sender on the first node posts into a room, one post at a
time as a client does (the next 50 ms after the last one's answer); a member
on the second node notes what arrives. Redis is stopped (SIGTERM: its
append-only file is complete), started again on its port a second later, and
the figure is the time from Redis answering again until the first post sent
after the stop is delivered to the other node's member.

**A node killed.** The last node is restarted with its writer held off (so it
has messages acknowledged and not written when it dies), a user on it posts,
then it is killed with SIGKILL. Two figures, each only when the cluster does
it: until a node that survives shows the user offline (``/whois``), and until
PostgreSQL holds every message the dead node acknowledged. When a node does
not show another node's users online before the kill, presence across nodes
is not built: the figure is "n/a (not built)", never a guess; likewise when the
dead node's messages are still missing after ``GIVE_UP`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import Any

from .common import log
from .nodes import Node, NodeGroup, node_config
from .probe import Probe, ProbeError

GIVE_UP = 15.0
REDIS_DOWN = 1.0
# Messages the doomed node acknowledges before it dies.
DOOMED_MESSAGES = 100


async def _keep_posting(sender: Probe, stop: asyncio.Event,
                        sent: dict[str, float]) -> None:
    """One post at a time, 50 ms after each answer, until ``stop``."""
    n = 0
    while not stop.is_set():
        n += 1
        text = f"redis probe {n}"
        sent[text] = time.monotonic()
        with contextlib.suppress(ProbeError, TimeoutError, ConnectionError):
            await sender.post(text, timeout=6.0)
        await asyncio.sleep(0.05)


async def _redis_restart(group: NodeGroup, first_probe: int) -> dict[str, Any]:
    sender = await Probe(first_probe).open(group.nodes[0].port)
    member = await Probe(first_probe + 1).open(group.nodes[1].port)
    try:
        await sender.enter("benchredis")
        await member.enter("benchredis")
        stop, sent = asyncio.Event(), {}
        posting = asyncio.get_running_loop().create_task(_keep_posting(sender, stop, sent))
        await asyncio.sleep(0.5)
        t_down = time.monotonic()
        await asyncio.to_thread(group.redis.stop)
        # Only a post sent once Redis is down counts: one sent before may still
        # arrive while it stops, ahead of Redis's return.
        t_stopped = time.monotonic()
        await asyncio.sleep(REDIS_DOWN)
        # Started from this thread, not a worker thread: the server is told to
        # end when the thread that started it ends (its parent-death signal).
        group.redis.start()
        t_back = time.monotonic()
        resumed = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(GIVE_UP):
                while resumed is None:
                    await asyncio.sleep(0.01)
                    after = [member.arrived[text] for text, at in sent.items()
                             if at >= t_stopped and text in member.arrived]
                    resumed = min(after) if after else None
        stop.set()
        await posting
        return {"down_s": round(t_back - t_down, 2),
                "resumed_after_s": None if resumed is None else round(resumed - t_back, 3)}
    finally:
        await sender.close()
        await member.close()


def redis_restart(group: NodeGroup, first_probe: int) -> dict[str, Any]:
    log("faults: Redis restart")
    return asyncio.run(_redis_restart(group, first_probe))


def _doomed(group: NodeGroup) -> Node:
    """The last node, restarted with its writer held off for the rest of its life."""
    old = group.nodes[-1]
    old.stop()
    node = Node(old.workdir, old.db, f"{old.name}b",
                node_config(old.workdir, old.name, group.redis.url, group.postgres.url(),
                            storage={"flush_interval": 3600, "max_batch": 1_000_000}))
    node.start()
    node.mark_faults()
    group.nodes[-1] = node
    return node


async def _until(check: Any, give_up: float) -> float | None:
    """The monotonic time ``check()`` first answered true, or None."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(give_up):
            while True:
                if await check():
                    return time.monotonic()
                await asyncio.sleep(0.05)
    return None


async def _node_kill(group: NodeGroup, node: Node, first_probe: int) -> dict[str, Any]:
    import asyncpg  # noqa: PLC0415 - the cluster extra

    victim = await Probe(first_probe + 2).open(node.port)
    watcher = await Probe(first_probe + 3).open(group.nodes[0].port)
    connection = await asyncpg.connect(group.postgres.url())
    try:
        await victim.enter("benchkill")
        ids = [int((await victim.post(f"doomed {n}"))["id"]) for n in range(DOOMED_MESSAGES)]
        shown = (await watcher.command(f"/whois {victim.name}"))["online"]
        os.kill(node.pid, signal.SIGKILL)
        t_kill = time.monotonic()
        log(f"faults: node {node.name} killed")

        async def offline() -> bool:
            return not (await watcher.command(f"/whois {victim.name}"))["online"]

        async def stored() -> bool:
            found = await connection.fetchval(
                "SELECT count(*) FROM messages WHERE id = ANY($1::bigint[])", ids)
            return bool(found >= len(ids))

        t_offline, t_stored = await asyncio.gather(
            _until(offline, GIVE_UP) if shown else asyncio.sleep(0, None),
            _until(stored, GIVE_UP))
        missing = len(ids) - await connection.fetchval(
            "SELECT count(*) FROM messages WHERE id = ANY($1::bigint[])", ids)
        return {"shown_online_elsewhere_before": bool(shown),
                "offline_after_s": None if t_offline is None else round(t_offline - t_kill, 3),
                "acknowledged": len(ids), "missing_after_give_up": missing,
                "stored_after_s": None if t_stored is None else round(t_stored - t_kill, 3),
                "give_up_s": GIVE_UP}
    finally:
        await connection.close()
        await watcher.close()
        with contextlib.suppress(OSError):
            await victim.close()


def node_kill(group: NodeGroup, first_probe: int) -> dict[str, Any]:
    log("faults: a node killed with SIGKILL")
    node = _doomed(group)
    try:
        return asyncio.run(_node_kill(group, node, first_probe))
    finally:
        node.stop()  # reaps it
