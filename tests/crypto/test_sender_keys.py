"""Sender keys: the chain ratchet, the version 2 envelope, the handout, and their sizes."""

from __future__ import annotations

import dataclasses
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.crypto import envelope, group, ratchet
from chatd.crypto.envelope import EnvelopeError, Identity, NotForYou, open_envelope
from chatd.crypto.group import GroupMessage, Handout, open_message, seal, sealed_size, unpack
from chatd.crypto.ratchet import ChainKey, InboundChain, OutboundChain, RatchetError
from tests.crypto import PQ

LINE_LIMIT = 4096


def chain_pair(now: float = 0.0) -> tuple[OutboundChain, InboundChain]:
    outbound = OutboundChain.create(now)
    return outbound, Handout.of(outbound).inbound()


# -- the ratchet -------------------------------------------------------------------------


def test_the_chain_only_moves_forward() -> None:
    start = ChainKey(0, bytes(32))
    later = start.advance_to(5)
    assert later.index == 5 and later == start.step().step().step().step().step()
    assert later.message_key() != start.message_key() != start.key
    with pytest.raises(RatchetError, match="before"):
        later.advance_to(4)
    with pytest.raises(RatchetError, match="too far"):
        start.advance_to(ratchet.MAX_MESSAGES + 1)


def test_outbound_chain_forgets_each_key_it_used() -> None:
    outbound, inbound = chain_pair()
    first = outbound.take()
    second = outbound.take()
    assert (first[0], second[0]) == (0, 1) and first[1] != second[1]
    assert outbound.chain.index == 2
    assert inbound.message_key(1) == second[1] and inbound.message_key(0) == first[1]


def test_out_of_order_keys_come_from_a_bounded_cache() -> None:
    outbound, inbound = chain_pair()
    keys = [outbound.take()[1] for _ in range(ratchet.MAX_SKIPPED + 20)]
    last = len(keys) - 1
    assert inbound.message_key(last) == keys[last]
    assert len(inbound.skipped) == ratchet.MAX_SKIPPED and 0 not in inbound.skipped
    assert inbound.message_key(last - 1) == keys[last - 1]  # from the cache, then dropped
    assert last - 1 not in inbound.skipped
    assert inbound.message_key(0) == keys[0]  # beyond the cache: from the first key (history)
    with pytest.raises(RatchetError, match="too far ahead"):
        inbound.message_key(last + ratchet.MAX_MESSAGES + 2)


def test_a_chain_wears_out_by_count_and_by_age() -> None:
    outbound = OutboundChain.create(now=100.0)
    assert not outbound.worn_out(100.0)
    assert outbound.worn_out(100.0 + ratchet.MAX_AGE)
    outbound.chain = ChainKey(ratchet.MAX_MESSAGES, outbound.chain.key)
    assert outbound.worn_out(100.0)


def test_a_leaked_chain_key_opens_nothing_sent_before_it() -> None:
    outbound, _ = chain_pair()
    early = [seal(f"early {i}".encode(), "alice", "#dev", outbound) for i in range(3)]
    leaked = Handout.of(outbound).inbound()  # what a thief (or a new member) gets now
    later = seal(b"later", "alice", "#dev", outbound)
    assert open_message(unpack(later), leaked).plaintext == b"later"
    for data in early:
        with pytest.raises(NotForYou, match="before the key you were given"):
            open_message(unpack(data), leaked)


# -- the version 2 envelope ---------------------------------------------------------------


@pytest.mark.parametrize("aead", ["aes-256-gcm", "chacha20-poly1305"])
def test_every_holder_of_the_chain_reads_it(aead: str) -> None:
    outbound, inbound = chain_pair()
    data = seal("hi ✓".encode(), "alice", "#dev", outbound, aead=aead, ts_ms=1234)
    opened = open_message(unpack(data), inbound)
    assert (opened.plaintext, opened.sender, opened.context, opened.ts_ms, opened.index) == \
        ("hi ✓".encode(), "alice", "#dev", 1234, 0)
    assert opened.chain_id == outbound.chain_id


def test_layout_is_as_documented() -> None:
    outbound, _ = chain_pair()
    outbound.take()
    data = seal(b"abc", "alice", "#dev", outbound, ts_ms=7)
    assert data[:2] == bytes([2, 1]) and int.from_bytes(data[2:10], "big") == 7
    assert data[10:16] == b"\x05alice" and data[16:21] == b"\x04#dev"
    assert data[21:53] == outbound.chain_id and int.from_bytes(data[53:57], "big") == 1
    assert len(data) == 57 + 3 + 16 + 64 == sealed_size("alice", "#dev", 3)
    message = unpack(data)
    assert message.pack() == data and message.ciphertext == data[57:-64]


def test_a_member_cannot_write_as_the_sender() -> None:
    """Members hold the chain key, so they could encrypt; they cannot sign."""
    outbound, inbound = chain_pair()
    real = unpack(seal(b"pay bob", "alice", "#dev", outbound))
    forged_key, nonce = group._content_key(inbound.first.message_key())  # what bob can derive
    cipher = envelope.content_cipher(real.aead, forged_key)
    forged = dataclasses.replace(real, ciphertext=cipher.encrypt(nonce, b"pay mallory",
                                                                 real.header))
    with pytest.raises(EnvelopeError, match="signature"):
        open_message(forged, Handout.of(outbound).inbound())
    other_signer = OutboundChain.create(0.0)
    resigned = dataclasses.replace(forged, signature=other_signer.signing.sign(forged.signed))
    with pytest.raises(EnvelopeError, match="signature"):
        open_message(resigned, inbound)


def test_tampering_and_foreign_chains_are_refused() -> None:
    outbound, inbound = chain_pair()
    data = bytearray(seal(b"hello", "alice", "#dev", outbound))
    data[60] ^= 1
    with pytest.raises(EnvelopeError, match="signature"):
        open_message(unpack(bytes(data)), inbound)
    _, stranger = chain_pair()
    with pytest.raises(EnvelopeError, match="another chain"):
        open_message(unpack(seal(b"x", "alice", "#dev", outbound)), stranger)


def test_a_signed_message_with_a_wrong_key_fails_authentication() -> None:
    """A sender whose own client is broken: signed, but not under the chain's key."""
    outbound, inbound = chain_pair()
    message = unpack(seal(b"hello", "alice", "#dev", outbound))
    garbled = dataclasses.replace(message, ciphertext=os.urandom(len(message.ciphertext)))
    garbled = dataclasses.replace(garbled, signature=outbound.signing.sign(garbled.signed))
    with pytest.raises(EnvelopeError, match="fails authentication"):
        open_message(garbled, inbound)
    far = dataclasses.replace(message, index=ratchet.MAX_MESSAGES + 5)
    far = dataclasses.replace(far, signature=outbound.signing.sign(far.signed))
    with pytest.raises(EnvelopeError, match="too far"):
        open_message(far, inbound)


@pytest.mark.parametrize("data, reason", [
    (bytes([1, 1, 0, 0, 0, 0, 0, 0, 0, 0]), "not a version 2"),
    (bytes([2, 9]) + bytes(8) + b"\x01a\x01b" + bytes(36 + 80), "unknown algorithm"),
    (bytes([2, 1]) + bytes(8) + b"\x01a\x01b" + bytes(36 + 79), "truncated"),
    (bytes([2, 1]) + bytes(8) + b"\x01a", "truncated"),
])
def test_malformed_envelopes_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError, match=reason):
        unpack(data)


@given(st.binary(max_size=300))
def test_parsing_never_fails_otherwise(data: bytes) -> None:
    try:
        message = unpack(bytes([2]) + data)
    except EnvelopeError:
        return
    assert isinstance(message, GroupMessage) and message.pack() == bytes([2]) + data


def test_only_version_two_is_a_group_message() -> None:
    outbound, _ = chain_pair()
    assert group.is_group(seal(b"x", "a", "#r", outbound))
    assert not group.is_group(b"\x01rest") and not group.is_group(b"")
    with pytest.raises(EnvelopeError, match="aead"):
        seal(b"x", "a", "#r", outbound, aead="rot13")


# -- the handout ---------------------------------------------------------------------------


def test_a_handout_carries_the_chain_from_where_it_stands() -> None:
    outbound, _ = chain_pair()
    outbound.take()
    handout = Handout.of(outbound)
    packed = handout.pack()
    assert len(packed) == 4 + 1 + 32 + 4 + 32 and packed.startswith(b"CDSK\x01")
    again = Handout.unpack(packed)
    assert again == handout and again.chain.index == 1
    for bad in (packed[:-1], b"XXXX" + packed[4:], packed[:4] + b"\x02" + packed[5:]):
        with pytest.raises(EnvelopeError):
            Handout.unpack(bad)


@PQ
def test_fifty_members_on_defaults_with_post_quantum_hybrid() -> None:
    """The goal: every envelope of a 50-member room fits the default line limit with
    ML-KEM-768 on, and a message's envelope is under 1 KB plus its text whatever
    the room's size."""
    names = [f"member{i:02d}" for i in range(50)]
    people = {name: Identity.generate(pq=True) for name in names}
    sender, room = names[0], "#a-rather-long-room-name"
    outbound = OutboundChain.create(0.0)
    handout = Handout.of(outbound).pack()
    chains = {}
    for name in names:  # one pairwise, hybrid envelope per member (the sender too)
        data = envelope.seal(handout, sender, room, people[sender], [people[name].public(name)])
        assert envelope.unpack(data).kem == envelope.KEM_HYBRID
        line = f"@c99 /ekey {room[1:]} {name} {envelope.b64(data)}"
        assert len(line.encode()) < LINE_LIMIT
        opened = open_envelope(data, name, people[name])
        assert opened.sender_key == people[sender].x25519_public
        chains[name] = Handout.unpack(opened.plaintext).inbound()
    for text in (b"", b"hello, all fifty of you", "é".encode() * 500):
        data = seal(text, sender, room, outbound)
        assert len(data) < 1024 + len(text)
        assert len(data) == sealed_size(sender, room, len(text))
        assert all(open_message(unpack(data), chains[n]).plaintext == text for n in names)
    # The same message for a room of two: not one byte smaller.
    assert sealed_size(sender, room, 10) == len(seal(bytes(10), sender, room,
                                                     OutboundChain.create(0.0)))
