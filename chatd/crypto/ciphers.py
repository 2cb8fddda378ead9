"""The three symmetric algorithms behind one interface.

AES-256-GCM and ChaCha20-Poly1305 are AEADs: the armored header is their
associated data, so a changed header fails like a changed ciphertext. Fernet
(AES-128-CBC + HMAC-SHA256) has no associated data; its key is the urlsafe
base64 of the 32 KDF bytes, so changing the header's KDF fields changes the
key and fails the HMAC all the same.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from chatd.crypto import CryptError

AES_GCM, CHACHA, FERNET = "aes-256-gcm", "chacha20-poly1305", "fernet"
ALGORITHMS = (AES_GCM, CHACHA, FERNET)
NONCE_SIZE = {AES_GCM: 12, CHACHA: 12, FERNET: 0}

FAILED = ("decryption failed: wrong password or key, or the data was altered or truncated")


def check_algorithm(name: str) -> str:
    if name not in ALGORITHMS:
        raise CryptError(f"algorithm is one of {', '.join(ALGORITHMS)}")
    return name


def encrypt(alg: str, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """The ciphertext (with its tag). For Fernet: the decoded token bytes."""
    if alg == FERNET:
        token = Fernet(fernet_key(key)).encrypt(plaintext)
        return base64.urlsafe_b64decode(token)
    return _aead(alg, key).encrypt(nonce, plaintext, aad)


def decrypt(alg: str, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """The plaintext, or :class:`CryptError` with one clear sentence."""
    try:
        if alg == FERNET:
            return Fernet(fernet_key(key)).decrypt(base64.urlsafe_b64encode(ciphertext))
        return _aead(alg, key).decrypt(nonce, ciphertext, aad)
    except (InvalidTag, InvalidToken, binascii.Error, ValueError):
        raise CryptError(FAILED) from None


def fernet_key(key: bytes) -> bytes:
    """Fernet's key format: urlsafe base64 of 32 bytes."""
    return base64.urlsafe_b64encode(key)


def _aead(alg: str, key: bytes) -> AESGCM | ChaCha20Poly1305:
    if alg == AES_GCM:
        return AESGCM(key)
    if alg == CHACHA:
        return ChaCha20Poly1305(key)
    raise CryptError(f"algorithm is one of {', '.join(ALGORITHMS)}")
