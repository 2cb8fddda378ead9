"""The client's sender-key rules without a server: Secure between two keyrings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatd.client.tui.keyring import Keyring
from chatd.client.tui.secure import MissingKey, Secure
from chatd.crypto import envelope, group
from chatd.crypto.envelope import EnvelopeError, NotForYou


def secure(tmp_path: Path, name: str) -> Secure:
    keyring, _ = Keyring.open(tmp_path / name, "srv:1", pq=False)
    return Secure(keyring, pq=False)


def handout_record(sender: str, to: str, room: str, env: str) -> dict[str, Any]:
    return {"type": "message", "to": to, "from": sender, "e2e": True, "envelope": env,
            "room_key": room, "id": 1}


def message_record(sender: str, room: str, env: str, message_id: int) -> dict[str, Any]:
    return {"type": "message", "room": room, "from": sender, "e2e": True, "envelope": env,
            "id": message_id}


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Secure, Secure]:
    alice, bob = secure(tmp_path, "alice"), secure(tmp_path, "bob")
    members = [alice.keyring.identity.public("alice"), bob.keyring.identity.public("bob")]
    for handing in alice.handouts("alice", "dev", members):
        if handing.member.user == "bob":
            bob.receive_key("bob", handout_record("alice", "bob", "dev", handing.envelope))
    alice.handed("dev", members)
    return alice, bob


def test_a_room_message_reads_at_both_ends_and_a_replay_is_noticed(
        pair: tuple[Secure, Secure]) -> None:
    alice, bob = pair
    env = alice.seal_room("alice", "dev", "hello")
    for who, me in ((alice, "alice"), (bob, "bob")):
        received = who.open(me, message_record("alice", "dev", env, 5))
        assert received.plaintext == b"hello" and not received.replayed
        assert received.sender_key == alice.keyring.identity.x25519_public
    assert bob.open("bob", message_record("alice", "dev", env, 6)).replayed
    size = alice.room_line_size("alice", "dev", "hello")
    assert size == len(f"/emsg #dev {alice.seal_room('alice', 'dev', 'hello')}".encode())


def test_a_chain_given_for_one_room_opens_nothing_in_another(
        pair: tuple[Secure, Secure]) -> None:
    alice, bob = pair
    own = alice.keyring.chains.own("dev")
    assert own is not None
    moved = envelope.b64(group.seal(b"x", "alice", "#other", own.chain))
    with pytest.raises(EnvelopeError, match="given for #dev, not #other"):
        bob.open("bob", message_record("alice", "other", moved, 7))


def test_unknown_chains_and_rooms_without_a_chain(tmp_path: Path,
                                                  pair: tuple[Secure, Secure]) -> None:
    alice, _ = pair
    carol = secure(tmp_path, "carol")
    env = alice.seal_room("alice", "dev", "not for carol")
    with pytest.raises(MissingKey) as caught:
        carol.open("carol", message_record("alice", "dev", env, 8))
    assert caught.value.sender == "alice"
    with pytest.raises(EnvelopeError, match="no chain for #elsewhere"):
        alice.seal_room("alice", "elsewhere", "first handouts, then messages")


def test_a_handout_must_be_for_me_and_say_where_it_came_from(
        tmp_path: Path, pair: tuple[Secure, Secure]) -> None:
    alice, bob = pair
    carol = secure(tmp_path, "carol")
    members = [carol.keyring.identity.public("carol")]
    [handing] = alice.handouts("alice", "dev", members)
    record = handout_record("alice", "carol", "dev", handing.envelope)
    with pytest.raises(NotForYou):
        bob.receive_key("bob", record)
    with pytest.raises(EnvelopeError, match="claims to be from alice"):
        carol.receive_key("carol", {**record, "from": "bob"})
    with pytest.raises(EnvelopeError, match="written for #dev"):
        carol.receive_key("carol", {**record, "room_key": "other"})
    text = envelope.b64(envelope.seal(b"just words", "alice", "#dev", alice.keyring.identity,
                                      members))
    with pytest.raises(EnvelopeError, match="not a chain key handout"):
        carol.receive_key("carol", {**record, "envelope": text})


def test_leaving_drops_our_chain_and_a_departure_rotates_it(pair: tuple[Secure, Secure]) -> None:
    alice, _ = pair
    own = alice.keyring.chains.own("dev")
    assert own is not None
    alice.member_gone("alice", "dev", "bob")
    assert own.rotate
    alice.member_gone("alice", "dev", "ALICE")
    assert alice.keyring.chains.own("dev") is None
