"""Accounts: register, login, logout, passwd, whoami, quit; blocking direct messages."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from chatd.domain import scopes
from chatd.domain.accounts import User
from chatd.domain.logins import checked_login
from chatd.domain.resume import Issued
from chatd.domain.scopes import ALL_SCOPES, Scope
from chatd.domain.tokens import Grant
from chatd.errors import ChatError, Code
from chatd.protocol.context import Context, table_time
from chatd.protocol.params import Flag, Secret, Text, UserRef, Word
from chatd.protocol.registry import Need, command
from chatd.protocol.results import Ok, ok
from chatd.protocol.style import apply_account_settings

GROUP = "account"
# The most rooms the welcome sentence names; the ok's "rooms" field has them all.
WELCOME_ROOMS = 5


@command("register", Word("name"), Word("password"), need=Need.ANONYMOUS, group=GROUP,
         scope=Scope.READ, errors=(Code.NAME_TAKEN, Code.INVALID_NAME, Code.REGISTRATION_CLOSED,
                                   Code.RATE_LIMITED))
async def register(ctx: Context, name: str, password: str) -> Ok:
    """Create an account (when registration is open) and log in with it."""
    services = ctx.services
    if services.config.accounts.registration != "open":
        raise ChatError(Code.REGISTRATION_CLOSED,
                        "registration is closed here; ask an administrator for an account.")
    async with services.protection.registering(ctx.session.peer):
        user = await services.accounts.create(name, password, actor=name)
    welcome = await _welcome(ctx, user)
    return ok(f"Welcome, {user.name}. You are logged in. Try /rooms, or /create <room>.",
              **welcome)


async def _welcome(ctx: Context, user: User, token_id: int | None = None) -> dict[str, Any]:
    """Log the connection in as ``user`` (with the API token ``token_id``): what the
    welcome says, the unread count too."""
    welcome = await ctx.services.presence.login(ctx.session, user, token_id, ctx.label)
    unread = await ctx.services.notifier.unread(user)
    # Told, not taken: the listing of the newest page still tells it, once.
    dropped = await ctx.services.notifier.dropped(user)
    replayed = welcome.pop("direct_messages")  # (last, as the protocol's examples show)
    return welcome | {"notifications": unread, **({"dropped": dropped} if dropped else {}),
                      "direct_messages": replayed}


LOGIN_USAGE = ("/login <name> <password> [--resume]  |  /login <name> --token <token> "
               "[--resume]  |  /login --resume <resume-token>")
# The word that stands for the password when a token follows, and the flag
# that asks for (or, in the name's place, presents) a resume token.
TOKEN_WORD = "--token"
RESUME_WORD = "--resume"


LOGIN_PARAMS = (Word("name"), Secret("password"), Secret("token", optional=True),
                Flag("resume"))


# The password is parsed as optional so that the handler, which knows the form
# meant, names what is missing (<password>, <token> or <resume-token>); /schema
# describes the parameters as they are meant.
# The name's place keeps a first word "--resume": it names the resume form, where
# the flag anywhere else asks for a new resume token.
@command("login", Word("name", names_form=True), Word("password", optional=True),
         Secret("token", optional=True), Flag("resume"), need=Need.ANONYMOUS, group=GROUP,
         usage=LOGIN_USAGE, described=LOGIN_PARAMS, scope=Scope.READ,
         errors=(Code.AUTH_FAILED,))
async def login(ctx: Context, name: str, password: str | None, token: str | None,
                resume: bool) -> Ok:
    """Log in (bots: with an API token; anyone: with a resume token, no password check)."""
    services = ctx.services
    if name.lower() == TOKEN_WORD:
        # (/login --token x: the token form without its name, not a password tried,
        # and charged as a failed log-in, for an account called "--token")
        raise _login_usage("missing <name>.")
    if name.lower() == RESUME_WORD:
        if password is None:
            raise _login_usage("missing <resume-token>.")
        if token is not None or resume:
            raise _login_usage("too many arguments.")
        return await _resumed(ctx, password)
    if password is None or password.lower() == RESUME_WORD:
        # (/login alice --resume: the flag where the password goes, not a failed login)
        raise _login_usage("missing <password>.")
    if password == TOKEN_WORD and token is None:
        raise _login_usage("missing <token>.")
    if password != TOKEN_WORD and token is not None:
        raise _login_usage("too many arguments.")
    if token is not None:
        grant = await _checked(ctx, name, lambda: services.tokens.authenticate(token, name))
    else:
        grant = Grant(await _checked(ctx, name,
                                     lambda: services.accounts.authenticate(name, password)))
    return await _logged_in(ctx, grant, resume)


AUTH_PARAMS = (Secret("token"), Flag("resume"))


# The token is parsed as optional, as /login's password is: "/auth --resume" is
# then the flag without its token, named as missing, not a token "--resume" tried
# (and charged) as a failed log-in.
@command("auth", Secret("token", optional=True), Flag("resume"), need=Need.ANONYMOUS,
         group=GROUP, usage="/auth <token> [--resume]", described=AUTH_PARAMS,
         scope=Scope.READ, errors=(Code.AUTH_FAILED,))
async def auth(ctx: Context, token: str | None, resume: bool) -> Ok:
    """Log in with an API token alone (see /token); --resume also asks for a resume token."""
    if token is None:
        raise _login_usage("missing <token>.")
    grant = await _checked(ctx, None, lambda: ctx.services.tokens.authenticate(token))
    return await _logged_in(ctx, grant, resume)


def _login_usage(what: str) -> ChatError:
    """``bad-arguments`` in the words of every other command's: what is wrong (the
    usage follows it, as every command's does)."""
    return ChatError(Code.BAD_ARGUMENTS, what)


_T = TypeVar("_T")


async def _checked(ctx: Context, name: str | None, attempt: Callable[[], Awaitable[_T]]) -> _T:
    return await checked_login(ctx.services, ctx.session.peer, name, attempt)


async def _resumed(ctx: Context, secret: str) -> Ok:
    """A login with a resume token: no password check, a new resume token in the reply."""
    grant, issued = await _checked(ctx, None, lambda: ctx.services.resume.redeem(secret))
    return await _signed_in(ctx, grant, issued)


async def _logged_in(ctx: Context, grant: Grant, resume: bool) -> Ok:
    issued = await ctx.services.resume.issue(grant) if resume else None
    return await _signed_in(ctx, grant, issued)


async def _signed_in(ctx: Context, grant: Grant, issued: Issued | None) -> Ok:
    user, session = grant.user, ctx.session
    # Before the log-in's first await: a connection is never logged in with more
    # than its grant, even for a moment, even when the log-in then fails.
    session.scopes = None if grant.scopes == ALL_SCOPES else grant.scopes
    welcome = await _welcome(ctx, user, grant.token_id)
    apply_account_settings(session, user.settings)
    style = session.style
    # A full-screen client draws in the account's theme: tell it what was applied.
    settings = {"color": style.color, "timestamps": style.timestamps, "theme": style.theme}
    fields: dict[str, Any] = {**welcome, "bot": user.is_bot, "scopes": scopes.listed(grant.scopes),
                              "settings": settings}
    text = _welcome_back(user.name, welcome["rooms"],
                         _unread_sentence(welcome["notifications"], welcome.get("dropped", 0)),
                         welcome.get("direct_messages_skipped", 0),
                         welcome.get("direct_messages_skipped_after", 0))
    if issued is not None:
        session.resume_id = issued.id
        fields |= {"resume": issued.secret, "resume_expires": issued.expires_at}
        if style.fmt != "json":
            # A person on telnet has only the sentence. A program has the field:
            # its message, which clients show and logs keep, does not carry it.
            text += " " + _resume_sentence(issued)
    return ok(text, **fields)


def _resume_sentence(issued: Issued) -> str:
    """The new resume token, in the words /token create shows its secret with."""
    expires = table_time(issued.expires_at)
    return (f"Resume token (expires {expires} UTC): {issued.secret} (shown only now; "
            "log in with /login --resume <resume-token>, once).")


def _unread_sentence(unread: int, dropped: int) -> str:
    """What the welcome says of the notifications: how many are unread, and how many
    older ones were dropped past the bound (which /notifications then tells once)."""
    lost = (f"{dropped} older notification{'s were' if dropped != 1 else ' was'} dropped"
            if dropped else "")
    if not unread:
        return f"{lost[0].upper()}{lost[1:]}: /notifications." if lost else ""
    said = f"{unread} unread notification{'s' if unread != 1 else ''}"
    return f"{said} ({lost}): /notifications." if lost else f"{said}: /notifications."


def _welcome_back(name: str, rooms: list[str], notifications: str, skipped: int,
                  after: int) -> str:
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
        lines.append(notifications)
    if skipped:
        plural = "s" if skipped != 1 else ""
        lines.append(f"{skipped} older direct message{plural} sent while you were away "
                     f"not shown here: /resume {after} replays them.")
    return " ".join(lines)


@command("logout", group=GROUP, scope=Scope.READ)
async def logout(ctx: Context) -> Ok:
    """Log out; this connection stays open and your rooms keep your membership."""
    name, resume_id = ctx.user.name, ctx.session.resume_id
    ctx.services.presence.logout(ctx.session)
    # Logging out on purpose ends what this login could resume.
    if resume_id is not None:
        await ctx.services.resume.revoke(resume_id)
    return ok(f"Goodbye, {name}. You are logged out.")


@command("passwd", Word("old"), Word("new"), group=GROUP,
         scope=Scope.ADMIN, errors=(Code.AUTH_FAILED, Code.NOT_PERMITTED))
async def passwd(ctx: Context, old: str, new: str) -> Ok:
    """Change your password; your other connections are closed."""
    user, services = ctx.user, ctx.services
    if user.is_bot:
        raise ChatError(Code.NOT_PERMITTED, f"{user.name} is a bot, and a bot has no password "
                        "to change: it logs in with its tokens only.")
    await services.accounts.change_password(user, old, new)
    # No await since the change: nobody logs in with the old password meanwhile.
    closed = services.presence.close_sessions(user, keep=ctx.session)
    # A cluster's other nodes close theirs when they hear of the change.
    nodes = user.elsewhere
    # Whoever held the old password may hold a resume token made with it, or a
    # browser tab's token (made at a password log-in): a tab would log itself in
    # again with it. This session's own token stays (the tab changing it goes on).
    await services.resume.revoke_user(user)
    tabs = await services.tokens.revoke_sessions(user, keeping=ctx.session.token_id)
    await services.audit.record("password-changed", actor=user.name)
    valid = await services.tokens.count_valid(user)
    return ok(_password_changed(closed, nodes, tabs, valid), closed_connections=closed,
              closed_on_nodes=nodes, revoked_session_tokens=tabs, valid_tokens=valid)


def _password_changed(closed: int, nodes: int, tabs: int, valid: int) -> str:
    text = "Your password is changed."
    if closed:
        text += f" Your {closed} other connection{'s were' if closed != 1 else ' was'} closed."
    if nodes:
        text += (f" Your connections on {nodes} other node{'s' * (nodes != 1)} of the cluster "
                 "are closed too.")
    if tabs:
        text += (f" {tabs} browser session token{'s were' if tabs != 1 else ' was'} revoked: "
                 "those tabs log in again with the new password.")
    if not valid:
        return text + " No API token can log in as you."
    shown = "them" if valid != 1 else "it"
    return text + (f" {valid} API token{'s' * (valid != 1)} can still log in as you: "
                   f"/token list shows {shown}, /token revoke <name> revokes one.")


@command("whoami", group=GROUP, scope=Scope.READ)
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


@command("block", UserRef("user"), group=GROUP, scope=Scope.POST,
         errors=(Code.NOT_PERMITTED, Code.QUOTA_EXCEEDED))
async def block(ctx: Context, user: User) -> Ok:
    """Refuse a user's direct messages; they are told so when they send one."""
    added = await ctx.services.accounts.block(ctx.user, user)
    text = (f"You block {user.name}: their direct messages are refused. /unblock {user.name} "
            "undoes it." if added else f"You already block {user.name}.")
    return ok(text, user=user.name, already=not added)


@command("unblock", UserRef("user"), group=GROUP, scope=Scope.POST)
async def unblock(ctx: Context, user: User) -> Ok:
    """Accept a user's direct messages again."""
    await ctx.services.accounts.unblock(ctx.user, user)
    return ok(f"{user.name} can send you direct messages again.", user=user.name)


@command("blocks", group=GROUP, scope=Scope.READ)
def blocks(ctx: Context) -> Ok:
    """List the users whose direct messages you refuse."""
    entries = ctx.services.accounts.blocks(ctx.user)
    if entries:
        ctx.table(["user", "since (UTC)"],
                  [[user.name, table_time(since)]
                   for user, since in entries])
    count = f"{len(entries)} user{'s' * (len(entries) != 1)}"
    return ok(f"You block {count}." if entries else "You block nobody.",
              blocks=[{"user": user.name, "since": since} for user, since in entries])


@command("quit", Text("message", optional=True, default=""), need=Need.ANY, group=GROUP,
         scope=Scope.READ)
def quit_(ctx: Context, message: str) -> Ok:
    """Close this connection (your rooms keep your membership)."""
    # Close after the final reply has been queued, so the client sees it.
    asyncio.get_running_loop().call_soon(ctx.session.close, "quit")
    return ok("Goodbye.")
