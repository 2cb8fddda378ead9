"""The invariant checker itself, on small hand-made runs: a clean run passes,
and each kind of broken promise is caught."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cluster.invariants import Journal, Stored, violations

TS = "2026-01-01T00:00:00.000Z"


class Run:
    """A journal written by hand: connections join ``#hall`` and receive lines."""

    def __init__(self) -> None:
        self.journal = Journal()

    def connect(self, conn: str, user: str, room: str = "hall") -> None:
        self.journal.opened(conn, user)
        sent = self.journal.send(conn, f"/join {room}")
        self.journal.reply(sent, {"type": "ok", "command": "join", "room": room})

    def message(self, conn: str, message_id: int, sender: str = "ann", room: str = "hall",
                ts: str = TS) -> None:
        self.journal.receive(conn, {"type": "message", "room": room, "from": sender,
                                    "text": "hi", "id": message_id, "ts": ts})

    def event(self, conn: str, kind: str, user: str, room: str = "hall",
              **extra: Any) -> None:
        self.journal.receive(conn, {"type": "event", "event": kind, "room": room,
                                    "user": user, "actor": "ann", **extra})

    def ack(self, conn: str, message_id: int, room: str = "hall") -> None:
        sent = self.journal.send(conn, f"/say {room} hi")
        self.journal.reply(sent, {"type": "ok", "command": "say", "id": message_id,
                                  "room": room})

    def decided(self, conn: str, command: str, user: str, room: str = "hall") -> None:
        sent = self.journal.send(conn, f"/{command} {user} {room}")
        self.journal.reply(sent, {"type": "ok", "command": command, "room": room,
                                  "user": user})


def direct(run: Run, sender: str, to: str, message_id: int, *receivers: str) -> None:
    """``sender``'s connection acknowledged a direct message to ``to``, which each
    of ``receivers`` (connections) received."""
    sent = run.journal.send(sender, f"/msg {to} hi")
    run.journal.reply(sent, {"type": "ok", "command": "msg", "id": message_id, "to": to})
    for conn in receivers:
        run.journal.receive(conn, {"type": "message", "to": to, "from": "ann", "text": "hi",
                                   "id": message_id, "ts": TS})


def clean_run() -> tuple[Run, Stored]:
    """Ann and bob in #hall on two connections; ann sends 1, 2, 3; all acknowledged,
    delivered to both, stored."""
    run = Run()
    run.connect("a", "ann")
    run.connect("b", "bob")
    for message_id in (1, 2, 3):
        run.ack("a", message_id)
        run.message("a", message_id)
        run.message("b", message_id)
    return run, Stored(history={"hall": [1, 2, 3]}, owners={"hall": 1})


def test_a_clean_run_breaks_nothing() -> None:
    run, stored = clean_run()
    assert violations(run.journal, stored) == []


def test_direct_messages_acknowledged_delivered_and_stored_break_nothing() -> None:
    run, stored = clean_run()
    direct(run, "a", "bob", 4, "b")
    stored.direct = [4]
    assert violations(run.journal, stored) == []


def test_a_direct_message_lost_or_stored_wrongly_is_caught() -> None:
    run, stored = clean_run()
    direct(run, "a", "bob", 4)  # acknowledged, never reached bob's open connection
    direct(run, "a", "bob", 5, "b")  # reached bob, not stored
    stored.direct = [4, 4, 6]  # 4 twice; 6 delivered to nobody
    found = violations(run.journal, stored)
    assert "direct message 4 never reached b, a connection of bob all along" in found
    assert "direct message 5 to bob was acknowledged but is not stored" in found
    assert "direct messages stored more than once: [4]" in found
    assert "direct messages delivered but not stored: [5]" in found
    assert "direct messages stored but delivered to nobody: [6]" in found
    # A connection opened after the message was sent is not owed it.
    late = Run()
    direct(late, "a", "bob", 7)
    late.connect("b2", "bob")
    assert violations(late.journal, Stored(direct=[7])) == []


def test_ids_that_go_back_on_a_connection_are_caught() -> None:
    run, stored = clean_run()
    run.message("b", 2)
    found = violations(run.journal, stored)
    assert "b: id 2 after 3" in found


def test_two_connections_disagreeing_on_a_room_order_are_caught() -> None:
    run = Run()
    run.connect("a", "ann")
    run.connect("b", "bob")
    run.message("a", 5)
    run.message("a", 7)
    run.message("b", 7)
    run.message("b", 5)
    found = violations(run.journal, Stored(history={"hall": [5, 7]}, owners={"hall": 1}))
    assert any("disagree on the order" in v for v in found)


def test_a_sanction_placed_differently_on_two_connections_is_caught() -> None:
    run = Run()
    run.connect("a", "ann")
    run.connect("b", "bob")
    run.message("a", 5, sender="cat")
    run.event("a", "mute", "cat")
    run.event("b", "mute", "cat")
    run.message("b", 5, sender="cat")
    found = violations(run.journal, Stored(history={"hall": [5]}, owners={"hall": 1}))
    assert any("disagree on the order" in v for v in found)
    assert any("after the mute" in v for v in found)


def test_an_acknowledged_message_missing_from_history_is_caught() -> None:
    run, stored = clean_run()
    stored.history["hall"] = [1, 3]
    found = violations(run.journal, stored)
    assert "#hall: acknowledged message 2 is not in history" in found
    assert "#hall: delivered but not in history: [2]" in found


def test_an_acknowledged_message_a_member_never_got_is_caught() -> None:
    run, stored = clean_run()
    run.ack("a", 4)
    run.message("a", 4)
    stored.history["hall"].append(4)
    found = violations(run.journal, stored)
    assert found == ["#hall: acknowledged message 4 never reached b, a member all along"]


def test_a_member_that_left_or_joined_late_is_not_owed_the_message() -> None:
    run, stored = clean_run()
    run.journal.closed("b")  # gone before message 4
    run.connect("c", "cat")  # a member before message 4: it got it
    run.ack("a", 4)
    run.connect("d", "dan")  # joined after message 4 was sent
    run.message("a", 4)
    run.message("c", 4)
    stored.history["hall"].append(4)
    assert violations(run.journal, stored) == []


def test_history_with_a_duplicate_or_an_undelivered_message_is_caught() -> None:
    run, stored = clean_run()
    stored.history["hall"] = [1, 2, 2, 3, 9]
    found = violations(run.journal, stored)
    assert "#hall: stored more than once: [2]" in found
    assert "#hall: in history but delivered to nobody: [9]" in found


def test_a_message_after_the_ban_of_its_sender_is_caught_until_a_new_join() -> None:
    run = Run()
    run.connect("a", "ann")
    run.message("a", 1, sender="bob")
    run.event("a", "ban", "bob")
    run.message("a", 2, sender="bob")
    run.event("a", "join", "bob")
    run.message("a", 3, sender="bob")
    found = violations(run.journal, Stored(history={"hall": [1, 2, 3]}, owners={"hall": 1}))
    assert found == ["#hall: a got message 2 from bob after the ban that stopped them"]


def test_a_timed_mute_stops_messages_until_it_ends() -> None:
    run = Run()
    run.connect("a", "ann")
    run.event("a", "mute", "bob", until=1767225660.0)  # 00:01:00
    run.message("a", 1, sender="bob", ts="2026-01-01T00:00:30.000Z")
    run.message("a", 2, sender="bob", ts="2026-01-01T00:01:30.000Z")
    run.event("a", "mute", "cat")
    run.event("a", "unmute", "cat")
    run.message("a", 3, sender="cat")
    found = violations(run.journal, Stored(history={"hall": [1, 2, 3]}, owners={"hall": 1}))
    assert found == ["#hall: a got message 1 from bob after the mute that stopped them"]


def test_a_connection_own_rejoin_reopens_the_gate_for_it() -> None:
    run = Run()
    run.connect("b", "bob")
    run.event("b", "kick", "bob")
    run.connect("b", "bob")  # its own join: no event, the reply says so
    run.ack("b", 1)
    run.message("b", 1, sender="bob")
    assert violations(run.journal, Stored(history={"hall": [1]}, owners={"hall": 1})) == []


def moderated(run: Run, conn: str, on: bool) -> None:
    run.event(conn, "modes", "ann", changes="+m" if on else "-m", moderated=on)


def test_a_message_of_a_member_without_voice_after_the_plus_m_is_caught() -> None:
    run = Run()
    run.journal.opened("o", "ann")
    created = run.journal.send("o", "/create hall")  # ann owns #hall: she speaks
    run.journal.reply(created, {"type": "ok", "command": "create", "room": "hall"})
    run.connect("a", "cat")
    run.message("a", 1, sender="bob")
    moderated(run, "a", True)
    run.message("a", 2, sender="bob")  # silenced by the +m
    run.message("a", 3, sender="ann")
    run.event("a", "voice", "bob", role="voice")
    run.message("a", 4, sender="bob")
    run.event("a", "devoice", "bob", role="member")
    run.message("a", 5, sender="bob")  # silenced again
    moderated(run, "a", False)
    run.message("a", 6, sender="bob")
    found = violations(run.journal, Stored(history={"hall": list(range(1, 7))},
                                           owners={"hall": 1}))
    assert found == ["#hall: a got message 2 from bob after the +m that stopped them",
                     "#hall: a got message 5 from bob after the +m that stopped them"]


def test_a_demoted_admin_posting_in_a_moderated_room_is_caught() -> None:
    run = Run()
    run.connect("a", "cat")
    run.event("a", "promote", "bob", role="admin")
    moderated(run, "a", True)
    run.message("a", 1, sender="bob")  # an admin speaks
    run.event("a", "demote", "bob", role="member")
    run.message("a", 2, sender="bob")
    found = violations(run.journal, Stored(history={"hall": [1, 2]}, owners={"hall": 1}))
    assert found == ["#hall: a got message 2 from bob after the +m that stopped them"]


def test_governance_applied_twice_or_not_recorded_is_caught() -> None:
    run, stored = clean_run()
    run.decided("a", "kick", "bob")
    stored.owners = {"hall": 2, "den": 0}
    stored.ended = {"den"}
    stored.terminations = {"den": 2, "lab": 1}
    stored.audit = [("promote", "hall", "bob"), ("join", "hall", "bob")]
    found = violations(run.journal, stored)
    assert found == ["#hall: 2 owners", "#den: terminated 2 times",
                     "decision ('kick', 'hall', 'bob') has no audit row",
                     "audit row ('promote', 'hall', 'bob') was decided by nobody who was "
                     "told so"]


def test_an_ended_room_without_its_termination_is_caught() -> None:
    run, stored = clean_run()
    stored.ended = {"hall"}
    assert violations(run.journal, stored) == ["#hall: ended without a termination record"]


# A log of the room: who sends each message; each connection joins at some
# point and receives the rest, in order.
logs = st.lists(st.sampled_from(["ann", "bob", "cat"]), min_size=1, max_size=30)
starts = st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=4)


def replay(senders: list[str], joined_at: list[int]) -> tuple[Run, Stored]:
    """Connections ``c0``... join before message ``joined_at[i]``; every message
    is acknowledged to its sender's connection c0 and delivered to all joined."""
    run = Run()
    run.connect("sender", "ann")
    for conn, start in enumerate(joined_at):
        if start == 0:
            run.connect(f"c{conn}", f"u{conn}")
    for n, sender in enumerate(senders, 1):
        for conn, start in enumerate(joined_at):
            if start == n:
                run.connect(f"c{conn}", f"u{conn}")
        run.ack("sender", 10 * n)
        run.message("sender", 10 * n, sender=sender)
        for conn, start in enumerate(joined_at):
            if start <= n:
                run.message(f"c{conn}", 10 * n, sender=sender)
    return run, Stored(history={"hall": [10 * n for n in range(1, len(senders) + 1)]},
                       owners={"hall": 1})


@settings(max_examples=60, deadline=None)
@given(logs, starts)
def test_any_faithful_run_passes(senders: list[str], joined_at: list[int]) -> None:
    run, stored = replay(senders, joined_at)
    assert violations(run.journal, stored) == []


@settings(max_examples=60, deadline=None)
@given(logs, starts, st.booleans(), st.data())
def test_losing_or_swapping_one_delivery_is_always_caught(
        senders: list[str], joined_at: list[int], swap: bool, data: st.DataObject) -> None:
    run, stored = replay(senders, joined_at)
    deliveries = [i for i, r in enumerate(run.journal.received)
                  if r.conn != "sender" and r.line.get("type") == "message"]
    if not deliveries:
        return
    picked = data.draw(st.sampled_from(deliveries))
    victim = run.journal.received[picked]
    later = [i for i in deliveries if i > picked and run.journal.received[i].conn == victim.conn]
    if later and swap:
        other = later[0]
        received = run.journal.received
        received[picked], received[other] = (
            type(victim)(victim.conn, victim.at, received[other].line),
            type(victim)(victim.conn, received[other].at, victim.line))
        assert any("after" in v or "disagree" in v for v in violations(run.journal, stored))
    else:
        del run.journal.received[picked]
        assert any("never reached" in v for v in violations(run.journal, stored))
