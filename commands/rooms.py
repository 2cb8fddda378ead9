"""Rooms: create, rooms, join, leave, switch, who, topic, myrooms."""

from __future__ import annotations

import time
from typing import Any, Protocol

from chatd.domain.names import format_duration
from chatd.domain.room import Mode, Room
from chatd.domain.scopes import Scope, require_scope
from chatd.errors import ChatError, Code
from chatd.protocol.context import Context
from chatd.protocol.paging import PAGE, PAGED_ROOM, page_of
from chatd.protocol.params import Choice, RoomRef, Text, Word
from chatd.protocol.registry import command
from chatd.protocol.results import Ok, ok

GROUP = "rooms"
MODES = tuple(m.value for m in Mode)


@command("create", Word("room"),
         Choice("mode", optional=True, default="open", choices=MODES), group=GROUP,
         scope=Scope.POST, errors=(Code.NAME_TAKEN, Code.INVALID_NAME, Code.QUOTA_EXCEEDED,
                                    Code.RATE_LIMITED, Code.NO_SUCH_USER))
async def create(ctx: Context, room: str, mode: str) -> Ok:
    """Create a room (open by default); you become its owner."""
    async with ctx.services.protection.creating_room(ctx.user):
        created = await ctx.services.rooms.create(ctx.user, room, Mode(mode), ctx.session)
    ctx.session.current_room = created
    return ok(f"You created #{created.name} ({mode}). Plain lines now go to #{created.name}.",
              **ctx.services.rooms.summary(created), room=created.name)


@command("rooms", PAGE, aliases=("list",), group=GROUP,
         scope=Scope.READ)
def rooms(ctx: Context, page: int) -> Ok:
    """List the rooms you can see, a page at a time."""
    services = ctx.services
    listed = page_of(services.rooms.listed_for(ctx.user), page, services.config.rooms.page_size)
    shown = [services.rooms.summary(r) for r in listed.items]
    if shown:
        ctx.table(["id", "room", "mode", "members", "topic"],
                  [[r["id"], r["name"], r["mode"], r["members"], r["topic"]] for r in shown],
                  right=(0, 3))
    # Counted as the other paged lists are, which say nothing of pages when the list
    # fits one: "page 1 of 1" alone under a table told nothing.
    total = listed.total
    sentence = f"{total} room{'s' * (total != 1)}" if total else \
        "no rooms yet: /create <room> makes one"
    return ok(listed.told(sentence, "/rooms"), rooms=shown, **listed.fields())


@command("join", RoomRef("room"), Word("key", optional=True), group=GROUP,
         scope=Scope.POST, errors=(Code.NOT_PERMITTED, Code.BANNED, Code.BAD_ROOM_KEY,
                                   Code.ROOM_FULL, Code.NO_SUCH_USER))
async def join(ctx: Context, room: Room, key: str | None) -> Ok:
    """Join a room by name or id, with its key if it has one (+k)."""
    services, user = ctx.services, ctx.user
    if room.is_member(user.id):
        return _already_in(ctx, room)
    outcome = await services.admission.admit(user, room, ctx.session, key)
    if outcome == "already":
        return _already_in(ctx, room)
    if outcome == "requested":
        return ok(f"#{room.name} admits by request: your request is filed; "
                  "you will be notified of the answer.", room=room.name, id=room.id,
                  requested=True)
    ctx.session.current_room = room
    count = len(room.members)
    return ok(f"You joined #{room.name} ({count} member{'s' * (count != 1)}). "
              f"Plain lines now go to #{room.name}.", **services.rooms.summary(room),
              room=room.name)


def _already_in(ctx: Context, room: Room) -> Ok:
    ctx.session.current_room = room
    return ok(f"You are already in #{room.name}; plain lines now go there.",
              **ctx.services.rooms.summary(room), room=room.name, already=True)


@command("leave", RoomRef("room", optional=True, first_word=True),
         Text("reason", optional=True, default=""),
         aliases=("part",), group=GROUP, scope=Scope.POST,
         errors=(Code.NOT_IN_ROOM, Code.RATE_LIMITED))
async def leave(ctx: Context, room: Room, reason: str) -> Ok:
    """Leave a room (the current one by default), with a reason the members see if you
    give one."""
    if not room.is_member(ctx.user.id):
        raise ChatError(Code.NOT_IN_ROOM, f"you are not in #{room.name}.")
    # A leave is shown to every member, with a reason of the user's choosing, as a
    # message is: it takes a message token (rate-limited without), or /join and
    # /leave in turn showed them two events per command token.
    charged = ctx.services.protection.charge_message(ctx.session, None)
    if charged is not None:
        await charged
    departure = await ctx.services.rooms.leave(ctx.user, room, ctx.session, reason)
    if departure is None:
        # A decision queued before this one took the user out (the room ended, or
        # they were kicked): they are out, as they asked, and were told why.
        return ok(f"You are no longer in #{room.name}.", room=room.name, id=room.id,
                  already=True)
    if not departure.terminate:
        return ok(f"You left #{room.name}.", room=room.name, id=room.id)
    # The room ended with this leave: say so, or it seems to live on until /rooms.
    why = ("the one member left was no admin" if departure.evicted is not None
           else "it had no other member")
    return ok(f"You left #{room.name}; {why}, so it has ended.", room=room.name, id=room.id,
              terminated=True)


@command("switch", RoomRef("room"), group=GROUP, scope=Scope.READ, errors=(Code.NOT_IN_ROOM,))
def switch(ctx: Context, room: Room) -> Ok:
    """Make one of your rooms the current room for plain lines."""
    if not room.is_member(ctx.user.id):
        # The way in the room asks for (a bare /join of a private room is refused too).
        raise ChatError(Code.NOT_IN_ROOM, f"you are not in #{room.name}.", remedy=room.way_in())
    ctx.session.current_room = room
    return ok(f"Plain lines now go to #{room.name}.", room=room.name, id=room.id)


@command("who", PAGED_ROOM, PAGE,
         aliases=("names",), group=GROUP, scope=Scope.READ, errors=(Code.NOT_PERMITTED,),
         needs="logged in; the room must be visible to you")
def who(ctx: Context, room: Room, page: int) -> Ok:
    """List a room's members, their roles and who is online, a page at a time."""
    services = ctx.services
    # An IRC guest has no account, but is online while it is here.
    members = services.admission.members_shown(ctx.user, room)
    online = sum(1 for _, user in members if user is not None and user.online)
    listed = page_of(members, page, services.config.rooms.page_size)
    rows: list[dict[str, Any]] = []
    for member, user in listed.items:
        row = {"user": member.name, "role": member.role.value,
               "online": bool(user and user.online)}
        if user is not None and user.is_bot:
            row["bot"] = True  # only on bots: a member list of people stays as it was
        rows.append(row)
    if rows:
        ctx.table(["user", "role", "online"],
                  [[r["user"] + (" (bot)" if r.get("bot") else ""), r["role"],
                    "yes" if r["online"] else "no"] for r in rows])
    members_text = "1 member" if len(members) == 1 else f"{len(members)} members"
    message = listed.told(f"#{room.name}: {members_text}, {online} online",
                          f"/who {room.name}")
    return ok(message, room=room.name, id=room.id, members=rows, **listed.fields())


@command("topic", RoomRef("room", optional=True), Text("text", optional=True, default=""),
         group=GROUP, scope=Scope.READ,
         errors=(Code.NOT_PERMITTED, Code.BANNED, Code.MUTED, Code.MODERATED,
                 Code.BAD_ARGUMENTS),
         needs=("logged in; setting it: an admin or the owner of the room, or a server admin, "
                "or any member while the room's topic lock is off (/mode -t), and with a "
                "token its moderate scope; a topic is said to the whole room, so whoever "
                "may not speak there now (muted, or unvoiced in a moderated room) cannot set one"),
         told_by_event=True)
async def topic(ctx: Context, room: Room, text: str) -> Ok:
    """Show a room's topic, or set it (admins and the owner; any member when the topic
    lock is off, /mode -t)."""
    if not text:
        ctx.services.admission.require_visible(ctx.user, room)
        shown = room.topic or "(no topic)"
        return ok(f"#{room.name}: {shown}", room=room.name, topic=room.topic)
    # Reading is reading; setting governs the room, as IRC's TOPIC has it too.
    require_scope(ctx.session.scopes, Scope.MODERATE, "setting a topic")
    await ctx.services.rooms.set_topic(ctx.user, room, text)
    return ok(f"The topic of #{room.name} is now: {text}", room=room.name, topic=text)


class _Association(Protocol):
    """What /myrooms reads of a room the user joined at some time."""

    @property
    def room_id(self) -> int: ...
    @property
    def room_name(self) -> str: ...
    @property
    def last_joined(self) -> float: ...
    @property
    def room_terminated(self) -> bool: ...


@command("myrooms", PAGE, group=GROUP, scope=Scope.READ)
async def myrooms(ctx: Context, page: int) -> Ok:
    """The rooms you are in, and the rooms you were in before (to join back), a page at
    a time."""
    services, user = ctx.services, ctx.user
    current = [services.rooms.summary(r) | {"role": r.role_of(user.id)}
               for r in services.rooms.of_user(user)]
    member_of = {r["id"] for r in current}
    now = services.clock.time()
    past = [_past(ctx, a, now) for a in await services.rooms.joined_before(user)
            if a.room_id not in member_of]
    # One list, the rooms you are in first: a page may end the ones and start the others.
    listed = page_of([*((True, r) for r in current), *((False, p) for p in past)], page,
                     services.config.rooms.page_size)
    rows = [[r["id"], r["name"], r["role"], "member now"] if member
            else [r["id"], r["name"], "", _past_state(r, now)] for member, r in listed.items]
    if rows:
        ctx.table(["id", "room", "role", "state"], rows, right=(0,))
    sentence = f"{len(current)} room{'s' * (len(current) != 1)} now, {len(past)} before"
    return ok(listed.told(sentence, "/myrooms"),
              rooms=[r for member, r in listed.items if member],
              past=[r for member, r in listed.items if not member], **listed.fields())


def _past(ctx: Context, association: _Association, now: float) -> dict[str, Any]:
    """A room the user was in; one that banned them says so (it cannot be joined back)."""
    past: dict[str, Any] = {"id": association.room_id, "name": association.room_name,
                            "last_joined": association.last_joined,
                            "terminated": association.room_terminated, "banned": False}
    room = ctx.services.rooms.get(association.room_id)
    ban = room.banned(ctx.user.id, now) if room is not None else None
    if ban is not None:
        past |= {"banned": True, "until": ban.until}
    return past


def _past_state(past: dict[str, Any], now: float) -> str:
    if past["terminated"]:
        return "terminated"
    if past["banned"]:
        until = past["until"]
        return "banned" if until is None else f"banned for {format_duration(until - now)} more"
    stamp = time.strftime("%Y-%m-%d", time.gmtime(float(past["last_joined"])))
    return f"last joined {stamp}"
