"""The server admins' live feed: audit entries and presence as they happen.

``/adminfeed on`` makes a connection a follower: from then on every audit
entry (joins, leaves, room creation and termination, kicks, bans, mutes, role
changes, logins ...) and every user coming online or going offline reaches it
as one ``notice``, with the entry in ``audit`` or the change in ``presence``.
The live admin page of the web listener is built on it; ``chatctl top`` reads
the same audit entries through the control socket.

Only a server admin may follow, and only while they are one: a follower that
logged out, closed, or lost the server-admin flag is dropped at the next entry
(and at once by ``/adminfeed off``). Delivery never waits: each notice is
queued on the follower's connection, whose output limit cuts off one that
reads nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatd.domain.accounts import User
    from chatd.domain.audit import AuditLog
    from chatd.domain.ports import Endpoint
    from chatd.domain.presence import Presence


class AdminFeed:
    """Followers and the entries they are sent (a ``PresenceWatcher`` as well)."""

    def __init__(self, audit: AuditLog, presence: Presence) -> None:
        self._followers: set[Endpoint] = set()
        # The feed listens to the audit log only while someone follows it.
        self._audit = audit
        presence.watchers.append(self)

    @property
    def followers(self) -> int:
        return len(self._followers)

    def follow(self, session: Endpoint) -> bool:
        """Start sending to ``session``; False when it already followed."""
        if session in self._followers:
            return False
        self._followers.add(session)
        self._audit.listeners.add(self._audited)
        return True

    def unfollow(self, session: Endpoint) -> bool:
        """Stop sending to ``session``; False when it did not follow."""
        if session not in self._followers:
            return False
        self._drop(session)
        return True

    def _drop(self, session: Endpoint) -> None:
        self._followers.discard(session)
        if not self._followers:
            self._audit.listeners.discard(self._audited)

    # -- what is sent ------------------------------------------------------------

    def _audited(self, entry: dict[str, Any]) -> None:
        self._send({"type": "notice", "text": audit_sentence(entry), "audit": entry})

    def came_online(self, user: User) -> None:
        self._presence(user, True)

    def went_offline(self, user: User) -> None:
        self._presence(user, False)

    def away_changed(self, user: User, text: str) -> None:
        """Away messages are not part of the feed."""

    def _presence(self, user: User, online: bool) -> None:
        state = "online" if online else "offline"
        self._send({"type": "notice", "text": f"[presence] {user.name} is {state}.",
                    "presence": {"user": user.name, "online": online}})

    def _send(self, record: dict[str, Any]) -> None:
        for session in list(self._followers):
            user = session.user
            if session.closing or user is None or not user.is_admin:
                self._drop(session)
                continue
            session.send(record)


def audit_sentence(entry: dict[str, Any]) -> str:
    """``[audit] alice: kick bob in #dev (too loud)``: one entry as text mode shows it."""
    words = [f"[audit] {entry.get('actor') or 'the server'}: {entry['action']}"]
    if entry.get("target"):
        words.append(str(entry["target"]))
    if entry.get("room"):
        words.append(f"in #{entry['room']}")
    if entry.get("reason"):
        words.append(f"({entry['reason']})")
    return " ".join(words)
