"""Moderation: invite, requests, accept, decline, kick, ban, unban, mute, unmute,
promote, demote, voice, devoice, transfer, mode, audit.

The declared ``role`` gives an early, clear refusal; the domain checks the
full rules (target's role, owner protection) again when the action runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from chatd.domain.accounts import User
from chatd.domain.moderation import RoleChange, checked_role_change, switched
from chatd.domain.modes import LETTERS, ModeChange, Takes, format_changes, parse_mode_string
from chatd.domain.names import format_duration, is_number
from chatd.domain.permissions import Action, authorize
from chatd.domain.room import JOIN_LETTERS, LETTER_OF_MODE, Mode, Role, Room
from chatd.domain.scopes import Scope
from chatd.errors import ChatError, Code
from chatd.protocol.context import Context, table_time
from chatd.protocol.paging import PAGE, PAGED_ROOM, page_of
from chatd.protocol.params import Duration, Int, RoomRef, Text, UserOrGuest, UserRef, no_room
from chatd.protocol.records import describe_changes
from chatd.protocol.registry import NEEDS_ROOM_ADMIN, command
from chatd.protocol.results import Ok, ok

GROUP = "moderation"
MODES = tuple(m.value for m in Mode)
ADMIN, OWNER = Role.ADMIN, Role.OWNER


def _target(name: str = "user") -> UserRef:
    return UserRef(name)


def _anyone(banned: bool = False) -> UserOrGuest:
    """The target of an action on members, which IRC guests are too (IRC.md §3):
    the domain does to a guest what can be kept for it and refuses the rest."""
    return UserOrGuest("user", banned=banned)


def _room() -> RoomRef:
    return RoomRef("room", optional=True)


@command("invite", _anyone(), _room(), role=ADMIN, group=GROUP,
         scope=Scope.MODERATE, errors=(Code.BANNED, Code.ALREADY_IN_ROOM), told_by_event=True)
async def invite(ctx: Context, user: User, room: Room) -> Ok:
    """Invite a user; they get a notification naming what to /join (the room's id, or a
    secret room's name)."""
    record = await ctx.services.admission.invite(ctx.user, room, user)
    return ok(f"{user.name} is invited to #{room.name}.", room=room.name, id=room.id,
              user=user.name, expires=record.expires_at)


@command("requests", PAGED_ROOM, PAGE, role=ADMIN,
         group=GROUP, scope=Scope.MODERATE)
async def requests(ctx: Context, room: Room, page: int) -> Ok:
    """List the pending join requests of a room, a page at a time."""
    services = ctx.services
    pending = [(request, account) for request in await services.admission.pending(ctx.user, room)
               if (account := services.accounts.get(request.user_id)) is not None]
    asked = page_of(pending, page, services.config.rooms.page_size)
    rows: list[dict[str, Any]] = [{"user": account.name, "since": request.created_at}
                                  for request, account in asked.items]
    if rows:
        ctx.table(["user", "asked (UTC)"],
                  [[r["user"], table_time(r["since"])]
                   for r in rows])
    count = asked.total
    return ok(asked.told(f"{count} pending request{'s' * (count != 1)} for #{room.name}",
                         f"/requests {room.name}"), room=room.name, requests=rows,
              **asked.fields())


@command("accept", _target(), _room(), role=ADMIN, group=GROUP,
         scope=Scope.MODERATE, errors=(Code.BANNED, Code.ALREADY_IN_ROOM), told_by_event=True)
async def accept(ctx: Context, user: User, room: Room) -> Ok:
    """Accept a join request: the user joins and is notified."""
    await ctx.services.admission.accept(ctx.user, room, user)
    return ok(f"{user.name} joined #{room.name}.", room=room.name, user=user.name)


@command("decline", _target(), _room(), role=ADMIN, group=GROUP, scope=Scope.MODERATE)
async def decline(ctx: Context, user: User, room: Room) -> Ok:
    """Decline a join request; the user is notified."""
    await ctx.services.admission.decline(ctx.user, room, user)
    return ok(f"The request of {user.name} is declined.", room=room.name, user=user.name)


@command("kick", _anyone(), _room(), Text("reason", optional=True, default=""), role=ADMIN,
         group=GROUP, scope=Scope.MODERATE, errors=(Code.NOT_IN_ROOM,), told_by_event=True)
async def kick(ctx: Context, user: User, room: Room, reason: str) -> Ok:
    """Remove a member from a room; they may join, or ask to join, again."""
    await ctx.services.moderation.kick(ctx.user, room, user, reason)
    return ok(f"{user.name} was kicked from #{room.name}.", room=room.name, user=user.name)


@command("ban", _anyone(), _room(), Duration("duration", optional=True),
         Text("reason", optional=True, default=""), role=ADMIN, group=GROUP, scope=Scope.MODERATE,
         told_by_event=True, errors=(Code.QUOTA_EXCEEDED,))
async def ban(ctx: Context, user: User, room: Room, duration: float | None, reason: str) -> Ok:
    """Ban a user (member or not) from a room, for a duration or for good."""
    ban = await ctx.services.moderation.ban(ctx.user, room, user, duration, reason)
    span = f" for {format_duration(duration)}" if duration else ""
    # The name banned: a guest's nick as the room was told it, even if it changed since.
    return Ok(f"{ban.name} is banned from #{room.name}{span}.",
              {"room": room.name, "user": ban.name, "until": ban.record.until},
              beyond_event=bool(duration))


@command("unban", _anyone(banned=True), _room(), role=ADMIN, group=GROUP, scope=Scope.MODERATE,
         told_by_event=True)
async def unban(ctx: Context, user: User | str, room: Room) -> Ok:
    """Lift a ban before it expires."""
    moderation = ctx.services.moderation
    if isinstance(user, str):  # the nick of a guest gone since, which a ban holds
        lifted = await moderation.unban_guest(ctx.user, room, user)
    else:
        lifted = await moderation.unban(ctx.user, room, user)
    name = lifted.name
    # An account's name can be the nick of a guest banned before it was made: the
    # sentence says which ban went (more than the room's unban event says).
    which = ""
    if lifted.account and lifted.guest:
        which = f": the account's ban and that of the IRC guest {name} are both lifted"
    elif lifted.guest and isinstance(user, User) and user.has_account:
        which = f": the ban of the IRC guest {name} is lifted (the account was not banned)"
    return Ok(f"{name} is no longer banned from #{room.name}{which}.",
              {"room": room.name, "user": name,
               "lifted": [what for what, done in (("account", lifted.account),
                                                  ("guest", lifted.guest)) if done]},
              beyond_event=bool(which))


@command("mute", _anyone(), _room(), Duration("duration", optional=True), role=ADMIN,
         group=GROUP, scope=Scope.MODERATE, errors=(Code.NOT_IN_ROOM,), told_by_event=True)
async def mute(ctx: Context, user: User, room: Room, duration: float | None) -> Ok:
    """Stop a member from sending in a room, for a duration or until unmuted."""
    record = await ctx.services.moderation.mute(ctx.user, room, user, duration)
    span = f" for {format_duration(duration)}" if duration else ""
    # The room's event names no length: the sentence that does is shown too.
    return Ok(f"{user.name} is muted in #{room.name}{span}.",
              {"room": room.name, "user": user.name, "until": record.until},
              beyond_event=bool(duration))


@command("unmute", _anyone(), _room(), role=ADMIN, group=GROUP, scope=Scope.MODERATE,
         told_by_event=True)
async def unmute(ctx: Context, user: User, room: Room) -> Ok:
    """Let a muted member send again."""
    await ctx.services.moderation.unmute(ctx.user, room, user)
    return ok(f"{user.name} may speak in #{room.name} again.", room=room.name, user=user.name)


@command("promote", _anyone(), _room(), role=OWNER, group=GROUP,
         scope=Scope.MODERATE, errors=(Code.NOT_IN_ROOM,), told_by_event=True)
async def promote(ctx: Context, user: User, room: Room) -> Ok:
    """Make a member an admin of the room."""
    done = await ctx.services.moderation.promote(ctx.user, room, user)
    return _role_ok(f"{user.name} is {_NOW[done.changed]} an admin of #{room.name}.", room,
                    user, done)


@command("demote", _anyone(), _room(), role=OWNER, group=GROUP,
         scope=Scope.MODERATE, errors=(Code.NOT_IN_ROOM,), told_by_event=True)
async def demote(ctx: Context, user: User, room: Room) -> Ok:
    """Make an admin a plain member again."""
    done = await ctx.services.moderation.demote(ctx.user, room, user)
    return _role_ok(f"{user.name} is {_NOW[done.changed]} a member of #{room.name}.", room,
                    user, done)


@command("voice", _anyone(), _room(), role=ADMIN, group=GROUP, scope=Scope.MODERATE,
         errors=(Code.NOT_IN_ROOM,), told_by_event=True)
async def voice(ctx: Context, user: User, room: Room) -> Ok:
    """Let a member speak while the room is moderated (+m)."""
    done = await ctx.services.moderation.voice(ctx.user, room, user)
    said = f"{user.name} has voice" if done.changed else _unchanged_voice(user, done.role, True)
    return _role_ok(f"{said} in #{room.name}.", room, user, done)


@command("devoice", _anyone(), _room(), role=ADMIN, group=GROUP, scope=Scope.MODERATE,
         errors=(Code.NOT_IN_ROOM,), told_by_event=True)
async def devoice(ctx: Context, user: User, room: Room) -> Ok:
    """Take a member's voice: silent again while the room is moderated."""
    done = await ctx.services.moderation.devoice(ctx.user, room, user)
    said = (f"{user.name} no longer has voice" if done.changed
            else _unchanged_voice(user, done.role, False))
    return _role_ok(f"{said} in #{room.name}.", room, user, done)


# "is now an admin", or "is already" one when the target had the role.
_NOW = {True: "now", False: "already"}


def _unchanged_voice(target: User, role: Role, on: bool) -> str:
    """Why a ``+v`` (``on``) or ``-v`` of ``target``, whose role is ``role``, changed
    nothing: the voice held already (or not), or the role above voice by which an
    admin or the owner speaks whatever a ``v`` says."""
    if role.rank >= ADMIN.rank:
        held = f"{target.name} is {'the owner' if role is OWNER else 'an admin'}"
        return f"{held} and already speaks" if on else f"{held} and speaks without voice"
    return f"{target.name} already has {'' if on else 'no '}voice"


def _role_ok(text: str, room: Room, target: User, done: RoleChange) -> Ok:
    """The answer to a change of role: ``already`` when it changed nothing, which is
    done as /block of someone blocked is (no event tells it: the sentence does);
    ``role`` is the one the target holds now."""
    return ok(text, room=room.name, user=target.name, role=done.role.value,
              already=not done.changed)


@command("transfer", _anyone(), _room(), role=OWNER, group=GROUP,
         scope=Scope.MODERATE, errors=(Code.NOT_IN_ROOM,), told_by_event=True)
async def transfer(ctx: Context, user: User, room: Room) -> Ok:
    """Hand ownership to a member; the owner until now stays on as an admin."""
    previous = await ctx.services.moderation.transfer(ctx.user, room, user)
    return ok(f"{user.name} is now the owner of #{room.name}; {previous} is an admin of it.",
              room=room.name, user=user.name, role="owner", previous=previous)


MODE_USAGE = "/mode [open|request|private|+-letters [arguments]] [room]"
# Letters of /mode that take an argument: the key and the limit when set, a user for v.
_TAKES = {"k": Takes.ON_SET, "l": Takes.ON_SET, "v": Takes.ALWAYS}


@command("mode", Text("args", optional=True, default=""), group=GROUP, usage=MODE_USAGE,
         scope=Scope.MODERATE, errors=(Code.NO_ROOM, Code.NO_SUCH_ROOM, Code.NO_SUCH_USER,
                                       Code.NOT_PERMITTED, Code.NOT_IN_ROOM),
         needs=("logged in; to change k l m s n t or v: an admin or the owner of the room; "
                "open, request, private, i or R: the owner; server admins: any change"),
         told_by_event=True)
async def mode(ctx: Context, args: str) -> Ok:
    """Show a room's modes, or change them: who may join, or +/- k l m s n t i R v."""
    words = _room_last(args.split())
    if words and words[0].lower() in MODES:  # choices are case-insensitive
        return await _join_mode(ctx, Mode(words[0].lower()), _mode_room(ctx, words[1:]))
    if words and words[0][0] in "+-":
        changes, left = parse_mode_string(words[0], words[1:], _TAKES)
        # Before the room is looked up: an unknown letter takes no argument, so
        # the word after it (a nick, as in IRC's +o bob) would be read as the room
        # and the reply would name a missing room instead of the letter.
        _refuse_unknown_letters(changes)
        return await _change_modes(ctx, changes, _mode_room(ctx, left))
    return _show_modes(ctx, _mode_room(ctx, words))


def _is_mode_word(word: str) -> bool:
    return word.lower() in MODES or word[0] in "+-"


def _room_last(words: list[str]) -> list[str]:
    """``words`` with the room last, where this command takes it: written first, as
    IRC's MODE #room +m writes it (``/mode den +m``), it is moved there. A first
    word that is itself a mode (``open``, ``+m``) is never taken for the room."""
    if len(words) > 1 and not _is_mode_word(words[0]) and _is_mode_word(words[1]):
        return [*words[1:], words[0]]
    return words


def _mode_room(ctx: Context, words: list[str]) -> Room:
    """The room named by what is left of the line, or the current room."""
    if len(words) > 1:
        raise ChatError(Code.BAD_ARGUMENTS, "too many arguments.")
    if words:
        return ctx.services.rooms.require_as(ctx.user, words[0])
    room = ctx.session.current_room
    if room is None:
        raise no_room(ctx)
    return room


async def _join_mode(ctx: Context, mode: Mode, room: Room) -> Ok:
    """Change who may join: open, request (admins accept) or private (invitation)."""
    await ctx.services.moderation.set_mode(ctx.user, room, mode)
    return ok(f"#{room.name} is now {mode.value}.", room=room.name, mode=mode.value)


def _refuse_unknown_letters(changes: list[ModeChange]) -> None:
    unknown = [c.signed for c in changes if c.letter not in LETTERS + "iRv"]
    if unknown:
        raise ChatError(Code.BAD_ARGUMENTS, f"unknown mode {unknown[0]}: the letters are "
                        "k l m s n t (and i R v).")


async def _change_modes(ctx: Context, changes: list[ModeChange], room: Room) -> Ok:
    """Apply a mode string: k l m s n t at once, then i and R, then each v."""
    moderation, done = ctx.services.moderation, []
    # Each v's user is found first: one missing or unknown refuses the string
    # before any of its letters is applied, as a bad key or limit does.
    voiced = [(c, _voice_target(ctx, c)) for c in changes if c.letter == "v"]
    # i and R as switches of the join policy, in their order.
    joins = [(JOIN_LETTERS[c.letter], c.on) for c in changes if c.letter in JOIN_LETTERS]
    _refuse_beforehand(ctx, room, joins, voiced)
    switches = [c for c in changes if c.letter in LETTERS]
    if switches:
        done += await moderation.change_modes(ctx.user, room, switches)
    done += await _join_letters(ctx, room, joins)
    already: list[str] = []
    for change, target in voiced:
        voicing = await _voice_letter(ctx, room, change, target)
        if voicing.changed:
            done.append(ModeChange(change.on, "v", target.name))
        else:
            already.append(_unchanged_voice(target, voicing.role, change.on))
    spec, arguments = format_changes(done)
    said = [describe_changes(done) if done else "nothing changed", *already]
    text = f"#{room.name}: " + "; ".join(said) + "."
    # A v that changed nothing is in the sentence alone, never in an event: a
    # text-mode client is shown the sentence after the events of the rest.
    return Ok(text, {"room": room.name, "changes": spec, "arguments": arguments,
                     **_modes_fields(ctx, room)}, beyond_event=bool(already))


async def _join_letters(ctx: Context, room: Room,
                        joins: list[tuple[Mode, bool]]) -> list[ModeChange]:
    """i and R of the mode string as one change of who may join (``-i+R`` never
    opens the room on the way); the net change, as -old+new letters."""
    if not joins:
        return []
    # Decided by the domain from the mode in force when the room's turn comes, not
    # from the mode seen here (another admin may change it meanwhile).
    switched = await ctx.services.moderation.switch_modes(ctx.user, room, joins)
    if switched is None:
        return []
    before, after = switched
    return [*([ModeChange(False, LETTER_OF_MODE[before])] if before in LETTER_OF_MODE else []),
            *([ModeChange(True, LETTER_OF_MODE[after])] if after in LETTER_OF_MODE else [])]


def _refuse_beforehand(ctx: Context, room: Room, joins: list[tuple[Mode, bool]],
                       voiced: list[tuple[ModeChange, User]]) -> None:
    """Refuse, before the string's first letter is applied, the i, R and v letters
    the room as it is now refuses: a right the actor lacks, a v of a non-member or
    of a member whose role it cannot change (each v as the letters before it leave
    the roles). Each is checked again in its turn, under the room's lock."""
    if joins and switched(room.mode, joins) is not room.mode:  # no change needs no right
        authorize(Action.MODE, room, ctx.user)
    roles: dict[int, Role | None] = {}
    for change, target in voiced:
        action = Action.VOICE if change.on else Action.DEVOICE
        role = roles[target.id] if target.id in roles else room.role_of(target.id)
        roles[target.id] = checked_role_change(action, room, ctx.user, target, role)


def _voice_target(ctx: Context, change: ModeChange) -> User:
    """The user a +v or -v names: an account, or a guest as /voice and IRC's +v take."""
    if change.argument is None:
        raise ChatError(Code.BAD_ARGUMENTS, f"{change.signed} needs a user: "
                        f"/mode {change.signed} <user> [room].")
    accounts = ctx.services.accounts
    target = accounts.find(change.argument) or accounts.guest(change.argument)
    if target is None:
        raise ChatError(Code.NO_SUCH_USER, f'there is no user "{change.argument}".')
    return target


async def _voice_letter(ctx: Context, room: Room, change: ModeChange,
                        target: User) -> RoleChange:
    """Apply one +v or -v; whether it changed the target's role, and the role."""
    moderation = ctx.services.moderation
    return await (moderation.voice if change.on else moderation.devoice)(ctx.user, room,
                                                                          target)


def _show_modes(ctx: Context, room: Room) -> Ok:
    ctx.services.admission.require_visible(ctx.user, room)
    fields = _modes_fields(ctx, room)
    said = [room.mode.value, *(_SHOWN[letter] for letter in room.modes.letters())]
    if "key" in fields:
        said[said.index(_SHOWN["k"])] = f"the key is {fields['key']}"
    if room.modes.limit is not None:
        said[said.index(_SHOWN["l"])] = f"at most {room.modes.limit} members"
    return ok(f"#{room.name}: " + ", ".join(said) + ".", room=room.name, **fields)


# How /mode shows each letter in force.
_SHOWN = {"n": "only members send", "t": "only admins set the topic",
          "k": "a key is needed to join", "l": "a member limit", "m": "moderated",
          "s": "secret"}


def _modes_fields(ctx: Context, room: Room) -> dict[str, Any]:
    """The room's modes as ``ok`` fields; the key only for members and server admins."""
    modes = room.modes
    fields: dict[str, Any] = {"mode": room.mode.value, "modes": "+" + modes.letters(),
                              "limit": modes.limit, "moderated": modes.moderated,
                              "secret": modes.secret, "no_external": modes.no_external,
                              "topic_lock": modes.topic_lock}
    if modes.key is not None and (room.is_member(ctx.user.id) or ctx.user.is_admin):
        fields["key"] = modes.key
    return fields


AUDIT_USAGE = "/audit [room] [n]"
_COUNT = Int("n", high=1000)


@command("audit", Text("args", optional=True, default=""), group=GROUP, usage=AUDIT_USAGE,
         scope=Scope.READ, errors=(Code.NO_SUCH_ROOM, Code.NO_ROOM, Code.NOT_PERMITTED),
         needs=(NEEDS_ROOM_ADMIN + " (an ended room's log: its former admins)"))
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
        raise ChatError(Code.BAD_ARGUMENTS, "too many arguments.")
    if len(words) == 2:
        if is_number(words[0]) and not is_number(words[1]):
            # /audit 5 general: the count before the room (no room is named by digits).
            raise ChatError(Code.BAD_ARGUMENTS, f"the room comes first: /audit {words[1]} "
                            f"{words[0]}.")
        return words[0], _COUNT.convert(ctx, words[1], False)
    if words and not is_number(words[0]):
        return words[0], 50
    return None, _COUNT.convert(ctx, words[0], False) if words else 50


async def _ended_audit(ctx: Context, ref: str, n: int) -> Ok:
    """The log of a room that has ended, for its former admins and server admins."""
    log = ctx.services.audit
    ended = await log.ended_room(ref)
    if ended is None:
        missing = f"with id {ref}" if is_number(ref) else f'"{ref}"'
        raise ChatError(Code.NO_SUCH_ROOM,
                        f"there is no room {missing}. /rooms lists the rooms you can join.")
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
                  [[table_time(r["ts"]), r["actor"] or "",
                    r["action"], r["target"] or "", r["room"] or "", r["reason"]] for r in rows])
    return ok(f"{len(rows)} audit entr{'ies' if len(rows) != 1 else 'y'}.", entries=rows,
              room=room, **extra)
