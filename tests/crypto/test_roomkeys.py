"""The client's sender-key store: when a chain is replaced, and what is kept on disk."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from chatd.client.tui import roomkeys
from chatd.client.tui.roomkeys import SENDER_KEYS_FILE, SenderKeys
from chatd.crypto import CryptError, ratchet
from chatd.crypto.envelope import Identity, PublicKey
from chatd.crypto.group import Handout
from chatd.crypto.ratchet import OutboundChain

PEOPLE = {name: Identity.generate() for name in ("alice", "bob", "carol")}


def key(name: str, identity: Identity | None = None) -> PublicKey:
    return (identity or PEOPLE[name]).public(name)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> SenderKeys:
    return SenderKeys(tmp_path / SENDER_KEYS_FILE, "srv:1", clock)


def test_a_chain_goes_once_to_each_member(store: SenderKeys) -> None:
    own, needed, fresh = store.plan("Dev", [key("alice"), key("bob")])
    assert fresh and [m.user for m in needed] == ["alice", "bob"]
    store.handed("dev", needed)
    again, needed, fresh = store.plan("DEV", [key("alice"), key("bob")])
    assert again is own and not needed and not fresh
    _, needed, fresh = store.plan("dev", [key("alice"), key("bob"), key("carol")])
    assert not fresh and [m.user for m in needed] == ["carol"]  # a join: no new chain


@pytest.mark.parametrize("change", ["left", "new key", "seen leaving", "worn out", "old"])
def test_a_new_chain_when_the_old_one_must_not_be_used(store: SenderKeys, clock: Clock,
                                                       change: str) -> None:
    members = [key("alice"), key("bob")]
    own, needed, _ = store.plan("dev", members)
    store.handed("dev", needed)
    if change == "left":
        members = [key("alice")]
    elif change == "new key":
        members = [key("alice"), key("bob", Identity.generate())]
    elif change == "seen leaving":
        store.member_gone("dev", "BOB")
    elif change == "worn out":
        own.chain.chain = ratchet.ChainKey(ratchet.MAX_MESSAGES, own.chain.chain.key)
    else:
        clock.now += ratchet.MAX_AGE
    replaced, needed, fresh = store.plan("dev", members)
    assert fresh and replaced is not own and replaced.chain.chain_id != own.chain.chain_id
    assert [m.user for m in needed] == [m.user for m in members]


def test_departures_of_strangers_and_our_own(store: SenderKeys) -> None:
    store.member_gone("dev", "bob")  # no chain there: nothing to do
    own, needed, _ = store.plan("dev", [key("alice"), key("bob")])
    store.handed("dev", needed)
    store.member_gone("dev", "carol")  # never had it
    assert store.plan("dev", [key("alice"), key("bob")])[0] is own
    store.forget("dev")
    assert store.own("dev") is None
    store.forget("dev")


def test_the_store_survives_a_restart(tmp_path: Path, store: SenderKeys, clock: Clock) -> None:
    own, needed, _ = store.plan("dev", [key("alice"), key("bob")])
    store.handed("dev", needed)
    own.chain.take()
    theirs = OutboundChain.create(0.0)
    assert store.receive("bob", "dev", PEOPLE["bob"].x25519_public, Handout.of(theirs))
    store.save()
    path = tmp_path / SENDER_KEYS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    other = SenderKeys(path, "other:2", clock)
    other.plan("elsewhere", [key("carol")])
    other.save()  # another server's chains are kept beside ours

    again = SenderKeys(path, "srv:1", clock)
    mine = again.own("dev")
    assert mine is not None and mine.chain.chain_id == own.chain.chain_id
    assert mine.chain.chain == own.chain.chain and mine.shared == own.shared
    received = again.theirs("BOB", theirs.chain_id)
    assert received is not None and received.room == "dev"
    assert received.identity == PEOPLE["bob"].x25519_public
    assert received.chain.message_key(0) == theirs.take()[1]
    assert SenderKeys(path, "other:2", clock).own("elsewhere") is not None


def test_a_handout_from_earlier_on_replaces_a_later_one(store: SenderKeys) -> None:
    chain = OutboundChain.create(0.0)
    chain.take()
    later = Handout.of(chain)
    earlier = Handout(chain.chain_id, ratchet.ChainKey(0, b"\x00" * 32))
    bob = PEOPLE["bob"].x25519_public
    assert store.receive("bob", "dev", bob, later)
    assert not store.receive("bob", "dev", bob, later)
    assert store.receive("bob", "dev", bob, earlier)
    kept = store.theirs("bob", chain.chain_id)
    assert kept is not None and kept.chain.first.index == 0


def test_received_chains_are_bounded(store: SenderKeys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(roomkeys, "MAX_RECEIVED", 3)
    chains = [OutboundChain.create(0.0) for _ in range(4)]
    for chain in chains:
        store.receive("bob", "dev", PEOPLE["bob"].x25519_public, Handout.of(chain))
    assert store.theirs("bob", chains[0].chain_id) is None
    assert all(store.theirs("bob", c.chain_id) for c in chains[1:])


@pytest.mark.parametrize("content", ["not json", json.dumps(
    {"servers": {"srv:1": {"own": [{"room": "dev"}]}}})])
def test_a_damaged_file_is_reported(tmp_path: Path, content: str) -> None:
    path = tmp_path / SENDER_KEYS_FILE
    path.write_text(content)
    with pytest.raises(CryptError, match=r"sender_keys\.json"):
        SenderKeys(path, "srv:1")


def test_an_unexpected_document_is_an_empty_store(tmp_path: Path) -> None:
    path = tmp_path / SENDER_KEYS_FILE
    path.write_text("[1, 2]")
    assert SenderKeys(path, "srv:1").own("dev") is None
