"""Errors that carry their wire-contract code.

Anything in the daemon may raise :class:`ChatError`; the dispatcher turns it
into exactly one ``error`` reply. Any other exception becomes
``internal-error`` and is logged; the client never sees a traceback.

A ChatError speaks no front end's language: its sentence names no command,
and what a user could do next is a :class:`Remedy` (data), which each front
end words its own way (the line protocol as a slash command, IRC not at all).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Code(StrEnum):
    """Stable error codes. Add new ones; never rename or reuse one."""

    UNKNOWN_COMMAND = "unknown-command"
    BAD_ARGUMENTS = "bad-arguments"
    NOT_LOGGED_IN = "not-logged-in"
    ALREADY_LOGGED_IN = "already-logged-in"
    AUTH_FAILED = "auth-failed"
    NAME_TAKEN = "name-taken"
    INVALID_NAME = "invalid-name"
    NO_SUCH_USER = "no-such-user"
    NO_SUCH_ROOM = "no-such-room"
    NOT_IN_ROOM = "not-in-room"
    NO_ROOM = "no-room"
    NOT_PERMITTED = "not-permitted"
    BANNED = "banned"
    MUTED = "muted"
    RATE_LIMITED = "rate-limited"
    LINE_TOO_LONG = "line-too-long"
    INVALID_UTF8 = "invalid-utf8"
    REGISTRATION_CLOSED = "registration-closed"
    TOO_MANY_CONNECTIONS = "too-many-connections"
    FILE_TOO_LARGE = "file-too-large"
    INTERNAL_ERROR = "internal-error"
    # Added by chatd beyond the contract's initial list.
    ALREADY_IN_ROOM = "already-in-room"
    IDLE_TIMEOUT = "idle-timeout"
    NO_SUCH_TOKEN = "no-such-token"
    NO_SUCH_FILE = "no-such-file"
    # A file's stored contents could not be read to their end (the blob store failed).
    FILE_UNREADABLE = "file-unreadable"
    CHECKSUM_MISMATCH = "checksum-mismatch"
    QUOTA_EXCEEDED = "quota-exceeded"
    E2E_REQUIRED = "e2e-required"
    NO_KEY = "no-key"
    BLOCKED = "blocked"
    BAD_ROOM_KEY = "bad-room-key"
    ROOM_FULL = "room-full"
    MODERATED = "moderated"
    # A shared service (in cluster mode, Redis) does not answer: retry after retry_ms.
    BUSY = "busy"
    # The web front (HTTP, WebSocket, webhooks).
    BAD_REQUEST = "bad-request"
    NOT_FOUND = "not-found"
    METHOD_NOT_ALLOWED = "method-not-allowed"
    REQUEST_TOO_LARGE = "request-too-large"
    BAD_ORIGIN = "bad-origin"
    BINARY_FRAME = "binary-frame"
    NO_SUCH_WEBHOOK = "no-such-webhook"
    SCOPE = "scope"  # the token a session logged in with does not grant the scope
    # The API token a session logged in with was revoked, or expired: it is closed.
    TOKEN_REVOKED = "token-revoked"
    TOKEN_EXPIRED = "token-expired"
    # The web listener: a method it does not implement (501), or a transfer coding.
    NOT_IMPLEMENTED = "not-implemented"


class Step(StrEnum):
    """What a refused user can do next (each front end says it its own way)."""

    LIST_ROOMS = "list-rooms"  # see which rooms there are
    JOIN = "join"  # join the room first
    JOIN_EXISTING = "join-existing"  # the room to create exists: join it instead
    TRANSFER = "transfer"  # ownership changes hands by a transfer
    ENCRYPT = "encrypt"  # send an end-to-end encrypted message instead
    REMOVE_FILES = "remove-files"  # delete files to make room
    LIST_BLOCKS = "list-blocks"  # see whom one blocks
    REVOKE_TOKEN = "revoke-token"  # revoke the token of that name first
    JOIN_WITH_KEY = "join-with-key"  # join again, giving the room's key
    LIST_FILES = "list-files"  # see which files a room has
    LIST_TOKENS = "list-tokens"  # see which API tokens one has
    GET_INVITED = "get-invited"  # a private room: an invitation first, then join


@dataclass(frozen=True, slots=True)
class Remedy:
    """A next step and what it applies to (``room``: the room's name)."""

    step: Step
    room: str | None = None


class ChatError(Exception):
    """A refusal to report to the client: a code, a front-end-neutral sentence,
    structured ``details`` (the error record's extra fields on the wire: ``until``,
    ``retry_ms``, ``quota`` ...) and, optionally, the ``remedy`` a user could try.

    ``usage`` is the form of the sub-command a ``bad-arguments`` refusal is about, when
    it is narrower than its command's (``/keys get <user>``): the line protocol ends
    such a refusal with it, or with the command's usage (chatd.protocol.hints)."""

    def __init__(self, code: Code, message: str, *, remedy: Remedy | None = None,
                 usage: str | None = None, **details: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.remedy = remedy
        self.usage = usage
        self.details: Mapping[str, Any] = details
