"""The bans of IRC guests every node of a cluster holds.

A guest has no account, so its ban has no row in PostgreSQL: it names the nick
and the address the guest had (chatd.irc.guests). Each room's bans of guests are
one JSON value in Redis (``{chatd}:guestbans:<room id>``), read whenever a node
reads the room again: before its own decision about the room, in the room's
transaction, and after another node's decision. A ban is written in the
transaction that decided it, so the next decision about the room, on any node,
reads it: a guest banned through one node is refused a JOIN on every node, and
one unban lifts it everywhere. A node's restart reads them again; the room's
end drops them. Redis losing its data loses them (docs/CLUSTER.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

import redis

from chatd.cluster import codec, keys
from chatd.cluster.transactions import LOCK_WAIT, answered
from chatd.irc.guests import GuestBan

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import redis.asyncio

log = logging.getLogger(__name__)


class RedisGuestBans:
    """The rooms' bans of guests in Redis, for every node (chatd.irc.guests.SharedBans)."""

    def __init__(self, shared: redis.asyncio.Redis,
                 announce: Callable[[int], None] = lambda room_id: None) -> None:
        self._shared = shared
        self._announce = announce
        self._tasks: set[asyncio.Task[None]] = set()

    async def load(self, room_id: int) -> dict[str, GuestBan]:
        raw = await answered(self._shared.get(keys.guest_bans(room_id)))
        return {} if raw is None else _bans(raw)

    async def load_every(self) -> dict[int, dict[str, GuestBan]]:
        """Every room's bans of guests, by room id: what a node starting holds."""
        names = [name async for name in self._shared.scan_iter(match=keys.GUEST_BANS_MATCH)]
        values = await self._shared.mget(names) if names else []
        return {int(codec.text(name).rpartition(":")[2]): _bans(raw)
                for name, raw in zip(names, values, strict=True) if raw is not None}

    async def store(self, room_id: int, bans: Mapping[str, GuestBan]) -> None:
        key = keys.guest_bans(room_id)
        if bans:
            await answered(self._shared.set(key, json.dumps(
                {nick: _fields(ban) for nick, ban in bans.items()})))
        else:
            await answered(self._shared.delete(key))

    def announce(self, room_id: int) -> None:
        self._announce(room_id)

    def forget(self, room_id: int) -> None:
        task = asyncio.ensure_future(self._forget(room_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settled(self) -> None:
        """Until the deletions asked so far are done (each bounded): the node's stop
        waits for them before it closes its Redis client, which one done later
        would open again."""
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    async def _forget(self, room_id: int) -> None:
        # Every node that learns of the end drops them: the same delete, done once.
        try:
            async with asyncio.timeout(LOCK_WAIT):
                await self._shared.delete(keys.guest_bans(room_id))
        except (redis.RedisError, TimeoutError) as exc:
            log.warning("cluster: the guest bans of ended room %d not dropped (%s)",
                        room_id, exc or type(exc).__name__)


def _bans(raw: bytes | str) -> dict[str, GuestBan]:
    return {key: _ban(fields) for key, fields in json.loads(raw).items()}


def _fields(ban: GuestBan) -> dict[str, Any]:
    return {"nick": ban.nick, "address": ban.address, "actor": ban.actor, "at": ban.at,
            "until": ban.until}


def _ban(fields: dict[str, Any]) -> GuestBan:
    # Read back without the guest it banned (0): a guest's id is its node's own,
    # and the ban follows a NICK only in the transaction that decided it, in the
    # deciding node's memory, which is read again only once that has ended.
    return GuestBan(fields["nick"], fields["address"], fields["actor"], fields["at"], 0,
                    fields.get("until"))
