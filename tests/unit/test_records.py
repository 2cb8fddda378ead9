"""The line protocol's record of every domain event is the wire record of before.

Each row pairs an event with the record the emitting code used to build by
hand, keys in the order JSON output shows them. Where two emitters used to
write the same kind in different key orders, the row's order is the one kept
for both (the contract names keys, not their order).
"""

from __future__ import annotations

from typing import Any

import pytest

from chatd.domain import events as ev
from chatd.domain.clock import iso_ts
from chatd.domain.modes import ModeChange, RoomModes
from chatd.protocol.records import record_of
from storage.records import MessageRecord, NotificationRecord

TS = 1_800_000_000.25


def _msg(kind: str = "text", extra: dict[str, Any] | None = None) -> MessageRecord:
    return MessageRecord(7, 1, "alice", "hi", TS, room_id=3, kind=kind, extra=extra or {})


_NOTE = NotificationRecord(9, 2, "muted", {"text": "you are muted in #r.", "room": "r",
                                           "until": None}, TS)

ROWS: list[tuple[ev.Event, dict[str, Any]]] = [
    # Messages (Messaging.post_kind, direct, replay_direct, history; IRC guests).
    (ev.Message.of(_msg(), room="r"),
     {"type": "message", "room": "r", "from": "alice", "text": "hi", "id": 7, "ts": iso_ts(TS)}),
    (ev.Message.of(_msg("action"), room="r"),
     {"type": "message", "room": "r", "from": "alice", "text": "hi", "id": 7, "ts": iso_ts(TS),
      "action": True}),
    (ev.Message.of(_msg(), to="bob"),
     {"type": "message", "to": "bob", "from": "alice", "text": "hi", "id": 7, "ts": iso_ts(TS)}),
    (ev.Message.of(_msg("e2e", {"envelope": "E"}), room="r"),
     {"type": "message", "room": "r", "from": "alice", "id": 7, "ts": iso_ts(TS), "e2e": True,
      "envelope": "E"}),
    (ev.Message.of(_msg("e2e-key", {"envelope": "E", "room_key": "r"}), to="bob"),
     {"type": "message", "to": "bob", "from": "alice", "id": 7, "ts": iso_ts(TS), "e2e": True,
      "envelope": "E", "room_key": "r"}),
    (ev.Message.of(_msg("sticker", {"sticker": "wave"}), room="r"),
     {"type": "message", "room": "r", "from": "alice", "text": "hi", "id": 7, "ts": iso_ts(TS),
      "sticker": "wave"}),
    (ev.Message.of(_msg("file", {"file": {"id": 1}}), room="r"),
     {"type": "message", "room": "r", "from": "alice", "text": "hi", "id": 7, "ts": iso_ts(TS),
      "file": {"id": 1}}),
    (ev.Message.of(_msg(), room="r", history=True),
     {"type": "message", "room": "r", "from": "alice", "text": "hi", "id": 7, "ts": iso_ts(TS),
      "history": True}),
    (ev.Message.of(_msg(), to="bob", offline=True),
     {"type": "message", "to": "bob", "from": "alice", "text": "hi", "id": 7, "ts": iso_ts(TS),
      "offline": True}),
    (ev.Message("alice", "hi", TS, to="guest"),
     {"type": "message", "to": "guest", "from": "alice", "text": "hi", "ts": iso_ts(TS)}),
    (ev.Message("alice", "psst", TS, 9, room="r", msg_kind="notice"),
     {"type": "message", "room": "r", "from": "alice", "text": "psst", "id": 9,
      "ts": iso_ts(TS), "notice": True}),
    # Membership (Rooms.join and Rooms.remove: the room before the event).
    (ev.Joined("r", "bob"), {"type": "event", "room": "r", "event": "join", "user": "bob"}),
    (ev.Left("r", "bob", "bob"),
     {"type": "event", "room": "r", "event": "leave", "user": "bob", "actor": "bob"}),
    (ev.Left("r", "bob", "bob", "quit"),
     {"type": "event", "room": "r", "event": "leave", "user": "bob", "actor": "bob",
      "reason": "quit"}),
    (ev.Kicked("r", "bob", "alice", "spam"),
     {"type": "event", "room": "r", "event": "kick", "user": "bob", "actor": "alice",
      "reason": "spam"}),
    (ev.Banned("r", "bob", "alice"),
     {"type": "event", "room": "r", "event": "ban", "user": "bob", "actor": "alice"}),
    (ev.TopicChanged("r", "alice", "news"),
     {"type": "event", "room": "r", "event": "topic", "user": "alice", "actor": "alice",
      "topic": "news"}),
    (ev.TopicChanged("r", "alice", ""),
     {"type": "event", "room": "r", "event": "topic", "user": "alice", "actor": "alice",
      "topic": ""}),
    # Moderation (the event before the room, the actor before the user).
    (ev.Muted("r", "bob", "alice", TS, "noise"),
     {"type": "event", "event": "mute", "room": "r", "actor": "alice", "user": "bob",
      "until": TS, "reason": "noise"}),
    (ev.Muted("r", "bob", "alice"),
     {"type": "event", "event": "mute", "room": "r", "actor": "alice", "user": "bob"}),
    (ev.Unmuted("r", "bob", "the server"),
     {"type": "event", "event": "unmute", "room": "r", "actor": "the server", "user": "bob"}),
    (ev.Unbanned("r", "bob", "alice"),
     {"type": "event", "event": "unban", "room": "r", "actor": "alice", "user": "bob"}),
    (ev.Promoted("r", "bob", "alice", "admin"),
     {"type": "event", "event": "promote", "room": "r", "actor": "alice", "user": "bob",
      "role": "admin"}),
    (ev.Promoted("r", "bob", None, "admin"),
     {"type": "event", "event": "promote", "room": "r", "user": "bob", "role": "admin"}),
    (ev.Demoted("r", "bob", "alice", "member"),
     {"type": "event", "event": "demote", "room": "r", "actor": "alice", "user": "bob",
      "role": "member"}),
    (ev.OwnerChanged("r", "bob", "alice", "owner", "alice"),
     {"type": "event", "event": "owner", "room": "r", "actor": "alice", "user": "bob",
      "role": "owner", "previous": "alice", "previous_role": "admin"}),
    (ev.OwnerChanged("r", "bob", None, "owner"),
     {"type": "event", "event": "owner", "room": "r", "user": "bob", "role": "owner"}),
    (ev.ModeChanged("r", "alice", "private"),
     {"type": "event", "event": "mode", "room": "r", "user": "alice", "actor": "alice",
      "mode": "private"}),
    (ev.Voiced("r", "bob", "alice", "voice"),
     {"type": "event", "event": "voice", "room": "r", "actor": "alice", "user": "bob",
      "role": "voice"}),
    (ev.Devoiced("r", "bob", "alice", "member"),
     {"type": "event", "event": "devoice", "room": "r", "actor": "alice", "user": "bob",
      "role": "member"}),
    (ev.ModesChanged("r", "alice", (ModeChange(True, "k", "pw"), ModeChange(True, "l", "5"),
                                    ModeChange(False, "t")),
                     RoomModes(key="pw", limit=5, topic_lock=False)),
     {"type": "event", "event": "modes", "room": "r", "user": "alice",
      "actor": "alice", "changes": "+kl-t",
      "arguments": ["pw", "5"],
      "summary": "a key is needed to join, at most 5 members, any member may set the topic",
      "modes": "+nkl", "key": "pw", "limit": 5, "moderated": False, "secret": False,
      "no_external": True, "topic_lock": False}),
    (ev.ModesChanged("r", "alice", (ModeChange(True, "m"),), RoomModes(moderated=True)),
     {"type": "event", "event": "modes", "room": "r", "user": "alice",
      "actor": "alice", "changes": "+m",
      "arguments": [], "summary": "moderated (only voiced members and admins speak)",
      "modes": "+ntm", "moderated": True, "secret": False, "no_external": True,
      "topic_lock": True}),
    # Admission, end-to-end, termination, typing.
    (ev.Invited("r", "bob", "alice"),
     {"type": "event", "event": "invite", "room": "r", "user": "bob", "actor": "alice"}),
    (ev.JoinRequested("r", "bob"),
     {"type": "event", "event": "request", "room": "r", "user": "bob"}),
    (ev.E2eChanged("r", "alice", True),
     {"type": "event", "event": "e2e", "room": "r", "user": "alice", "actor": "alice",
      "e2e": True, "state": "on"}),
    (ev.E2eChanged("r", "alice", False),
     {"type": "event", "event": "e2e", "room": "r", "user": "alice", "actor": "alice",
      "e2e": False, "state": "off"}),
    (ev.Terminated("r", "bob"),
     {"type": "event", "event": "terminated", "room": "r", "user": "bob"}),
    (ev.Typing("r", "bob"), {"type": "event", "event": "typing", "room": "r", "user": "bob"}),
    (ev.Renamed("r", "visitor", "wanderer"),
     {"type": "event", "event": "rename", "room": "r", "user": "visitor", "name": "wanderer"}),
    # Told to one connection as it closes.
    (ev.AccountDeleted("bob"), {"type": "notice", "text": "your account was deleted."}),
    (ev.FloodDisconnected("bob"),
     {"type": "error", "code": "rate-limited",
      "message": "sustained flooding: you are disconnected."}),
    # Notifications.
    (ev.Notified(_NOTE),
     {"type": "notice", "text": "you are muted in #r.",
      "notification": {"id": 9, "kind": "muted", "ts_epoch": TS, "room": "r", "until": None}}),
]


@pytest.mark.parametrize(("event", "record"), ROWS, ids=lambda v: getattr(v, "kind", ""))
def test_the_record_of_an_event_is_its_wire_record_in_order(event: ev.Event,
                                                            record: dict[str, Any]) -> None:
    built = record_of(event)
    assert list(built.items()) == list(record.items())
    if built["type"] in ("event", "message"):
        assert built.get("event", "message") == event.kind


def test_every_kind_of_event_has_a_row() -> None:
    kinds = {cls for cls in vars(ev).values()
             if isinstance(cls, type) and issubclass(cls, ev.Event) and cls is not ev.Event
             and not cls.__name__.startswith("_")}  # Message's private twin is no kind
    assert kinds == {type(event) for event, _ in ROWS}


def test_each_record_is_new_so_a_caller_may_extend_it() -> None:
    event = ev.Joined("r", "bob")
    assert record_of(event) is not record_of(event)


@pytest.mark.parametrize("options", [{"room": "r"}, {"to": "bob", "offline": True},
                                     {"room": "r", "history": True}])
def test_a_message_event_made_of_a_record_is_the_one_its_constructor_makes(
        options: dict[str, Any]) -> None:
    msg = _msg("file", {"file": {"id": 4}})
    event = ev.Message.of(msg, **options)
    assert type(event) is ev.Message
    assert not hasattr(event, "__dict__")
    assert event == ev.Message(msg.sender_name, msg.text, msg.ts, msg.id, msg_kind=msg.kind,
                               extra=msg.extra, **options)
    with pytest.raises(AttributeError):
        event.text = "changed"  # type: ignore[misc]
