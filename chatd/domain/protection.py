"""Rate limits and flood control.

- Messages: one token bucket per user, shared by all their connections; a room
  whose owner set its own rate (``/ratelimit``) uses a bucket per member instead.
- A refused message counts towards flood detection; sustained flooding mutes
  the sender in that room (or disconnects them, as configured).
- Failed logins: a bucket per IP address and per account name; when either is
  empty, logins are refused with one reply that reveals neither which limit
  nor whether the account exists.

Messages are refused, never delayed: a chat line that arrives late is worse
than a clear ``rate-limited`` with the time to wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from chatd.domain.names import name_key
from chatd.domain.ratelimit import FloodDetector, TokenBucket
from chatd.errors import ChatError, Code

if TYPE_CHECKING:
    from chatd.config import Config
    from chatd.domain.accounts import User
    from chatd.domain.audit import AuditLog
    from chatd.domain.clock import Clock
    from chatd.domain.moderation import Moderation
    from chatd.domain.ports import Endpoint
    from chatd.domain.room import Room

log = logging.getLogger(__name__)

ROOM_RATE = "message_rate"
ROOM_BURST = "message_burst"
# Failed-login buckets kept at most; the oldest are forgotten first.
MAX_AUTH_KEYS = 100_000


class Protection:
    """Decides whether a message may go now, and what flooding costs."""

    def __init__(self, config: Config, clock: Clock, moderation: Moderation,
                 audit: AuditLog) -> None:
        self.config = config
        self._clock = clock
        self._moderation = moderation
        self._audit = audit
        self._room_buckets: dict[int, dict[int, TokenBucket]] = {}
        self._floods: dict[int, FloodDetector] = {}
        self._auth: OrderedDict[str, TokenBucket] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- messages ------------------------------------------------------------

    def charge_message(self, session: Endpoint, room: Room | None) -> None:
        """Take one message token or raise ``rate-limited`` (with ``retry_ms``)."""
        user = session.user
        assert user is not None
        wait = self._bucket(user, room).try_take()
        if wait:
            self._refused(session, user, room)
            retry_ms = max(1, round(wait * 1000))
            raise ChatError(Code.RATE_LIMITED,
                            f"too many messages; wait {retry_ms} ms and try again.",
                            retry_ms=retry_ms)

    def _bucket(self, user: User, room: Room | None) -> TokenBucket:
        if room is None or ROOM_RATE not in room.settings:
            return user.message_bucket
        buckets = self._room_buckets.setdefault(room.id, {})
        bucket = buckets.get(user.id)
        if bucket is None:
            bucket = buckets[user.id] = TokenBucket(
                room.settings[ROOM_RATE], room.settings[ROOM_BURST],
                self._clock.monotonic)
        return bucket

    def room_rate_changed(self, room: Room) -> None:
        """Forget the room's buckets so the new rate applies at once."""
        self._room_buckets.pop(room.id, None)

    def _refused(self, session: Endpoint, user: User, room: Room | None) -> None:
        limits = self.config.limits
        flood = self._floods.get(user.id)
        if flood is None:
            flood = self._floods[user.id] = FloodDetector(
                limits.flood_threshold, limits.flood_window, self._clock.monotonic)
        if flood.record():
            self._on_flood(session, user, room)

    def _on_flood(self, session: Endpoint, user: User, room: Room | None) -> None:
        limits = self.config.limits
        log.warning("flood", extra={"fields": {"session": session.id, "user": user.name,
                                               "room": room.name if room else None,
                                               "action": limits.flood_action}})
        if limits.flood_action == "mute" and room is not None:
            self._spawn(self._moderation.mute_for_flood(room, user, limits.flood_mute))
            return
        session.send({"type": "error", "code": Code.RATE_LIMITED.value,
                      "message": "sustained flooding: you are disconnected."})
        session.close("flood")
        self._spawn(self._audit.record("flood-disconnect", None, user.name,
                                                room, "flooding"))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run an async consequence of a synchronous refusal, keeping a reference."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- logins ----------------------------------------------------------------

    def check_login(self, peer: str, name: str | None) -> None:
        """Refuse a login attempt while the IP or the account has failed too often."""
        for key in _auth_keys(peer, name):
            bucket = self._auth.get(key)
            if bucket is not None and bucket.tokens < 1:
                raise ChatError(Code.RATE_LIMITED,
                                "too many failed logins; wait a minute and try again.")

    def login_failed(self, peer: str, name: str | None) -> None:
        limits = self.config.limits
        for key in _auth_keys(peer, name):
            bucket = self._auth.get(key)
            if bucket is None:
                bucket = TokenBucket(limits.auth_failures / limits.auth_window,
                                     limits.auth_failures, self._clock.monotonic)
                self._auth[key] = bucket
                if len(self._auth) > MAX_AUTH_KEYS:
                    self._auth.popitem(last=False)
            bucket.try_take()

    def sweep(self) -> None:
        """Drop login buckets that have refilled: they no longer hold anything."""
        for key in [k for k, b in self._auth.items() if b.tokens >= b.burst]:
            del self._auth[key]


def _auth_keys(peer: str, name: str | None) -> list[str]:
    """The IP address's key, and the account name's when a name was given."""
    keys = ["ip:" + peer.rpartition(":")[0]]
    if name is not None:
        keys.append("name:" + name_key(name))
    return keys
