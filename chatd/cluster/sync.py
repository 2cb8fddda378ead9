"""A room as the database holds it now, applied to this node's memory.

Each node keeps the rooms in memory (the domain decides and delivers from
them). When another node decides about a room, or before this node decides
itself, the room is read again from PostgreSQL and handed to
:meth:`chatd.domain.rooms.Rooms.resync`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.host import loads_object
from storage.records import MemberRecord, RoomRecord, SanctionRecord

if TYPE_CHECKING:
    import asyncpg

    from chatd.domain.rooms import Rooms

_ROOM = ("SELECT id, name, mode, topic, created_at, terminated_at, settings, key, "
         "member_limit, moderated, secret, no_external, topic_lock "
         "FROM rooms WHERE id = $1 AND terminated_at IS NULL")
_MEMBERS = ("SELECT room_id, user_id, role, joined_at, role_since, seq FROM members "
            "WHERE room_id = $1 ORDER BY seq")
# The room's bans and mutes in one round trip: a ban decided on another node keeps
# its user out of the room here too (a join is checked against this node's copy).
_SANCTIONS = " UNION ALL ".join(
    f"SELECT '{kind}' AS kind, room_id, user_id, actor_id, reason, created_at, until "
    f"FROM {table} WHERE room_id = $1" for kind, table in (("ban", "bans"), ("mute", "mutes")))


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
            sanctions = await connection.fetch(_SANCTIONS, room_id) if row is not None else []
        record = None if row is None else _room(row)
        self.count += 1
        self._rooms.resync(room_id, record, [MemberRecord(*m) for m in members],
                           {kind: [SanctionRecord(*s[1:]) for s in sanctions if s[0] == kind]
                            for kind in ("ban", "mute")})
