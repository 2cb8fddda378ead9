"""The HTTP API's operations (``/api/v1``): each a small function over the domain.

Every operation calls the same domain method as the line protocol's command
(membership, mutes, rate limits and end-to-end flags hold alike) and fails
with the same stable codes. The table at the end (:func:`api_routes`) is
what the listener serves and what the OpenAPI document describes.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from chatd.content.files import Staged, file_object
from chatd.crypto.ciphers import ALGORITHMS
from chatd.crypto.kdf import COSTS
from chatd.domain.ports import settled
from chatd.domain.scopes import Scope, listed
from chatd.domain.webhooks import hook_path
from chatd.errors import ChatError, Code
from chatd.protocol.codec import one_line
from chatd.protocol.paging import PAGE, page_of, page_read, skipped
from chatd.protocol.records import record_of
from chatd.web import schemas as s
from chatd.web.endpoint import ApiEndpoint
from chatd.web.http import HttpError, Response, json_response
from chatd.web.routes import Param, Route

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from chatd.domain.room import Room
    from chatd.web.links import LinkSigner
    from chatd.web.routes import Call
    from storage.records import FileRecord

PREFIX = "/api/v1"
ROOM = Param("room", "path", "a room's name (without #) or id")
# The most items a page of a list holds, and what it holds unless asked for fewer:
# the newest 200 notifications, as the list gave before it was paged.
PAGE_MAX = 200
_FORMATS = ("string", "file")


def room_of(call: Call) -> Room:
    return call.services.rooms.require_as(call.user, call.text("room"))


def member_room(call: Call, what: str) -> Room:
    """The call's room, when its user is a member (or a server admin)."""
    room = room_of(call)
    if not room.is_member(call.me.id) and not call.me.is_admin:
        raise ChatError(Code.NOT_IN_ROOM, f"only members of #{room.name} can {what}.")
    return room


def checked_text(call: Call, value: Any, name: str = "text") -> str:
    """A message's text: one line of printable text, within the line limit. A TAB
    becomes a space, as on the line protocol; any other control character (C0,
    DEL, and the C1 controls, whose CSI starts a terminal's escape sequence) is
    refused, since the text would not arrive as written."""
    if not isinstance(value, str) or not value.strip():
        raise ChatError(Code.BAD_ARGUMENTS, f"{name} must be a non-empty string.")
    text = one_line(value, name)
    limit = call.config.listen.max_line
    if len(text.encode("utf-8")) > limit:
        raise ChatError(Code.LINE_TOO_LONG, f"{name} is over {limit} bytes.")
    return text


def _field(body: dict[str, Any], name: str, choices: tuple[str, ...] | None = None,
           default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or (choices is not None and value not in choices):
        allowed = f" one of {', '.join(choices)}" if choices else " a string"
        raise ChatError(Code.BAD_ARGUMENTS, f"{name} must be{allowed}.")
    return value


# -- who and where ----------------------------------------------------------------------


async def me(call: Call) -> Response:
    user = call.me
    notifier = call.services.notifier
    unread = await notifier.unread(user)
    # Said, not taken, as a log-in says it: the listing's newest page tells it once.
    dropped = await notifier.dropped(user)
    joined = call.services.rooms.of_user(user)
    # rooms has always been the count (the reference says an integer): the rooms
    # themselves, by name with their ids, are room_list beside it.
    # bot and scopes: a script learns what it is and what its token lets it do
    # (as a line-protocol log-in's ok says) before it tries and is refused.
    return json_response({"name": user.name, "admin": user.is_admin, "rooms": len(joined),
                          "room_list": [{"id": r.id, "name": r.name} for r in joined],
                          "notifications": unread, "dropped": dropped, "bot": user.is_bot,
                          "scopes": listed(call.scopes)})


async def rooms(call: Call) -> Response:
    services, user = call.services, call.me
    listed = [services.rooms.summary(r) | {"role": r.role_of(user.id)}
              for r in services.rooms.of_user(user)]
    return json_response({"rooms": listed})


def paging(call: Call) -> tuple[int, int]:
    """The page asked for (from 1, as /who's and /notifications' [page]) and how many
    it holds (``limit``, at most PAGE_MAX)."""
    number, limit = call.number("page", 1), call.number("limit", PAGE_MAX)
    if not 1 <= number <= PAGE.high:
        raise ChatError(Code.BAD_ARGUMENTS, f"page must be a whole number from 1 to "
                                            f"{PAGE.high:,}.")
    if limit < 1:
        raise ChatError(Code.BAD_ARGUMENTS, "limit must be 1 or more.")
    return number, min(limit, PAGE_MAX)


def paged(what: str) -> tuple[Param, Param]:
    """The query parameters of a paged list of ``what``."""
    return (Param("page", "query", f"which page of {what} (from 1; past the last, an empty "
                  "one); the answer's pages and total tell how many there are",
                  integer=True, required=False),
            Param("limit", "query", f"how many {what} a page holds (at most, and by default, "
                  f"{PAGE_MAX})", integer=True, required=False, count=True))


async def members(call: Call) -> Response:
    services = call.services
    room = room_of(call)
    number, limit = paging(call)
    shown = page_of(services.admission.members_shown(call.me, room), number, limit)
    # bot: always there, true or false (/who's text rows name bots alone; an API
    # client reads a field it can count on).
    rows = [{"user": member.name, "role": member.role.value,
             "online": bool(user and user.online), "bot": bool(user and user.is_bot)}
            for member, user in shown.items]
    return json_response({"room": room.name, "members": rows, **shown.fields()})


async def history(call: Call) -> Response:
    room = member_room(call, "read its history")
    config = call.config.rooms
    asked = call.number("limit", config.history_default)
    if asked < 1:
        raise ChatError(Code.BAD_ARGUMENTS, "limit must be 1 or more.")
    limit = min(asked, config.history_max)
    before = call.params.get("before")
    # Ids start at 1: before=0 would be an empty page that looks like the start of
    # the history, so it is refused as -1 is.
    if before == 0:
        raise ChatError(Code.BAD_ARGUMENTS, "before must be a positive number.")
    found = await call.services.messaging.history(room, limit,
                                                  before if isinstance(before, int) else None)
    records = [record_of(m) for m in found]
    oldest = min((m.id for m in found if m.id is not None), default=None)
    more = oldest if len(found) == limit else None
    return json_response({"room": room.name, "messages": records, "before": more})


async def notifications(call: Call) -> Response:
    number, limit = paging(call)
    # Page 1 the newest, each oldest first, as /notifications pages them; read from
    # the database a page at a time.
    pending, total = await call.services.notifier.pending(call.me, limit,
                                                          skipped(number, limit))
    shown = page_read(pending, number, limit, total)
    # ts_epoch as the line protocol's notifications have it; time, the same, as before.
    items = [{"id": n.id, "kind": n.kind, "ts_epoch": n.created_at, "time": n.created_at,
              **n.payload} for n in pending]
    dropped = await _dropped_told(call) if number == 1 else 0
    return json_response({"notifications": items, "dropped": dropped, **shown.fields()})


async def _dropped_told(call: Call) -> int:
    """The newest page tells of the dropped notifications, once, as /notifications
    does: a program that reads only this list learns of them, and is not told twice.
    A HEAD's answer is read by nobody: it says the count, the same length as the
    GET's, and leaves it for the GET (a HEAD changes nothing)."""
    notifier = call.services.notifier
    if call.request.head_only:
        return await notifier.dropped(call.me)
    return await notifier.take_dropped(call.me)


async def clear_notifications(call: Call) -> Response:
    return json_response({"cleared": await call.services.notifier.clear(call.me)})


# -- posting ----------------------------------------------------------------------------


async def post_to_room(call: Call) -> Response:
    body = call.body()
    text = checked_text(call, body.get("text"))
    action = body.get("action", False)
    if not isinstance(action, bool):
        raise ChatError(Code.BAD_ARGUMENTS, "action must be true or false.")
    room = room_of(call)
    endpoint = ApiEndpoint(call.me, call.peer)
    message_id = await settled(call.services.messaging.post(endpoint, room, text, action))
    return json_response({"id": message_id, "room": room.name}, 201)


async def post_to_user(call: Call) -> Response:
    text = checked_text(call, call.body().get("text"))
    target = call.services.accounts.recipient(call.text("user"))
    endpoint = ApiEndpoint(call.me, call.peer)
    message_id = await call.services.messaging.direct(endpoint, target, text)
    return json_response({"id": message_id, "to": target.name, "online": target.online}, 201)


# -- files ------------------------------------------------------------------------------


def _described(call: Call, links: LinkSigner, record: FileRecord) -> dict[str, Any]:
    expires = int(call.services.clock.time() + call.config.web.download_ttl)
    return file_object(record) | {"download": links.link(record.id, call.me.id, expires)}


def file_routes(links: LinkSigner) -> list[Route]:
    """The file operations, which sign download links with ``links``."""

    async def files(call: Call) -> Response:
        records = await call.services.files.listing(call.me, room_of(call))
        return json_response({"files": [_described(call, links, r) for r in records]})

    async def upload(call: Call) -> Response:
        files_ = call.services.files
        room, user, data = room_of(call), call.me, call.request.body
        name = call.text("name")
        await files_.check_upload(user, room, name, len(data))
        path, out = await files_.stage()
        try:
            digest = await asyncio.to_thread(_write_and_hash, out, data)
            staged = Staged(path, name, len(data), digest)
            record = await files_.store(ApiEndpoint(user, call.peer), room, staged, None)
        finally:
            await asyncio.to_thread(path.unlink, True)
        return json_response(_described(call, links, record), 201)

    async def file_info(call: Call) -> Response:
        record = await call.services.files.readable(call.me, call.number("id"))
        return json_response(_described(call, links, record))

    async def file_content(call: Call) -> Response:
        record = await call.services.files.readable(call.me, call.number("id"))
        return await contents(call, record)

    async def signed(call: Call) -> None:
        links.check(call.number("id"), call.number("user"), call.number("expires"),
                    call.text("sig"), call.services.clock.time())

    async def download(call: Call) -> Response:
        file_id, user_id = call.number("id"), call.number("user")
        await signed(call)
        user = call.services.accounts.get(user_id)
        if user is None:
            raise ChatError(Code.AUTH_FAILED, "that download link is not valid.")
        return await contents(call, await call.services.files.readable(user, file_id))

    file_id = Param("id", "path", "the file's id", integer=True)
    return [
        Route("GET", PREFIX + "/rooms/{room}/files", files, "A room's files, with download "
              "links", "files", (ROOM,), answer=s.obj(files=s.array(s.FILE)),
              errors=(403, 404)),
        Route("POST", PREFIX + "/rooms/{room}/files", upload, "Upload a file to a room (the "
              "body is the file's bytes); announced there with its preview", "files",
              (ROOM, Param("name", "query", "the file's name")), body="binary",
              answer=s.FILE, body_limit=lambda c: c.files.max_size, errors=(400, 403, 404, 413)),
        Route("GET", PREFIX + "/files/{id}", file_info, "A file's details and a signed "
              "download link (valid for web.download_ttl)", "files", (file_id,),
              answer=s.FILE, errors=(403, 404)),
        Route("GET", PREFIX + "/files/{id}/content", file_content, "A file's bytes",
              "files", (file_id,), answer="application/octet-stream", errors=(403, 404)),
        Route("GET", PREFIX + "/download/{id}", download, "A file's bytes through a signed "
              "link (no token: usable by <img> and plain links); access is checked again",
              "files", (file_id, Param("user", "query", "the link's user id", integer=True),
                        Param("expires", "query", "the link's expiry (Unix time)",
                              integer=True),
                        Param("sig", "query", "the link's signature")),
              answer="application/octet-stream", auth=False, vouch=signed,
              errors=(401, 403, 404)),
    ]


async def contents(call: Call, record: FileRecord) -> Response:
    """The file as a download; images are shown inline (previews), others saved."""
    files = call.services.files
    inline = record.mime.startswith("image/") and record.mime != "image/svg+xml"
    disposition = "inline" if inline else "attachment"
    stream = files.contents(record)
    first = await anext(stream, b"")  # a missing blob fails here, before the head is sent
    return Response(200, content_type=record.mime if inline else "application/octet-stream",
                    headers=[("Content-Disposition",
                              f"{disposition}; filename*=UTF-8''{_quoted(record.name)}"),
                             ("Cache-Control", "private, max-age=300")],
                    stream=_prepend(first, stream), length=record.size)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


def _quoted(name: str) -> str:
    return quote(name, safe="")


def _write_and_hash(out: Any, data: bytes) -> str:
    """Write ``data`` to ``out`` and close it; returns its SHA-256. Both in a worker
    thread: hashing a body of files.max_size (10 MiB) takes some 20 ms, which on
    the event loop would stall every connection."""
    with out:
        out.write(data)
    return hashlib.sha256(data).hexdigest()


# -- encryption ---------------------------------------------------------------------------


async def crypto_options(call: Call) -> Response:
    return json_response({"algorithms": list(ALGORITHMS), "costs": list(COSTS),
                          "max_input": call.config.crypto.max_input})


async def encrypt(call: Call) -> Response:
    body = call.body()
    algorithm = _field(body, "algorithm", ALGORITHMS)
    cost = _field(body, "cost", COSTS, "medium")
    answer = _field(body, "as", _FORMATS, "string")
    armored = await call.services.crypto.encrypt(algorithm, cost, _field(body, "password"),
                                                 _field(body, "text"))
    if answer == "file":
        return _attachment(armored.encode("ascii") + b"\n", "encrypted.chatd-crypt.txt",
                           "text/plain; charset=utf-8")
    return json_response({"result": armored, "algorithm": algorithm, "cost": cost})


async def decrypt(call: Call) -> Response:
    body = call.body()
    answer = _field(body, "as", _FORMATS, "string")
    data = await call.services.crypto.decrypt(_field(body, "password"), _field(body, "armored"))
    if answer == "file":
        return _attachment(data, "decrypted.bin", "application/octet-stream")
    try:
        return json_response({"result": data.decode("utf-8")})
    except UnicodeDecodeError:
        raise ChatError(Code.BAD_ARGUMENTS, 'the plaintext is binary, not text; ask for it '
                        'with "as": "file".') from None


def _attachment(data: bytes, name: str, mime: str) -> Response:
    return Response(200, data, mime, [("Content-Disposition", f'attachment; filename="{name}"'),
                                      ("Cache-Control", "no-store")])


# -- webhooks -----------------------------------------------------------------------------


async def webhooks(call: Call) -> Response:
    room = room_of(call)
    hooks = call.services.webhooks
    records = await hooks.list(call.me, room)
    return json_response({"room": room.name, "webhooks": [hooks.describe(r) for r in records]})


async def create_webhook(call: Call) -> Response:
    room = room_of(call)
    name = _field(call.body(), "name")
    hooks = call.services.webhooks
    # Made with the request's API token: the hook lives as long as that token when it
    # is a script's (a browser tab's lives as the account).
    secret, record = await hooks.create(call.me, room, name, call.token_id)
    return json_response(hooks.describe(record) | {"room": room.name, "secret": secret,
                                                   "path": hook_path(record.id, secret)}, 201)


async def revoke_webhook(call: Call) -> Response:
    room = room_of(call)
    hooks = call.services.webhooks
    record = await hooks.revoke(call.me, room, call.number("id"))
    return json_response(hooks.describe(record) | {"room": room.name, "revoked": True})


async def post_webhook(call: Call) -> Response:
    """An incoming webhook's post: JSON ``{"text": ...}`` or a plain-text body. The
    address (the hook's id and secret) is decided before the body is looked at, on
    every path: the answer to a wrong secret must tell nothing of what was sent."""
    hooks = call.services.webhooks
    # The hook is read here even when vouch_webhook read it on the request's head: the
    # body arrives after that read, for up to web.request_timeout, and meanwhile the
    # hook may be revoked, or the API token it lives by revoked, on any node of a
    # cluster (only the row tells). Serving the post from the head's read would accept
    # it through a hook dead for that long; read again, the window is the moment from
    # this read to the message's insert, as for a post whose body came with its head.
    record, room = await hooks.vouched(call.number("id"), call.text("secret"))
    text = checked_text(call, _posted_text(call))
    message_id = await hooks.post(record, room, text)
    return json_response({"id": message_id, "webhook": record.id}, 201)


def _posted_text(call: Call) -> Any:
    """The text a webhook's body carries, not yet checked: a text/plain body, or the
    ``text`` field of a JSON one."""
    request = call.request
    # Media types are case-insensitive (RFC 9110 8.3.1): Text/Plain is text/plain.
    if not request.headers.get("content-type", "").lower().startswith("text/plain"):
        return call.body().get("text")
    try:
        # Less its line end (echo and many tools add one), and nothing else: its
        # leading spaces are its text, as in a JSON body.
        return request.body.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise HttpError(400, Code.INVALID_UTF8, "the body is not UTF-8.") from None


async def vouch_webhook(call: Call) -> None:
    """The webhook's address alone (its id and secret, whether it lives), decided
    before the post's body is read: a wrong address is refused without reading it.
    What it found is not handed on: post_webhook reads the hook again (why: there)."""
    await call.services.webhooks.vouched(call.number("id"), call.text("secret"))


def api_routes(links: LinkSigner) -> list[Route]:
    """Every operation of the API, in the order the reference lists them."""
    user = Param("user", "path", "a user's name")
    hook = Param("id", "path", "the webhook's id", integer=True)
    return [
        Route("GET", PREFIX + "/me", me, "Who the token belongs to", "account",
              answer=s.ME),
        Route("GET", PREFIX + "/rooms", rooms, "The rooms you are a member of", "rooms",
              answer=s.obj(rooms=s.array(s.ROOM))),
        Route("GET", PREFIX + "/rooms/{room}/members", members, "A room's members, their "
              "roles and who is online, a page at a time (owner, admins, voiced, members)",
              "rooms", (ROOM, *paged("members")), answer=s.MEMBERS, errors=(403, 404)),
        Route("GET", PREFIX + "/rooms/{room}/messages", history, "A room's history, newest "
              "last; page back with before", "messages",
              (ROOM, Param("limit", "query", "how many (rooms.history_default; at most "
                           "rooms.history_max)", integer=True, required=False,
                           count=True),
               Param("before", "query", "only messages with a smaller id (the previous "
                     "page's before)", integer=True, required=False)),
              answer=s.HISTORY, errors=(403, 404)),
        Route("POST", PREFIX + "/rooms/{room}/messages", post_to_room, "Post a message to a "
              "room", "messages", (ROOM,), body=s.POST, answer=s.POSTED,
              errors=(400, 403, 404, 429)),
        Route("POST", PREFIX + "/users/{user}/messages", post_to_user, "Send a direct "
              "message", "messages", (user,), body=s.obj(text=s.STR), answer=s.POSTED,
              errors=(400, 403, 404, 429)),
        Route("GET", PREFIX + "/notifications", notifications, "Your notifications, a page "
              "at a time: the first page the newest, each page oldest first", "account",
              paged("notifications"), answer=s.NOTIFICATIONS),
        Route("DELETE", PREFIX + "/notifications", clear_notifications, "Clear your "
              "notifications", "account", answer=s.obj(cleared=s.INT), scope=Scope.READ),
        *file_routes(links),
        Route("GET", PREFIX + "/crypto", crypto_options, "The encryption utility's "
              "algorithms and cost levels", "crypto", answer=s.CRYPTO),
        Route("POST", PREFIX + "/crypto/encrypt", encrypt, "Encrypt text with a password "
              "(chatd-crypt in a bounded subprocess); as a string or a file", "crypto",
              body=s.ENCRYPT, answer=s.obj(result=s.STR, algorithm=s.STR, cost=s.STR),
              errors=(400, 429)),
        Route("POST", PREFIX + "/crypto/decrypt", decrypt, "Decrypt armored text with its "
              "password; as a string or a file", "crypto", body=s.DECRYPT,
              answer=s.obj(result=s.STR), errors=(400, 429)),
        Route("GET", PREFIX + "/rooms/{room}/webhooks", webhooks, "A room's incoming "
              "webhooks (its admins)", "webhooks", (ROOM,),
              answer=s.obj(room=s.STR, webhooks=s.array(s.WEBHOOK)), errors=(403, 404),
              scope=Scope.MODERATE),
        Route("POST", PREFIX + "/rooms/{room}/webhooks", create_webhook, "Create an incoming "
              "webhook (its admins); the secret is shown only now", "webhooks", (ROOM,),
              body=s.obj(name=s.STR), answer=s.NEW_WEBHOOK, errors=(400, 403, 404, 409, 413),
              scope=Scope.MODERATE, also=(Scope.POST,)),
        Route("DELETE", PREFIX + "/rooms/{room}/webhooks/{id}", revoke_webhook, "Revoke an "
              "incoming webhook (its admins)", "webhooks", (ROOM, hook), answer=s.WEBHOOK,
              errors=(403, 404), scope=Scope.MODERATE),
        Route("POST", "/hooks/{id}/{secret}", post_webhook, "Post through an incoming "
              "webhook: JSON {\"text\": ...} or a text/plain body", "webhooks",
              (hook, Param("secret", "path", "the webhook's secret")), body=s.obj(text=s.STR),
              answer=s.POSTED, auth=False, vouch=vouch_webhook, errors=(400, 403, 404, 429),
              open_body=True),
    ]
