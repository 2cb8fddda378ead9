"""Plain records that cross the storage boundary.

Times are UNIX epoch seconds (float). Persisted enum-like values are plain
strings whose meaning never changes: roles are "owner", "admin", "voice",
"member"; room modes are "open", "request", "private".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]


# The kinds of account: a person's, or a bot's (which logs in with tokens only).
USER_KIND = "user"
BOT_KIND = "bot"
# Every scope a token may grant, space-separated as stored; tokens made before
# scopes existed have them all.
ALL_SCOPES = "read post moderate admin"
# The kinds of API token: one a user makes for a script or a bot (what a webhook
# made with it lives as long as), or one the web client makes for a browser tab
# to log in again with (a webhook made with it lives as its account's). Tokens
# made before kinds existed are of the first.
API_TOKEN_KIND = "api"
SESSION_TOKEN_KIND = "session"
# The order an account's session tokens are kept in when one more is made, alike
# on both backends: the one the asking session logged in with first (the renewal
# must not end its own connection; ``{keeping}`` is its placeholder, NULL for none),
# then the most recently used, or made when never used; those past the bound go.
SESSION_TOKENS_KEPT_FIRST = ("(id = {keeping}) IS TRUE DESC, "
                             "COALESCE(last_used_at, created_at) DESC, id DESC")


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    name: str
    password_hash: bytes
    is_admin: bool
    created_at: float
    settings: JsonDict = field(default_factory=dict)
    kind: str = USER_KIND
    # Who made the bot (None for people, and for a bot whose owner was deleted).
    owner_id: int | None = None


@dataclass(frozen=True, slots=True)
class RoomRecord:
    id: int
    name: str
    mode: str
    topic: str
    created_at: float
    terminated_at: float | None = None
    settings: JsonDict = field(default_factory=dict)
    # The room's modes beyond who may join (chatd.domain.modes): a key to join,
    # a member limit, moderated, secret, no external messages, topic lock.
    key: str | None = None
    member_limit: int | None = None
    moderated: bool = False
    secret: bool = False
    no_external: bool = True
    topic_lock: bool = True


@dataclass(frozen=True, slots=True)
class MemberRecord:
    room_id: int
    user_id: int
    role: str
    joined_at: float
    role_since: float
    # Monotonic join order inside the whole database; breaks ties of joined_at.
    seq: int


# Not frozen, unlike the other records: one is made per message on the hot
# path, and a frozen dataclass's __init__ costs three times as much.
@dataclass(slots=True)
class MessageRecord:
    """A room message (room_id set) or a direct message (recipient_id set).

    ``kind`` is "text", "action", "notice", "e2e", "sticker" or "file"; ``extra`` holds
    kind-specific fields (file object, sticker name, envelope ...).
    """

    id: int
    sender_id: int
    sender_name: str
    text: str
    ts: float
    room_id: int | None = None
    recipient_id: int | None = None
    kind: str = "text"
    extra: JsonDict = field(default_factory=dict)
    # Direct messages only: False until the recipient has seen it online.
    delivered: bool = True


@dataclass(frozen=True, slots=True)
class DirectBacklog:
    """The direct messages to a user not delivered yet, as one read saw them: the
    newest of them (``messages``, in id order, at most the limit asked), how many
    there were in all, and the id of the oldest (None when none). Counted in the
    read itself: connections of one user logging in at once each read before any
    marks them delivered, and each must learn how many its replay left out."""

    messages: list[MessageRecord]
    undelivered: int = 0
    oldest: int | None = None

    @property
    def left_out(self) -> int:
        """How many older ones are not among ``messages``."""
        return self.undelivered - len(self.messages)


@dataclass(frozen=True, slots=True)
class AssociationRecord:
    """A user's link to a room they joined at some time (for /myrooms)."""

    user_id: int
    room_id: int
    room_name: str
    last_joined: float
    room_terminated: bool


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    id: int
    user_id: int
    kind: str
    payload: JsonDict
    created_at: float


@dataclass(frozen=True, slots=True)
class SanctionRecord:
    """A ban or a mute of a user in a room; ``until`` None means permanent."""

    room_id: int
    user_id: int
    actor_id: int | None
    reason: str
    created_at: float
    until: float | None


@dataclass(frozen=True, slots=True)
class InvitationRecord:
    room_id: int
    user_id: int
    inviter_id: int | None  # None once the inviter's account was deleted
    created_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class JoinRequestRecord:
    room_id: int
    user_id: int
    created_at: float


# An audit entry to write: (ts, actor, action, target, room name, reason, room id).
AuditEntry = tuple[float, str | None, str, str | None, str | None, str, int | None]


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    ts: float
    actor: str | None
    action: str
    target: str | None
    room: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API token for bots; only the SHA-256 of the secret is stored."""

    id: int
    user_id: int
    name: str
    token_hash: str
    created_at: float
    expires_at: float | None
    scopes: str = ALL_SCOPES
    last_used_at: float | None = None
    kind: str = API_TOKEN_KIND


@dataclass(frozen=True, slots=True)
class ResumeRecord:
    """A resume token: logs its account in again without a password check.

    Only the SHA-256 of the secret is stored. One issued at a login with an API
    token keeps that token's id and scopes (and is deleted with it)."""

    id: int
    user_id: int
    token_hash: str
    created_at: float
    expires_at: float
    api_token_id: int | None
    scopes: str


# One resume token's rotation: the old token's id, the new one's hash, when it is
# made and when it expires (see Storage.rotate_resume_tokens).
Rotation = tuple[int, str, float, float]


@dataclass(frozen=True, slots=True)
class FileRecord:
    """An uploaded file; its bytes live in blob storage under ``blob_key``."""

    id: int
    room_id: int
    uploader_id: int
    uploader_name: str
    name: str
    size: int
    mime: str
    sha256: str
    blob_key: str
    preview: str
    created_at: float


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A user's published end-to-end public keys (base64), with a fingerprint."""

    user_id: int
    x25519: str
    mlkem: str | None
    fingerprint: str
    updated_at: float


@dataclass(frozen=True, slots=True)
class UserBlockRecord:
    """``user_id`` refuses direct messages from ``blocked_id`` (since ``created_at``)."""

    user_id: int
    blocked_id: int
    created_at: float


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    """An incoming webhook of a room; only the SHA-256 of its secret is stored.

    ``token_id`` is the API token whose session made it (None: a password
    session's); the token's expiry and whether it is gone (revoked) are read with
    the hook, so a post is decided by the token's row as it is now."""

    id: int
    room_id: int
    name: str
    secret_hash: str
    creator_id: int
    created_at: float
    token_id: int | None = None
    token_expires_at: float | None = None
    token_gone: bool = False
