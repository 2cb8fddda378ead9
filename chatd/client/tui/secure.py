"""The client's end-to-end rules: whom to encrypt for, and what to believe on receipt.

Sending: every member with a key gets the message (the sender too, so their
own history stays readable), except members whose key changed since it was
pinned: they are left out, with a warning, until ``/trust``. Receiving: an
envelope must decrypt, name the sender the server names, be addressed where
it arrived, and come from the sender's pinned key to count as verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatd.client.tui.keyring import Keyring, Status
from chatd.client.tui.lines import Line, notice, warning
from chatd.crypto import envelope
from chatd.crypto.envelope import EnvelopeError, Opened, PublicKey


@dataclass(frozen=True, slots=True)
class Received:
    """An envelope opened and checked against where and from whom it arrived."""

    opened: Opened
    replayed: bool


class Secure:
    """Seals and opens envelopes for one user with their keyring."""

    def __init__(self, keyring: Keyring, aead: str = "aes-256-gcm", pq: bool = True) -> None:
        if aead not in envelope.AEADS:
            raise ValueError(f"aead is one of {', '.join(envelope.AEADS)}")
        self.keyring = keyring
        self.aead = aead
        self.pq = pq
        # Content nonces seen, with their message id: the server could replay an
        # envelope as a new message, but not with a fresh nonce.
        self._seen: dict[bytes, Any] = {}

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
        """The base64 envelope of ``text`` from ``me`` to ``context`` ("#room", "@user")."""
        hybrid = self.pq and envelope.pq_available() and all(r.mlkem for r in recipients)
        data = envelope.seal(text.encode("utf-8"), me, context, self.keyring.identity,
                             recipients, self.aead, hybrid)
        return envelope.b64(data)

    def open(self, me: str, record: dict[str, Any]) -> Received:
        """Decrypt a ``message`` record; EnvelopeError says why it is not to be shown."""
        data = envelope.unb64(str(record.get("envelope", "")), what="the envelope")
        opened = envelope.open_envelope(data, me, self.keyring.identity)
        sender = str(record.get("from", ""))
        if opened.sender != sender:
            raise EnvelopeError(f"it claims to be from {opened.sender} but was sent by {sender}")
        where = f"#{record['room']}" if "room" in record else f"@{record.get('to', '')}"
        if opened.context.casefold() != where.casefold():
            raise EnvelopeError(f"it was written for {opened.context}, not {where}")
        nonce = envelope.unpack(data).nonce
        first = self._seen.setdefault(nonce, record.get("id"))
        return Received(opened, replayed=first != record.get("id"))

    def trusts(self, me: str, sender: str, key: bytes) -> bool | None:
        """Whether ``key`` is the pinned key of ``sender`` (None: nothing pinned)."""
        if sender.casefold() == me.casefold():
            return key == self.keyring.identity.x25519_public
        pinned = self.keyring.known.get(sender)
        if pinned is None:
            return None
        return envelope.unb64(pinned.key) == key
