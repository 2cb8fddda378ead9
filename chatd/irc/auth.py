"""Authentication: SASL PLAIN (``AUTHENTICATE``) and ``PASS``, against chatd accounts.

The secret is an account's password or one of its API tokens (a bot account
has tokens only). Which one is decided by its form alone, never by trying
both: a secret of the form every API token has (``chatd_`` and 43 characters
of base64url, :func:`chatd.domain.tokens.looks_like_token`) is checked as a
token, anything else as a password. A token login carries the token's
scopes, which the dispatcher applies to every command (chatd.irc.commands).

Both go through :func:`checked_login`, which applies the same failed-login
limits and audit entries as the line protocol's ``/login``: a bucket per IP
address and per account name, refusing before the secret is checked once
either is empty.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, TypeVar

from chatd.domain.logins import checked_login as shared_checked_login
from chatd.domain.tokens import Grant, looks_like_token
from chatd.errors import ChatError
from chatd.irc import numerics as n
from chatd.irc.commands import irc_command
from chatd.irc.guests import is_guest
from chatd.irc.numerics import IrcError
from chatd.irc.render import user_mask

if TYPE_CHECKING:
    from chatd.domain.accounts import User
    from chatd.irc.commands import IrcContext
    from chatd.irc.session import Registering

_T = TypeVar("_T")

# AUTHENTICATE carries at most 400 bytes per line; a line of exactly 400 says more follow.
CHUNK: Final = 400
# The most bytes of one SASL exchange (a PLAIN payload is far shorter).
MAX_SASL: Final = 4096


async def checked_login(ctx: IrcContext, name: str | None,
                        attempt: Callable[[], Awaitable[_T]]) -> _T:
    """A login attempt under the failed-login limits (audited as coming from IRC)."""
    return await shared_checked_login(ctx.services, ctx.session.peer, name, attempt,
                                      via=" (irc)")


async def secret_login(ctx: IrcContext, name: str | None, secret: str) -> Grant:
    """Log in as ``name`` with its password, or with one of its API tokens (then
    ``name`` may be None: the token says whose it is). ``auth-failed`` otherwise."""
    services = ctx.services
    if looks_like_token(secret):
        return await checked_login(ctx, name, lambda: services.tokens.authenticate(secret, name))
    user = await checked_login(ctx, name,
                               lambda: services.accounts.authenticate(name or "", secret))
    return Grant(user)


async def password_login(ctx: IrcContext, password: str) -> Grant:
    """``PASS account:secret``; ``PASS secret`` is the nick's password, or a token alone."""
    name, colon, secret = password.partition(":")
    if not colon:
        secret = password
        name = "" if looks_like_token(secret) else ctx.nick
    return await secret_login(ctx, name or None, secret)


def names_no_secret(password: str) -> bool:
    """Whether ``PASS password`` gives no secret at all (``PASS :``, ``PASS alice:``):
    an empty password is never right, so it is no password given, not one tried."""
    _, colon, secret = password.partition(":")
    return not (secret if colon else password)


@irc_command("AUTHENTICATE", min_params=1, registered=False, scope=None)
async def authenticate(ctx: IrcContext) -> None:
    """SASL: ``AUTHENTICATE PLAIN``, then the base64 of ``authzid NUL authcid NUL password``."""
    pending, data = ctx.session.pending, ctx.params[0]
    if pending is None or pending.grant is not None:
        raise _too_late(ctx, pending is None)
    if "sasl" not in ctx.session.caps:
        # SASL is negotiated first (IRCv3 sasl-3.1): 904, the failure every SASL
        # client reads and then registers without, rather than a silent pass.
        pending.sasl = None
        raise IrcError(n.ERR_SASLFAIL, "SASL authentication failed: CAP REQ sasl first")
    if data == "*":
        pending.sasl = None
        raise IrcError(n.ERR_SASLABORTED, "SASL authentication aborted")
    if pending.sasl is None:
        _start(ctx, pending, data)
        return
    if len(data) > CHUNK or len(pending.sasl) + len(data) > MAX_SASL:
        pending.sasl = None
        raise IrcError(n.ERR_SASLTOOLONG, "SASL message too long")
    if data != "+":
        pending.sasl += data.encode()
    if len(data) == CHUNK:
        return  # more chunks follow
    payload, pending.sasl = bytes(pending.sasl), None
    await _finish(ctx, pending, payload)


def _too_late(ctx: IrcContext, registered: bool) -> IrcError:
    """AUTHENTICATE once logged in (907), or from a guest, which registered without
    logging in and cannot now (904: not "already authenticated", which it never was)."""
    if registered and is_guest(ctx.session.user):
        return IrcError(n.ERR_SASLFAIL, "SASL authentication failed: a guest logs in by "
                        "connecting again with SASL or PASS")
    return IrcError(n.ERR_SASLALREADY, "You have already authenticated")


def _start(ctx: IrcContext, pending: Registering, mechanism: str) -> None:
    if mechanism.upper() != "PLAIN":
        ctx.reply(n.RPL_SASLMECHS, "PLAIN", "are available SASL mechanisms")
        raise IrcError(n.ERR_SASLFAIL, "SASL authentication failed")
    pending.sasl = bytearray()
    ctx.line("AUTHENTICATE +")


async def _finish(ctx: IrcContext, pending: Registering, payload: bytes) -> None:
    """Check a PLAIN payload; on success the account logs in when registration ends."""
    try:
        authzid, authcid, password = b64decode(payload, validate=True).decode().split("\0")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise IrcError(n.ERR_SASLFAIL, "SASL authentication failed") from None
    if authzid and authzid != authcid:
        raise IrcError(n.ERR_SASLFAIL, "SASL authentication failed")
    if not password:
        # As PASS : (chatd.irc.registration): an empty password is never right, so it
        # is malformed input, not a log-in to try and charge to the address and name.
        raise IrcError(n.ERR_SASLFAIL, "SASL authentication failed: the password is empty")
    try:
        grant = await secret_login(ctx, authcid or None, password)
    except ChatError:
        raise IrcError(n.ERR_SASLFAIL, "SASL authentication failed") from None
    pending.grant, pending.account_changes = grant, grant.user.password_changes
    logged_in(ctx, grant.user)
    ctx.reply(n.RPL_SASLSUCCESS, "SASL authentication successful")


def still_valid(ctx: IrcContext, grant: Grant, account_changes: int) -> bool:
    """Whether what SASL authenticated still holds: not for a password login whose
    password changed since (the client then authenticates again, with the new one),
    nor for a token login whose token was revoked or expired."""
    if grant.token_id is not None:
        return ctx.services.tokens.alive(grant.token_id)
    return grant.user.password_changes == account_changes


def logged_in(ctx: IrcContext, user: User) -> None:
    """RPL_LOGGEDIN: which account this connection is logged in as."""
    # Before registration completes (SASL, PASS) the connection's own USER, if it
    # sent one, is not yet its account's identity: the mask is made with it.
    username, renderer = ctx.session.username, ctx.listener.renderer
    mask = user_mask(user.name, username, renderer.server) if username else renderer.mask(user.name)
    ctx.reply(n.RPL_LOGGEDIN, mask, user.name, f"You are now logged in as {user.name}")
