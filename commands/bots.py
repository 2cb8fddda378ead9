"""Bots and flow: API tokens, typing indicators, a room's own message rate."""

from __future__ import annotations

import time
from typing import Any

from chatd.domain.names import looks_like_duration, parse_duration
from chatd.domain.permissions import Action
from chatd.domain.protection import ROOM_BURST, ROOM_RATE
from chatd.domain.room import Role, Room
from chatd.domain.webhooks import bot_name, describe, hook_path
from chatd.errors import ChatError, Code
from chatd.protocol.context import Context
from chatd.protocol.params import Choice, Duration, Number, RoomRef, Word
from chatd.protocol.registry import command
from chatd.protocol.results import Ok, ok

GROUP = "bots"


@command("token", Choice("action", choices=("create", "list", "revoke")),
         Word("name", optional=True), Duration("ttl", optional=True), group=GROUP,
         usage="/token create [name] [ttl]  |  /token list  |  /token revoke <name>")
async def token(ctx: Context, action: str, name: str | None, ttl: float | None) -> Ok:
    """Manage API tokens for bots: shown once, stored only as a hash."""
    tokens = ctx.services.tokens
    if action == "create" and ttl is None and name is not None and looks_like_duration(name):
        # "/token create 7d": a lifetime, not a name.
        try:
            ttl = parse_duration(name)
            name = None
        except ValueError as exc:
            raise ChatError(Code.BAD_ARGUMENTS, f"ttl: {exc}") from None
    if action == "create":
        secret, record = await tokens.create(ctx.user, name or "default", ttl)
        return ok(f"Token {record.name}: {secret}  (shown only now; log in with "
                  f"/login {ctx.user.name} --token <token>)", token=secret, name=record.name,
                  expires=record.expires_at)
    if action == "revoke":
        if name is None:
            raise ChatError(Code.BAD_ARGUMENTS, "usage: /token revoke <name>.")
        await tokens.revoke(ctx.user, name)
        return ok(f"Token {name} revoked.", name=name)
    records = await tokens.list(ctx.user)
    if records:
        ctx.table(["name", "created (UTC)", "expires (UTC)"],
                  [[r.name, _day(r.created_at), _day(r.expires_at) if r.expires_at else "never"]
                   for r in records])
    return ok(f"{len(records)} token{'s' * (len(records) != 1)}.",
              tokens=[{"name": r.name, "created": r.created_at, "expires": r.expires_at}
                      for r in records])


def _day(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(stamp))


@command("typing", RoomRef("room", optional=True), group=GROUP)
def typing(ctx: Context, room: Room) -> Ok:
    """Tell a room you are typing (never stored; dropped first when a client lags)."""
    if not room.is_member(ctx.user.id):
        raise ChatError(Code.NOT_IN_ROOM, f"you are not in #{room.name}.")
    session = ctx.session
    wait = ctx.services.protection.charge_typing(session)
    if wait:
        raise ChatError(Code.RATE_LIMITED, "typing indicators are limited; wait a moment.",
                        retry_ms=max(1, round(wait * 1000)))
    ctx.services.messaging.typing(session, room)
    return ok(room=room.name)


@command("ratelimit", Word("rate"), Number("burst", optional=True, low=1, high=1e6),
         RoomRef("room", optional=True), role=Role.OWNER, group=GROUP,
         usage="/ratelimit <messages-per-second> [burst] [room]  |  /ratelimit off [room]")
async def ratelimit(ctx: Context, rate: str, burst: float | None, room: Room) -> Ok:
    """Set a room's own message rate within the server's bounds (owner), or 'off'."""
    limits = ctx.services.config.limits
    if rate.lower() == "off":
        fresh: dict[str, float] = {}
        text = f"#{room.name} uses the server's message rate again."
    else:
        value = _within(rate, "rate", limits.room_message_rate_max)
        size = _within(str(burst if burst is not None else max(1.0, value)), "burst",
                       limits.room_message_burst_max, low=1.0)
        fresh = {ROOM_RATE: value, ROOM_BURST: size}
        text = f"#{room.name}: {value:g} messages a second, bursts of {size:g}."

    def change(settings: dict[str, Any]) -> dict[str, Any]:
        # Only the rate's own keys change: the rest (e2e ...) is kept as it is now.
        settings.pop(ROOM_RATE, None)
        settings.pop(ROOM_BURST, None)
        return settings | fresh

    settings = await ctx.services.rooms.update_settings(ctx.user, room, Action.RATELIMIT,
                                                         change)
    ctx.services.protection.room_rate_changed(room)
    return ok(text, room=room.name, rate=settings.get(ROOM_RATE), burst=settings.get(ROOM_BURST))


def _within(raw: str, what: str, high: float, low: float = 0.1) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not low <= value <= high:
        raise ChatError(Code.BAD_ARGUMENTS, f"the {what} is a number from {low:g} to "
                        f"{high:g}, or 'off'.")
    return value


@command("webhook", Choice("action", choices=("create", "list", "revoke")),
         Word("what", optional=True), RoomRef("room", optional=True), group=GROUP,
         usage="/webhook create <name> [room]  |  /webhook list [room]  |  "
               "/webhook revoke <id> [room]")
async def webhook(ctx: Context, action: str, what: str | None, room: Room) -> Ok:
    """Incoming webhooks of a room (its admins): a secret URL that posts as a named bot."""
    hooks = ctx.services.webhooks
    if action == "list":
        if what is not None:
            room = ctx.services.rooms.require(what)
        records = await hooks.list(ctx.user, room)
        if records:
            ctx.table(["id", "bot", "created (UTC)"],
                      [[str(r.id), bot_name(r), _day(r.created_at)] for r in records])
        return ok(f"#{room.name}: {len(records)} webhook{'s' * (len(records) != 1)}.",
                  room=room.name, webhooks=[describe(r) for r in records])
    if what is None:
        raise ChatError(Code.BAD_ARGUMENTS, f"missing {'name' if action == 'create' else 'id'}."
                        " Usage: /webhook create <name> [room]  |  /webhook revoke <id> [room]")
    if action == "create":
        secret, record = await hooks.create(ctx.user, room, what)
        path = hook_path(record.id, secret)
        return ok(f"Webhook {record.id} posts to #{room.name} as {bot_name(record)}: "
                  f"POST to {path} on the web listener (shown only now).",
                  path=path, secret=secret, **describe(record), room=room.name)
    if not what.isdigit():
        raise ChatError(Code.BAD_ARGUMENTS, "a webhook is revoked by its id: "
                        "/webhook revoke <id> [room].")
    record = await hooks.revoke(ctx.user, room, int(what))
    return ok(f"Webhook {record.id} ({bot_name(record)}) of #{room.name} revoked.",
              room=room.name, **describe(record))
