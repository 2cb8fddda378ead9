"""Key files: an X25519 (and optionally ML-KEM-768) identity and its public half.

Both are small JSON documents. The private file is created with mode 0600
from the start (never written first and chmod-ed after, which would leave a
window where other users could read it) and moved into place atomically, so
a crash never leaves half a key behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from chatd.crypto import CryptError
from chatd.crypto.envelope import (
    X25519_SIZE,
    EnvelopeError,
    Identity,
    b64,
    fingerprint,
    unb64,
)
from chatd.hardlinks import linked

PRIVATE_TYPE = "chatd-e2e-private-key"
PUBLIC_TYPE = "chatd-e2e-public-key"
PRIVATE_MODE = 0o600
# The largest --key-file read: 64 hex digits with any line ends and spaces fit.
KEY_FILE_MAX = 1024
# The longest first line a password file may have: far beyond any password, short
# of a file that is not one (a key, an image, /dev/zero).
PASSWORD_LINE_MAX = 64 * 1024
MLKEM_SEED_SIZE = 64


def write_private(path: Path, identity: Identity, overwrite: bool = False) -> None:
    """Write ``identity`` to ``path`` with mode 0600, atomically."""
    doc: dict[str, Any] = {"type": PRIVATE_TYPE, "version": 1,
                           "x25519": b64(identity.x25519.private_bytes_raw())}
    if identity.mlkem_seed is not None:
        doc["mlkem768_seed"] = b64(identity.mlkem_seed)
    write_secret(path, (json.dumps(doc, indent=1) + "\n").encode(), overwrite)


def write_pair(private: Path, public: Path, identity: Identity,
               overwrite: bool = False) -> None:
    """Write ``identity``'s private key to ``private`` and its public key to ``public``.
    Unless ``overwrite``, both are checked first: an existing public file refuses the
    pair before a private key is written that it would not match."""
    _refuse_existing(public, overwrite)
    write_private(private, identity, overwrite)
    write_public(public, identity, overwrite)


def write_public(path: Path, identity: Identity, overwrite: bool = False) -> None:
    doc = public_document(identity)
    _refuse_existing(path, overwrite)
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def public_document(identity: Identity) -> dict[str, Any]:
    x25519, mlkem_key = identity.x25519_public, identity.mlkem_public
    doc: dict[str, Any] = {"type": PUBLIC_TYPE, "version": 1, "x25519": b64(x25519)}
    if mlkem_key is not None:
        doc["mlkem768"] = b64(mlkem_key)
    doc["fingerprint"] = fingerprint(x25519, mlkem_key)
    return doc


def publish_line(identity: Identity) -> str:
    """The chatd command that publishes this identity's public keys."""
    mlkem_key = identity.mlkem_public
    return " ".join(["/keys publish", b64(identity.x25519_public),
                     *([b64(mlkem_key)] if mlkem_key else [])])


def read_private(path: Path) -> Identity:
    """Load an identity written by :func:`write_private`."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CryptError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise CryptError(f"{path} is not a chatd key file") from None
    if not isinstance(doc, dict) or doc.get("type") != PRIVATE_TYPE:
        raise CryptError(f"{path} is not a chatd private key file")
    try:
        x25519 = unb64(str(doc.get("x25519", "")), X25519_SIZE, "x25519")
        seed_text = doc.get("mlkem768_seed")
        seed = unb64(str(seed_text), MLKEM_SEED_SIZE, "mlkem768_seed") if seed_text else None
    except EnvelopeError as exc:
        raise CryptError(f"{path}: {exc}") from None
    return Identity(X25519PrivateKey.from_private_bytes(x25519), seed)


def write_secret(path: Path, data: bytes, overwrite: bool = False) -> None:
    """Create ``path`` holding ``data`` with mode 0600 from the first byte on.

    A temporary file in the same directory is created with O_EXCL and mode
    0600, filled, synced, then put in place atomically: renamed over ``path``
    when ``overwrite``, else linked to it, which fails rather than replace a file
    another process made meanwhile (:class:`KeyFileExists`).
    """
    _refuse_existing(path, overwrite)
    # Unique to this write: another writing the same file at once has its own.
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     PRIVATE_MODE)
    except OSError as exc:
        # Said of the file asked for (a missing directory, no permission), not of the
        # temporary one made beside it, which its user never named.
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        os.fchmod(fd, PRIVATE_MODE)  # the umask may have removed bits; never added any
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        _put_in_place(temp, path, overwrite)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


class KeyFileExists(CryptError):
    """The file to write exists (made meanwhile, perhaps, by another process)."""


def _put_in_place(temp: Path, path: Path, overwrite: bool) -> None:
    """Move the written ``temp`` to ``path``; unless ``overwrite``, never over a file
    that appeared since the check before writing (two first runs at once)."""
    if overwrite:
        os.replace(temp, path)
        return
    try:
        placed = linked(temp, path)
    except FileExistsError:
        raise KeyFileExists(f"{path} exists; use --force to replace it") from None
    if placed:
        temp.unlink()
        return
    # No hard links there: checked again, as close as it can be, and renamed.
    _refuse_existing(path, overwrite)
    os.replace(temp, path)


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise KeyFileExists(f"{path} exists; use --force to replace it")


def read_password_line(path: Path) -> bytes:
    """A password file's first line, its line end removed (chatd-crypt's and
    chatd-client's --password-file). Nothing past it is read: a FIFO whose writer
    stays open, or an endless file, would never end. OSError when it cannot be read."""
    with path.open("rb") as handle:
        line = handle.readline(PASSWORD_LINE_MAX + 1)
    if len(line) > PASSWORD_LINE_MAX and not line.endswith(b"\n"):
        raise CryptError(f"the first line of {path} is over {PASSWORD_LINE_MAX} bytes; "
                         "it holds no password")
    return line.split(b"\n", 1)[0].rstrip(b"\r")


def read_raw_key(path: Path) -> bytes:
    """A 32-byte symmetric key: raw bytes, or the same as base64/base64url/hex text."""
    try:
        # Read no more than a key's longest spelling (and a little): a device such as
        # /dev/urandom, or another big file, never ends or fills the memory.
        with path.open("rb") as handle:
            data = handle.read(KEY_FILE_MAX + 1)
    except OSError as exc:
        raise CryptError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > KEY_FILE_MAX:
        raise CryptError(f"{path} must hold a 32-byte key (raw, hex or base64)")
    if len(data) == 32:
        return data
    text = data.strip().decode("ascii", errors="replace")
    for decode in (bytes.fromhex, _b64_any):
        with contextlib.suppress(ValueError):
            key = decode(text)
            if len(key) == 32:
                return key
    raise CryptError(f"{path} must hold a 32-byte key (raw, hex or base64)")


def _b64_any(text: str) -> bytes:
    try:
        return unb64(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4))
    except EnvelopeError as exc:
        raise ValueError(str(exc)) from None
