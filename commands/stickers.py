"""Stickers: post one, list them."""

from __future__ import annotations

from chatd.domain.ports import settled
from chatd.domain.room import Room
from chatd.domain.scopes import Scope
from chatd.errors import ChatError, Code
from chatd.protocol.context import Context
from chatd.protocol.paging import PAGE, page_of
from chatd.protocol.params import RoomRef, Word
from chatd.protocol.registry import NEEDS_SENDER, command
from chatd.protocol.results import Ok, ok

GROUP = "messages"


@command("sticker", Word("name"), RoomRef("room", optional=True), group=GROUP,
         scope=Scope.POST, errors=(Code.NOT_IN_ROOM, Code.MUTED, Code.MODERATED, Code.BANNED,
                                   Code.E2E_REQUIRED),
         needs=NEEDS_SENDER)
async def sticker(ctx: Context, name: str, room: Room) -> Ok:
    """Post an ASCII-art sticker to a room (/stickers lists them)."""
    found = ctx.services.stickers.get(name)
    if found is None:
        raise ChatError(Code.BAD_ARGUMENTS, f'there is no sticker "{name}"; /stickers lists '
                        "them.")
    message_id = await settled(ctx.services.messaging.post_kind(
        ctx.session, room, f":{found.name}:", "sticker",
        {"sticker": found.name, "sticker_art": found.art}, ctx.label))
    return ok(id=message_id, room=room.name, sticker=found.name)


@command("stickers", PAGE, group=GROUP, scope=Scope.READ)
def stickers(ctx: Context, page: int) -> Ok:
    """List the stickers you can post with /sticker, a page at a time."""
    offered = page_of(ctx.services.stickers.all(), page, ctx.services.config.rooms.page_size)
    if offered.items:
        ctx.table(["sticker", "size", "first line"],
                  [[s.name, "{}x{}".format(*s.size), s.art.split("\n")[0].strip()]
                   for s in offered.items])
    count = offered.total
    message = (offered.told(f"{count} sticker{'s' * (count != 1)}; /sticker <name> [room] "
                            "posts one", "/stickers") if count else "no stickers are installed.")
    return ok(message, stickers=[{"name": s.name, "art": s.art, "width": s.size[0],
                                  "height": s.size[1]} for s in offered.items],
              **offered.fields())
