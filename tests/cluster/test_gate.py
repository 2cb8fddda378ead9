"""The log's gate: what a sanction ordered before a message refuses
(chatd/cluster/gate.py). Pure: no services needed."""

from __future__ import annotations

import pytest

from chatd.cluster import gate as gates
from chatd.cluster.gate import Gate
from chatd.domain.accounts import User
from chatd.domain.events import (
    Banned,
    Demoted,
    Devoiced,
    Joined,
    Kicked,
    Left,
    Message,
    ModesChanged,
    Muted,
    OwnerChanged,
    Promoted,
    Unmuted,
    Voiced,
)
from chatd.domain.modes import RoomModes
from chatd.domain.room import Member, Role, Room
from chatd.errors import Code
from storage.records import RoomRecord, UserRecord


def said(sender: str, ts: float = 100.0) -> Message:
    return Message(sender, "hello", ts, id=1, room="hall")


def test_an_open_room_refuses_nothing() -> None:
    assert Gate().refusal(1, "hall", said("bob")) is None


@pytest.mark.parametrize(("event", "code"), [
    (Kicked("hall", "Bob", "ann"), Code.NOT_IN_ROOM),
    (Left("hall", "bob", "bob"), Code.NOT_IN_ROOM),
    (Banned("hall", "bob", "ann"), Code.BANNED),
    (Muted("hall", "bob", "ann"), Code.MUTED),
])
def test_a_sanction_refuses_the_sender_in_that_room_only(event: object, code: Code) -> None:
    gate = Gate()
    gate.apply(1, event)  # type: ignore[arg-type]
    refusal = gate.refusal(1, "hall", said("BOB"))
    assert refusal is not None and refusal.code is code
    assert "#hall" in refusal.message
    assert gate.refusal(2, "den", said("bob")) is None
    assert gate.refusal(1, "hall", said("cat")) is None


def test_joining_again_and_unmuting_open_the_gate() -> None:
    gate = Gate()
    gate.apply(1, Kicked("hall", "bob", "ann"))
    gate.apply(1, Joined("hall", "bob"))
    assert gate.refusal(1, "hall", said("bob")) is None
    gate.apply(1, Muted("hall", "bob", "ann"))
    gate.apply(1, Unmuted("hall", "bob", "ann"))
    assert gate.refusal(1, "hall", said("bob")) is None
    assert len(gate) == 0


def test_a_departure_after_a_ban_of_the_name_leaves_it_banned() -> None:
    # An IRC guest of another node whose nick was banned leaves once its node reads
    # the ban (a kick): what it posted, ordered after that, is still the ban's to
    # refuse, also where non-members may post.
    gate = Gate()
    gate.apply(1, Banned("hall", "visitor", "ann"))
    gate.apply(1, Kicked("hall", "visitor", "ann"))
    refusal = gate.refusal(1, "hall", said("visitor"))
    assert refusal is not None and refusal.code is Code.BANNED


def test_a_timed_mute_refuses_until_its_end_by_the_messages_own_time() -> None:
    gate = Gate()
    gate.apply(1, Muted("hall", "bob", "ann", until=150.0))
    refusal = gate.refusal(1, "hall", said("bob", ts=149.0))
    assert refusal is not None and refusal.details["until"] == 150.0
    assert gate.refusal(1, "hall", said("bob", ts=150.0)) is None
    assert len(gate) == 0


def test_the_oldest_sanction_is_forgotten_past_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gates, "LIMIT", 2)
    gate = Gate()
    for name in ("a", "b", "c"):
        gate.apply(1, Banned("hall", name, "ann"))
    assert len(gate) == 2
    assert gate.refusal(1, "hall", said("a")) is None
    assert gate.refusal(1, "hall", said("c")) is not None


def test_a_webhook_s_post_is_refused_for_its_creator_s_sanctions() -> None:
    """A webhook's post speaks for its creator (the entry's ``w``): their ban refuses
    it, whatever the bot's name; an entry naming nobody (an older node's) is
    checked by its sender's name, as an older node checks it."""
    gate = Gate()
    gate.apply(1, Banned("hall", "bob", "ann"))
    refusal = gate.refusal(1, "hall", said("deploy[bot]"), speaks_for="Bob")
    assert refusal is not None and refusal.code is Code.BANNED
    assert gate.refusal(1, "hall", said("deploy[bot]"), speaks_for="cat") is None
    assert gate.refusal(1, "hall", said("deploy[bot]")) is None


# The accounts of the standing tests, by id: bob a member, cat voiced, ann an
# admin, root a server admin who is a plain member.
ACCOUNTS = {user.id: user for user in (
    User(UserRecord(1, "ann", b"", False, 0.0)), User(UserRecord(2, "bob", b"", False, 0.0)),
    User(UserRecord(3, "cat", b"", False, 0.0)), User(UserRecord(4, "root", b"", True, 0.0)))}
ROLES = {1: Role.ADMIN, 2: Role.MEMBER, 3: Role.VOICE, 4: Role.MEMBER}


def copy_of_hall(moderated: bool = False) -> Room:
    """This node's copy of #hall (id 1), as it had it before the log said more."""
    room = Room(RoomRecord(1, "hall", "open", "", 0.0, moderated=moderated))
    for user_id, role in ROLES.items():
        room.members[user_id] = Member(user_id, ACCOUNTS[user_id].name, role, 0.0, 0.0, 0)
    return room


def moderated(on: bool) -> ModesChanged:
    return ModesChanged("hall", "ann", (), RoomModes(moderated=on))


def heard(gate: Gate, room: Room, sender: str, speaker_id: int | None,
          speaks_for: str | None = None) -> Code | None:
    """The code the gate refuses ``sender``'s message with, None if it takes it."""
    refusal = gate.refusal(1, "hall", said(sender), speaks_for, speaker_id, room)
    return None if refusal is None else refusal.code


def test_a_room_made_moderated_refuses_who_has_no_voice_from_then_on() -> None:
    """+m ordered before a post refuses it unless its sender speaks in a moderated
    room by the rules every post is checked by: voice, a room admin, a server admin.
    -m opens it again."""
    gate, room = Gate(ACCOUNTS.get), copy_of_hall()
    gate.apply(1, moderated(True))
    refusal = gate.refusal(1, "hall", said("Bob"), None, 2, room)
    assert refusal is not None and refusal.code is Code.MODERATED
    assert "#hall is moderated" in refusal.message
    assert [heard(gate, room, name, uid) for uid, name in ((3, "cat"), (1, "ann"), (4, "root"))] \
        == [None, None, None]
    assert gate.refusal(2, "den", said("bob"), None, 2, room) is None  # another room
    gate.apply(1, moderated(False))
    assert heard(gate, room, "bob", 2) is None


def test_a_devoice_or_a_demotion_in_a_moderated_room_silences_from_then_on() -> None:
    gate, room = Gate(ACCOUNTS.get), copy_of_hall(moderated=True)
    assert heard(gate, room, "cat", 3) is None
    gate.apply(1, Devoiced("hall", "cat", "ann", Role.MEMBER.value))
    assert heard(gate, room, "cat", 3) is Code.MODERATED
    gate.apply(1, Voiced("hall", "cat", "ann", Role.VOICE.value))
    assert heard(gate, room, "cat", 3) is None
    gate.apply(1, Demoted("hall", "ann", "owner", Role.MEMBER.value))
    assert heard(gate, room, "ann", 1) is Code.MODERATED
    gate.apply(1, Promoted("hall", "ann", "owner", Role.ADMIN.value))
    assert heard(gate, room, "ann", 1) is None


def test_a_webhook_s_post_is_refused_after_its_creator_s_demotion() -> None:
    """A hook posts only while its creator administers the room: a demotion ordered
    before its post refuses it, in the words the hook's own check uses; a promotion
    (or handing the room over) gives the right back, and a server admin keeps it."""
    gate, room = Gate(ACCOUNTS.get), copy_of_hall()
    assert heard(gate, room, "deploy[bot]", 1, speaks_for="ann") is None
    gate.apply(1, Demoted("hall", "ann", "owner", Role.MEMBER.value))
    refusal = gate.refusal(1, "hall", said("deploy[bot]"), "ann", 1, room)
    assert refusal is not None and refusal.code is Code.NOT_PERMITTED
    assert refusal.message == ("deploy[bot] posts only while its creator, ann, is an admin "
                               "of #hall.")
    assert heard(gate, room, "ann", 1) is None  # her own post: a member speaks
    gate.apply(1, OwnerChanged("hall", "bob", "ann", Role.OWNER.value, "ann"))
    assert heard(gate, room, "deploy[bot]", 1, speaks_for="ann") is None  # admin again
    gate.apply(1, Demoted("hall", "root", "owner", Role.MEMBER.value))
    assert heard(gate, room, "hook[bot]", 4, speaks_for="root") is None


def test_the_standing_a_log_entry_does_not_mark_changes_nothing() -> None:
    """An entry of a node of a version before (no mark) is left to the posting
    node's check on every node alike: the gate takes no role or modes from it."""
    gate, room = Gate(ACCOUNTS.get), copy_of_hall(moderated=True)
    gate.apply(1, moderated(True), standing=False)
    gate.apply(1, Devoiced("hall", "cat", "ann", Role.MEMBER.value), standing=False)
    gate.apply(1, Demoted("hall", "ann", "owner", Role.MEMBER.value), standing=False)
    assert heard(gate, room, "bob", 2) is None
    assert heard(gate, room, "cat", 3) is None
    assert heard(gate, room, "deploy[bot]", 1, speaks_for="ann") is None


def test_what_the_log_did_not_say_is_the_posting_node_s_to_check() -> None:
    """No change of standing read since the node started: its copy (which may be
    ahead of the log on the node that decided) refuses nothing at the gate. A
    guest, whose role only its own node knows, is judged by the log's roles alone."""
    gate, room = Gate(ACCOUNTS.get), copy_of_hall(moderated=True)
    assert heard(gate, room, "bob", 2) is None
    gate.apply(1, moderated(True))
    assert heard(gate, room, "guest", None) is None
    gate.apply(1, Devoiced("hall", "guest", "ann", Role.MEMBER.value))
    assert heard(gate, room, "guest", None) is Code.MODERATED
    gate.apply(1, Kicked("hall", "cat", "ann"))
    gate.apply(1, Joined("hall", "cat"))
    assert heard(gate, room, "cat", 3) is None  # a join's role is the copy's (voice here)
