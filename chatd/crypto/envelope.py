"""The end-to-end envelope, version 1: what ``/emsg`` carries (docs/E2E.md).

Pure functions over bytes, shared by chatd-client, the daemon (which only
checks the layout: it has no key) and the tests. A message is encrypted once
with a fresh content key; that key is wrapped for every recipient with an
ephemeral-static X25519 exchange, a static-static one (which authenticates the
sender) and, in hybrid envelopes, ML-KEM-768, all combined by HKDF-SHA256.
Each wrap is bound to a digest of the header and ciphertext, so no recipient
can reuse its content key to forge a message to the others.

Layout (big-endian; ``len8`` is a one-byte length then that many UTF-8 bytes)::

    header:  version u8 = 1 | aead u8 | kem u8 | ts_ms u64 | len8 sender
             | len8 context | sender X25519 public key (32) | nonce (12)
    count u16, then per recipient: len8 user | ephemeral X25519 public key (32)
             | ML-KEM-768 ciphertext (1088, hybrid only) | wrapped key (48)
    ciphertext: the rest (the content AEAD's output, tag included)
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import os
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

try:
    from cryptography.hazmat.primitives.asymmetric import mlkem
except ImportError:  # pragma: no cover - cryptography before 47 has no ML-KEM
    mlkem = None  # type: ignore[assignment]

VERSION = 1
AEADS = {"aes-256-gcm": 1, "chacha20-poly1305": 2}
KEM_X25519, KEM_HYBRID = 1, 2
X25519_SIZE = 32
MLKEM_PUBLIC_SIZE = 1184
MLKEM_CIPHERTEXT_SIZE = 1088
NONCE_SIZE = 12
WRAPPED_SIZE = 48  # a 32-byte content key and a 16-byte tag
MAX_RECIPIENTS = 1024
WRAP_INFO = b"chatd-e2e/1 wrap"
# A wrap key serves one wrap only (fresh ephemeral key), so a fixed nonce is safe.
_WRAP_NONCE = bytes(NONCE_SIZE)
_FIXED = struct.Struct(">BBBQ")


class EnvelopeError(ValueError):
    """The envelope is malformed, not for us, or fails authentication."""


class NotForYou(EnvelopeError):
    """The envelope has no entry for this user (sent before they joined, say)."""


@functools.cache
def pq_available() -> bool:
    """Whether this cryptography build has ML-KEM-768 (the hybrid path needs it)."""
    try:
        mlkem.MLKEM768PrivateKey.generate()
    except (AttributeError, UnsupportedAlgorithm):  # pragma: no cover - no ML-KEM here
        return False
    return True


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A user's published keys: raw X25519 (32 bytes) and optionally ML-KEM-768."""

    user: str
    x25519: bytes
    mlkem: bytes | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """A user's private keys; the ML-KEM key is kept as its 64-byte seed."""

    x25519: X25519PrivateKey
    mlkem_seed: bytes | None = None

    @classmethod
    def generate(cls, pq: bool = False) -> Identity:
        if pq and not pq_available():
            raise EnvelopeError("ML-KEM-768 is not available in this cryptography build")
        return cls(X25519PrivateKey.generate(), os.urandom(64) if pq else None)

    @property
    def x25519_public(self) -> bytes:
        return self.x25519.public_key().public_bytes_raw()

    @property
    def mlkem_public(self) -> bytes | None:
        if self.mlkem_seed is None:
            return None
        return _mlkem_private(self.mlkem_seed).public_key().public_bytes_raw()

    def public(self, user: str) -> PublicKey:
        return PublicKey(user, self.x25519_public, self.mlkem_public)


@dataclass(frozen=True, slots=True)
class Entry:
    """One recipient's wrapped copy of the content key."""

    user: str
    ephemeral: bytes
    kem_ciphertext: bytes  # empty unless the envelope is hybrid
    wrapped: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed envelope (see the module docstring for the byte layout)."""

    aead: int
    kem: int
    ts_ms: int
    sender: str
    context: str
    sender_key: bytes
    nonce: bytes
    entries: tuple[Entry, ...]
    ciphertext: bytes

    @property
    def header(self) -> bytes:
        """The authenticated header: the content AEAD's associated data."""
        return b"".join([_FIXED.pack(VERSION, self.aead, self.kem, self.ts_ms),
                         len8(self.sender), len8(self.context), self.sender_key, self.nonce])

    @property
    def digest(self) -> bytes:
        """What every wrap is bound to: SHA-256 of header and ciphertext."""
        return hashlib.sha256(self.header + self.ciphertext).digest()

    def pack(self) -> bytes:
        parts = [self.header, struct.pack(">H", len(self.entries))]
        for entry in self.entries:
            parts += [len8(entry.user), entry.ephemeral, entry.kem_ciphertext, entry.wrapped]
        return b"".join([*parts, self.ciphertext])


@dataclass(frozen=True, slots=True)
class Opened:
    """A decrypted envelope. The caller still checks ``sender`` against who the
    server says sent it, ``context`` against where it arrived, and
    ``sender_key`` against the key it trusts for that sender."""

    sender: str
    context: str
    sender_key: bytes
    ts_ms: int
    hybrid: bool
    plaintext: bytes


# -- sealing and opening -------------------------------------------------------


def seal(plaintext: bytes, sender: str, context: str, identity: Identity,
         recipients: Sequence[PublicKey], aead: str = "aes-256-gcm",
         hybrid: bool | None = None, ts_ms: int | None = None) -> bytes:
    """Encrypt ``plaintext`` from ``sender`` for ``recipients`` (include yourself
    to read your own messages later). ``hybrid`` defaults to: every recipient
    has an ML-KEM-768 key and this build supports it."""
    if not recipients or len(recipients) > MAX_RECIPIENTS:
        raise EnvelopeError(f"an envelope has 1 to {MAX_RECIPIENTS} recipients")
    if aead not in AEADS:
        raise EnvelopeError(f"aead is one of {', '.join(AEADS)}")
    everyone_pq = all(r.mlkem for r in recipients)
    if hybrid is None:
        hybrid = everyone_pq and pq_available()
    if hybrid and not everyone_pq:
        raise EnvelopeError("a hybrid envelope needs an ML-KEM-768 key for every recipient")
    content_key, nonce = os.urandom(32), os.urandom(NONCE_SIZE)
    draft = Envelope(AEADS[aead], KEM_HYBRID if hybrid else KEM_X25519,
                     int(time.time() * 1000) if ts_ms is None else ts_ms, sender, context,
                     identity.x25519_public, nonce, (), b"")
    ciphertext = content_cipher(draft.aead, content_key).encrypt(nonce, plaintext, draft.header)
    sealed = dataclasses.replace(draft, ciphertext=ciphertext)
    entries = tuple(_wrap(sealed, identity, r, content_key) for r in recipients)
    return dataclasses.replace(sealed, entries=entries).pack()


def open_envelope(data: bytes, user: str, identity: Identity) -> Opened:
    """Decrypt the envelope as ``user``; :class:`EnvelopeError` on any failure."""
    env = unpack(data)
    entry = next((e for e in env.entries if e.user.casefold() == user.casefold()), None)
    if entry is None:
        raise NotForYou(f"the envelope has no key for {user}")
    wrap_key = _wrap_key(env, entry, identity.x25519, env.sender_key,
                         identity.x25519_public, _decapsulate(env, entry, identity))
    try:
        content_key = AESGCM(wrap_key).decrypt(_WRAP_NONCE, entry.wrapped, env.digest)
        plaintext = content_cipher(env.aead, content_key).decrypt(
            env.nonce, env.ciphertext, env.header)
    except InvalidTag:
        raise EnvelopeError("the envelope fails authentication (altered, "
                            "or not from the key it names)") from None
    return Opened(env.sender, env.context, env.sender_key, env.ts_ms,
                  env.kem == KEM_HYBRID, plaintext)


def _wrap(env: Envelope, identity: Identity, recipient: PublicKey, content_key: bytes) -> Entry:
    ephemeral = X25519PrivateKey.generate()
    kem_ciphertext, kem_secret = b"", b""
    if env.kem == KEM_HYBRID:
        assert recipient.mlkem is not None
        kem_secret, kem_ciphertext = _mlkem_public(recipient.mlkem).encapsulate()
    entry = Entry(recipient.user, ephemeral.public_key().public_bytes_raw(), kem_ciphertext, b"")
    static = identity.x25519
    dh_ephemeral = _exchange(ephemeral, recipient.x25519)
    dh_static = _exchange(static, recipient.x25519)
    info = _wrap_info(entry, recipient.x25519, env.sender_key)
    wrap_key = _hkdf(dh_ephemeral + dh_static + kem_secret, env.digest, info)
    wrapped = AESGCM(wrap_key).encrypt(_WRAP_NONCE, content_key, env.digest)
    return Entry(entry.user, entry.ephemeral, kem_ciphertext, wrapped)


def _wrap_key(env: Envelope, entry: Entry, mine: X25519PrivateKey, sender_key: bytes,
              my_public: bytes, kem_secret: bytes) -> bytes:
    dh_ephemeral = _exchange(mine, entry.ephemeral)
    dh_static = _exchange(mine, sender_key)
    info = _wrap_info(entry, my_public, sender_key)
    return _hkdf(dh_ephemeral + dh_static + kem_secret, env.digest, info)


def _decapsulate(env: Envelope, entry: Entry, identity: Identity) -> bytes:
    if env.kem != KEM_HYBRID:
        return b""
    if identity.mlkem_seed is None:
        raise EnvelopeError("the envelope is hybrid and this identity has no ML-KEM-768 key")
    return _mlkem_private(identity.mlkem_seed).decapsulate(entry.kem_ciphertext)


def _wrap_info(entry: Entry, recipient_key: bytes, sender_key: bytes) -> bytes:
    """HKDF info: binds the wrap to who it is for and every public value used."""
    return b"".join([WRAP_INFO, b"\x00", len8(entry.user), entry.ephemeral, recipient_key,
                     sender_key, entry.kem_ciphertext])


def _hkdf(secret: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt, info).derive(secret)


def _exchange(private: X25519PrivateKey, public: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:  # a low-order point gives an all-zero secret
        raise EnvelopeError("the envelope holds an invalid X25519 key") from None


def content_cipher(aead: int, key: bytes) -> AESGCM | ChaCha20Poly1305:
    return AESGCM(key) if aead == AEADS["aes-256-gcm"] else ChaCha20Poly1305(key)


def _mlkem_private(seed: bytes) -> mlkem.MLKEM768PrivateKey:
    if not pq_available():
        raise EnvelopeError("ML-KEM-768 is not available in this cryptography build")
    return mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)


def _mlkem_public(raw: bytes) -> mlkem.MLKEM768PublicKey:
    if not pq_available():
        raise EnvelopeError("ML-KEM-768 is not available in this cryptography build")
    return mlkem.MLKEM768PublicKey.from_public_bytes(raw)


# -- parsing -------------------------------------------------------------------


class Reader:
    """Bounds-checked reads: a short envelope is an error, never an IndexError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise EnvelopeError("the envelope is truncated")
        chunk = self.data[self.at:self.at + size]
        self.at += size
        return chunk

    def name(self) -> str:
        raw = self.take(self.take(1)[0])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise EnvelopeError("the envelope holds a name that is not UTF-8") from None
        if not text:
            raise EnvelopeError("the envelope holds an empty name")
        return text

    def rest(self) -> bytes:
        return self.data[self.at:]


def unpack(data: bytes) -> Envelope:
    """Parse the layout (no key needed): what the daemon checks before relaying."""
    reader = Reader(data)
    version, aead, kem, ts_ms = _FIXED.unpack(reader.take(_FIXED.size))
    if version != VERSION:
        raise EnvelopeError(f"unsupported envelope version {version} (this is version 1)")
    if aead not in AEADS.values() or kem not in (KEM_X25519, KEM_HYBRID):
        raise EnvelopeError("the envelope names an unknown algorithm")
    sender, context = reader.name(), reader.name()
    sender_key, nonce = reader.take(X25519_SIZE), reader.take(NONCE_SIZE)
    (count,) = struct.unpack(">H", reader.take(2))
    if not 1 <= count <= MAX_RECIPIENTS:
        raise EnvelopeError(f"an envelope has 1 to {MAX_RECIPIENTS} recipients")
    kem_size = MLKEM_CIPHERTEXT_SIZE if kem == KEM_HYBRID else 0
    entries = tuple(Entry(reader.name(), reader.take(X25519_SIZE), reader.take(kem_size),
                          reader.take(WRAPPED_SIZE)) for _ in range(count))
    ciphertext = reader.rest()
    if len(ciphertext) < 16:
        raise EnvelopeError("the envelope is truncated")
    return Envelope(aead, kem, ts_ms, sender, context, sender_key, nonce, entries, ciphertext)


def len8(text: str) -> bytes:
    raw = text.encode("utf-8")
    if not 1 <= len(raw) <= 255:
        raise EnvelopeError("names in an envelope are 1 to 255 bytes")
    return bytes([len(raw)]) + raw


# -- keys as text ----------------------------------------------------------------


def fingerprint(x25519: bytes, mlkem_key: bytes | None = None) -> str:
    """First 16 bytes of SHA-256 over the raw X25519 key (then the ML-KEM-768
    key, when there is one), as hex in groups of four: ``3f2a 9b01 ...``."""
    hexed = hashlib.sha256(x25519 + (mlkem_key or b"")).digest()[:16].hex()
    return " ".join(hexed[i:i + 4] for i in range(0, len(hexed), 4))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, size: int | None = None, what: str = "value") -> bytes:
    """Strict standard base64 (``size``: the exact decoded length wanted)."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"{what} is not valid base64") from None
    if size is not None and len(data) != size:
        raise EnvelopeError(f"{what} must be {size} bytes, not {len(data)}")
    return data
