"""Missing nothing across a reconnection, for the full screen and the line mode alike.

:class:`Catchup` remembers the newest message id the person has seen; after a
reconnection it asks the server for what came after it (``/resume <last-id>``,
PROTOCOL.md §7.1), page by page, and hands each replayed message to the
interface, which files or prints it. Messages delivered live between the login
and the replay are repeated in the replay: their live copies, which arrive
after it, are dropped here, so each message is shown once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from chatd.client import ChatClient
from chatd.client.api import ClientError
from chatd.client.tui.lines import Line, error, warning

Record = dict[str, Any]
# Messages read from each room's history when no id was ever seen to resume after.
HISTORY_SPAN = 50


@dataclass(frozen=True, slots=True)
class Resumed:
    """What a resume has to say besides the messages: at most one of the two."""

    failed: Line | None = None  # the server refused the replay
    gap: Line | None = None  # the replay may be incomplete (``recovered: false``)


class Catchup:
    """The newest message id seen, and the replay of what came after it."""

    def __init__(self) -> None:
        self.last_id = 0
        self.marked = False  # last_id was set from the rooms' newest messages once
        self._replayed: set[int] = set()  # ids the replay showed: their live copies are not

    def note(self, records: Iterable[Record]) -> None:
        """Message records seen: where the next resume starts."""
        for record in records:
            ident = record.get("id")
            if record.get("type") == "message" and isinstance(ident, int):
                self.last_id = max(self.last_id, ident)

    def note_lines(self, shown: Iterable[Line]) -> None:
        """Lines shown (a reply to what the person typed, a login's messages)."""
        self.last_id = max([self.last_id, *(line.message_id or 0 for line in shown)])

    def live(self, record: Record) -> bool:
        """Whether a record that arrived unasked is to be shown (and noted): False for
        the live copy of a message the replay already showed."""
        ident = record.get("id")
        if record.get("type") == "message" and ident in self._replayed:
            self._replayed.discard(ident)
            return False
        self.note([record])
        return True

    async def mark_start(self, client: ChatClient, rooms: Iterable[str]) -> None:
        """Where a resume starts when nothing was seen yet: the newest message of each
        room (else it would be /resume 0, every message of every room)."""
        replies = await asyncio.gather(*(client.command(f"/history {room} 1", check=False)
                                         for room in rooms))
        for reply in replies:
            self.note(reply.get("messages") or [] if reply.ok else [])
        self.marked = True

    async def resume(self, client: ChatClient,
                     show: Callable[[list[Record]], Awaitable[None]]) -> Resumed:
        """Replay the messages after :attr:`last_id`, page by page, through ``show``;
        whether the server refused, or cannot promise the gap is whole."""
        self._replayed.clear()
        if not self.last_id:
            return await self._from_history(client, show)
        after = self.last_id
        while after:
            reply = await client.command(f"/resume {after}", check=False)
            if not reply.ok:
                if reply.get("code") == "unknown-command":  # an older server: nothing to do
                    return Resumed()
                return Resumed(failed=error(f"missed messages could not be fetched "
                                            f"({reply.get('code')}: {reply.get('message')})."))
            records = [record for record in reply.lines if _message(record)]
            self._replayed.update(int(record["id"]) for record in records)
            self.note(records)
            await show(records)
            last = int(reply.get("last_id") or 0)
            if not reply.get("more"):
                if reply.get("recovered") is False and 0 < last < after:
                    # The server never issued ``after`` (its database is older than
                    # what was seen): its ids go on from its latest, and so does the
                    # next resume.
                    self.last_id = last
                return Resumed(gap=_gap(reply.get("reasons") or [])
                               if reply.get("recovered") is False else None)
            after = last
        return Resumed()

    async def _from_history(self, client: ChatClient,
                            show: Callable[[list[Record]], Awaitable[None]]) -> Resumed:
        """No message was seen before the cut (the person's rooms were new and
        silent), so there is no id to resume after, and ``/resume 0`` would replay
        every direct message of the account's life: what was said meanwhile is the
        newest history of each room, shown as a replay is (in id order, once)."""
        try:
            mine, _ = await client.my_rooms()
        except ClientError as exc:
            return Resumed(failed=error(f"missed messages could not be fetched ({exc})."))
        names = [str(room["name"]) for room in mine]
        replies = await asyncio.gather(*(
            client.command(f"/history {name} {HISTORY_SPAN}", check=False) for name in names))
        records: list[Record] = []
        doubts: list[str] = []  # rooms some of whose messages may not be shown
        for name, reply in zip(names, replies, strict=True):
            if not reply.ok:
                doubts.append(f"#{name}'s history could not be read: {reply.get('message')}")
                continue
            found = [record for record in reply.get("messages") or [] if _message(record)]
            records += found
            if len(found) >= HISTORY_SPAN:
                doubts.append(f"more than {HISTORY_SPAN} messages in #{name}: PageUp or "
                              f"/history {name} shows the older ones")
        records.sort(key=lambda record: int(record["id"]))
        self._replayed.update(int(record["id"]) for record in records)
        self.note(records)
        await show(records)
        return Resumed(gap=_gap(doubts) if doubts else None)


def _message(record: Record) -> bool:
    return record.get("type") == "message" and isinstance(record.get("id"), int)


def _gap(reasons: list[Any]) -> Line:
    why = "; ".join(str(reason) for reason in reasons) or "the server did not say why"
    return warning(f"messages sent while you were disconnected may be missing ({why}).")
