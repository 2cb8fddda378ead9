"""The client's end-to-end rules: whom to encrypt for, and what to believe on receipt.

Rooms use sender keys (docs/E2E.md): our chain for the room is handed to every
member with a pinned, unchanged key (us too, for our other devices) in a
version 1 envelope each, then every message is one version 2 envelope, the
same size whatever the room's size. Direct messages stay version 1 envelopes,
sealed for both ends. Members whose key changed since it was pinned are left
out, with a warning, until ``/trust``.

Receiving: an envelope must decrypt, name the sender the server names, be
addressed where it arrived, and come from the sender's pinned key (for a room
message: the key that sealed the chain's handout) to count as verified.

What a terminal front end calls (through :class:`~.session.ClientSession`):
:meth:`Secure.handouts` / :meth:`Secure.handed` / :meth:`Secure.seal_room`
to send in a room, :meth:`Secure.receive_key` for a handout, :meth:`Secure.open`
for any envelope, :meth:`Secure.member_gone` for a departure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from chatd.client.tui.keyring import Keyring, Status
from chatd.client.tui.lines import Line, notice, warning
from chatd.crypto import envelope, group
from chatd.crypto.envelope import EnvelopeError, PublicKey
from chatd.crypto.group import Handout


@dataclass(frozen=True, slots=True)
class Received:
    """An envelope opened and checked against where and from whom it arrived.

    ``sender_key`` is the X25519 identity key that vouches for it: the key that
    sealed a version 1 envelope, or the one that sealed the handout of the
    chain a version 2 envelope was written with.
    """

    plaintext: bytes
    sender_key: bytes
    replayed: bool


class MissingKey(EnvelopeError):
    """A room message written with a chain we were not (or not yet) given."""

    def __init__(self, sender: str, chain_id: bytes) -> None:
        super().__init__(f"no key from {sender} for this message")
        self.sender = sender
        self.chain_id = chain_id


@dataclass(frozen=True, slots=True)
class Handing:
    """Our chain for a room, sealed for one member: the envelope of an ``/ekey``."""

    member: PublicKey
    envelope: str


class Secure:
    """Seals and opens envelopes for one user with their keyring."""

    def __init__(self, keyring: Keyring, aead: str = "aes-256-gcm", pq: bool = True) -> None:
        if aead not in envelope.AEADS:
            raise ValueError(f"aead is one of {', '.join(envelope.AEADS)}")
        self.keyring = keyring
        self.aead = aead
        self.pq = pq
        # Content nonces (version 1) and chain positions (version 2) seen, with their
        # message id: the server could replay an envelope as a new message.
        self._seen: dict[Any, Any] = {}

    @property
    def fingerprint(self) -> str:
        identity = self.keyring.identity
        return envelope.fingerprint(identity.x25519_public, identity.mlkem_public)

    def recipients(self, me: str, entries: list[dict[str, Any]],
                   missing: list[str]) -> tuple[list[PublicKey], list[Line]]:
        """The keys to encrypt for, and warnings about the members left out."""
        said: list[Line] = []
        chosen = [self.keyring.identity.public(me)]
        mine = envelope.b64(self.keyring.identity.x25519_public)
        for entry in entries:
            name = entry["user"]
            if name.casefold() == me.casefold():
                if entry["key"] != mine:
                    said.append(warning("the server holds a different key for you than this "
                                        "client's; another device may have replaced it."))
                continue
            key = self._admit(entry, said)
            if key is not None:
                chosen.append(key)
        said += [warning(f"{name} has no key yet and cannot read this message.")
                 for name in missing]
        return chosen, said

    def _admit(self, entry: dict[str, Any], said: list[Line]) -> PublicKey | None:
        name, known = entry["user"], self.keyring.known
        status = known.check(entry)
        if status is Status.CHANGED:
            pinned = known.get(name)
            was = pinned.fingerprint if pinned else "?"
            said.append(warning(f"{name}'s key CHANGED: it is now {entry['fingerprint']}, you "
                                f"trusted {was}. Not encrypting to {name} until you check with "
                                f"them and /trust {name}."))
            return None
        if status is Status.NEW:
            said.append(notice(f"first key seen for {name}: {entry['fingerprint']} (trusted on "
                               "first use; compare it with them to be sure)."))
        try:
            pq_key = entry.get("pq_key")
            return PublicKey(name, envelope.unb64(entry["key"], envelope.X25519_SIZE),
                             envelope.unb64(pq_key, envelope.MLKEM_PUBLIC_SIZE) if pq_key else None)
        except EnvelopeError as exc:
            said.append(warning(f"{name}'s published key is unusable ({exc})."))
            return None

    def seal(self, me: str, context: str, text: str, recipients: list[PublicKey]) -> str:
        """The base64 version 1 envelope of ``text`` from ``me`` to ``context``."""
        hybrid = self.pq and envelope.pq_available() and all(r.mlkem for r in recipients)
        data = envelope.seal(text.encode("utf-8"), me, context, self.keyring.identity,
                             recipients, self.aead, hybrid)
        return envelope.b64(data)

    # -- rooms: sender keys -----------------------------------------------------------

    def room_line_size(self, me: str, room: str, text: str) -> int:
        """The bytes of the ``/emsg #room ...`` line :meth:`seal_room` would make."""
        size = group.sealed_size(me, f"#{room}", len(text.encode("utf-8")))
        return len(f"/emsg #{room} ".encode()) + 4 * math.ceil(size / 3)

    def handouts(self, me: str, room: str, members: list[PublicKey]) -> list[Handing]:
        """Our chain for ``room`` sealed for each member who does not have it yet;
        a new chain (for everyone) when the old one must not be used any more."""
        chains = self.keyring.chains
        own, needed, fresh = chains.plan(room, members)
        if fresh:  # we read our own messages with it too
            chains.receive(me, room, self.keyring.identity.x25519_public, Handout.of(own.chain))
        handout = Handout.of(own.chain).pack()
        return [Handing(member, self._seal_handout(me, room, handout, member))
                for member in needed]

    def _seal_handout(self, me: str, room: str, handout: bytes, member: PublicKey) -> str:
        hybrid = self.pq and envelope.pq_available() and member.mlkem is not None
        return envelope.b64(envelope.seal(handout, me, f"#{room}", self.keyring.identity,
                                          [member], self.aead, hybrid))

    def handed(self, room: str, members: list[PublicKey]) -> None:
        """The server took these handouts: those members have our chain now."""
        self.keyring.chains.handed(room, members)

    def seal_room(self, me: str, room: str, text: str) -> str:
        """The base64 version 2 envelope of ``text`` (after :meth:`handouts`). The
        chain's new position is on disk before the envelope leaves, so a crash
        can never make the client use a message key twice."""
        own = self.keyring.chains.own(room)
        if own is None:
            raise EnvelopeError(f"no chain for #{room} yet")
        data = group.seal(text.encode("utf-8"), me, f"#{room}", own.chain, self.aead)
        self.keyring.chains.save()
        return envelope.b64(data)

    def receive_key(self, me: str, record: dict[str, Any]) -> bytes:
        """Keep the chain a handout (an ``/ekey`` message) carries; returns its id.
        NotForYou when it was sealed for someone else, EnvelopeError when bad."""
        data = envelope.unb64(str(record.get("envelope", "")), what="the envelope")
        opened = envelope.open_envelope(data, me, self.keyring.identity)
        room = str(record.get("room_key", ""))
        _check_addressing(opened.sender, opened.context, str(record.get("from", "")),
                          f"#{room}")
        handout = Handout.unpack(opened.plaintext)
        self.keyring.chains.receive(opened.sender, room, opened.sender_key, handout)
        return handout.chain_id

    def member_gone(self, me: str, room: str, user: str) -> None:
        """``user`` left ``room`` (or was kicked, or banned): rotate our chain there."""
        if user.casefold() == me.casefold():
            self.keyring.chains.forget(room)
        else:
            self.keyring.chains.member_gone(room, user)

    # -- opening ----------------------------------------------------------------------------

    def open(self, me: str, record: dict[str, Any]) -> Received:
        """Decrypt a ``message`` record; EnvelopeError says why it is not to be shown."""
        data = envelope.unb64(str(record.get("envelope", "")), what="the envelope")
        sender = str(record.get("from", ""))
        where = f"#{record['room']}" if "room" in record else f"@{record.get('to', '')}"
        if group.is_group(data):
            return self._open_group(data, sender, where, record.get("id"))
        opened = envelope.open_envelope(data, me, self.keyring.identity)
        _check_addressing(opened.sender, opened.context, sender, where)
        nonce = envelope.unpack(data).nonce
        first = self._seen.setdefault(nonce, record.get("id"))
        return Received(opened.plaintext, opened.sender_key, first != record.get("id"))

    def _open_group(self, data: bytes, sender: str, where: str, message_id: Any) -> Received:
        message = group.unpack(data)
        _check_addressing(message.sender, message.context, sender, where)
        theirs = self.keyring.chains.theirs(sender, message.chain_id)
        if theirs is None:
            raise MissingKey(sender, message.chain_id)
        if f"#{theirs.room}".casefold() != where.casefold():
            raise EnvelopeError(f"its key was given for #{theirs.room}, not {where}")
        opened = group.open_message(message, theirs.chain)
        first = self._seen.setdefault((message.chain_id, message.index), message_id)
        return Received(opened.plaintext, theirs.identity, first != message_id)

    def trusts(self, me: str, sender: str, key: bytes) -> bool | None:
        """Whether ``key`` is the pinned key of ``sender`` (None: nothing pinned)."""
        if sender.casefold() == me.casefold():
            return key == self.keyring.identity.x25519_public
        pinned = self.keyring.known.get(sender)
        if pinned is None:
            return None
        return envelope.unb64(pinned.key) == key


def _check_addressing(claimed: str, context: str, sender: str, where: str) -> None:
    """The envelope names the sender the server names and the place it arrived."""
    if claimed != sender:
        raise EnvelopeError(f"it claims to be from {claimed} but was sent by {sender}")
    if context.casefold() != where.casefold():
        raise EnvelopeError(f"it was written for {context}, not {where}")
