"""Account changes other nodes announce, applied to this node.

Each node keeps the accounts, their blocks and their API and resume tokens in
memory. A change made on one node is stored, then announced on the log as an
``account`` entry (:meth:`chatd.domain.accounts.Accounts.changed`); this module
applies it here:

- **created**: the account is read from the database at once, by the log's
  reader, so that what later entries say of it finds it;
- **deleted**, **password**: applied from the entry, with no database read, so a
  database away never keeps an old-password connection open or a deleted
  account here: the connections are told and closed, the account's resume
  tokens dropped (their rows went with the change);
- **away**: the message travels in the entry (it is not stored), with the time
  it was set, so a late announcement does not undo a newer one, nor outlive its
  user's going offline (:meth:`chatd.domain.presence.Presence.away_elsewhere`);
- **tokens**: a revocation names the tokens revoked, which are forgotten and
  whose connections here are closed at once, from the entry (as a password
  change's); then as below;
- **block**, **unblock**, **admin**, **settings**, **tokens**: the account is read
  again from the database (flag, settings, blocks; its API tokens for a token
  change), so a repeated or late announcement changes nothing. That read is
  made off the reader (messages do not wait on the database), once for several
  announcements about one account, under the account's local lock (a change
  this node is writing meanwhile is read after it is stored, not lost), and
  again a second later while the database does not answer. An announcement
  about an account this node does not know (its creation could not be read)
  reads it then.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final

from storage.api import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from chatd.domain.accounts import Accounts, User
    from chatd.domain.presence import Presence
    from chatd.domain.resume import ResumeTokens
    from chatd.domain.tokens import Tokens
    from storage.api import Storage
    from storage.records import UserRecord

log = logging.getLogger(__name__)

# The longest an account's read may take (the database away), and the pause
# before it is tried again.
READ_TIMEOUT: Final = 2.0
RETRY: Final = 1.0
# The most deleted accounts remembered (a late read of one is not adopted).
DELETED_KEPT: Final = 10_000


class AccountSync:
    """Applies the account changes another node announced (see the module)."""

    def __init__(self, storage: Storage, accounts: Accounts, presence: Presence,
                 tokens: Tokens, resume: ResumeTokens, elsewhere: Callable[[int], int]) -> None:
        self._storage = storage
        # On how many other nodes an account has connections (the cluster's presence
        # counted them before this node knew the account).
        self._elsewhere = elsewhere
        # The accounts deleted since start (an ordered set, the oldest forgotten
        # first): a read begun before a deletion must not bring the account back.
        self._deleted: dict[int, None] = {}
        self._accounts = accounts
        self._presence = presence
        self._tokens = tokens
        self._resume = resume
        # Accounts to read again: user id -> whether its API tokens too.
        self._due: dict[int, bool] = {}
        self._worker: asyncio.Task[None] | None = None
        self._stopped = False

    async def __call__(self, user_id: int, what: str, details: dict[str, Any]) -> None:
        """An ``account`` entry of the log, read (awaited by the reader only for a
        new account)."""
        if what == "created":
            await self._adopt(user_id)
            return
        if what == "deleted":
            self._gone(user_id)
        user = self._accounts.get(user_id)
        if user is None:
            if what != "deleted":  # made while this node could not read it: read it now
                self._read_soon(user_id, tokens=True)
            return
        if what == "deleted":
            self._presence.deleted_elsewhere(user)
        elif what == "away":
            at = details.get("at")  # (none from a node of the previous version)
            self._presence.away_elsewhere(user, str(details.get("text", "")),
                                          None if at is None else float(at))
        elif what == "password":
            self._accounts.password_changed_elsewhere(user)
            self._resume.forget_user(user)
            self._presence.close_sessions(user)
        else:
            if what == "tokens":  # (a node of the previous version names none)
                self._tokens.revoked_elsewhere([int(i) for i in details.get("revoked", ())])
            self._read_soon(user_id, tokens=what == "tokens")

    def _gone(self, user_id: int) -> None:
        self._deleted[user_id] = None
        if len(self._deleted) > DELETED_KEPT:
            del self._deleted[next(iter(self._deleted))]
        self._due.pop(user_id, None)

    async def _adopt(self, user_id: int) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                record = await self._storage.get_user(user_id)
        except Exception as exc:  # read again at the account's next announcement
            log.warning("cluster: new account %d not read (%s)", user_id,
                        exc or type(exc).__name__)
            return
        if record is not None:
            self._known(record)

    def _known(self, record: UserRecord) -> User | None:
        """Know the account of ``record`` (read just now), unless it was deleted
        meanwhile; it may already have connections elsewhere."""
        if record.id in self._deleted:
            return None
        user = self._accounts.adopt(record)
        if user is not None:
            user.elsewhere = self._elsewhere(user.id)
        return user

    def _read_soon(self, user_id: int, tokens: bool) -> None:
        if self._stopped:
            return
        self._due[user_id] = self._due.get(user_id, False) or tokens
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        try:
            while self._due:
                user_id, tokens = next(iter(self._due.items()))
                del self._due[user_id]
                try:
                    async with asyncio.timeout(READ_TIMEOUT):
                        await self._read(user_id, tokens)
                except (StorageError, TimeoutError, OSError) as exc:  # tried again later
                    log.warning("cluster: account %d not read again (%s); retrying",
                                user_id, exc or type(exc).__name__)
                    self._read_soon(user_id, tokens)
                    await asyncio.sleep(RETRY)
                except Exception:  # a fault of ours: retrying would not mend it
                    log.exception("cluster: account %d not read again", user_id)
        finally:
            self._worker = None

    async def _read(self, user_id: int, tokens: bool) -> None:
        user = self._accounts.get(user_id)
        if user is None:  # missed when it was made (a bot logs in with no password)
            record = await self._storage.get_user(user_id)
            user = self._known(record) if record is not None else None
            if user is None:
                return
            tokens = True
        async with self._accounts.writing(user):
            record = await self._storage.get_user(user_id)
            if record is None:
                return  # deleted: its own announcement says so
            blocks = await self._storage.list_user_blocks(user_id)
            self._accounts.refresh(user, record, blocks)
        if tokens:
            await self._tokens.reload(user)

    def halt_now(self) -> None:
        """Stop at once (a stop cut short): what was not reloaded waits for a restart."""
        self._stopped = True
        if self._worker is not None:
            self._worker.cancel()

    async def stop(self) -> None:
        self._stopped = True  # (the log's reader may still deliver a moment)
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
