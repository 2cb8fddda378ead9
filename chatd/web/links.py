"""Signed download links: a URL an ``<img>`` or a plain link can fetch without a token.

A browser sends no ``Authorization`` header for an image, and a token in a
URL would be a long-lived secret in logs and histories. So the API hands out
short-lived links instead: the file, the user it was made for and its expiry,
signed with HMAC-SHA256 under a key that lives in this process only (a restart
ends every link). Fetching one still checks that the user may read the file
at that moment: a member who was kicked meanwhile gets ``not-in-room``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from chatd.errors import ChatError, Code

PATH = "/api/v1/download/"


class LinkSigner:
    """Makes and checks signed download links."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _signature(self, file_id: int, user_id: int, expires: int) -> str:
        message = f"{file_id}:{user_id}:{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def link(self, file_id: int, user_id: int, expires: int) -> str:
        """The path and query of a link to ``file_id`` for ``user_id`` until ``expires``."""
        signature = self._signature(file_id, user_id, expires)
        return f"{PATH}{file_id}?user={user_id}&expires={expires}&sig={signature}"

    def check(self, file_id: int, user_id: int, expires: int, signature: str,
              now: float) -> None:
        """Refuse a link that was altered or has expired (``auth-failed``)."""
        expected = self._signature(file_id, user_id, expires)
        # compare_digest takes ASCII text only (a TypeError otherwise): compare bytes.
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise ChatError(Code.AUTH_FAILED, "that download link is not valid.")
        if expires < now:
            raise ChatError(Code.AUTH_FAILED, "that download link has expired; ask the API "
                            "for a new one.")
