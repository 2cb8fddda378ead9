"""The chatd-crypt container: one header, two encodings (armored text, binary).

Armored, one line with no spaces (so it can be pasted into a chat line)::

    chatd-crypt:1:aes-256-gcm:scrypt:n=16384,r=8,p=1:<salt>:<nonce>:<data>

Binary: ``MAGIC``, the header's length (2 bytes, big-endian), the header
text, then the raw ciphertext. The header text is everything before
``:<data>`` and is the AEAD's associated data in both encodings. ``salt``,
``nonce`` and ``data`` are base64url without padding; ``-`` marks an absent
field (no salt with a raw key, no nonce with Fernet). docs/CRYPT.md has the
full description.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass

from chatd.crypto import CryptError, kdf
from chatd.crypto.ciphers import NONCE_SIZE, check_algorithm

PREFIX = "chatd-crypt"
VERSION = "1"
MAGIC = b"CHATDCRYPT\x00"
RAW = "raw"  # the KDF field of data encrypted with a raw key
_ABSENT = "-"
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class Header:
    """What decryption needs besides the key: algorithm, KDF, salt, nonce."""

    alg: str
    kdf: kdf.KdfSpec | None  # None: a raw key
    salt: bytes
    nonce: bytes

    @property
    def text(self) -> str:
        """The header line; also the associated data of the AEAD."""
        kdf_name, params = (self.kdf.name, self.kdf.text) if self.kdf else (RAW, _ABSENT)
        return ":".join([PREFIX, VERSION, self.alg, kdf_name, params, _b64(self.salt),
                         _b64(self.nonce)])

    @property
    def aad(self) -> bytes:
        return self.text.encode("ascii")


def to_armor(header: Header, ciphertext: bytes) -> str:
    return f"{header.text}:{_b64(ciphertext)}"


def to_binary(header: Header, ciphertext: bytes) -> bytes:
    head = header.aad
    return MAGIC + struct.pack(">H", len(head)) + head + ciphertext


def is_binary(data: bytes) -> bool:
    return data.startswith(MAGIC)


def parse(data: bytes) -> tuple[Header, bytes]:
    """Read armored text or binary (detected by the magic bytes)."""
    if is_binary(data):
        return _parse_binary(data)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise CryptError("not chatd-crypt data (neither armored text nor binary)") from None
    text = "".join(text.split())  # pasted text may be wrapped
    head, sep, body = text.rpartition(":")
    if not sep or not head.startswith(PREFIX + ":"):
        raise CryptError("not chatd-crypt data (no chatd-crypt header)")
    return parse_header(head), _unb64(body, "data")


def _parse_binary(data: bytes) -> tuple[Header, bytes]:
    start = len(MAGIC) + 2
    if len(data) < start:
        raise CryptError("truncated input: the binary header is incomplete")
    (length,) = struct.unpack(">H", data[len(MAGIC):start])
    if len(data) < start + length:
        raise CryptError("truncated input: the binary header is incomplete")
    try:
        head = data[start:start + length].decode("ascii")
    except UnicodeDecodeError:
        raise CryptError("damaged header: not ASCII") from None
    return parse_header(head), data[start + length:]


def parse_header(text: str) -> Header:
    parts = text.split(":")
    if len(parts) != 7 or parts[0] != PREFIX:
        raise CryptError("damaged or truncated chatd-crypt header")
    _, version, alg, kdf_name, params, salt, nonce = parts
    if version != VERSION:
        raise CryptError(f"unsupported chatd-crypt version {version!r} (this is version 1)")
    check_algorithm(alg)
    spec = None if kdf_name == RAW else kdf.parse(kdf_name, params)
    header = Header(alg, spec, _unb64(salt, "salt"), _unb64(nonce, "nonce"))
    if len(header.nonce) != NONCE_SIZE[alg]:
        raise CryptError("damaged header: the nonce has the wrong length")
    if spec is not None and len(header.salt) < 8:
        raise CryptError("damaged header: the salt is too short")
    if header.text != text:  # one canonical form: any other spelling is tampering
        raise CryptError("damaged header: not in canonical form")
    return header


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=") if data else _ABSENT


def _unb64(text: str, what: str) -> bytes:
    if text == _ABSENT:
        return b""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise CryptError(f"damaged input: the {what} is not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise CryptError(f"damaged input: the {what} is not base64url") from None
    if _b64(data) != text:  # unused low bits set: a changed character decoding the same
        raise CryptError(f"damaged input: the {what} is not canonical base64url")
    return data
