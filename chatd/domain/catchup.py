"""``/resume``: the messages a user missed, from a message id on.

A client that lost its connection knows the id of the last message it saw.
Ids are unique and increase in the order messages are delivered, so "every
message of mine above that id" is the gap, found in three places and merged
by id, each message once:

* storage: everything written;
* the message writer's pending records: delivered, not written yet (the
  embedded daemon's; a cluster node's writer holds none);
* a cluster's :class:`~chatd.domain.ports.Tail`: what the nodes delivered and
  the persister has not stored yet (the shared log's tail).

The pending records are taken before storage is read, so a record written
meanwhile is found in storage; one submitted later is delivered live, after
the caller began holding the connection's live messages (see
``commands/messages.py``).

**Whose messages.** The rooms the user is a member of *now* (a room left
during the gap is not replayed; one joined is, from the id on), and the
direct messages to and from the user, both ways, sender keys of end-to-end
rooms included (a client needs them to read the room's envelopes). A direct
message from someone the user blocks now is left out. End-to-end messages
come as stored: the envelope, never a text.

**Complete or not.** ``recovered`` is False when the gap may hold more than
was found: the counter never issued the id (a client of another database or
an earlier epoch), the id is older than the counter's epoch (a cluster whose
Redis lost its memory: what was numbered and not stored then is lost), a
source did not answer (storage, the log, the counter), or the cap was
reached (``more``: ask again from the last id replayed). Room history is
never pruned while a room lives (only ended rooms' history expires, and
nobody is a member of those), so no retention window applies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chatd.domain.events import Message
from chatd.errors import ChatError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from chatd.domain.accounts import Accounts, User
    from chatd.domain.ports import IdSpan, Sequencer, Tail
    from chatd.domain.rooms import Rooms
    from storage.api import Storage
    from storage.records import MessageRecord
    from storage.writer import Writer

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Gap:
    """The messages above an id, in id order, and whether they are all of them."""

    messages: list[Message] = field(default_factory=list)
    # Why the gap may be incomplete (empty: it is complete).
    doubts: list[str] = field(default_factory=list)
    # The cap was reached: more messages follow the last one.
    more: bool = False
    # The id to go on from when the one asked for was never issued (a client of
    # another server, or of a database restored from an older backup): the
    # latest issued, so the client waits for the ids this server gives next.
    go_on_from: int | None = None

    @property
    def recovered(self) -> bool:
        return not self.doubts and not self.more


class Catchup:
    """Finds a user's messages above a message id (the ``/resume`` command)."""

    def __init__(self, storage: Storage, writer: Writer, tail: Tail | None,
                 sequencer: Sequencer, rooms: Rooms, accounts: Accounts) -> None:
        self._storage = storage
        self._writer = writer
        self._tail = tail
        self._ids = sequencer
        self._rooms = rooms
        self._accounts = accounts

    async def since(self, user: User, after_id: int, limit: int) -> Gap:
        """``user``'s messages above ``after_id``: at most ``limit`` of them (then
        ``more``), oldest first."""
        rooms = {room.id: room.name for room in self._rooms.of_user(user)}
        gap = Gap()
        # Taken before storage is read: a record written meanwhile is read there.
        found = [*self._writer.pending_after(after_id), *await self._unstored(after_id, gap)]
        events = {m.id: self._event(m, rooms, user) for m in found if _concerns(m, rooms, user)}
        await self._check_span(after_id, gap)
        for record in await self._stored_unblocked(after_id, list(rooms), user, limit + 1, gap):
            if record.id not in events:
                events[record.id] = self._event(record, rooms, user)
        ordered = [events[i] for i in sorted(events) if not self._blocked(user, events[i])]
        gap.more = len(ordered) > limit
        gap.messages = ordered[:limit]
        return gap

    async def _check_span(self, after_id: int, gap: Gap) -> None:
        try:
            span: IdSpan = await self._ids.issued()
        except ChatError:
            gap.doubts.append("the message counter does not answer")
            return
        if after_id > span.last:
            gap.go_on_from = span.last
            gap.doubts.append(f"no message id above {span.last} was issued yet: "
                              f"{after_id} is from another server or epoch")
        elif after_id + 1 < span.first:
            gap.doubts.append(f"the message counter started again at {span.first}: "
                              "messages numbered before that may be lost")

    async def _unstored(self, after_id: int, gap: Gap) -> list[MessageRecord]:
        if self._tail is None:
            return []
        try:
            return await self._tail.after(after_id)
        except (ChatError, OSError) as exc:
            log.warning("resume: the recent messages could not be read: %s", exc)
            gap.doubts.append("the cluster's log does not answer")
            return []

    async def _stored_unblocked(self, after_id: int, room_ids: list[int], user: User,
                                wanted: int, gap: Gap) -> list[MessageRecord]:
        """The first ``wanted`` stored messages above ``after_id`` that ``user`` may be
        shown (fewer: there are no more). The direct messages of someone blocked are
        left out before counting: counted, they would fill the page in place of
        messages never read, so the cap would look unreached and those be lost."""
        kept: list[MessageRecord] = []
        while True:
            page = await self._stored(after_id, room_ids, user, wanted, gap)
            kept += [record for record in page if not _from_blocked(user, record)]
            if len(page) < wanted or len(kept) >= wanted:
                return kept[:wanted]
            after_id = page[-1].id

    async def _stored(self, after_id: int, room_ids: list[int], user: User, limit: int,
                      gap: Gap) -> list[MessageRecord]:
        try:
            return await self._storage.messages_after(after_id, room_ids, user.id, limit)
        except Exception as exc:  # any driver's failure: the answer says so, the client retries
            log.warning("resume: storage could not be read: %s", exc)
            gap.doubts.append("the database does not answer")
            return []

    def _event(self, record: MessageRecord, rooms: Mapping[int, str], user: User) -> Message:
        if record.room_id is not None:
            return Message.of(record, room=rooms.get(record.room_id))
        if record.recipient_id == user.id:
            return Message.of(record, to=user.name)
        recipient = self._accounts.get(record.recipient_id or 0)
        return Message.of(record, to=recipient.name if recipient else "")

    def _blocked(self, user: User, event: Message) -> bool:
        """A direct message from someone ``user`` blocks now."""
        if event.room is not None or not user.blocked:
            return False
        sender = self._accounts.find(event.sender)
        return sender is not None and sender.id in user.blocked


def _from_blocked(user: User, record: MessageRecord) -> bool:
    """A direct message from someone ``user`` blocks now."""
    return record.room_id is None and record.sender_id in user.blocked


def _concerns(record: MessageRecord, rooms: Mapping[int, str], user: User) -> bool:
    if record.room_id is not None:
        return record.room_id in rooms
    return user.id in (record.recipient_id, record.sender_id)

