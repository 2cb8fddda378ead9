"""The envelope format: sealing, opening, and every way an envelope must fail."""

from __future__ import annotations

import dataclasses
import os
import re

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chatd.crypto import envelope
from chatd.crypto.envelope import EnvelopeError, Identity, PublicKey, open_envelope, seal, unpack
from tests.crypto import PQ


@pytest.fixture(scope="module")
def people() -> dict[str, Identity]:
    return {name: Identity.generate() for name in ("alice", "bob", "carol")}


def keys(people: dict[str, Identity], *names: str) -> list[PublicKey]:
    return [people[n].public(n) for n in names]


@pytest.mark.parametrize("aead", ["aes-256-gcm", "chacha20-poly1305"])
def test_every_recipient_reads_it(people: dict[str, Identity], aead: str) -> None:
    data = seal("hi ✓".encode(), "alice", "#dev", people["alice"],
                keys(people, "alice", "bob", "carol"), aead=aead, ts_ms=1234)
    for name in ("alice", "bob", "carol"):
        opened = open_envelope(data, name, people[name])
        assert (opened.plaintext, opened.sender, opened.context, opened.ts_ms) == \
            ("hi ✓".encode(), "alice", "#dev", 1234)
        assert opened.sender_key == people["alice"].x25519_public and not opened.hybrid


def test_layout_is_as_documented(people: dict[str, Identity]) -> None:
    data = seal(b"abc", "alice", "@bob", people["alice"], keys(people, "alice", "bob"),
                ts_ms=7)
    assert data[:3] == bytes([1, 1, 1]) and int.from_bytes(data[3:11], "big") == 7
    assert data[11] == 5 and data[12:17] == b"alice" and data[17:22] == b"\x04@bob"
    env = unpack(data)
    assert [e.user for e in env.entries] == ["alice", "bob"]
    assert len(env.ciphertext) == 3 + 16
    entries = (1 + len("alice") + 32 + 48) + (1 + len("bob") + 32 + 48)
    assert len(env.header) == 11 + 6 + 5 + 32 + 12
    assert len(data) == len(env.header) + 2 + entries + len(env.ciphertext)


def test_a_fresh_key_and_nonce_every_time(people: dict[str, Identity]) -> None:
    one = unpack(seal(b"same", "alice", "#dev", people["alice"], keys(people, "bob")))
    two = unpack(seal(b"same", "alice", "#dev", people["alice"], keys(people, "bob")))
    assert one.nonce != two.nonce and one.ciphertext != two.ciphertext
    assert one.entries[0].wrapped != two.entries[0].wrapped


def test_a_non_recipient_cannot_open_it(people: dict[str, Identity]) -> None:
    data = seal(b"x", "alice", "#dev", people["alice"], keys(people, "alice", "bob"))
    with pytest.raises(EnvelopeError, match="no key for carol"):
        open_envelope(data, "carol", people["carol"])
    with pytest.raises(EnvelopeError, match="authentication"):  # carol's key, bob's entry
        open_envelope(data, "bob", people["carol"])


@pytest.mark.parametrize("where", ["header", "entry", "ciphertext", "tag"])
def test_any_flipped_bit_fails(people: dict[str, Identity], where: str) -> None:
    data = bytearray(seal(b"flip me", "alice", "#dev", people["alice"],
                          keys(people, "bob")))
    env = unpack(bytes(data))
    position = {"header": len(env.header) - 5, "entry": len(env.header) + 2 + 5 + 40,
                "ciphertext": len(data) - 20, "tag": len(data) - 1}[where]
    data[position] ^= 0x10
    with pytest.raises(EnvelopeError):
        open_envelope(bytes(data), "bob", people["bob"])


def test_the_sender_name_is_authenticated(people: dict[str, Identity]) -> None:
    data = seal(b"x", "alice", "#dev", people["alice"], keys(people, "bob"))
    env = unpack(data)
    forged = dataclasses.replace(env, sender="carol").pack()
    with pytest.raises(EnvelopeError):
        open_envelope(forged, "bob", people["bob"])


def test_a_forged_sender_key_does_not_verify(people: dict[str, Identity]) -> None:
    """Carol seals as "alice" with her own key: it opens, but names carol's key,
    so a client that pinned alice's key will not call it verified."""
    data = seal(b"x", "alice", "#dev", people["carol"], keys(people, "bob"))
    opened = open_envelope(data, "bob", people["bob"])
    assert opened.sender_key == people["carol"].x25519_public
    assert opened.sender_key != people["alice"].x25519_public


def test_a_recipient_cannot_reuse_the_content_key_to_forge(people: dict[str, Identity]) -> None:
    """Bob knows the content key; he re-encrypts other text under it and keeps
    alice's wraps. Carol's wrap is bound to the old ciphertext: refused."""
    data = seal(b"pay bob 1", "alice", "#dev", people["alice"], keys(people, "bob", "carol"))
    env = unpack(data)
    bob_entry = env.entries[0]
    wrap_key = envelope._wrap_key(env, bob_entry, people["bob"].x25519, env.sender_key,
                                  people["bob"].x25519_public, b"")
    content_key = AESGCM(wrap_key).decrypt(bytes(12), bob_entry.wrapped, env.digest)
    new_ct = AESGCM(content_key).encrypt(env.nonce, b"pay bob 1000", env.header)
    forged = dataclasses.replace(env, ciphertext=new_ct).pack()
    with pytest.raises(EnvelopeError):
        open_envelope(forged, "carol", people["carol"])


@pytest.mark.parametrize("size", [0, 5, 11, 40, 80, 150])
def test_truncated_envelopes_are_errors_not_crashes(people: dict[str, Identity],
                                                    size: int) -> None:
    data = seal(b"x" * 20, "alice", "#dev", people["alice"], keys(people, "bob"))
    with pytest.raises(EnvelopeError):
        open_envelope(data[:size], "bob", people["bob"])


def test_garbage_and_unknown_versions(people: dict[str, Identity]) -> None:
    data = bytearray(seal(b"x", "alice", "#dev", people["alice"], keys(people, "bob")))
    data[0] = 2
    with pytest.raises(EnvelopeError, match="version 2"):
        unpack(bytes(data))
    for _ in range(50):
        with pytest.raises(EnvelopeError):
            unpack(os.urandom(200))


def test_seal_refuses_bad_requests(people: dict[str, Identity]) -> None:
    with pytest.raises(EnvelopeError):
        seal(b"x", "alice", "#dev", people["alice"], [])
    with pytest.raises(EnvelopeError):
        seal(b"x", "alice", "#dev", people["alice"], keys(people, "bob"), aead="rot13")
    with pytest.raises(EnvelopeError, match="ML-KEM"):
        seal(b"x", "alice", "#dev", people["alice"], keys(people, "bob"), hybrid=True)


def test_fingerprint_format() -> None:
    fp = envelope.fingerprint(bytes(32))
    assert re.fullmatch(r"([0-9a-f]{4} ){7}[0-9a-f]{4}", fp)
    assert envelope.fingerprint(bytes(32), b"\x01" * 1184) != fp


def test_strict_base64() -> None:
    assert envelope.unb64(envelope.b64(b"abc")) == b"abc"
    for bad in ("a b", "abc", "!!!!", "YWJj\n"):
        with pytest.raises(EnvelopeError):
            envelope.unb64(bad)
    with pytest.raises(EnvelopeError, match="32 bytes"):
        envelope.unb64(envelope.b64(b"abc"), 32)


@PQ
def test_hybrid_when_every_recipient_has_ml_kem() -> None:
    alice, bob = Identity.generate(pq=True), Identity.generate(pq=True)
    data = seal(b"post-quantum", "alice", "#dev", alice, [alice.public("alice"),
                                                           bob.public("bob")])
    env = unpack(data)
    assert env.kem == envelope.KEM_HYBRID
    assert all(len(e.kem_ciphertext) == envelope.MLKEM_CIPHERTEXT_SIZE for e in env.entries)
    opened = open_envelope(data, "bob", bob)
    assert opened.hybrid and opened.plaintext == b"post-quantum"


@PQ
def test_hybrid_needs_both_secrets() -> None:
    """With the right X25519 key but another ML-KEM key, the wrap does not open."""
    alice, bob = Identity.generate(pq=True), Identity.generate(pq=True)
    data = seal(b"x", "alice", "#dev", alice, [bob.public("bob")])
    impostor = Identity(bob.x25519, Identity.generate(pq=True).mlkem_seed)
    with pytest.raises(EnvelopeError):
        open_envelope(data, "bob", impostor)
    with pytest.raises(EnvelopeError, match="no ML-KEM"):
        open_envelope(data, "bob", Identity(bob.x25519))


@PQ
def test_one_recipient_without_ml_kem_means_x25519_only() -> None:
    alice, bob = Identity.generate(pq=True), Identity.generate()
    data = seal(b"x", "alice", "#dev", alice, [alice.public("alice"), bob.public("bob")])
    assert unpack(data).kem == envelope.KEM_X25519
    assert open_envelope(data, "bob", bob).plaintext == b"x"
