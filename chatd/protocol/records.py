"""The line protocol's wire record of each domain event: the one place it is built.

The domain emits :mod:`chatd.domain.events`; the JSON format shows this
record on one line and the text format renders it (``chatd.protocol.render``).
Each kind has one key order, the one JSON output shows (the contract names
keys, not their order). Optional fields are left out when empty, as the
contract describes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chatd.domain import events as ev
from chatd.domain.clock import iso_ts
from chatd.errors import Code

if TYPE_CHECKING:
    from chatd.delivery.outgoing import Outgoing

Record = dict[str, Any]


def record_of(event: ev.Event) -> Record:
    """The wire record of ``event`` (a new dict: the caller may extend it)."""
    return _BUILDERS[type(event)](event)


def record_for(item: Outgoing) -> Record:
    """``item``'s record, built on first use and kept for every other recipient."""
    record = item.record
    if record is None:
        assert item.event is not None
        record = item.record = record_of(item.event)
    return record  # type: ignore[return-value]


def _message(e: ev.Message) -> Record:
    record: Record = {"type": "message"}
    if e.room is not None:
        record["room"] = e.room
    if e.to is not None:
        record["to"] = e.to
    record["from"] = e.sender
    record["text"] = e.text
    if e.id is not None:
        record["id"] = e.id
    record["ts"] = iso_ts(e.ts)
    if e.msg_kind == "action":
        record["action"] = True
    elif e.msg_kind == "e2e":
        # The server relays the envelope untouched and never has a plaintext.
        del record["text"]
        record |= {"e2e": True, **e.extra}
    elif e.msg_kind in ("file", "sticker", "bot"):
        record |= e.extra
    if e.history:
        record["history"] = True
    if e.offline:
        record["offline"] = True
    return record


def _room_first(e: ev.Joined | ev.Left | ev.Kicked | ev.Banned) -> Record:
    # Membership changes name the room before the event (as they always have).
    record: Record = {"type": "event", "room": e.room, "event": e.kind, "user": e.user}
    if not isinstance(e, ev.Joined):
        if e.actor is not None:
            record["actor"] = e.actor
        if e.reason:
            record["reason"] = e.reason
    return record


def _topic(e: ev.TopicChanged) -> Record:
    record: Record = {"type": "event", "room": e.room, "event": "topic", "actor": e.actor}
    if e.topic:
        record["topic"] = e.topic
    return record


def _sanction(e: ev.Unbanned | ev.Unmuted | ev.Muted) -> Record:
    record: Record = {"type": "event", "event": e.kind, "room": e.room, "actor": e.actor,
                      "user": e.user}
    if isinstance(e, ev.Muted):
        if e.until is not None:
            record["until"] = e.until
        if e.reason:
            record["reason"] = e.reason
    return record


def _role(e: ev.Promoted | ev.Demoted | ev.OwnerChanged) -> Record:
    record: Record = {"type": "event", "event": e.kind, "room": e.room}
    if e.actor is not None:
        record["actor"] = e.actor
    record["user"] = e.user
    record["role"] = e.role
    if isinstance(e, ev.OwnerChanged) and e.previous:
        record["previous"] = e.previous
    return record


def _mode(e: ev.ModeChanged) -> Record:
    return {"type": "event", "event": "mode", "room": e.room, "actor": e.actor, "mode": e.mode}


def _e2e(e: ev.E2eChanged) -> Record:
    return {"type": "event", "event": "e2e", "room": e.room, "actor": e.actor, "e2e": e.on,
            "state": "on" if e.on else "off"}


def _invite(e: ev.Invited) -> Record:
    return {"type": "event", "event": "invite", "room": e.room, "user": e.user,
            "actor": e.actor}


def _about_user(e: ev.JoinRequested | ev.Terminated | ev.Typing) -> Record:
    return {"type": "event", "event": e.kind, "room": e.room, "user": e.user}


def _account_deleted(e: ev.AccountDeleted) -> Record:
    return {"type": "notice", "text": "your account was deleted."}


def _flood_disconnected(e: ev.FloodDisconnected) -> Record:
    return {"type": "error", "code": Code.RATE_LIMITED.value,
            "message": "sustained flooding: you are disconnected."}


def notification_record(e: ev.Notified) -> Record:
    """The wire form of a stored notification (a ``notice`` with its details)."""
    note = e.note
    return {"type": "notice", "text": note.payload.get("text", note.kind),
            "notification": {"id": note.id, "kind": note.kind, "ts_epoch": note.created_at,
                             **{k: v for k, v in note.payload.items() if k != "text"}}}


_BUILDERS: dict[type[Any], Callable[[Any], Record]] = {
    ev.Message: _message,
    ev.Joined: _room_first,
    ev.Left: _room_first,
    ev.Kicked: _room_first,
    ev.Banned: _room_first,
    ev.TopicChanged: _topic,
    ev.Unbanned: _sanction,
    ev.Muted: _sanction,
    ev.Unmuted: _sanction,
    ev.Promoted: _role,
    ev.Demoted: _role,
    ev.OwnerChanged: _role,
    ev.ModeChanged: _mode,
    ev.E2eChanged: _e2e,
    ev.Invited: _invite,
    ev.JoinRequested: _about_user,
    ev.Terminated: _about_user,
    ev.Typing: _about_user,
    ev.Notified: notification_record,
    ev.AccountDeleted: _account_deleted,
    ev.FloodDisconnected: _flood_disconnected,
}
