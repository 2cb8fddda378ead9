"""Authentication: SASL PLAIN (``AUTHENTICATE``) and ``PASS``, against chatd accounts.

Both go through :func:`checked_login`, which applies the same failed-login
limits and audit entries as the line protocol's ``/login``: a bucket per IP
address and per account name, refusing before the password is checked once
either is empty.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from chatd.domain.logins import checked_login as shared_checked_login
from chatd.errors import ChatError
from chatd.irc import numerics as n
from chatd.irc.commands import irc_command
from chatd.irc.numerics import IrcError

if TYPE_CHECKING:
    from chatd.domain.accounts import User
    from chatd.irc.commands import IrcContext

# AUTHENTICATE carries at most 400 bytes per line; a line of exactly 400 says more follow.
CHUNK: Final = 400
# The most bytes of one SASL exchange (a PLAIN payload is far shorter).
MAX_SASL: Final = 4096


async def checked_login(ctx: IrcContext, name: str | None,
                        attempt: Callable[[], Awaitable[User]]) -> User:
    """A login attempt under the failed-login limits (audited as coming from IRC)."""
    return await shared_checked_login(ctx.services, ctx.session.peer, name, attempt,
                                      via=" (irc)")


async def password_login(ctx: IrcContext, password: str) -> User:
    """``PASS account:password``, or ``PASS password`` with the nick as the account."""
    name, colon, secret = password.partition(":")
    if not colon:
        name, secret = ctx.nick, password
    accounts = ctx.services.accounts
    return await checked_login(ctx, name, lambda: accounts.authenticate(name, secret))


@irc_command("AUTHENTICATE", min_params=1, registered=False)
async def authenticate(ctx: IrcContext) -> None:
    """SASL: ``AUTHENTICATE PLAIN``, then the base64 of ``authzid NUL authcid NUL password``."""
    irc, data = ctx.session.irc, ctx.params[0]
    if irc.registered or irc.account is not None:
        raise IrcError(n.ERR_SASLALREADY, "You have already authenticated using SASL")
    if data == "*":
        irc.sasl = None
        raise IrcError(n.ERR_SASLABORTED, "SASL authentication aborted")
    if irc.sasl is None:
        _start(ctx, data)
        return
    if len(data) > CHUNK or len(irc.sasl) + len(data) > MAX_SASL:
        irc.sasl = None
        raise IrcError(n.ERR_SASLTOOLONG, "SASL message too long")
    if data != "+":
        irc.sasl += data.encode()
    if len(data) == CHUNK:
        return  # more chunks follow
    payload, irc.sasl = bytes(irc.sasl), None
    await _finish(ctx, payload)


def _start(ctx: IrcContext, mechanism: str) -> None:
    if mechanism.upper() != "PLAIN":
        ctx.reply(n.RPL_SASLMECHS, "PLAIN", "are available SASL mechanisms")
        raise IrcError(n.ERR_SASLFAIL, "SASL authentication failed")
    ctx.session.irc.sasl = bytearray()
    ctx.line("AUTHENTICATE +")


async def _finish(ctx: IrcContext, payload: bytes) -> None:
    """Check a PLAIN payload; on success the account logs in when registration ends."""
    try:
        authzid, authcid, password = b64decode(payload, validate=True).decode().split("\0")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise IrcError(n.ERR_SASLFAIL, "SASL authentication failed") from None
    if authzid and authzid != authcid:
        raise IrcError(n.ERR_SASLFAIL, "SASL authentication failed")
    accounts = ctx.services.accounts
    try:
        user = await checked_login(ctx, authcid,
                                   lambda: accounts.authenticate(authcid, password))
    except ChatError:
        raise IrcError(n.ERR_SASLFAIL, "SASL authentication failed") from None
    irc = ctx.session.irc
    irc.account, irc.account_changes = user, user.password_changes
    logged_in(ctx, user)
    ctx.reply(n.RPL_SASLSUCCESS, "SASL authentication successful")


def sasl_account(ctx: IrcContext) -> User | None:
    """The account SASL authenticated, unless its password changed since (the
    client then authenticates again, with the new one)."""
    irc = ctx.session.irc
    if irc.account is None or irc.account.password_changes != irc.account_changes:
        return None
    return irc.account


def logged_in(ctx: IrcContext, user: User) -> None:
    """RPL_LOGGEDIN: which account this connection is logged in as."""
    ctx.reply(n.RPL_LOGGEDIN, ctx.listener.renderer.mask(user.name), user.name,
              f"You are now logged in as {user.name}")
