"""The services a command handler can reach, wired once by the application."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd.accounts import Accounts
    from chatd.admission import Admission
    from chatd.audit import AuditLog
    from chatd.clock import Clock
    from chatd.config import Config
    from chatd.crypt.runner import CryptoService
    from chatd.delivery import Bus
    from chatd.e2e import E2E
    from chatd.files import Files
    from chatd.messaging import Messaging
    from chatd.moderation import Moderation
    from chatd.notifications import Notifier
    from chatd.presence import Presence
    from chatd.protection import Protection
    from chatd.registry import CommandTable
    from chatd.rooms import Rooms
    from chatd.stats import Stats
    from chatd.stickers import Stickers
    from chatd.tokens import Tokens
    from storage.api import Storage
    from storage.writer import MessageWriter


@dataclass(eq=False)
class Services:
    """The domain services and settings, as one object handed to every command."""

    config: Config
    clock: Clock
    storage: Storage
    writer: MessageWriter
    bus: Bus
    accounts: Accounts
    rooms: Rooms
    messaging: Messaging
    moderation: Moderation
    admission: Admission
    protection: Protection
    tokens: Tokens
    notifier: Notifier
    audit: AuditLog
    presence: Presence
    commands: CommandTable
    stats: Stats
    started_at: float
    version: str
    files: Files
    stickers: Stickers
    crypto: CryptoService
    e2e: E2E
