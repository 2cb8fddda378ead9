"""Accounts: register, login, logout, passwd, whoami, quit; blocking direct messages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from chatd.domain.accounts import User
from chatd.domain.logins import checked_login
from chatd.errors import ChatError, Code
from chatd.protocol.context import Context
from chatd.protocol.params import Text, UserRef, Word
from chatd.protocol.registry import Need, command
from chatd.protocol.results import Ok, ok
from chatd.protocol.style import apply_account_settings

GROUP = "account"
# The most rooms the welcome sentence names; the ok's "rooms" field has them all.
WELCOME_ROOMS = 5


@command("register", Word("name"), Word("password"), need=Need.ANONYMOUS, group=GROUP)
async def register(ctx: Context, name: str, password: str) -> Ok:
    """Create an account (when registration is open) and log in with it."""
    services = ctx.services
    if services.config.accounts.registration != "open":
        raise ChatError(Code.REGISTRATION_CLOSED,
                        "registration is closed here; ask an administrator for an account.")
    user = await services.accounts.create(name, password, actor=name)
    welcome = await services.presence.login(ctx.session, user)
    return ok(f"Welcome, {user.name}. You are logged in. Try /rooms, or /create <room>.",
              **welcome)


@command("login", Word("name"), Word("password"), Word("token", optional=True),
         need=Need.ANONYMOUS, group=GROUP,
         usage="/login <name> <password>  or  /login <name> --token <token>")
async def login(ctx: Context, name: str, password: str, token: str | None) -> Ok:
    """Log in to your account (bots: with an API token instead of the password)."""
    services = ctx.services
    if (password == "--token") != (token is not None):
        raise ChatError(Code.BAD_ARGUMENTS, "usage: /login <name> <password>, or "
                        "/login <name> --token <token>.")
    if token is not None:
        user = await _checked(ctx, name, lambda: services.tokens.authenticate(token, name))
    else:
        user = await _checked(ctx, name, lambda: services.accounts.authenticate(name, password))
    return await _logged_in(ctx, user)


@command("auth", Word("token"), need=Need.ANONYMOUS, group=GROUP)
async def auth(ctx: Context, token: str) -> Ok:
    """Log in with an API token alone (see /token)."""
    user = await _checked(ctx, None, lambda: ctx.services.tokens.authenticate(token))
    return await _logged_in(ctx, user)


async def _checked(ctx: Context, name: str | None,
                   attempt: Callable[[], Awaitable[User]]) -> User:
    return await checked_login(ctx.services, ctx.session.peer, name, attempt)


async def _logged_in(ctx: Context, user: User) -> Ok:
    welcome = await ctx.services.presence.login(ctx.session, user)
    apply_account_settings(ctx.session, user.settings)
    style = ctx.session.style
    # A full-screen client draws in the account's theme: tell it what was applied.
    settings = {"color": style.color, "timestamps": style.timestamps, "theme": style.theme}
    return ok(_welcome_back(user.name, welcome["rooms"], welcome["notifications"]),
              **welcome, settings=settings)


def _welcome_back(name: str, rooms: list[str], notifications: int) -> str:
    lines = [f"Welcome back, {name}."]
    if len(rooms) > WELCOME_ROOMS:
        # One sentence, not a wall: the first few, the count, and where the rest are.
        shown = ", ".join(f"#{r}" for r in rooms[:WELCOME_ROOMS])
        lines.append(f"Your rooms ({len(rooms)}): {shown} and {len(rooms) - WELCOME_ROOMS} "
                     "more: /myrooms lists them.")
    elif rooms:
        lines.append("Your rooms: " + ", ".join(f"#{r}" for r in rooms) + ".")
    else:
        lines.append("You are in no room yet: /rooms lists them, /create makes one.")
    if notifications:
        plural = "s" if notifications != 1 else ""
        lines.append(f"{notifications} unread notification{plural}: /notifications.")
    return " ".join(lines)


@command("logout", group=GROUP)
def logout(ctx: Context) -> Ok:
    """Log out; this connection stays open and your rooms keep your membership."""
    name = ctx.user.name
    ctx.services.presence.logout(ctx.session)
    return ok(f"Goodbye, {name}. You are logged out.")


@command("passwd", Word("old"), Word("new"), group=GROUP)
async def passwd(ctx: Context, old: str, new: str) -> Ok:
    """Change your password; your other connections are closed."""
    user, services = ctx.user, ctx.services
    await services.accounts.change_password(user, old, new)
    # No await since the change: nobody logs in with the old password meanwhile.
    closed = _close_other_sessions(ctx, user)
    await services.audit.record("password-changed", actor=user.name)
    valid = await services.tokens.count_valid(user)
    return ok(_password_changed(closed, valid), closed_connections=closed, valid_tokens=valid)


def _close_other_sessions(ctx: Context, user: User) -> int:
    """Close ``user``'s connections other than this one, saying why; how many."""
    others = [s for s in ctx.services.presence.connections(user) if s is not ctx.session]
    for session in others:
        session.send({"type": "notice", "text": "your password was changed on another "
                      "connection; log in again with the new password."})
        session.close("password changed")
        ctx.services.presence.logout(session)
    return len(others)


def _password_changed(closed: int, valid: int) -> str:
    text = "Your password is changed."
    if closed:
        text += f" Your {closed} other connection{'s were' if closed != 1 else ' was'} closed."
    if not valid:
        return text + " No API token can log in as you."
    shown = "them" if valid != 1 else "it"
    return text + (f" {valid} API token{'s' * (valid != 1)} can still log in as you: "
                   f"/token list shows {shown}, /token revoke <name> revokes one.")


@command("whoami", group=GROUP)
def whoami(ctx: Context) -> Ok:
    """Show who you are logged in as, your rooms and your current room."""
    user, session = ctx.user, ctx.session
    rooms = [r.name for r in ctx.services.rooms.of_user(user)]
    current = session.current_room.name if session.current_room else None
    text = f"You are {user.name}{' (server admin)' if user.is_admin else ''}"
    text += f", on {user.connections} connection{'s' * (user.connections != 1)}"
    text += f"; current room: #{current}." if current else "; no current room."
    return ok(text, user=user.name, admin=user.is_admin, rooms=rooms, current_room=current,
              connections=user.connections, session=session.id)


@command("block", UserRef("user"), group=GROUP)
async def block(ctx: Context, user: User) -> Ok:
    """Refuse a user's direct messages; they are told so when they send one."""
    added = await ctx.services.accounts.block(ctx.user, user)
    text = (f"You block {user.name}: their direct messages are refused. /unblock {user.name} "
            "undoes it." if added else f"You already block {user.name}.")
    return ok(text, user=user.name, already=not added)


@command("unblock", UserRef("user"), group=GROUP)
async def unblock(ctx: Context, user: User) -> Ok:
    """Accept a user's direct messages again."""
    await ctx.services.accounts.unblock(ctx.user, user)
    return ok(f"{user.name} can send you direct messages again.", user=user.name)


@command("blocks", group=GROUP)
def blocks(ctx: Context) -> Ok:
    """List the users whose direct messages you refuse."""
    entries = ctx.services.accounts.blocks(ctx.user)
    if entries:
        ctx.table(["user", "since (UTC)"],
                  [[user.name, time.strftime("%Y-%m-%d %H:%M", time.gmtime(since))]
                   for user, since in entries])
    count = f"{len(entries)} user{'s' * (len(entries) != 1)}"
    return ok(f"You block {count}." if entries else "You block nobody.",
              blocks=[{"user": user.name, "since": since} for user, since in entries])


@command("quit", Text("message", optional=True, default=""), need=Need.ANY, group=GROUP)
def quit_(ctx: Context, message: str) -> Ok:
    """Close this connection (your rooms keep your membership)."""
    # Close after the final reply has been queued, so the client sees it.
    asyncio.get_running_loop().call_soon(ctx.session.close, "quit")
    return ok("Goodbye.")
