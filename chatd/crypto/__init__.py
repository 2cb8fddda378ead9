"""Cryptography: chatd-crypt and the end-to-end envelope.

chatd-crypt is password- or key-based encryption of text and files: ``kdf``
turns a password into a key at a named cost, ``ciphers`` holds the three
algorithms, ``armor`` the self-describing output format, ``keys`` the
X25519 / ML-KEM-768 key files, ``cli`` the command line, and ``runner`` the
daemon's side: it runs the command line as a subprocess for ``/encrypt`` and
``/decrypt`` so a costly KDF never blocks the event loop. ``envelope`` is the
pairwise end-to-end envelope, ``group`` the sender-key message and handout,
``ratchet`` the sender-key chain, and ``e2e`` the server's key directory and relay.

Beside ``content``, above ``delivery`` and ``domain``, which it may depend on;
never on ``protocol`` or the layers above it.
"""

from __future__ import annotations


class CryptError(Exception):
    """A failure to report as one line: bad input, wrong password, tampering."""
