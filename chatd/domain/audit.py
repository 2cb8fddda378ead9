"""The audit log: every governance and account action, stored and logged.

A governance or account action's entry is written before :meth:`AuditLog.record`
returns. A log-in's entry, the one frequent kind, is only noted
(:meth:`AuditLog.note`): logged and shown to live readers at once, and written
after ``NOTE_DELAY`` with the others of that moment in one statement (at most
one such write each ``NOTE_DELAY``), so a log-in waits for no database round
trip. Entries are written in the order they were made, and
every read of the log writes what is pending first.

On a cluster's node, each entry made here is also handed to the other nodes
(:attr:`AuditLog.shared`), whose live readers are told of it
(:meth:`AuditLog.heard`): an admin following the log on one node sees what
every node audits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chatd.domain.names import is_number
from storage.api import StorageError, Unavailable

if TYPE_CHECKING:
    from chatd.domain.accounts import User
    from chatd.domain.clock import Clock
    from chatd.domain.room import Room
    from storage.api import Storage
    from storage.records import AuditEntry, AuditRecord

log = logging.getLogger("chatd.audit")

# How long a noted entry may wait to be written with the others of the moment
# (like the message writer's flush interval: a storm of log-ins is a few writes).
NOTE_DELAY = 0.1


class AuditLog:
    """Writes one audit row and one structured log line per action."""

    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock
        # Called with each new entry (the live admin screen follows them).
        self.listeners: set[Callable[[dict[str, Any]], None]] = set()
        # Hands each entry made here to the other nodes of a cluster (None alone).
        self.shared: Callable[[dict[str, Any]], None] | None = None
        # Entries made and not written yet, oldest first; one batch is written at a time.
        self._unwritten: list[AuditEntry] = []
        self._write_lock = asyncio.Lock()
        self._writing: asyncio.Task[None] | None = None

    async def record(self, action: str, actor: str | None = None, target: str | None = None,
                     room: Room | None = None, reason: str = "") -> None:
        """Write one entry (with any noted before it); ``room`` is kept by name (to
        read) and id (to filter)."""
        self._add(action, actor, target, room, reason)
        await self.flush()

    def note(self, action: str, actor: str | None = None, target: str | None = None,
             logged: bool = False) -> None:
        """Make an entry now and write it soon, in a batch (log-ins: no await).
        ``logged``: the caller's own log line already says it (a log-in's ``login``
        line), so the entry makes no ``audit`` line of its own."""
        self._add(action, actor, target, None, "", logged)
        if self._writing is None:
            self._writing = asyncio.ensure_future(self._write_noted())

    async def flush(self) -> None:
        """Write every entry made so far, in order (raises the storage's error)."""
        async with self._write_lock:
            batch, self._unwritten = self._unwritten, []
            if not batch:
                return
            try:
                await self._storage.append_audit_entries(batch)
            except BaseException:
                # Kept, ahead of the entries made meanwhile, for the next write.
                self._unwritten[:0] = batch
                raise

    async def close(self) -> None:
        """Write what is pending now (at shutdown), instead of after the delay."""
        await self.flush()
        # Nothing is left for the delayed write, and it cannot be writing: no
        # await since the flush, so it is asleep or waiting for the lock.
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.cancel()

    def _add(self, action: str, actor: str | None, target: str | None, room: Room | None,
             reason: str, logged: bool = False) -> None:
        name = room.name if room is not None else None
        now = self._clock.time()
        self._unwritten.append((now, actor, action, target, name, reason,
                                room.id if room is not None else None))
        if logged and not self.listeners and self.shared is None:
            return  # a log-in's entry, with nobody following: nothing more to make
        fields = {"action": action, "actor": actor, "target": target, "room": name,
                  "reason": reason or None}
        present = {k: v for k, v in fields.items() if v is not None}
        if not logged:
            log.info("audit", extra={"fields": present})
        entry = {"ts": now, **present}
        self.heard(entry)
        if self.shared is not None:
            self.shared(entry)

    def heard(self, entry: dict[str, Any]) -> None:
        """Tell the live readers of ``entry`` (made here, or on another node, which
        stores it)."""
        for listener in list(self.listeners):
            listener(entry)

    async def _write_noted(self) -> None:
        """One write each ``NOTE_DELAY`` while entries come: in a storm of log-ins,
        writing again as soon as a write returned made a statement (and a commit)
        of the few entries of each turn, a sixth of the CPU of a token log-in."""
        try:
            while self._unwritten:
                await asyncio.sleep(NOTE_DELAY)
                await self.flush()
        except Unavailable as exc:
            # The database away (a cluster's PostgreSQL): one line, as every other
            # part says it; the entries are kept and written with the next.
            log.warning("writing noted audit entries failed; they are kept: %s", exc)
        except StorageError:
            log.exception("writing noted audit entries failed")
        finally:
            if self._writing is asyncio.current_task():
                self._writing = None

    async def entries(self, limit: int, room: Room | None = None,
                      room_id: int | None = None) -> list[AuditRecord]:
        """The latest entries, of one room (this room, not an older one of its name),
        given live or, once it has ended, by its id."""
        if room is not None:
            room_id = room.id
        await self.flush()
        return await self._storage.list_audit(limit, room_id=room_id)

    async def ended_room(self, ref: str) -> tuple[int, str] | None:
        """A terminated room's (id, name), by id or by name (``#`` optional): of a
        name used again, the room that ended last."""
        await self.flush()
        if is_number(ref):
            return await self._storage.ended_room(room_id=int(ref))
        return await self._storage.ended_room(name=ref.removeprefix("#"))

    async def may_read_ended(self, user: User, room_id: int) -> bool:
        """Server admins, and whoever the room's log shows as its admin or owner at
        some time, read the log of a room that has ended."""
        if user.is_admin:
            return True
        await self.flush()
        admins = await self._storage.audit_admins(room_id)
        return user.name.casefold() in {name.casefold() for name in admins}
