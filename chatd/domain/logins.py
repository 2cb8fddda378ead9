"""A login attempt under the failed-login limits, shared by both listeners."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from chatd.errors import ChatError, Code

if TYPE_CHECKING:
    from chatd.domain.audit import AuditLog
    from chatd.domain.protection import Protection
    from chatd.domain.stats import Stats


# What the attempt yields: the account, or the account with what it may do.
_T = TypeVar("_T")


class _Services(Protocol):
    """What a login attempt needs of the services (either front end's)."""

    @property
    def protection(self) -> Protection: ...
    @property
    def stats(self) -> Stats: ...
    @property
    def audit(self) -> AuditLog: ...


async def checked_login(services: _Services, peer: str, name: str | None,
                        attempt: Callable[[], Awaitable[_T]], via: str = "") -> _T:
    """Run ``attempt`` unless ``peer`` or ``name`` failed too often; count and audit failures.

    ``via`` names the listener in the audit entry (for example " (irc)"). An attempt
    the limits refuse (``rate-limited``) is not audited: it was checked against
    nothing, and the failures that emptied the bucket are in the log already. Audited,
    it was a row written for ever at the pace of a client's commands, from
    connections without an account, which no limit stopped.
    """
    try:
        return await _admitted(services.protection, peer, name, attempt)
    except ChatError as exc:
        if exc.code is Code.RATE_LIMITED:
            raise
        if exc.code is Code.AUTH_FAILED:
            services.stats.login_failures += 1
        await services.audit.record("failed-login", target=(name or "")[:24] or None,
                                    reason=f"{exc.code.value} from {peer}{via}")
        raise


async def _admitted(protection: Protection, peer: str, name: str | None,
                    attempt: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``attempt`` on a failure's token taken first; only a failure keeps it."""
    await protection.admit_login(peer, name)
    failed = False
    try:
        return await attempt()
    except ChatError as exc:
        failed = exc.code is Code.AUTH_FAILED
        raise
    finally:
        protection.login_ended(peer, name, failed=failed)
