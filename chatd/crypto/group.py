"""The sender-key message, envelope version 2, and the chain key handout (docs/E2E.md §4-5).

A room message is encrypted once, with a message key from the sender's chain
(:mod:`chatd.crypto.ratchet`), and signed with the chain's Ed25519 key: its
size does not depend on how many members the room has. The chain reaches the
members beforehand in a :class:`Handout`, the plaintext of a version 1
envelope (:mod:`chatd.crypto.envelope`) sealed for one member at a time.

Message layout (big-endian; ``len8`` is a one-byte length then that many UTF-8 bytes)::

    header:  version u8 = 2 | aead u8 | ts_ms u64 | len8 sender | len8 context
             | chain id (32: the chain's Ed25519 public key) | index u32
    ciphertext: AEAD(message key) of the text, tag included
    signature: 64 bytes, Ed25519 over header || ciphertext

Handout layout (the plaintext of a version 1 envelope whose context is the room)::

    magic "CDSK" | version u8 = 1 | chain id (32) | index u32 | chain key (32)
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from chatd.crypto.envelope import AEADS, EnvelopeError, NotForYou, Reader, content_cipher, len8
from chatd.crypto.ratchet import (
    KEY_SIZE,
    BeforeTheKey,
    ChainKey,
    InboundChain,
    OutboundChain,
    RatchetError,
)

VERSION = 2
CHAIN_ID_SIZE = 32
SIGNATURE_SIZE = 64
TAG_SIZE = 16
MESSAGE_INFO = b"chatd-e2e/2 message"
HANDOUT_MAGIC = b"CDSK"
HANDOUT_VERSION = 1
_FIXED = struct.Struct(">BBQ")
_INDEX = struct.Struct(">I")
_HANDOUT = struct.Struct(f">4sB{CHAIN_ID_SIZE}sI{KEY_SIZE}s")


@dataclass(frozen=True, slots=True)
class GroupMessage:
    """A parsed version 2 envelope (see the module docstring for the byte layout)."""

    aead: int
    ts_ms: int
    sender: str
    context: str
    chain_id: bytes
    index: int
    ciphertext: bytes
    signature: bytes

    @property
    def header(self) -> bytes:
        """The authenticated header: the AEAD's associated data."""
        return b"".join([_FIXED.pack(VERSION, self.aead, self.ts_ms), len8(self.sender),
                         len8(self.context), self.chain_id, _INDEX.pack(self.index)])

    @property
    def signed(self) -> bytes:
        return self.header + self.ciphertext

    def pack(self) -> bytes:
        return self.signed + self.signature


@dataclass(frozen=True, slots=True)
class GroupOpened:
    """A decrypted version 2 envelope. The caller still checks ``sender`` and
    ``context`` against where it arrived from, and which identity key the
    chain came with."""

    sender: str
    context: str
    chain_id: bytes
    index: int
    ts_ms: int
    plaintext: bytes


def is_group(data: bytes) -> bool:
    """Whether ``data`` is a version 2 envelope (else: version 1, or nothing)."""
    return data[:1] == bytes([VERSION])


def sealed_size(sender: str, context: str, plaintext_size: int) -> int:
    """The size of the envelope :func:`seal` would make, without using the chain."""
    return (_FIXED.size + len(len8(sender)) + len(len8(context)) + CHAIN_ID_SIZE
            + _INDEX.size + plaintext_size + TAG_SIZE + SIGNATURE_SIZE)


def seal(plaintext: bytes, sender: str, context: str, chain: OutboundChain,
         aead: str = "aes-256-gcm", ts_ms: int | None = None) -> bytes:
    """Encrypt ``plaintext`` with the chain's next message key and sign it."""
    if aead not in AEADS:
        raise EnvelopeError(f"aead is one of {', '.join(AEADS)}")
    index, message_key = chain.take()
    draft = GroupMessage(AEADS[aead], int(time.time() * 1000) if ts_ms is None else ts_ms,
                         sender, context, chain.chain_id, index, b"", b"")
    key, nonce = _content_key(message_key)
    ciphertext = content_cipher(draft.aead, key).encrypt(nonce, plaintext, draft.header)
    signed = draft.header + ciphertext
    return signed + chain.signing.sign(signed)


def unpack(data: bytes) -> GroupMessage:
    """Parse the layout (no key needed): what the daemon checks before relaying."""
    reader = Reader(data)
    version, aead, ts_ms = _FIXED.unpack(reader.take(_FIXED.size))
    if version != VERSION:
        raise EnvelopeError(f"not a version {VERSION} envelope")
    if aead not in AEADS.values():
        raise EnvelopeError("the envelope names an unknown algorithm")
    sender, context = reader.name(), reader.name()
    chain_id = reader.take(CHAIN_ID_SIZE)
    (index,) = _INDEX.unpack(reader.take(_INDEX.size))
    rest = reader.rest()
    if len(rest) < TAG_SIZE + SIGNATURE_SIZE:
        raise EnvelopeError("the envelope is truncated")
    return GroupMessage(aead, ts_ms, sender, context, chain_id, index,
                        rest[:-SIGNATURE_SIZE], rest[-SIGNATURE_SIZE:])


def open_message(message: GroupMessage, chain: InboundChain) -> GroupOpened:
    """Check the signature, then decrypt with the chain; EnvelopeError on any failure.

    The signature is checked first, so that nothing a member forges moves the
    chain or fills its cache of skipped keys.
    """
    if message.chain_id != chain.chain_id:
        raise EnvelopeError("the envelope is from another chain")
    try:
        Ed25519PublicKey.from_public_bytes(chain.chain_id).verify(message.signature,
                                                                  message.signed)
    except (InvalidSignature, ValueError):
        raise EnvelopeError("the envelope's signature is not the sender's "
                            "(altered, or forged by another member)") from None
    try:
        key, nonce = _content_key(chain.message_key(message.index))
        plaintext = content_cipher(message.aead, key).decrypt(nonce, message.ciphertext,
                                                              message.header)
    except BeforeTheKey:
        raise NotForYou("the message was sent before the key you were given") from None
    except RatchetError as exc:
        raise EnvelopeError(str(exc)) from None
    except InvalidTag:
        raise EnvelopeError("the envelope fails authentication") from None
    return GroupOpened(message.sender, message.context, message.chain_id, message.index,
                       message.ts_ms, plaintext)


def _content_key(message_key: bytes) -> tuple[bytes, bytes]:
    """The AEAD key and nonce of one message: each message key serves once."""
    derived = HKDF(hashes.SHA256(), KEY_SIZE + 12, None, MESSAGE_INFO).derive(message_key)
    return derived[:KEY_SIZE], derived[KEY_SIZE:]


# -- handing the chain to a member -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Handout:
    """A chain at one index, as handed to a member (the plaintext of a pairwise envelope)."""

    chain_id: bytes
    chain: ChainKey

    @classmethod
    def of(cls, outbound: OutboundChain) -> Handout:
        """The chain as it stands: the receiver reads the next message on, none before."""
        return cls(outbound.chain_id, outbound.chain)

    def pack(self) -> bytes:
        return _HANDOUT.pack(HANDOUT_MAGIC, HANDOUT_VERSION, self.chain_id, self.chain.index,
                             self.chain.key)

    @classmethod
    def unpack(cls, data: bytes) -> Handout:
        if len(data) != _HANDOUT.size or not data.startswith(HANDOUT_MAGIC):
            raise EnvelopeError("not a chain key handout")
        _, version, chain_id, index, key = _HANDOUT.unpack(data)
        if version != HANDOUT_VERSION:
            raise EnvelopeError(f"unsupported handout version {version}")
        return cls(chain_id, ChainKey(index, key))

    def inbound(self) -> InboundChain:
        return InboundChain(self.chain_id, self.chain)
