"""End-to-end encryption, the server's part: a key directory and a blind relay.

The server stores the public keys users publish and hands them out; it relays
envelopes (docs/E2E.md) exactly as sent and stores them as they are. It never
holds a private key or a plaintext. It does read an envelope's layout before
relaying it, refusing malformed ones and ones whose declared sender or
destination is not the real one: clients check those too, but a refusal here
tells an honest client at once that it built the envelope wrong.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from chatd.crypto import envelope, group
from chatd.domain.events import ROOM_KEY, E2eChanged
from chatd.domain.names import quoted
from chatd.domain.permissions import Action, authorize
from chatd.errors import ChatError, Code
from storage.api import OverQuota
from storage.quotas import Measure, Quota
from storage.records import KeyRecord

if TYPE_CHECKING:
    from chatd.config import CryptoConfig
    from chatd.domain.accounts import Accounts, User
    from chatd.domain.clock import Clock
    from chatd.domain.messaging import Messaging
    from chatd.domain.ports import Bus, Endpoint, Id, RoomTransactions
    from chatd.domain.room import Room
    from chatd.domain.rooms import Rooms
    from storage.api import Storage


class E2E:
    """Public keys, envelope relay (rooms and direct), and the e2e room flag."""

    def __init__(self, config: CryptoConfig, storage: Storage, accounts: Accounts,
                 messaging: Messaging, rooms: Rooms, bus: Bus, clock: Clock,
                 transactions: RoomTransactions) -> None:
        self.config = config
        self._storage = storage
        self._accounts = accounts
        self._messaging = messaging
        self._rooms = rooms
        self._bus = bus
        self._clock = clock
        self._transactions = transactions

    def reconfigure(self, config: CryptoConfig) -> None:
        self.config = config

    # -- the key directory ---------------------------------------------------------

    async def publish(self, user: User, x25519: str, mlkem: str | None) -> dict[str, Any]:
        """Store ``user``'s public keys (base64 of the raw keys); returns their entry."""
        raw = _key(x25519, envelope.X25519_SIZE, "the X25519 key")
        pq = _key(mlkem, envelope.MLKEM_PUBLIC_SIZE, "the ML-KEM-768 key") if mlkem else None
        record = KeyRecord(user.id, envelope.b64(raw), envelope.b64(pq) if pq else None,
                           envelope.fingerprint(raw, pq), self._clock.time())
        await self._storage.put_user_key(record)
        return _entry(user.name, record)

    async def key_of(self, user: User) -> dict[str, Any]:
        """``user``'s entry, or ``no-key``."""
        records = await self._storage.get_user_keys([user.id])
        if not records:
            raise ChatError(Code.NO_KEY, f"{user.name} has published no key yet.")
        return _entry(user.name, records[0])

    async def room_keys(self, room: Room) -> tuple[list[dict[str, Any]], list[str]]:
        """The entries of ``room``'s members, and the names of those without a key."""
        records = {r.user_id: r for r in await self._storage.get_user_keys(list(room.members))}
        found, missing = [], []
        for member in sorted(room.members.values(), key=lambda m: m.name.lower()):
            record = records.get(member.user_id)
            if record is None:
                missing.append(member.name)
            else:
                found.append(_entry(member.name, record))
        return found, missing

    # -- the relay -------------------------------------------------------------------

    def check_envelope(self, text: str, sender: str, context: str) -> int:
        """Refuse (``bad-arguments``) what is not a well-formed envelope from
        ``sender`` to ``context`` ("#room" or "@user"), or is too large; returns
        its version. A sender-key message (version 2) goes to a room only."""
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ChatError(Code.BAD_ARGUMENTS, "the envelope is not valid base64.") from None
        if len(data) > self.config.max_envelope:
            raise ChatError(Code.BAD_ARGUMENTS, f"the envelope is {len(data)} bytes; at most "
                            f"{self.config.max_envelope} are relayed.")
        try:
            parsed: envelope.Envelope | group.GroupMessage = (
                group.unpack(data) if group.is_group(data) else envelope.unpack(data))
        except envelope.EnvelopeError as exc:
            raise ChatError(Code.BAD_ARGUMENTS, f"not a valid envelope: {exc}.") from None
        if parsed.sender != sender:
            raise ChatError(Code.BAD_ARGUMENTS, f"the envelope says it is from "
                            f"{quoted(parsed.sender)}; you are {sender}.")
        if parsed.context.casefold() != context.casefold():
            raise ChatError(Code.BAD_ARGUMENTS, f"the envelope is addressed to "
                            f"{quoted(parsed.context)}, not {quoted(context)}.")
        if isinstance(parsed, group.GroupMessage) and not context.startswith("#"):
            raise ChatError(Code.BAD_ARGUMENTS, "a sender-key envelope (version 2) goes to a "
                            "room; send a version 1 envelope to a user.")
        return group.VERSION if isinstance(parsed, group.GroupMessage) else envelope.VERSION

    def post_room(self, session: Endpoint, room: Room, text: str,
                  label: str | None = None) -> Id:
        """Relay an envelope to every member of ``room`` (and store it)."""
        user = session.user
        assert user is not None
        self.check_envelope(text, user.name, f"#{room.name}")
        return self._messaging.post_kind(session, room, "", "e2e", {"envelope": text}, label)

    async def post_direct(self, session: Endpoint, target: User, text: str,
                          label: str | None = None) -> int:
        """Relay an envelope to ``target`` (kept for their next login if offline)."""
        user = session.user
        assert user is not None
        self.check_envelope(text, user.name, f"@{target.name}")
        return await self._messaging.direct(session, target, "", label, kind="e2e",
                                            extra={"envelope": text})

    async def post_room_key(self, session: Endpoint, room: Room, target: User, text: str,
                            label: str | None = None) -> int:
        """Relay a member's sender key for ``room`` to another member (or to the
        sender's own other devices): a version 1 envelope addressed to ``#room``
        whose only recipient is ``target``. Stored like a direct message, so a
        member who is offline finds it at their next login."""
        user = session.user
        assert user is not None
        if not room.is_member(user.id):
            raise ChatError(Code.NOT_IN_ROOM, f"you are not in #{room.name}.",
                            remedy=room.way_in())
        if not room.is_member(target.id):
            raise ChatError(Code.NOT_IN_ROOM, f"{target.name} is not in #{room.name}.")
        if self.check_envelope(text, user.name, f"#{room.name}") != envelope.VERSION:
            raise ChatError(Code.BAD_ARGUMENTS, "a sender key travels in a version 1 envelope.")
        entries = envelope.unpack(base64.b64decode(text)).entries
        if any(e.user.casefold() != target.name.casefold() for e in entries):
            raise ChatError(Code.BAD_ARGUMENTS, f"a sender key for {target.name} is sealed "
                            f"for {target.name} alone.")
        if target.online:
            return await self._hand(session, room, target, text, label)
        return await self._keep(session, room, target, text, label)

    async def _hand(self, session: Endpoint, room: Room, target: User, text: str,
                    label: str | None) -> int:
        return await self._messaging.direct(session, target, "", label, kind=ROOM_KEY,
                                            extra={"envelope": text, "room_key": room.name})

    async def _keep(self, session: Endpoint, room: Room, target: User, text: str,
                    label: str | None) -> int:
        """Keep a sender key for ``target``, who is offline, unless the sender has left
        crypto.max_pending_keys of them waiting already: each costs a command alone,
        and a member must not fill another's stored messages with them. A member who
        logs in takes them all, and the sender's client hands its key again then.
        Counted with the message, exactly, on one node or many (storage.quotas)."""
        sender = session.user
        assert sender is not None
        most = self.config.max_pending_keys
        quota = Quota(Measure.WAITING_KEYS, sender.id, most, of=target.id)
        try:
            return await self._messaging.kept_direct(
                session, target, quota, label, ROOM_KEY,
                {"envelope": text, "room_key": room.name})
        except OverQuota as refused:
            raise ChatError(Code.QUOTA_EXCEEDED, f"{target.name} is offline with "
                            f"{refused.held} of your room keys waiting, the most one member "
                            f"may leave another ({most}); they get them at their next "
                            "login.", quota=most) from None

    # -- the room flag -------------------------------------------------------------------

    async def set_room_flag(self, actor: User, room: Room, on: bool) -> bool:
        """Make ``room`` end-to-end only (or not); False when it already was.

        The actor's right is checked again in the room's transaction, so a demotion
        that lands first is not overtaken by a change it forbids; and before it,
        that the room still lives: one that ended meanwhile is ``no-such-room``,
        and its settings stay as they ended.
        """
        async with self._transactions.room(room):
            self._rooms.ensure_live(room)
            authorize(Action.E2E, room, actor)
            if bool(room.settings.get("e2e")) == on:
                return False
            settings = {**room.settings, "e2e": on}
            await self._storage.set_room_settings(room.id, settings)
            room.settings = settings
        self._bus.to_room(room, E2eChanged(room.name, actor.name, on))
        return True


def _key(text: str, size: int, what: str) -> bytes:
    try:
        return envelope.unb64(text, size, what)
    except envelope.EnvelopeError as exc:
        raise ChatError(Code.BAD_ARGUMENTS, f"{exc}.") from None


def _entry(name: str, record: KeyRecord) -> dict[str, Any]:
    entry = {"user": name, "key": record.x25519, "fingerprint": record.fingerprint}
    if record.mlkem:
        entry["pq_key"] = record.mlkem
    return entry
