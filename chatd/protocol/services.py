"""The services a command handler can reach, wired once by the application."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd.config import Config
    from chatd.content.files import Files
    from chatd.content.stickers import Stickers
    from chatd.crypto.e2e import E2E
    from chatd.crypto.runner import CryptoService
    from chatd.delivery.bus import Bus
    from chatd.domain.accounts import Accounts
    from chatd.domain.admission import Admission
    from chatd.domain.audit import AuditLog
    from chatd.domain.clock import Clock
    from chatd.domain.messaging import Messaging
    from chatd.domain.moderation import Moderation
    from chatd.domain.notifications import Notifier
    from chatd.domain.presence import Presence
    from chatd.domain.protection import Protection
    from chatd.domain.rooms import Rooms
    from chatd.domain.stats import Stats
    from chatd.domain.tokens import Tokens
    from chatd.protocol.registry import CommandTable
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
