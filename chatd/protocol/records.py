"""The line protocol's wire record of each domain event: the one place it is built.

The domain emits :mod:`chatd.domain.events`; the JSON format shows this
record on one line and the text format renders it (``chatd.protocol.render``).
Each kind has one key order, the one JSON output shows (the contract names
keys, not their order). Optional fields are left out when empty, as the
contract describes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from chatd.domain import events as ev
from chatd.domain.clock import iso_ts
from chatd.domain.modes import ModeChange, format_changes
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
        # _BUILDERS directly, not record_of: once per message, on the hot path.
        record = item.record = _BUILDERS[type(item.event)](item.event)
    return record  # type: ignore[return-value]


# The kinds of text shown with a flag of their name ("action": true, "notice": true).
_FLAGGED = frozenset({"action", "notice"})


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
    if e.msg_kind in _FLAGGED:
        record[e.msg_kind] = True
    elif e.msg_kind in ev.ENVELOPE_KINDS:
        # The server relays the envelope untouched and never has a plaintext.
        del record["text"]
        record |= {"e2e": True, **e.extra}
    elif e.msg_kind in ("file", "sticker", "bot"):
        record |= e.extra
    # A bot's message says so whatever its kind (its extra is shown whole above but
    # a text's): extra is empty for nearly every message, one truth test.
    if e.extra and e.extra.get(ev.BOT_MARK):
        record["bot"] = True
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
    # "" when it was cleared (IRC's TOPIC #room :), so a client can tell. Its user
    # is who set it: every event of the protocol's presence and moderation list
    # (join ... topic, typing) names one.
    return {"type": "event", "room": e.room, "event": "topic", "user": e.actor,
            "actor": e.actor, "topic": e.topic}


def _sanction(e: ev.Unbanned | ev.Unmuted | ev.Muted) -> Record:
    record: Record = {"type": "event", "event": e.kind, "room": e.room, "actor": e.actor,
                      "user": e.user}
    if isinstance(e, ev.Muted):
        if e.until is not None:
            record["until"] = e.until
        if e.reason:
            record["reason"] = e.reason
    return record


def _role(e: ev.Promoted | ev.Demoted | ev.OwnerChanged | ev.Voiced | ev.Devoiced) -> Record:
    record: Record = {"type": "event", "event": e.kind, "room": e.room}
    if e.actor is not None:
        record["actor"] = e.actor
    record["user"] = e.user
    record["role"] = e.role
    if isinstance(e, ev.OwnerChanged) and e.previous:
        record["previous"] = e.previous
        record["previous_role"] = e.previous_role
    return record


# The room changes below name their user too, as topic does: who made the change.
def _mode(e: ev.ModeChanged) -> Record:
    return {"type": "event", "event": "mode", "room": e.room, "user": e.actor, "actor": e.actor,
            "mode": e.mode}


def _modes(e: ev.ModesChanged) -> Record:
    spec, arguments = format_changes(e.changes)
    modes = e.modes
    record: Record = {"type": "event", "event": "modes", "room": e.room, "user": e.actor,
                      "actor": e.actor, "changes": spec, "arguments": arguments,
                      "summary": describe_changes(e.changes), "modes": "+" + modes.letters()}
    if modes.key is not None:
        record["key"] = modes.key
    if modes.limit is not None:
        record["limit"] = modes.limit
    return record | {"moderated": modes.moderated, "secret": modes.secret,
                     "no_external": modes.no_external, "topic_lock": modes.topic_lock}


# How each change reads in a sentence ("key", "limit" and the rest by letter and sign).
_SAID = {"+k": "a key is needed to join", "-k": "no key is needed to join",
         "+l": "at most {} members", "-l": "no member limit",
         "+m": "moderated (only voiced members and admins speak)", "-m": "not moderated",
         "+s": "secret", "-s": "not secret",
         "+n": "only members send", "-n": "non-members may send",
         "+t": "only admins set the topic", "-t": "any member may set the topic",
         # Not events of their own (the mode and voice events say them), but /mode
         # reports every change of a mode string in one sentence.
         "+i": "private", "-i": "open", "+R": "by request", "-R": "open",
         "+v": "{} has voice", "-v": "{} has no voice"}


def describe_changes(changes: Iterable[ModeChange]) -> str:
    """What ``changes`` do, in words: ``a key is needed to join, not moderated``."""
    return ", ".join("at most 1 member" if c.signed == "+l" and c.argument == "1"
                     else _SAID[c.signed].format(c.argument) for c in changes)


def _e2e(e: ev.E2eChanged) -> Record:
    return {"type": "event", "event": "e2e", "room": e.room, "user": e.actor, "actor": e.actor,
            "e2e": e.on, "state": "on" if e.on else "off"}


def _invite(e: ev.Invited) -> Record:
    return {"type": "event", "event": "invite", "room": e.room, "user": e.user,
            "actor": e.actor}


def _about_user(e: ev.JoinRequested | ev.Terminated | ev.Typing) -> Record:
    return {"type": "event", "event": e.kind, "room": e.room, "user": e.user}


def _renamed(e: ev.Renamed) -> Record:
    return {"type": "event", "event": "rename", "room": e.room, "user": e.user, "name": e.name}


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
    ev.ModesChanged: _modes,
    ev.Voiced: _role,
    ev.Devoiced: _role,
    ev.E2eChanged: _e2e,
    ev.Invited: _invite,
    ev.JoinRequested: _about_user,
    ev.Terminated: _about_user,
    ev.Typing: _about_user,
    ev.Renamed: _renamed,
    ev.Notified: notification_record,
    ev.AccountDeleted: _account_deleted,
    ev.FloodDisconnected: _flood_disconnected,
}
