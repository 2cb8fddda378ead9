"""The log's gate: what a sanction ordered before a message refuses
(chatd/cluster/gate.py). Pure: no services needed."""

from __future__ import annotations

import pytest

from chatd.cluster import gate as gates
from chatd.cluster.gate import Gate
from chatd.domain.events import Banned, Joined, Kicked, Left, Message, Muted, Unmuted
from chatd.errors import Code


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
