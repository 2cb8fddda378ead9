"""Who is connected and who is logged in where.

Logging in attaches an endpoint (a connection of any front end) to its user's
rooms (so membership survives disconnects: the rooms were the user's all
along), tells the user what waits for them, and replays direct messages sent
while they were away.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from chatd.domain import events
from chatd.domain.messaging import AccountGone
from chatd.errors import ChatError, Code

if TYPE_CHECKING:
    from collections.abc import Sequence

    from chatd.domain.accounts import Accounts, User
    from chatd.domain.audit import AuditLog
    from chatd.domain.clock import Clock
    from chatd.domain.messaging import Messaging
    from chatd.domain.notifications import Notifier
    from chatd.domain.ports import AccountTransactions, Endpoint
    from chatd.domain.rooms import Rooms
    from chatd.domain.stats import Stats
    from chatd.domain.tokens import TokenSessions
    from storage.records import TokenRecord

log = logging.getLogger(__name__)

# The longest away message, in characters (IRC advertises it as AWAYLEN).
AWAY_MAX = 200
# What a connection is told when its account's password changed on another connection.
PASSWORD_CHANGED = ("your password was changed on another connection; log in again with the "
                    "new password.")
# What a connection logged in with an API token (or a resume token made from one) is
# told when that token is revoked or expires: the code and the sentence's verb.
TOKEN_ENDS = {False: (Code.TOKEN_REVOKED, "was revoked"), True: (Code.TOKEN_EXPIRED, "expired")}


class PresenceStore(Protocol):
    """Who is online: a count of logged-in sessions per user id.

    In this process's memory today; a cluster keeps the counts where every
    node sees them (a count per node, so a dead node's can be dropped).
    """

    def arrived(self, user_id: int) -> None:
        """One more session of ``user_id`` is logged in."""
        ...

    def left(self, user_id: int) -> bool:
        """One session of ``user_id`` logged out; True when it was their last."""
        ...

    def is_online(self, user_id: int) -> bool:
        """Whether ``user_id`` has a logged-in session."""
        ...

    def count(self) -> int:
        """The users online."""
        ...


class MemoryPresenceStore:
    """A :class:`PresenceStore` in this process's memory."""

    __slots__ = ("_sessions",)

    def __init__(self) -> None:
        self._sessions: dict[int, int] = {}

    def arrived(self, user_id: int) -> None:
        self._sessions[user_id] = self._sessions.get(user_id, 0) + 1

    def left(self, user_id: int) -> bool:
        remaining = self._sessions.pop(user_id, 0) - 1
        if remaining > 0:
            self._sessions[user_id] = remaining
            return False
        return True

    def is_online(self, user_id: int) -> bool:
        return user_id in self._sessions

    def count(self) -> int:
        return len(self._sessions)


class PresenceWatcher(Protocol):
    """Told when a user comes online (their first session logs in) or goes
    offline (their last one ends): IRC's MONITOR and away-notify need this."""

    def came_online(self, user: User) -> None: ...
    def went_offline(self, user: User) -> None: ...
    def away_changed(self, user: User, text: str) -> None: ...


class Presence:
    """Every session of this process and the logged-in users among them."""

    def __init__(self, accounts: Accounts, rooms: Rooms, messaging: Messaging,
                 notifier: Notifier, audit: AuditLog, stats: Stats, clock: Clock,
                 transactions: AccountTransactions,
                 online: PresenceStore | None = None,
                 token_sessions: TokenSessions | None = None) -> None:
        self._clock = clock
        # The connections logged in with an API token, by token (see token_ended).
        self._token_sessions = token_sessions
        self._transactions = transactions
        self._accounts = accounts
        self._stats = stats
        self._rooms = rooms
        self._messaging = messaging
        self._notifier = notifier
        self._audit = audit
        # Every connection, logged in or not (a dict as an ordered set: at
        # 10,000 entries a dict takes about half a set's bytes per entry).
        self.sessions: dict[Endpoint, None] = {}
        # How many of them are logged in (LUSERS at every IRC welcome: no pass
        # over 10,000 sessions per log-in).
        self._signed_in = 0
        self._online: PresenceStore = online if online is not None else MemoryPresenceStore()
        # Away messages by user id, whatever protocol set them (/away, IRC AWAY).
        # Kept in memory only: they end with the user's last connection.
        self._away: dict[int, str] = {}
        # On a cluster's node (where another node's away announcement may come late):
        # when each account's away message last changed, here or elsewhere, or when
        # it last went offline, whichever came last (one float per such account).
        self._away_at: dict[int, float] | None = {} if online is not None else None
        # The most users online and connections open at once since start (LUSERS).
        self.peak_users = 0
        self.peak_sessions = 0
        # The first ends an away message when its user goes offline: told by this
        # process, or by a cluster's presence when their last connection was elsewhere.
        self.watchers: list[PresenceWatcher] = [_AwayEnds(self._away, self._away_at, clock)]
        # On a cluster's node: tells the other nodes of an operator's broadcast.
        self.on_broadcast: Callable[[str], None] | None = None

    @property
    def users_online(self) -> int:
        return self._online.count()

    @property
    def anonymous_sessions(self) -> int:
        """The connections not logged in."""
        return len(self.sessions) - self._signed_in

    def admins_online(self) -> int:
        """The administrators with a connection here."""
        sessions = self.sessions
        return sum(1 for admin in self._accounts.admins()
                   if any(s in sessions for s in self._rooms.connections(admin)))

    def away(self, user: User) -> str:
        """The away message of ``user``; empty when they are not marked away."""
        return self._away.get(user.id, "")

    def set_away(self, user: User, text: str) -> None:
        """Mark ``user`` away with ``text`` (cut to AWAY_MAX), or back with ``""``
        (a cluster's other nodes are told, see ``away_elsewhere``)."""
        if not self._mark_away(user, text[:AWAY_MAX]):
            return
        at = self._clock.time()
        if self._away_at is not None and user.has_account:
            self._away_at[user.id] = at
        self._accounts.changed(user, "away", text=text[:AWAY_MAX], at=at)

    def away_elsewhere(self, user: User, text: str, at: float | None) -> None:
        """Another node marked ``user`` away with ``text``, or back with ``""``, at
        ``at`` (None: a node of the previous version did). An announcement older
        than the last change known here, or than the user's going offline, is late
        (one Redis refused, made again) and changes nothing. (It may come before the
        news that the user is online: those are numbered, and wait their turn.)"""
        known = self._away_at
        if at is not None and known is not None:
            if at < known.get(user.id, at):
                return
            known[user.id] = at
        self._mark_away(user, text[:AWAY_MAX])

    def _mark_away(self, user: User, text: str) -> bool:
        """Whether the away message changed; the watchers are told when it did."""
        before = self._away.get(user.id, "")
        if text:
            self._away[user.id] = text
        else:
            self._away.pop(user.id, None)
        if text == before:
            return False
        for watcher in self.watchers:
            watcher.away_changed(user, text)
        return True

    def connected(self, session: Endpoint) -> None:
        self.sessions[session] = None
        self.peak_sessions = max(self.peak_sessions, len(self.sessions))

    async def login(self, session: Endpoint, user: User, token_id: int | None = None,
                    label: str | None = None) -> dict[str, Any]:
        """Log ``session`` in as ``user`` (with the API token ``token_id``, or a resume
        token made from it); returns what the welcome should say. The direct messages
        kept for the user are shown first, labelled ``label``: the login's reply."""
        if session.closing:
            # The connection went away while the password was being checked.
            raise ChatError(Code.NOT_LOGGED_IN, "the connection closed during login.")
        if self._rooms.account_gone(user):
            # Deleted, or being deleted, since its password or token was checked.
            # Decided in the step that attaches the session, with no await between:
            # a deletion either began later, and finds this session to close, or
            # earlier, and this refuses.
            raise _deleted_login(user)
        tokens = self._token_sessions if token_id is not None else None
        if tokens is not None and token_id is not None:
            # Revoked or expired since it was checked: decided here, with no await
            # before the index below, so a revocation either finds this session or
            # is seen by it.
            if not tokens.admits(token_id):
                raise ChatError(Code.AUTH_FAILED, "wrong name or token.")
            tokens.add(token_id)
        rooms = self._rooms.of_user(user)
        session.signed_in(user, rooms[0] if len(rooms) == 1 else None)
        session.token_id = token_id
        if session in self.sessions:
            self._signed_in += 1
        self._stats.logins += 1
        user.connections += 1
        first = not self._online.is_online(user.id)
        self._online.arrived(user.id)
        self.peak_users = max(self.peak_users, self._online.count())
        self._rooms.attach(session)
        if first:
            for watcher in self.watchers:
                watcher.came_online(user)
        # One line in the journal per log-in: it is also the audit entry's line
        # (two lines a log-in were a tenth of a token log-in's CPU).
        log.info("login", extra={"fields": {"session": session.id, "user": user.name,
                                            "peer": session.peer, "audit": "login"}})
        # Written in a batch: a log-in waits for no database round trip when no
        # direct message waits for the user (replay_direct knows without asking).
        self._audit.note("login", actor=user.name, logged=True)
        try:
            replayed, skipped, after = await self._messaging.replay_direct(session, user,
                                                                            label)
        except AccountGone:
            # Deleted on another node of a cluster after the check above, its
            # announcement not read here yet: the database said so in the query
            # a cluster's log-in makes anyway. Refused as the check above refuses
            # (logged out again, the journal's next line); a deletion committed
            # after that query finds this session to close.
            self.logout(session)
            raise _deleted_login(user) from None
        # Older ones than a log-in replays, and the id /resume replays them after:
        # said only when there were some.
        older = {"direct_messages_skipped": skipped,
                 "direct_messages_skipped_after": after} if skipped else {}
        return {"user": user.name, "admin": user.is_admin,
                "rooms": [r.name for r in rooms], **older,
                "direct_messages": replayed}

    def connections(self, user: User) -> Sequence[Endpoint]:
        """``user``'s logged-in connections, oldest first."""
        return self._rooms.connections(user)

    def logout(self, session: Endpoint) -> None:
        """Detach ``session`` from its user; the user's memberships stay."""
        user = session.user
        if user is None:
            return
        self._rooms.detach(session)
        user.connections = len(self._rooms.connections(user))
        if session in self.sessions:
            self._signed_in -= 1
        if self._online.left(user.id):
            for watcher in self.watchers:
                watcher.went_offline(user)
        session.signed_out(self._clock.monotonic())
        log.info("logout", extra={"fields": {"session": session.id, "user": user.name}})

    async def delete_account(self, user: User, actor: str,
                             keep: Endpoint | None = None) -> None:
        """Delete ``user``: they leave every room, their connections close
        (except ``keep``, which is only logged out), and the account goes.

        In the account's transaction: a second deletion sent meanwhile waits,
        then is ``no-such-user``, and the account goes exactly once."""
        async with self._transactions.account(user):
            if self._accounts.get(user.id) is not user:
                raise ChatError(Code.NO_SUCH_USER, f'there is no user "{user.name}".')
            await self._delete_account(user, actor, keep)

    async def _delete_account(self, user: User, actor: str, keep: Endpoint | None) -> None:
        # From here on the account logs in, joins and creates nowhere in this
        # process (each refused in the step that would attach or add it): the rooms
        # read below are every room it will be in, the connections closed below
        # every connection it will have.
        with self._rooms.deleting(user):
            for room in await self._rooms.of_user_stored(user):
                # A room the user left meanwhile (by their own /leave) is passed over.
                await self._rooms.remove(room, user, "leave", actor_name=actor,
                                         reason="account deleted", missing_ok=True)
            self._close_deleted(user, keep)
            await self._accounts.delete(user)
        # A join decided on another node of a cluster, too late for the rooms read
        # above: its row went with the account; this process forgets the member.
        self._rooms.forget_member(user.id)
        self._notifier.forget(user)  # its notifications went with the account
        await self._audit.record("account-deleted", actor=actor, target=user.name)

    def _close_deleted(self, user: User, keep: Endpoint | None) -> None:
        """Close ``user``'s connections but ``keep``, which is only logged out."""
        kept = keep if keep in self._rooms.connections(user) else None
        self._close(user, keep, events.AccountDeleted(user.name), "account deleted")
        if kept is not None:
            self.logout(kept)
        if self._away_at is not None:  # (its going offline just noted it)
            self._away_at.pop(user.id, None)

    def deleted_elsewhere(self, user: User) -> None:
        """Another node deleted ``user``'s account (and took it out of its rooms):
        its connections here are told and closed, and this process forgets it."""
        self._close_deleted(user, None)
        self._rooms.forget_member(user.id)
        self._accounts.forget(user)
        self._notifier.forget(user)

    def close_sessions(self, user: User, keep: Endpoint | None = None) -> int:
        """Close ``user``'s connections (but ``keep``) after a change of password,
        telling each why; how many."""
        return self._close(user, keep, {"type": "notice", "text": PASSWORD_CHANGED},
                           "password changed")

    def token_ended(self, record: TokenRecord, expired: bool) -> int:
        """Close the connections logged in with the token of ``record`` (or with a
        resume token made from it), telling each why; how many. A token that can no
        longer log in must not keep the sessions it opened."""
        sessions = [s for s in self.sessions if s.token_id == record.id and s.user is not None]
        told = token_ended_error(record, expired)
        for session in sessions:
            session.send(told)
            self.end(session, told["code"])
        return len(sessions)

    def end(self, session: Endpoint, reason: str) -> None:
        """Close ``session`` (after what it was last told) and log it out."""
        session.close(reason)
        self.logout(session)

    def expire_tokens(self) -> int:
        """Close the connections whose token has expired (the timeout sweep calls
        this every second; it looks at nothing until the first expiry); how many."""
        tokens, now = self._token_sessions, self._clock.time()
        if tokens is None or not tokens.due(now):
            return 0
        in_use = {s.token_id for s in self.sessions if s.token_id is not None}
        return sum(self.token_ended(record, expired=True)
                   for record in tokens.expired(now, in_use))

    def _close(self, user: User, keep: Endpoint | None, told: events.Event | dict[str, Any],
               reason: str) -> int:
        """Tell each of ``user``'s connections but ``keep`` ``told``, close it and log
        it out; how many."""
        others = [s for s in self._rooms.connections(user) if s is not keep]
        for session in others:
            session.send(told)
            self.end(session, reason)
        return len(others)

    def broadcast(self, text: str, issuer: Endpoint | None = None,
                  label: str | None = None) -> int:
        """An operator's notice ``[server] text`` to every connection, logged in or
        not: this process's, and every other node's of a cluster; how many here.
        ``issuer``'s copy, a line of its command's reply, is labelled ``label``."""
        if self.on_broadcast is not None:
            self.on_broadcast(text)
        return self.broadcast_here(text, issuer, label)

    def broadcast_here(self, text: str, issuer: Endpoint | None = None,
                       label: str | None = None) -> int:
        """:meth:`broadcast` to this process's connections alone; how many."""
        record = {"type": "notice", "text": f"[server] {text}", "broadcast": True}
        sessions = list(self.sessions)
        for session in sessions:
            session.send(record, label if session is issuer else None)
        return len(sessions)

    def disconnected(self, session: Endpoint) -> None:
        session.gone()
        self.logout(session)
        self.sessions.pop(session, None)


def token_ended_error(record: TokenRecord, expired: bool) -> dict[str, Any]:
    """What a connection logged in with ``record``'s token is told when it is revoked
    or expires, before it is closed."""
    code, happened = TOKEN_ENDS[expired]
    return {"type": "error", "code": code.value, "token": record.name,
            "message": f"your token {record.name} {happened}; this connection is "
                       "closed. Log in again with a valid token."}


def _deleted_login(user: User) -> ChatError:
    """The refusal of a log-in whose account was deleted since it was checked."""
    return ChatError(Code.AUTH_FAILED, f"the account {user.name} was deleted.")


class _AwayEnds:
    """The presence watcher that ends a user's away message when they go offline."""

    def __init__(self, away: dict[int, str], changed: dict[int, float] | None,
                 clock: Clock) -> None:
        self._away = away
        self._changed = changed
        self._clock = clock

    def came_online(self, user: User) -> None:
        """Nothing: a user comes online not away."""

    def went_offline(self, user: User) -> None:
        self._away.pop(user.id, None)
        if self._changed is not None and user.has_account:  # older announcements are late
            self._changed[user.id] = self._clock.time()

    def away_changed(self, user: User, text: str) -> None:
        """Nothing: the message is already kept."""
