"""Files: upload, download, files, myfiles, rmfile."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatd.content.files import file_object
from chatd.content.previews import human_size
from chatd.domain.room import Room
from chatd.domain.scopes import Scope, grants
from chatd.errors import ChatError, Code
from chatd.protocol.context import Context, table_time
from chatd.protocol.paging import PAGE, PAGED_ROOM, page_of
from chatd.protocol.params import Context as ParamContext
from chatd.protocol.params import Decline, Int, Param, RoomRef, Text, Word, parse
from chatd.protocol.registry import NEEDS_MEMBER, NEEDS_READER, command
from chatd.protocol.results import DEFERRED, Deferred, Ok, ok
from chatd.protocol.upload import Upload

GROUP = "files"
MAX_ID = 1 << 62
_HEX = re.compile(r"[0-9a-fA-F]+")


@dataclass(frozen=True, slots=True)
class Sha256(Param):
    """A SHA-256 as 64 hex digits; an optional one declines any other word."""

    kind = "sha256"

    def convert(self, ctx: ParamContext, word: str, more_follow: bool) -> Any:
        if _HEX.fullmatch(word):
            if len(word) == 64:
                return word.lower()
            # A long hex word is a cut checksum, unless a room has that name: then it
            # is the room, as any word that is no checksum is.
            if len(word) > 16 and ctx.services.rooms.find(word) is None:
                raise ChatError(Code.BAD_ARGUMENTS, "sha256 is 64 hexadecimal digits.")
        if self.optional:
            raise Decline
        raise ChatError(Code.BAD_ARGUMENTS, "sha256 is 64 hexadecimal digits.")


UPLOAD_USAGE = "/upload <filename> <size> [sha256] [room]"
UPLOAD_PARAMS = (Word("filename"), Int("size", low=0, high=MAX_ID),
                 Sha256("sha256", optional=True), RoomRef("room", optional=True))


@command("upload", Text("arguments", optional=True, default=""), group=GROUP,
         usage=UPLOAD_USAGE, data_lines=True, described=UPLOAD_PARAMS, scope=Scope.POST,
         errors=(Code.NOT_IN_ROOM, Code.MUTED, Code.MODERATED, Code.FILE_TOO_LARGE,
                 Code.CHECKSUM_MISMATCH, Code.QUOTA_EXCEEDED, Code.E2E_REQUIRED),
         needs=NEEDS_MEMBER)
async def upload(ctx: Context, arguments: str) -> Deferred:
    """Upload a file: base64 lines follow, then a line with a single "." (then the reply)."""
    if not arguments:
        # A bare /upload announces no data lines: refused at once, naming the first
        # parameter missing as any other command does.
        parse(UPLOAD_PARAMS, ctx, arguments, UPLOAD_USAGE)
    files = ctx.services.files
    error: ChatError | None = None
    room: Room | None = ctx.session.current_room
    name, size, sha256 = "", 0, None
    counted: Callable[[], None] | None = None
    # The arguments are checked here, not by the dispatcher, so that even a
    # refused upload reads its data lines up to "." instead of taking them for
    # messages; its error then comes after the "." like any other reply.
    try:
        values = parse(UPLOAD_PARAMS, ctx, arguments, UPLOAD_USAGE)
        name, size, sha256, room = (values["filename"], values["size"], values["sha256"],
                                    values["room"])
        assert room is not None
        counted = await files.accept_upload(ctx.user, room, name, size)
    except ChatError as exc:
        error = exc
    sink = Upload(ctx, files, room, name, size, sha256, error, counted)
    await sink.open()
    ctx.session.take_lines(sink)
    return DEFERRED


@command("download", Int("id", high=MAX_ID), group=GROUP,
         scope=Scope.READ, errors=(Code.NOT_IN_ROOM, Code.IDLE_TIMEOUT, Code.NO_SUCH_FILE,
                                   Code.FILE_UNREADABLE),
         needs="logged in; member of the file's room (server admins: any room)")
async def download(ctx: Context, id: int) -> Ok:
    """Download a file as base64 lines (text: ending with "."; json: data records)."""
    files = ctx.services.files
    record = await files.readable(ctx.user, id)
    await files.stream(ctx.session, record, ctx.label, text=ctx.session.style.fmt != "json")
    fields = file_object(record, await files.url(record), preview=False)
    return ok(f"file {record.id}: {record.name}, {human_size(record.size)}, sha256 "
              f"{record.sha256}", file_id=record.id, **fields)


@command("files", PAGED_ROOM, PAGE,
         group=GROUP, scope=Scope.READ, errors=(Code.NOT_IN_ROOM,), needs=NEEDS_READER)
async def files_(ctx: Context, room: Room, page: int) -> Ok:
    """List the files shared in a room, a page at a time."""
    services = ctx.services
    shared = page_of(await services.files.listing(ctx.user, room), page,
                     services.config.rooms.page_size)
    records = shared.items
    if records:
        ctx.table(["id", "name", "size", "type", "uploader"],
                  [[r.id, r.name, human_size(r.size), r.mime, r.uploader_name] for r in records],
                  right=(0,))
    listed = [file_object(record, preview=False) for record in records]
    count = shared.total
    message = (shared.told(f"{count} file{'s' * (count != 1)} in #{room.name}; /download <id> "
                           "gets one", f"/files {room.name}")
               if count else f"no files in #{room.name} yet: /upload shares one.")
    return ok(message, room=room.name, files=listed, **shared.fields())


@command("myfiles", PAGE, group=GROUP, scope=Scope.READ)
async def myfiles(ctx: Context, page: int) -> Ok:
    """List the files you uploaded, in every room (left and ended ones too), a page at
    a time: what counts against your quota."""
    services, files = ctx.services, ctx.services.files
    uploads = await files.uploads(ctx.user)
    # A live room is in memory; one that ended is known from having been joined
    # (the association, kept a while: housekeeping forgets one 30 days after the
    # user left, while a live room they left keeps their files and its name).
    joined = {a.room_id: a for a in await services.rooms.joined_before(ctx.user)}
    shown = page_of(uploads, page, services.config.rooms.page_size)
    listed = []
    for record in shown.items:
        entry = file_object(record, preview=False)
        live, known = services.rooms.get(record.room_id), joined.get(record.room_id)
        entry["room"] = live.name if live is not None else \
            known.room_name if known is not None else None
        entry["room_ended"] = live is None and known is not None and known.room_terminated
        listed.append(entry)
    if listed:
        ctx.table(["id", "name", "size", "room", "uploaded (UTC)"],
                  [[e["id"], e["name"], human_size(e["size"]), _room_shown(e),
                    table_time(e["time"])] for e in listed], right=(0,))
    used, quota = sum(r.size for r in uploads), files.config.quota
    count = len(uploads)
    sentence = (f"{count} file{'s' * (count != 1)} of yours: {human_size(used)} of your "
                f"{human_size(quota)} quota; /rmfile <id> removes one" if count else
                f"no files of yours: your quota is {human_size(quota)}")
    return ok(shown.told(sentence, "/myfiles"), files=listed, used=used, quota=quota,
              **shown.fields())


def _room_shown(entry: dict[str, Any]) -> str:
    if entry["room"] is None:
        return "-"
    return f"#{entry['room']}" + (" (ended)" if entry["room_ended"] else "")


@command("rmfile", Int("id", high=MAX_ID), group=GROUP,
         scope=Scope.POST, errors=(Code.NOT_PERMITTED, Code.NO_SUCH_FILE),
         needs=("logged in; the file's uploader, an admin or the owner of its room, or a "
                "server admin (someone else's file: with a token, its moderate scope too)"))
async def rmfile(ctx: Context, id: int) -> Ok:
    """Delete a file (its uploader, an admin of its room, or a server admin)."""
    governs = grants(ctx.session.scopes, Scope.MODERATE)
    record = await ctx.services.files.remove(ctx.user, id, governs=governs)
    return ok(f"file {record.id} ({record.name}) is deleted.", file_id=record.id)
