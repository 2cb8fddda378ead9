"""A room as the database holds it now, applied to this node's memory.

Each node keeps the rooms in memory (the domain decides and delivers from
them). When another node decides about a room, or before this node decides
itself, the room is read again from PostgreSQL and handed to
:meth:`chatd.domain.rooms.Rooms.resync`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.host import loads_object
from storage.records import MemberRecord, RoomRecord

if TYPE_CHECKING:
    import asyncpg

    from chatd.domain.rooms import Rooms

_ROOM = ("SELECT id, name, mode, topic, created_at, terminated_at, settings, key, "
         "member_limit, moderated, secret, no_external, topic_lock "
         "FROM rooms WHERE id = $1 AND terminated_at IS NULL")
_MEMBERS = ("SELECT room_id, user_id, role, joined_at, role_since, seq FROM members "
            "WHERE room_id = $1 ORDER BY seq")


def _room(row: asyncpg.Record) -> RoomRecord:
    fields = dict(row)
    fields["settings"] = loads_object(fields["settings"])
    return RoomRecord(**fields)


class RoomSync:
    """Reloads one room at a time from the cluster's database."""

    def __init__(self, pool: asyncpg.Pool, rooms: Rooms) -> None:
        self._pool = pool
        self._rooms = rooms
        self.count = 0

    async def __call__(self, room_id: int) -> None:
        async with self._pool.acquire() as connection, connection.transaction(
                isolation="repeatable_read", readonly=True):
            row = await connection.fetchrow(_ROOM, room_id)
            members = await connection.fetch(_MEMBERS, room_id) if row is not None else []
        record = None if row is None else _room(row)
        self.count += 1
        self._rooms.resync(room_id, record, [MemberRecord(*m) for m in members])
