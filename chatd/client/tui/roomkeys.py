"""Sender keys on the client: our chain per room, the chains members gave us, on disk.

``sender_keys.json`` sits beside ``known_keys.json`` (mode 0600) and holds, per
server: our own chain for each end-to-end room (its signing key, the chain key
of the next message, and to whom, with which key, it was handed), and every
chain received (from the first index we were given, so that history stays
readable after a restart). Our own chain is also kept as a received one, so
the client reads its own messages like anyone else's.

The rules of when to start a new chain live here (:meth:`SenderKeys.plan`): a
member it went to has left, was removed, or now has another key; the chain
is old or long; or a leave, kick or ban was seen in the room.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chatd.crypto import CryptError
from chatd.crypto.envelope import EnvelopeError, PublicKey, b64, unb64
from chatd.crypto.group import Handout
from chatd.crypto.keys import write_secret
from chatd.crypto.ratchet import KEY_SIZE, ChainKey, InboundChain, OutboundChain

SENDER_KEYS_FILE = "sender_keys.json"
# Chains received and kept per server; past this the oldest are forgotten
# (their messages then show as "not encrypted for you").
MAX_RECEIVED = 4096


def _fold(name: str) -> str:
    return name.casefold()


@dataclass(slots=True)
class OwnChain:
    """Our chain for one room, and to whom (user, case-folded, to X25519 key) it went."""

    room: str
    chain: OutboundChain
    shared: dict[str, str] = field(default_factory=dict)
    rotate: bool = False


@dataclass(slots=True)
class TheirChain:
    """A chain received for ``room`` from ``sender``, in a handout sealed by ``identity``."""

    sender: str
    room: str
    identity: bytes
    chain: InboundChain


class SenderKeys:
    """Own and received chains for one server, kept in ``sender_keys.json``."""

    def __init__(self, path: Path, server: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.server = server
        self.clock = clock
        self._others: dict[str, Any] = {}  # the other servers' documents, kept as they are
        self._own: dict[str, OwnChain] = {}
        self._theirs: dict[tuple[str, bytes], TheirChain] = {}
        self._load()

    # -- our chains ------------------------------------------------------------------

    def own(self, room: str) -> OwnChain | None:
        return self._own.get(_fold(room))

    def plan(self, room: str, members: Iterable[PublicKey]) -> tuple[OwnChain, list[PublicKey],
                                                                     bool]:
        """Our chain for ``room``, the members who still need it, and whether it is new.

        A new chain replaces the old one when the old one went to someone who is
        not among ``members`` with the same key now, when a departure was seen,
        or when it is worn out. ``members`` are the keys we may encrypt to (us too).
        """
        now = self.clock()
        current = {_fold(m.user): m for m in members}
        own = self.own(room)
        fresh = own is None or own.rotate or own.chain.worn_out(now) or any(
            user not in current or b64(current[user].x25519) != key
            for user, key in own.shared.items())
        if fresh:
            own = OwnChain(room, OutboundChain.create(now))
            self._own[_fold(room)] = own
        assert own is not None
        needed = [m for user, m in current.items()
                  if own.shared.get(user) != b64(m.x25519)]
        return own, needed, fresh

    def handed(self, room: str, members: Iterable[PublicKey]) -> None:
        """Record that our chain for ``room`` reached ``members``."""
        own = self.own(room)
        if own is not None:
            own.shared.update({_fold(m.user): b64(m.x25519) for m in members})
            self.save()

    def member_gone(self, room: str, user: str) -> None:
        """``user`` left ``room`` or was removed: our next message there uses a new chain."""
        own = self.own(room)
        if own is not None and _fold(user) in own.shared:
            own.rotate = True
            self.save()

    def forget(self, room: str) -> None:
        """We left ``room``: our chain there goes (a new one if we come back)."""
        if self._own.pop(_fold(room), None) is not None:
            self.save()

    # -- chains received ---------------------------------------------------------------

    def theirs(self, sender: str, chain_id: bytes) -> TheirChain | None:
        return self._theirs.get((_fold(sender), chain_id))

    def receive(self, sender: str, room: str, identity: bytes, handout: Handout) -> bool:
        """Keep a handout; False when we already read that chain from as early on."""
        key = (_fold(sender), handout.chain_id)
        known = self._theirs.get(key)
        if known is not None and known.chain.first.index <= handout.chain.index:
            return False
        self._theirs[key] = TheirChain(sender, room, identity, handout.inbound())
        while len(self._theirs) > MAX_RECEIVED:
            del self._theirs[next(iter(self._theirs))]
        self.save()
        return True

    # -- the file -------------------------------------------------------------------------

    def save(self) -> None:
        here = {"own": [_own_doc(o) for o in self._own.values()],
                "theirs": [_their_doc(t) for t in self._theirs.values()]}
        doc = {"version": 1, "servers": {**self._others, self.server: here}}
        # The directory is the keyring's, made mode 0700 when the identity was loaded.
        write_secret(self.path, (json.dumps(doc, indent=1) + "\n").encode(), overwrite=True)

    def _load(self) -> None:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise CryptError(f"cannot read {self.path}: {exc}") from None
        servers = doc.get("servers") if isinstance(doc, dict) else None
        if not isinstance(servers, dict):
            return
        here = servers.pop(self.server, None) or {}
        self._others = servers
        try:
            for item in here.get("own", []):
                own = _own_of(item)
                self._own[_fold(own.room)] = own
            for item in here.get("theirs", []):
                theirs = _their_of(item)
                self._theirs[(_fold(theirs.sender), theirs.chain.chain_id)] = theirs
        except (KeyError, TypeError, ValueError, EnvelopeError) as exc:
            raise CryptError(f"{self.path} is damaged ({exc}); move it away to start over "
                             "(older encrypted messages then become unreadable)") from None


def _own_doc(own: OwnChain) -> dict[str, Any]:
    chain = own.chain
    return {"room": own.room, "signing": b64(chain.signing.private_bytes_raw()),
            "index": chain.chain.index, "key": b64(chain.chain.key), "created": chain.created,
            "shared": own.shared, "rotate": own.rotate}


def _own_of(item: dict[str, Any]) -> OwnChain:
    signing = Ed25519PrivateKey.from_private_bytes(unb64(item["signing"], 32, "signing"))
    chain = OutboundChain(signing, ChainKey(int(item["index"]), unb64(item["key"], KEY_SIZE)),
                          float(item["created"]))
    return OwnChain(str(item["room"]), chain, dict(item["shared"]), bool(item["rotate"]))


def _their_doc(theirs: TheirChain) -> dict[str, Any]:
    first = theirs.chain.first
    return {"sender": theirs.sender, "room": theirs.room, "identity": b64(theirs.identity),
            "chain": b64(theirs.chain.chain_id), "index": first.index, "key": b64(first.key)}


def _their_of(item: dict[str, Any]) -> TheirChain:
    chain = InboundChain(unb64(item["chain"], 32, "chain"),
                         ChainKey(int(item["index"]), unb64(item["key"], KEY_SIZE)))
    return TheirChain(str(item["sender"]), str(item["room"]), unb64(item["identity"], 32),
                      chain)
