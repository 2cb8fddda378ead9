"""The counts one account or room may hold, decided with the row that adds to them.

A write that adds a room owned, a webhook, a block, a file, a bot, an API token
or a sender key left for an offline member may be given :class:`Quota` limits (a
browser tab's session token is the exception: its bound makes room for it, see
``create_session_token``). The backend then counts, in the write's own transaction
and before its insert, what each limit measures, and refuses the write with
:class:`~storage.api.OverQuota` when adding would pass the limit. The count and the
insert are one decision whatever node makes it: SQLite runs its write transactions
one at a time, and PostgreSQL's transaction first takes an advisory lock on the
holder (the account, or the room), which every other such write of that holder
waits for until this one commits (``storage.postgres.quotas``).

What each measure counts is written here once, for both backends; only the
placeholders differ (``?``, or ``$1`` and ``$2``): the holder's id, and for a
measure of a pair of accounts the other one's (``of``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Holder(enum.Enum):
    """Whose id a measure counts by: what PostgreSQL locks while it counts."""

    ACCOUNT = "account"
    ROOM = "room"


class Measure(enum.Enum):
    """What a quota counts, with the statement that counts it for one holder."""

    # Live rooms whose owner the account is (rooms.max_owned).
    OWNED_ROOMS = ("SELECT COUNT(*) FROM members m JOIN rooms r ON r.id = m.room_id "
                   "WHERE m.user_id = {key} AND m.role = 'owner' "
                   "AND r.terminated_at IS NULL", Holder.ACCOUNT)
    # The room's webhooks, dead ones too: each keeps its name until revoked.
    WEBHOOKS = ("SELECT COUNT(*) FROM webhooks WHERE room_id = {key}", Holder.ROOM)
    # The accounts whose direct messages the account refuses.
    BLOCKS = ("SELECT COUNT(*) FROM user_blocks WHERE user_id = {key}", Holder.ACCOUNT)
    # The files the account uploaded, and their bytes together.
    FILES = ("SELECT COUNT(*) FROM files WHERE uploader_id = {key}", Holder.ACCOUNT)
    FILE_BYTES = ("SELECT COALESCE(SUM(size), 0) FROM files WHERE uploader_id = {key}",
                  Holder.ACCOUNT)
    # The bots the account owns.
    BOTS = ("SELECT COUNT(*) FROM users WHERE owner_id = {key}", Holder.ACCOUNT)
    # The account's API tokens, expired ones too (they keep their names); not the
    # browser tabs' session tokens, which have their own bound (SESSION_TOKENS).
    TOKENS = ("SELECT COUNT(*) FROM api_tokens WHERE user_id = {key} "
              "AND kind <> 'session'", Holder.ACCOUNT)
    # The account's browser tabs' tokens. Never refused: making one past the bound
    # revokes the least recently used instead, in the insert's transaction
    # (create_session_token), since a tab that logs in must get a token.
    SESSION_TOKENS = ("SELECT COUNT(*) FROM api_tokens WHERE user_id = {key} "
                      "AND kind = 'session'", Holder.ACCOUNT)
    # The sender keys (/ekey, kind 'e2e-key') the account left another (``of``) that
    # wait for their next log-in (crypto.max_pending_keys). Locked by the sender:
    # one member's handouts wait for each other, not for anyone else's.
    WAITING_KEYS = ("SELECT COUNT(*) FROM messages WHERE recipient_id = {of} "
                    "AND delivered = FALSE AND sender_id = {key} AND kind = 'e2e-key'",
                    Holder.ACCOUNT)

    def __init__(self, sql: str, holder: Holder) -> None:
        self.sql = sql
        self.holder = holder

    def counting(self, placeholder: str, other: str = "") -> str:
        """The statement, its holder's id written as ``placeholder`` (and the other
        account's of a pair as ``other``)."""
        return self.sql.format(key=placeholder, of=other)


@dataclass(frozen=True, slots=True)
class Quota:
    """At most ``most`` of what ``measure`` counts for holder ``key`` (and the
    account ``of``, for a measure of a pair), once the write has added ``adding``
    (1 for a row; a file's size for its bytes)."""

    measure: Measure
    key: int
    most: int
    adding: int = 1
    of: int | None = None

    @property
    def arguments(self) -> tuple[int, ...]:
        """The values of the count's placeholders, in order."""
        return (self.key,) if self.of is None else (self.key, self.of)

    def passed_by(self, held: int) -> bool:
        """Whether adding to ``held`` would take it past the limit."""
        return held + self.adding > self.most
