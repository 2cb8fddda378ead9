"""Encryption: /encrypt and /decrypt with a password; end-to-end keys, /emsg, /ekey, /e2e."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from typing import Any

from chatd.crypto.ciphers import ALGORITHMS
from chatd.crypto.kdf import COSTS
from chatd.domain.accounts import User
from chatd.domain.ports import settled
from chatd.domain.room import Role, Room
from chatd.domain.scopes import Scope, require_scope
from chatd.errors import ChatError, Code
from chatd.protocol.context import Context
from chatd.protocol.paging import PAGE, page_of
from chatd.protocol.params import Choice, RoomRef, Text, UserRef, Word, no_room
from chatd.protocol.registry import command
from chatd.protocol.results import Ok, ok

GROUP = "crypto"
FILE_FLAG = "--file"
# With --file the result is shared in the current room, as an upload is.
SHARING_ERRORS = (Code.NO_ROOM, Code.NOT_IN_ROOM, Code.MUTED, Code.MODERATED, Code.E2E_REQUIRED,
                  Code.FILE_TOO_LARGE, Code.QUOTA_EXCEEDED)
# What /decrypt may show: any text but terminal controls (tab and newline stay).
_CONTROLS = {c: "\ufffd" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (9, 10)}


@command("encrypt", Choice(FILE_FLAG, optional=True, choices=(FILE_FLAG,)),
         Choice("algorithm", choices=ALGORITHMS), Choice("cost", choices=COSTS),
         Word("password"), Text("text"), group=GROUP, scope=Scope.POST, errors=SHARING_ERRORS)
async def encrypt(ctx: Context, algorithm: str, cost: str, password: str, text: str,
                  **flags: Any) -> Ok:
    """Encrypt text with a password (scrypt at the cost given); answers armored text."""
    armored = await ctx.services.crypto.encrypt(algorithm, cost, password, text)
    fields: dict[str, Any] = {"result": armored, "algorithm": algorithm, "cost": cost}
    if flags.get(FILE_FLAG):
        fields["file_id"] = await _store(ctx, "encrypted.chatd-crypt.txt", armored.encode())
    return ok(armored, **fields)


@command("decrypt", Choice(FILE_FLAG, optional=True, choices=(FILE_FLAG,)),
         Word("password"), Text("armored"), group=GROUP, scope=Scope.POST,
         errors=SHARING_ERRORS)
async def decrypt(ctx: Context, password: str, armored: str, **flags: Any) -> Ok:
    """Decrypt armored text made by /encrypt or chatd-crypt with its password."""
    data = await ctx.services.crypto.decrypt(password, armored)
    try:
        plaintext = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ChatError(Code.BAD_ARGUMENTS, "the plaintext is binary, not text; "
                        "decrypt it with chatd-crypt instead.") from None
    fields: dict[str, Any] = {"result": plaintext}
    if flags.get(FILE_FLAG):
        fields["file_id"] = await _store(ctx, "decrypted.txt", data)
    # An empty plaintext is said so: a text-mode reader would otherwise see nothing.
    return ok(plaintext.translate(_CONTROLS) or "(the plaintext is empty)", **fields)


async def _store(ctx: Context, name: str, data: bytes) -> int:
    """Upload ``data`` as a file in the current room (where uploads exist)."""
    files = getattr(ctx.services, "files", None)
    if files is None:
        raise ChatError(Code.BAD_ARGUMENTS, "files are not available on this server.")
    room = ctx.session.current_room
    if room is None:
        raise no_room(ctx)  # --file stores into the current room
    from chatd.content.files import Staged  # noqa: PLC0415 - only where uploads exist

    await files.check_upload(ctx.user, room, name, len(data))
    path, out = await files.stage()
    try:
        await asyncio.to_thread(_write_and_close, out, data)
        staged = Staged(path, name, len(data), hashlib.sha256(data).hexdigest())
        record = await files.store(ctx.session, room, staged, ctx.label)
    finally:
        await asyncio.to_thread(path.unlink, True)
    return int(record.id)


def _write_and_close(out: Any, data: bytes) -> None:
    with out:
        out.write(data)


# -- end-to-end ----------------------------------------------------------------------


# /keys room [room] [page]: a room's members are a long list, paged as /who pages them.
KEYS_ROOM = RoomRef("room", optional=True, current_default=False, id_before_number=True,
                    sub_commands=("room",))
KEYS_PAGE = replace(PAGE, sub_commands=("room",))


@command("keys", Choice("action", choices=("publish", "get", "room")),
         Word("key", optional=True, sub_commands=("publish", "get")),
         Word("pq_key", optional=True, sub_commands=("publish",)), KEYS_ROOM, KEYS_PAGE,
         group=GROUP,
         usage="/keys publish <x25519-key> [mlkem-key]  |  /keys get <user>  |  "
               "/keys room [room] [page]",
         scope=Scope.READ,
         errors=(Code.NO_SUCH_USER, Code.NOT_PERMITTED, Code.NO_SUCH_ROOM, Code.NOT_IN_ROOM,
                 Code.NO_ROOM, Code.NO_KEY),
         needs=("logged in; keys room: member of the room (server admins: any room); "
                "keys publish: with a token, its post scope"))
async def keys(ctx: Context, action: str, key: str | None, pq_key: str | None,
               room: Room | None, page: int) -> Ok:
    """Publish your end-to-end public keys, or get a user's or a room's keys."""
    if action == "publish":
        # Reading a public key is a read; publishing one speaks for the account.
        require_scope(ctx.session.scopes, Scope.POST, "publishing a key")
        return await _publish(ctx, key, pq_key)
    if action == "get":
        if key is None:
            raise ChatError(Code.BAD_ARGUMENTS, "missing <user>.")
        # An IRC guest's nick is visibly in use: refused as a guest, not as nobody.
        owner = ctx.services.accounts.account(key, "/keys get takes accounts only.")
        entry = await ctx.services.e2e.key_of(owner)
        return ok(f"{entry['user']}: {entry['fingerprint']}", keys=[entry], user=entry["user"])
    return await _room_keys(ctx, room or RoomRef("room").absent(ctx), page)


async def _publish(ctx: Context, key: str | None, pq_key: str | None) -> Ok:
    if key is None:
        raise ChatError(Code.BAD_ARGUMENTS, "missing <x25519-key>.",
                        usage="/keys publish <x25519-key> [mlkem-key]")
    entry = await ctx.services.e2e.publish(ctx.user, key, pq_key)
    kind = "X25519 + ML-KEM-768" if "pq_key" in entry else "X25519"
    return ok(f"Published your {kind} key; fingerprint {entry['fingerprint']}.",
              keys=[entry], fingerprint=entry["fingerprint"])


async def _room_keys(ctx: Context, room: Room, page: int) -> Ok:
    if not room.is_member(ctx.user.id) and not ctx.user.is_admin:
        raise ChatError(Code.NOT_IN_ROOM, f"only members of #{room.name} can list its keys.",
                        remedy=room.way_in())
    entries, missing = await ctx.services.e2e.room_keys(room)
    # One list of the members by name, each with its key or without one: a page
    # shows its members' keys (the table) and names those of them without one.
    members = sorted([*((e["user"], e) for e in entries), *((name, None) for name in missing)],
                     key=lambda member: member[0].lower())
    listed = page_of(members, page, ctx.services.config.rooms.page_size)
    shown = [entry for _, entry in listed.items if entry is not None]
    lacking = [name for name, entry in listed.items if entry is None]
    if shown:
        ctx.table(["user", "fingerprint", "post-quantum"],
                  [[e["user"], e["fingerprint"], "yes" if "pq_key" in e else "no"]
                   for e in shown])
    sentence = f"#{room.name}: {len(entries)} key{'s' * (len(entries) != 1)}"
    if listed.pages == 1:
        sentence += f"; without a key: {', '.join(lacking)}" if lacking else ""
    elif missing:
        on_page = f" (on this page: {', '.join(lacking)})" if lacking else ""
        sentence += f", {len(missing)} member{'s' * (len(missing) != 1)} without one{on_page}"
    e2e = bool(room.settings.get("e2e"))
    return ok(listed.told(sentence, f"/keys room {room.name}"), keys=shown, missing=lacking,
              room=room.name, e2e=e2e, **listed.fields())


@command("emsg", Word("target"), Word("envelope"), group=GROUP,
         usage="/emsg <room|@user> <envelope-base64>",
         scope=Scope.POST,
         errors=(Code.NO_SUCH_USER, Code.NO_SUCH_ROOM, Code.NOT_IN_ROOM, Code.MUTED,
                 Code.MODERATED, Code.BANNED, Code.BLOCKED, Code.NOT_PERMITTED),
         needs="logged in; to a room: member of the room")
async def emsg(ctx: Context, target: str, envelope: str) -> Ok:
    """Relay an end-to-end encrypted envelope to a room or a user (chatd-client makes them)."""
    e2e = ctx.services.e2e
    if target.startswith("@"):
        user = ctx.services.accounts.recipient(target[1:])
        message_id = await e2e.post_direct(ctx.session, user, envelope, ctx.label)
        note = "" if user.online else f"{user.name} is offline and will see it at their next login."
        return ok(note, id=message_id, to=user.name, online=user.online)
    room = ctx.services.rooms.require_as(ctx.user, target)
    message_id = await settled(e2e.post_room(ctx.session, room, envelope, ctx.label))
    return ok(id=message_id, room=room.name)


@command("ekey", RoomRef("room"), UserRef("user"), Word("envelope"), group=GROUP,
         usage="/ekey <room> <user> <envelope-base64>", scope=Scope.POST,
         errors=(Code.NOT_IN_ROOM, Code.BLOCKED, Code.BAD_ARGUMENTS, Code.QUOTA_EXCEEDED),
         needs="logged in; you and the user are members of the room")
async def ekey(ctx: Context, room: Room, user: User, envelope: str) -> Ok:
    """Hand your sender key for a room to one of its members (chatd-client does this)."""
    message_id = await ctx.services.e2e.post_room_key(ctx.session, room, user, envelope,
                                                       ctx.label)
    return ok(id=message_id, room=room.name, to=user.name, online=user.online)


@command("e2e", Choice("state", choices=("on", "off")), RoomRef("room", optional=True),
         role=Role.ADMIN, group=GROUP, scope=Scope.MODERATE, told_by_event=True)
async def e2e(ctx: Context, state: str, room: Room) -> Ok:
    """Make a room end-to-end encrypted only (on) or not (off); admins and the owner."""
    on = state == "on"
    changed = await ctx.services.e2e.set_room_flag(ctx.user, room, on)
    what = "end-to-end encrypted only" if on else "open to plain messages"
    message = f"#{room.name} is {'now' if changed else 'already'} {what}" \
        f"{' again' if changed and not on else ''}."
    return ok(message, room=room.name, e2e=on, changed=changed)
