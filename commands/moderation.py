"""Moderation: invite, requests, accept, decline, kick, ban, unban, mute, unmute,
promote, demote, transfer, mode, audit.

The declared ``role`` gives an early, clear refusal; the domain checks the
full rules (target's role, owner protection) again when the action runs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

from chatd.domain.accounts import User
from chatd.domain.names import format_duration
from chatd.domain.permissions import Action, authorize
from chatd.domain.room import Mode, Role, Room
from chatd.domain.scopes import Scope
from chatd.errors import ChatError, Code
from chatd.protocol.context import Context
from chatd.protocol.params import Choice, Duration, Int, RoomRef, Text, UserRef
from chatd.protocol.registry import command
from chatd.protocol.results import Ok, ok

GROUP = "moderation"
ADMIN, OWNER = Role.ADMIN, Role.OWNER


def _target(name: str = "user") -> UserRef:
    return UserRef(name)


def _room() -> RoomRef:
    return RoomRef("room", optional=True)


@command("invite", _target(), _room(), role=ADMIN, group=GROUP,
         scope=Scope.MODERATE, errors=(Code.BANNED, Code.ALREADY_IN_ROOM))
async def invite(ctx: Context, user: User, room: Room) -> Ok:
    """Invite a user; they get a notification with the room's id to /join."""
    record = await ctx.services.admission.invite(ctx.user, room, user)
    return ok(f"{user.name} is invited to #{room.name}.", room=room.name, id=room.id,
              user=user.name, expires=record.expires_at)


@command("requests", _room(), role=ADMIN, group=GROUP, scope=Scope.MODERATE)
async def requests(ctx: Context, room: Room) -> Ok:
    """List the pending join requests of a room."""
    pending = await ctx.services.admission.pending(ctx.user, room)
    rows: list[dict[str, Any]] = []
    for request in pending:
        account = ctx.services.accounts.get(request.user_id)
        if account is not None:
            rows.append({"user": account.name, "since": request.created_at})
    if rows:
        ctx.table(["user", "asked (UTC)"],
                  [[r["user"], time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["since"]))]
                   for r in rows])
    return ok(f"{len(rows)} pending request{'s' * (len(rows) != 1)} for #{room.name}.",
              room=room.name, requests=rows)


@command("accept", _target(), _room(), role=ADMIN, group=GROUP,
         scope=Scope.MODERATE, errors=(Code.BANNED, Code.ALREADY_IN_ROOM))
async def accept(ctx: Context, user: User, room: Room) -> Ok:
    """Accept a join request: the user joins and is notified."""
    await ctx.services.admission.accept(ctx.user, room, user)
    return ok(f"{user.name} joined #{room.name}.", room=room.name, user=user.name)


@command("decline", _target(), _room(), role=ADMIN, group=GROUP, scope=Scope.MODERATE)
async def decline(ctx: Context, user: User, room: Room) -> Ok:
    """Decline a join request; the user is notified."""
    await ctx.services.admission.decline(ctx.user, room, user)
    return ok(f"The request of {user.name} is declined.", room=room.name, user=user.name)


@command("kick", _target(), _room(), Text("reason", optional=True, default=""), role=ADMIN,
         group=GROUP, scope=Scope.MODERATE, errors=(Code.NOT_IN_ROOM,))
async def kick(ctx: Context, user: User, room: Room, reason: str) -> Ok:
    """Remove a member from a room; they may request to join again."""
    await ctx.services.moderation.kick(ctx.user, room, user, reason)
    return ok(f"{user.name} was kicked from #{room.name}.", room=room.name, user=user.name)


@command("ban", _target(), _room(), Duration("duration", optional=True),
         Text("reason", optional=True, default=""), role=ADMIN, group=GROUP, scope=Scope.MODERATE)
async def ban(ctx: Context, user: User, room: Room, duration: float | None, reason: str) -> Ok:
    """Ban a user (member or not) from a room, for a duration or for good."""
    record = await ctx.services.moderation.ban(ctx.user, room, user, duration, reason)
    span = f" for {format_duration(duration)}" if duration else ""
    return ok(f"{user.name} is banned from #{room.name}{span}.", room=room.name,
              user=user.name, until=record.until)


@command("unban", _target(), _room(), role=ADMIN, group=GROUP, scope=Scope.MODERATE)
async def unban(ctx: Context, user: User, room: Room) -> Ok:
    """Lift a ban before it expires."""
    await ctx.services.moderation.unban(ctx.user, room, user)
    return ok(f"{user.name} is no longer banned from #{room.name}.", room=room.name,
              user=user.name)


@command("mute", _target(), _room(), Duration("duration", optional=True), role=ADMIN,
         group=GROUP, scope=Scope.MODERATE, errors=(Code.NOT_IN_ROOM,))
async def mute(ctx: Context, user: User, room: Room, duration: float | None) -> Ok:
    """Stop a member from sending in a room, for a duration or until unmuted."""
    record = await ctx.services.moderation.mute(ctx.user, room, user, duration)
    span = f" for {format_duration(duration)}" if duration else ""
    return ok(f"{user.name} is muted in #{room.name}{span}.", room=room.name, user=user.name,
              until=record.until)


@command("unmute", _target(), _room(), role=ADMIN, group=GROUP, scope=Scope.MODERATE)
async def unmute(ctx: Context, user: User, room: Room) -> Ok:
    """Let a muted member send again."""
    await ctx.services.moderation.unmute(ctx.user, room, user)
    return ok(f"{user.name} may speak in #{room.name} again.", room=room.name, user=user.name)


@command("promote", _target(), _room(), role=OWNER, group=GROUP,
         scope=Scope.MODERATE, errors=(Code.NOT_IN_ROOM,))
async def promote(ctx: Context, user: User, room: Room) -> Ok:
    """Make a member an admin of the room."""
    await ctx.services.moderation.promote(ctx.user, room, user)
    return ok(f"{user.name} is now an admin of #{room.name}.", room=room.name, user=user.name,
              role="admin")


@command("demote", _target(), _room(), role=OWNER, group=GROUP,
         scope=Scope.MODERATE, errors=(Code.NOT_IN_ROOM,))
async def demote(ctx: Context, user: User, room: Room) -> Ok:
    """Make an admin a plain member again."""
    await ctx.services.moderation.demote(ctx.user, room, user)
    return ok(f"{user.name} is now a member of #{room.name}.", room=room.name, user=user.name,
              role="member")


@command("transfer", _target(), _room(), role=OWNER, group=GROUP,
         scope=Scope.MODERATE, errors=(Code.NOT_IN_ROOM,))
async def transfer(ctx: Context, user: User, room: Room) -> Ok:
    """Hand ownership to a member; the owner until now stays on as an admin."""
    previous = await ctx.services.moderation.transfer(ctx.user, room, user)
    return ok(f"{user.name} is now the owner of #{room.name}; {previous} is an admin of it.",
              room=room.name, user=user.name, role="owner", previous=previous)


@command("mode", Choice("mode", choices=tuple(m.value for m in Mode)), _room(), role=OWNER,
         group=GROUP, scope=Scope.MODERATE)
async def mode(ctx: Context, mode: str, room: Room) -> Ok:
    """Change who may join: open, request (admins accept) or private (invitation)."""
    await ctx.services.moderation.set_mode(ctx.user, room, Mode(mode))
    return ok(f"#{room.name} is now {mode}.", room=room.name, mode=mode)


AUDIT_USAGE = "/audit [room] [n]"
_COUNT = Int("n", high=1000)


@command("audit", Text("args", optional=True, default=""), group=GROUP, usage=AUDIT_USAGE,
         scope=Scope.READ, errors=(Code.NO_SUCH_ROOM, Code.NO_ROOM, Code.NOT_PERMITTED))
async def audit(ctx: Context, args: str) -> Ok:
    """Show the audit log: a room's for its admins, everything for server admins."""
    ref, n = _audit_args(ctx, args)
    room = ctx.services.rooms.find(ref) if ref is not None else None
    if ref is not None and room is None:
        return await _ended_audit(ctx, ref, n)
    if room is None and not ctx.user.is_admin:
        room = ctx.session.current_room
        if room is None:
            raise ChatError(Code.NO_ROOM, "name a room you administer: /audit <room>.")
    if room is not None:
        authorize(Action.AUDIT, room, ctx.user)
    entries = await ctx.services.audit.entries(n, room)
    return _audit_reply(ctx, entries, room.name if room else None)


def _audit_args(ctx: Context, args: str) -> tuple[str | None, int]:
    """The room (a name or an id) and the count: a lone number is the count, so a room
    named by its id needs the count after it (``/audit 7 50``)."""
    words = args.split()
    if len(words) > 2:
        raise ChatError(Code.BAD_ARGUMENTS, f"too many arguments. Usage: {AUDIT_USAGE}")
    if len(words) == 2:
        return words[0], _COUNT.convert(ctx, words[1], False)
    if words and not words[0].isdigit():
        return words[0], 50
    return None, _COUNT.convert(ctx, words[0], False) if words else 50


async def _ended_audit(ctx: Context, ref: str, n: int) -> Ok:
    """The log of a room that has ended, for its former admins and server admins."""
    log = ctx.services.audit
    ended = await log.ended_room(ref)
    if ended is None:
        raise ChatError(Code.NO_SUCH_ROOM,
                        f'there is no room "{ref}". /rooms lists the rooms you can join.')
    room_id, name = ended
    if not await log.may_read_ended(ctx.user, room_id):
        raise ChatError(Code.NOT_PERMITTED, f"#{name} has ended: only its former admins "
                        "and server admins can read its audit log.")
    entries = await log.entries(n, room_id=room_id)
    return _audit_reply(ctx, entries, name, id=room_id, terminated=True)


class _AuditEntry(Protocol):
    """What /audit shows of one entry."""

    @property
    def ts(self) -> float: ...
    @property
    def actor(self) -> str | None: ...
    @property
    def action(self) -> str: ...
    @property
    def target(self) -> str | None: ...
    @property
    def room(self) -> str | None: ...
    @property
    def reason(self) -> str: ...


def _audit_reply(ctx: Context, entries: Sequence[_AuditEntry], room: str | None,
                 **extra: Any) -> Ok:
    rows: list[dict[str, Any]] = [
        {"ts": e.ts, "actor": e.actor, "action": e.action, "target": e.target, "room": e.room,
         "reason": e.reason} for e in entries]
    if rows:
        ctx.table(["when (UTC)", "actor", "action", "target", "room", "reason"],
                  [[time.strftime("%m-%d %H:%M:%S", time.gmtime(r["ts"])), r["actor"] or "",
                    r["action"], r["target"] or "", r["room"] or "", r["reason"]] for r in rows])
    return ok(f"{len(rows)} audit entr{'ies' if len(rows) != 1 else 'y'}.", entries=rows,
              room=room, **extra)
