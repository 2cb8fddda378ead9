"""Incoming webhooks: a room admin's secret URL that posts into the room as a named bot.

A hook belongs to one room and has a name (the bot's, shown as ``name[bot]``
so it can never pass for a user: user names have no brackets). Its secret is
32 random bytes shown once at creation; only its SHA-256 is stored, and a
post compares hashes in constant time. Creating, revoking and listing need
an admin of the room (or a server admin); every creation and revocation is
audited. Each hook has its own rate limit (``web.webhook_rate``). A hook speaks
for its creator: each post is refused, as a post of theirs would be now, and
unless they still hold the role that making the hook needed.

A hook made from a session logged in with a script's API token (an ``api``
one, or a resume token made from one) lives as long as that token: once it is
revoked or expires, the hook is dead, and its posts are refused
(``token-revoked``, ``token-expired``). A hook made with a browser tab's token
(a ``session`` one, chatd.domain.tokens) lives as its account, as one made from
a password session does: the tab logging out revokes that token, and what its
user made there must not die with it.
A dead hook is kept, not deleted: an expiry happens with nobody there to delete
anything, so the refusal must come from the token's row as each post reads it
(on every node alike); and kept, the hook stays in the room's list, shown dead,
and its caller is told why it stopped, where a deleted hook would vanish and
answer like a wrong address. Its name stays taken until an admin revokes it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING, Any

from chatd.domain import names
from chatd.domain.limits import Kind
from chatd.domain.permissions import administers, hook_unadministered
from chatd.domain.protection import rate_limited
from chatd.errors import ChatError, Code
from storage.api import Conflict, OverQuota
from storage.quotas import Measure, Quota

if TYPE_CHECKING:
    from chatd.config import Config
    from chatd.domain.accounts import Accounts, User
    from chatd.domain.audit import AuditLog
    from chatd.domain.clock import Clock
    from chatd.domain.messaging import Messaging
    from chatd.domain.protection import Protection
    from chatd.domain.room import Room
    from chatd.domain.rooms import Rooms
    from chatd.domain.tokens import Tokens
    from storage.api import Storage
    from storage.records import WebhookRecord

BOT_SUFFIX = "[bot]"
# The path of a hook's URL on the web listener; the secret follows the id.
PATH_PREFIX = "/hooks/"


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def hook_path(hook_id: int, secret: str) -> str:
    """The path an HTTP POST goes to (the web listener's address in front of it)."""
    return f"{PATH_PREFIX}{hook_id}/{secret}"


def bot_name(record: WebhookRecord) -> str:
    return record.name + BOT_SUFFIX


def dead(record: WebhookRecord, now: float) -> Code | None:
    """Why the hook posts no more at ``now``: the API token that made it was revoked
    (its row is gone) or has expired; None while it lives (a hook made from a
    password session lives until it is revoked)."""
    if record.token_id is None:
        return None
    if record.token_gone:
        return Code.TOKEN_REVOKED
    expires = record.token_expires_at
    return Code.TOKEN_EXPIRED if expires is not None and expires <= now else None


def describe(record: WebhookRecord, now: float) -> dict[str, Any]:
    """A hook as replies show it (never its secret, which is not kept): also whether
    a script's API token made it (``by_token``: it lives as long as the token), and why it
    is dead at ``now`` (``dead``: the code its posts get; None while it lives)."""
    why = dead(record, now)
    return {"id": record.id, "name": record.name, "bot": bot_name(record),
            "created": record.created_at, "by_token": record.token_id is not None,
            "dead": None if why is None else why.value}


def state(record: WebhookRecord, now: float) -> str:
    """A hook's state as a table shows it: live, or dead and why (its posts' code)."""
    why = dead(record, now)
    return "live" if why is None else f"dead: {why.value}"


_DEATHS = {Code.TOKEN_REVOKED: "its token was revoked", Code.TOKEN_EXPIRED: "its token expired"}


class Webhooks:
    """Creates, lists, revokes incoming webhooks and posts through them."""

    def __init__(self, storage: Storage, accounts: Accounts, tokens: Tokens, rooms: Rooms,
                 messaging: Messaging, protection: Protection, audit: AuditLog,
                 clock: Clock) -> None:
        self._storage = storage
        self._accounts = accounts
        self._tokens = tokens
        self._rooms = rooms
        self._messaging = messaging
        self._protection = protection
        self._audit = audit
        self._clock = clock
        # The most webhooks one room may have (web.max_webhooks): set from the
        # configuration (reconfigure), at start and reload. The database counts them
        # with each insert, so that two made at once, through one node or several,
        # cannot both take the last place.
        self.max_per_room = 20

    def reconfigure(self, config: Config) -> None:
        self.max_per_room = config.web.max_webhooks

    def describe(self, record: WebhookRecord) -> dict[str, Any]:
        """``record`` as replies show it now (:func:`describe`)."""
        return describe(record, self._clock.time())

    def state(self, record: WebhookRecord) -> str:
        """``record``'s state now, as a table shows it (:func:`state`)."""
        return state(record, self._clock.time())

    async def create(self, user: User, room: Room, raw_name: str,
                     token_id: int | None = None) -> tuple[str, WebhookRecord]:
        """A new hook of ``room``: its secret (to show once) and its stored record.
        ``token_id``: the API token the session asking for it logged in with, None
        for a password session. The hook dies with that token when it is a script's
        (``record.token_id`` names it then), and lives as the account otherwise."""
        _require_admin(user, room)
        try:
            name = names.user_name(raw_name)
        except names.InvalidName as exc:
            raise ChatError(Code.INVALID_NAME, f"a webhook's name follows the rules of user "
                            f"names: {exc}") from None
        secret = secrets.token_urlsafe(32)
        tied = await self._tokens.tying(user, token_id)
        # Each is a stored row and a name its admins could otherwise make without end.
        full = Quota(Measure.WEBHOOKS, room.id, self.max_per_room)
        try:
            record = await self._storage.create_webhook(room.id, name, secret_hash(secret),
                                                        user.id, self._clock.time(),
                                                        tied, (full,))
        except Conflict:
            raise await self._name_taken(room, name) from None
        except OverQuota as refused:
            raise ChatError(Code.QUOTA_EXCEEDED, f"#{room.name} has {refused.quota.most} "
                            "webhooks, the most a room may have: revoke one first.",
                            quota=refused.quota.most) from None
        await self._audit.record("webhook-create", user.name, bot_name(record), room,
                                 f"webhook {record.id}")
        return secret, record

    async def _name_taken(self, room: Room, name: str) -> ChatError:
        """``name-taken``, saying so when the hook holding the name is dead (it keeps
        its name until revoked)."""
        taken = next((r for r in await self._storage.list_webhooks(room.id)
                      if r.name.lower() == name.lower()), None)
        why = dead(taken, self._clock.time()) if taken is not None else None
        if taken is None or why is None:
            return ChatError(Code.NAME_TAKEN, f'#{room.name} already has a webhook named '
                             f'"{name}".')
        return ChatError(Code.NAME_TAKEN, f'#{room.name} already has a webhook named '
                         f'"{name}": webhook {taken.id}, dead ({_DEATHS[why]}), keeps its '
                         "name until it is revoked.")

    async def list(self, user: User, room: Room) -> list[WebhookRecord]:
        _require_admin(user, room)
        return await self._storage.list_webhooks(room.id)

    async def revoke(self, user: User, room: Room, hook_id: int) -> WebhookRecord:
        _require_admin(user, room)
        record = await self._storage.get_webhook(hook_id)
        if record is None or record.room_id != room.id or \
                not await self._storage.delete_webhook(room.id, hook_id):
            raise ChatError(Code.NO_SUCH_WEBHOOK, f"#{room.name} has no webhook {hook_id}.")
        await self._audit.record("webhook-revoke", user.name, bot_name(record), room,
                                 f"webhook {record.id}")
        return record

    async def post(self, record: WebhookRecord, room: Room, text: str) -> int:
        """Post ``text`` through the hook ``record`` of ``room``, as :meth:`vouched`
        found them for the post's address (asked first, so that a wrong secret is
        refused whatever the post carries); the new message's id."""
        creator = self._refuse_creator(record, room)
        wait = self._protection.charge_shared(Kind.WEBHOOK, record.id)
        if not isinstance(wait, float):
            wait = await wait  # a bucket every node shares: one budget per hook
        if wait:
            raise rate_limited("too many posts through this webhook", wait)
        try:
            message_id = await self._messaging.post_bot(room, creator, bot_name(record), text,
                                                        {"bot": True, "webhook": record.id})
        except ChatError as exc:
            raise _for_the_hook(exc, record, creator, room) from None
        return message_id

    async def vouched(self, hook_id: int, secret: str) -> tuple[WebhookRecord, Room]:
        """Hook ``hook_id`` and its room, if ``secret`` is its own and the hook lives
        (its API token neither revoked nor expired): what a post's address alone
        decides, so the web listener asks it before it reads the post's body, and
        the post asks it before it looks at that body. An unknown hook and a wrong
        secret are told alike."""
        record = await self._storage.get_webhook(hook_id)
        room = self._rooms.get(record.room_id) if record is not None else None
        if record is None or room is None or \
                not hmac.compare_digest(record.secret_hash, secret_hash(secret)):
            raise ChatError(Code.NO_SUCH_WEBHOOK, "there is no such webhook, or it was revoked.")
        self._refuse_dead(record)
        return record, room

    def _refuse_dead(self, record: WebhookRecord) -> None:
        """Refuse a post through a hook whose API token was revoked or has expired
        (as its row was read with the hook, now: on every node alike)."""
        why = dead(record, self._clock.time())
        if why is not None:
            raise ChatError(why, f"{bot_name(record)} posts no more: it was made with an API "
                            f"token, and {_DEATHS[why]}. A room admin can make a new webhook.")

    def _refuse_creator(self, record: WebhookRecord, room: Room) -> User:
        """The hook's creator, if they may still post what the hook would: as a member
        of ``room`` could now (Messaging.refuse_post, asked again as the post goes
        out) and with the role that making the hook needed. A hook speaks for its
        creator; it must not outlive their leave, kick, ban, mute or demotion."""
        creator = self._accounts.get(record.creator_id)
        if creator is None:
            # (Storage deletes an account's hooks with it: this is a moment's race.)
            raise ChatError(Code.NO_SUCH_WEBHOOK, "there is no such webhook, or it was revoked.")
        try:
            self._messaging.refuse_post(room, creator, "bot")
        except ChatError as exc:
            raise _for_the_hook(exc, record, creator, room) from None
        if not administers(creator, room):
            raise hook_unadministered(bot_name(record), creator.name, room.name)
        return creator


def _for_the_hook(exc: ChatError, record: WebhookRecord, creator: User,
                  room: Room) -> ChatError:
    """``exc``, which refused ``creator``, told to whoever posts through the hook: the
    same code and details, in words that say whose right it was."""
    if exc.code is Code.E2E_REQUIRED:
        # (Not the member's remedy, a client that encrypts: a hook has none.)
        return ChatError(exc.code, f"#{room.name} is end-to-end encrypted: a webhook "
                         "cannot post plain messages there.")
    if exc.code in (Code.NOT_IN_ROOM, Code.BANNED, Code.MUTED, Code.MODERATED):
        return ChatError(exc.code, f"{bot_name(record)} speaks for its creator, "
                         f"{creator.name}, who cannot post there now ({exc.code.value}).",
                         **exc.details)
    return exc


def _require_admin(user: User, room: Room) -> None:
    if not administers(user, room):
        raise ChatError(Code.NOT_PERMITTED,
                        f"only an admin of #{room.name} can manage its webhooks.")
