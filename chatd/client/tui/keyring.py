"""The client's keys on disk: its identity and the keys it has seen (TOFU).

Both live in the config directory (``$XDG_CONFIG_HOME/chatd-client`` or
``~/.config/chatd-client``), which is made mode 0700; the files are 0600.
The sender keys of end-to-end rooms live there too (:mod:`.roomkeys`).
``known_keys.json`` pins the first key seen for each user of each server
(trust on first use, as ssh does with host keys). A different key later is
reported, and not used until the person says so with ``/trust <user>``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from chatd.client.tui.roomkeys import SENDER_KEYS_FILE, SenderKeys
from chatd.crypto import CryptError
from chatd.crypto.envelope import Identity, pq_available
from chatd.crypto.keys import KeyFileExists, read_private, write_private, write_secret

APP = "chatd-client"
IDENTITY_FILE = "identity.key"
KNOWN_FILE = "known_keys.json"
DIR_MODE = 0o700


def config_dir(environ: dict[str, str] | None = None) -> Path:
    """Where the client keeps its files (not created here)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / APP


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) or tighten it to 0700."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        path.chmod(DIR_MODE)
    return path


def load_identity(directory: Path, pq: bool = True) -> tuple[Identity, bool]:
    """The identity in ``directory``, or a new one; returns (it, whether new).

    A new identity is not written here: :meth:`Keyring.keep_identity` writes it
    once a login has reached the account, so a mistyped server or a refused
    password leaves no key behind. It has an ML-KEM-768 key too when ``pq`` and
    this build has ML-KEM.
    """
    path = ensure_dir(directory) / IDENTITY_FILE
    if path.exists():
        return read_private(path), False
    return Identity.generate(pq=pq and pq_available()), True


class Status(Enum):
    """How a key compares with the pinned one."""

    NEW = "new"  # first sight: now pinned
    SAME = "same"
    CHANGED = "changed"  # differs from the pinned key: not used until /trust


@dataclass(frozen=True, slots=True)
class Pinned:
    """A user's keys as first seen (base64, as the server sends them)."""

    user: str
    key: str
    pq_key: str | None
    fingerprint: str


class KnownKeys:
    """Pinned keys per server and user, kept in ``known_keys.json``."""

    def __init__(self, path: Path, server: str) -> None:
        self.path = path
        self.server = server
        self._all: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise CryptError(f"cannot read {self.path}: {exc}") from None
        servers = doc.get("servers") if isinstance(doc, dict) else None
        return servers if isinstance(servers, dict) else {}

    @property
    def _here(self) -> dict[str, Any]:
        return self._all.setdefault(self.server, {})

    def get(self, user: str) -> Pinned | None:
        entry = self._here.get(user.casefold())
        return Pinned(**entry) if isinstance(entry, dict) else None

    def check(self, entry: dict[str, Any]) -> Status:
        """Compare a ``/keys`` entry with the pin; pin it if it is the first."""
        pinned = self.get(entry["user"])
        if pinned is None:
            self.trust(entry)
            return Status.NEW
        same = pinned.key == entry["key"] and pinned.pq_key == entry.get("pq_key")
        return Status.SAME if same else Status.CHANGED

    def trust(self, entry: dict[str, Any]) -> None:
        """Pin ``entry`` (a ``/keys`` entry) for its user, replacing any older pin."""
        pinned = Pinned(entry["user"], entry["key"], entry.get("pq_key"), entry["fingerprint"])
        self._here[pinned.user.casefold()] = asdict(pinned)
        self.save()

    def save(self) -> None:
        data = json.dumps({"version": 1, "servers": self._all}, indent=1, sort_keys=True)
        ensure_dir(self.path.parent)
        write_secret(self.path, (data + "\n").encode(), overwrite=True)


@dataclass
class Keyring:
    """What the session needs from disk: the identity, the pins and the sender keys."""

    identity: Identity
    known: KnownKeys
    chains: SenderKeys
    directory: Path
    unsaved: bool = False  # a new identity, not written yet

    @classmethod
    def open(cls, directory: Path, server: str, pq: bool = True) -> tuple[Keyring, bool]:
        """The keys in ``directory`` (made 0700); a new identity stays in memory until
        :meth:`keep_identity`. Returns the keyring and whether its identity is new."""
        identity, new = load_identity(directory, pq)
        return cls(identity, KnownKeys(directory / KNOWN_FILE, server),
                   SenderKeys(directory / SENDER_KEYS_FILE, server), directory, new), new

    def keep_identity(self) -> bool:
        """Write a new identity to ``identity.key`` (0600); whether this call wrote it.

        Another client started in the same directory meanwhile may have written
        its own first: that one is read and used instead, so both publish one key.
        OSError or CryptError when the file cannot be written or read.
        """
        if not self.unsaved:
            return False
        path = ensure_dir(self.directory) / IDENTITY_FILE
        try:
            write_private(path, self.identity)
            wrote = True
        except KeyFileExists:
            self.identity = read_private(path)
            wrote = False
        self.unsaved = False
        return wrote
