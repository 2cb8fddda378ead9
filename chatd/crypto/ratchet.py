"""The sender-key chain: a symmetric ratchet that only moves forward (docs/E2E.md §5).

A sender keeps one chain per room. Message ``i`` is encrypted with a key
derived from chain key ``CK_i``; then ``CK_i`` is replaced by ``CK_{i+1}``,
both by HMAC-SHA256 with different constants (as Signal's sender keys do)::

    message_key(CK_i) = HMAC-SHA256(CK_i, 0x01)
    CK_{i+1}          = HMAC-SHA256(CK_i, 0x02)

HMAC cannot be run backwards, so a chain key given away (to a new member) or
stolen at index ``i`` opens messages ``i`` and later, never earlier ones.

Each chain also has its own Ed25519 signing key: its public half is the
chain's id, sent with the chain key in an authenticated pairwise envelope, and
every message is signed with it. Members share the chain key, so without the
signature any of them could write as the sender.

A receiver keeps the chain key at the first index it was given (to read
history again later) and, in memory, the newest position with a bounded
cache of the message keys it skipped (messages that arrive out of order).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import OrderedDict
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEY_SIZE = 32
# A sender starts a new chain after this many messages (and after MAX_AGE), so
# no receiver ever ratchets further than this to reach a message key.
MAX_MESSAGES = 1000
MAX_AGE = 7 * 24 * 3600.0
# Message keys kept for messages skipped over (out of order); the oldest go first.
MAX_SKIPPED = 256
_MESSAGE_STEP = b"\x01"
_CHAIN_STEP = b"\x02"


class RatchetError(ValueError):
    """The message's index is out of this chain's reach."""


class BeforeTheKey(RatchetError):
    """The message came before the chain key we hold: we were not meant to read it."""


@dataclass(frozen=True, slots=True)
class ChainKey:
    """The chain key ``key`` at position ``index``."""

    index: int
    key: bytes

    def message_key(self) -> bytes:
        return hmac.digest(self.key, _MESSAGE_STEP, hashlib.sha256)

    def step(self) -> ChainKey:
        return ChainKey(self.index + 1, hmac.digest(self.key, _CHAIN_STEP, hashlib.sha256))

    def advance_to(self, index: int) -> ChainKey:
        """The chain key at ``index`` (never before this one, at most MAX_MESSAGES on)."""
        if index < self.index:
            raise BeforeTheKey(f"message {index} is before this chain key ({self.index})")
        if index - self.index > MAX_MESSAGES:
            raise RatchetError(f"message {index} is too far ahead of this chain key")
        chain = self
        while chain.index < index:
            chain = chain.step()
        return chain


@dataclass(slots=True)
class OutboundChain:
    """A sender's own chain for one room: its signing key and the next chain key."""

    signing: Ed25519PrivateKey
    chain: ChainKey
    created: float

    @classmethod
    def create(cls, now: float) -> OutboundChain:
        return cls(Ed25519PrivateKey.generate(), ChainKey(0, os.urandom(KEY_SIZE)), now)

    @property
    def chain_id(self) -> bytes:
        """The chain's id: its Ed25519 public key (32 bytes)."""
        return self.signing.public_key().public_bytes_raw()

    def take(self) -> tuple[int, bytes]:
        """The index and message key of the next message; the chain moves past it
        at once, so that key cannot be derived from what this object keeps."""
        index, message_key = self.chain.index, self.chain.message_key()
        self.chain = self.chain.step()
        return index, message_key

    def worn_out(self, now: float) -> bool:
        """Whether it is time to start a new chain."""
        return self.chain.index >= MAX_MESSAGES or now - self.created >= MAX_AGE


@dataclass(slots=True)
class InboundChain:
    """A chain received from a sender, readable from ``first`` on."""

    chain_id: bytes
    first: ChainKey
    latest: ChainKey = field(init=False)
    skipped: OrderedDict[int, bytes] = field(init=False, default_factory=OrderedDict)

    def __post_init__(self) -> None:
        self.latest = self.first

    def message_key(self, index: int) -> bytes:
        """The key of message ``index`` (RatchetError when out of reach)."""
        if index >= self.latest.index:
            return self._ahead(index)
        cached = self.skipped.pop(index, None)
        if cached is not None:
            return cached
        return self.first.advance_to(index).message_key()  # an older message: history

    def _ahead(self, index: int) -> bytes:
        if index - self.latest.index > MAX_MESSAGES:
            raise RatchetError(f"message {index} is too far ahead of this chain")
        chain = self.latest
        while chain.index < index:
            self.skipped[chain.index] = chain.message_key()
            if len(self.skipped) > MAX_SKIPPED:
                self.skipped.popitem(last=False)
            chain = chain.step()
        self.latest = chain.step()
        return chain.message_key()
