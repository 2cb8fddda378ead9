"""The services, wired once by the application, and the part handlers see.

:class:`Services` holds everything, the storage, the message writer and the
bus included: the application and the front ends' plumbing use it. A command
handler sees it as :class:`HandlerServices`, the domain services, settings,
clock, statistics and command table only, so that a rule cannot live in a
handler (where the IRC front end would miss it): it has to be a domain
method, which both front ends call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

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
    from chatd.domain.catchup import Catchup
    from chatd.domain.clock import Clock
    from chatd.domain.messaging import Messaging
    from chatd.domain.moderation import Moderation
    from chatd.domain.notifications import Notifier
    from chatd.domain.ports import RoomTransactions, Sequencer
    from chatd.domain.presence import Presence
    from chatd.domain.protection import Protection
    from chatd.domain.resume import ResumeTokens
    from chatd.domain.rooms import Rooms
    from chatd.domain.stats import Stats
    from chatd.domain.tokens import Tokens
    from chatd.domain.webhooks import Webhooks
    from chatd.protocol.adminfeed import AdminFeed
    from chatd.protocol.registry import CommandTable
    from storage.api import Storage
    from storage.writer import Writer


@dataclass(eq=False)
class Services:
    """The domain services and settings, as one object handed to every command."""

    config: Config
    clock: Clock
    storage: Storage
    writer: Writer
    bus: Bus
    accounts: Accounts
    rooms: Rooms
    messaging: Messaging
    moderation: Moderation
    admission: Admission
    protection: Protection
    tokens: Tokens
    resume: ResumeTokens
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
    # Where message ids come from, and where room decisions are made once: the
    # domain services have them; the application starts the sequencer, and the
    # IRC front end's guests join under a room transaction too.
    sequencer: Sequencer
    transactions: RoomTransactions
    webhooks: Webhooks
    # Server admins following the audit log live (/adminfeed, the web's admin page).
    admin_feed: AdminFeed
    # The messages a user missed, from a message id on (/resume).
    catchup: Catchup


class HandlerServices(Protocol):
    """What a command handler reaches: no storage, writer or bus."""

    @property
    def config(self) -> Config: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def accounts(self) -> Accounts: ...
    @property
    def rooms(self) -> Rooms: ...
    @property
    def messaging(self) -> Messaging: ...
    @property
    def catchup(self) -> Catchup: ...
    @property
    def moderation(self) -> Moderation: ...
    @property
    def admission(self) -> Admission: ...
    @property
    def protection(self) -> Protection: ...
    @property
    def tokens(self) -> Tokens: ...
    @property
    def resume(self) -> ResumeTokens: ...
    @property
    def notifier(self) -> Notifier: ...
    @property
    def audit(self) -> AuditLog: ...
    @property
    def presence(self) -> Presence: ...
    @property
    def commands(self) -> CommandTable: ...
    @property
    def stats(self) -> Stats: ...
    @property
    def started_at(self) -> float: ...
    @property
    def version(self) -> str: ...
    @property
    def files(self) -> Files: ...
    @property
    def stickers(self) -> Stickers: ...
    @property
    def crypto(self) -> CryptoService: ...
    @property
    def e2e(self) -> E2E: ...
    @property
    def webhooks(self) -> Webhooks: ...
    @property
    def admin_feed(self) -> AdminFeed: ...
