"""Bots and flow: bot accounts, API tokens, typing indicators, a room's own message rate."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from chatd.domain.accounts import User
from chatd.domain.names import (
    OPTION_PREFIX,
    is_decimal,
    is_number,
    looks_like_duration,
    meant_as_duration,
    not_a_duration,
    parse_duration,
)
from chatd.domain.permissions import Action
from chatd.domain.presence import token_ended_error
from chatd.domain.protection import ROOM_BURST, ROOM_RATE
from chatd.domain.room import Role, Room
from chatd.domain.scopes import (
    DEFAULT_SCOPES,
    SEPARATOR,
    Scope,
    listed,
    looks_like_scopes,
    parse_scopes,
    require_scope,
    shown,
)
from chatd.domain.tokens import API_KIND, SESSION_KIND, Minted
from chatd.domain.webhooks import bot_name, hook_path
from chatd.errors import ChatError, Code
from chatd.protocol.context import Context, table_time
from chatd.protocol.paging import PAGE, page_of
from chatd.protocol.params import (
    Choice,
    Duration,
    Flag,
    Number,
    RoomRef,
    Scopes,
    Word,
    expected,
)
from chatd.protocol.params import Context as ParamContext
from chatd.protocol.registry import NEEDS_MEMBER, NEEDS_ROOM_ADMIN, command
from chatd.protocol.results import DEFERRED, Deferred, Ok, ok

GROUP = "bots"
# The most bots a user who is not a server admin may own.
MAX_BOTS = 10


TOKEN_USAGE = ("/token create [name] [scopes] [ttl] [--session]  |  /token list  |  "
               "/token revoke <name>  |  /token revoke-resume")


def _nothing_more(*unused: object) -> None:
    """Refuse words a sub-command does not take (PROTOCOL §2: surplus words are
    bad-arguments), where the parser cannot: /webhook list names its room in the
    word /webhook create names its bot with, so a room after it is one too many."""
    if any(value is not None for value in unused):
        raise ChatError(Code.BAD_ARGUMENTS, "too many arguments.")


# Each parameter of a sub-command's own takes part only after its sub-command: a word
# after /token revoke <name> is one too many, never read as create's scopes or lifetime
# (whose refusal spoke of scopes and lifetimes to someone revoking a token).
TOKEN_NAMED = ("create", "revoke")
TOKEN_MADE = ("create",)
# /token create --session: a browser tab's token, not a script's.
SESSION_FLAG = Flag("session", sub_commands=TOKEN_MADE)


@command("token", Choice("action", choices=("create", "list", "revoke", "revoke-resume")),
         Word("name", optional=True, sub_commands=TOKEN_NAMED),
         Scopes("scopes", optional=True, sub_commands=TOKEN_MADE),
         Duration("ttl", optional=True, meaning="a lifetime", sub_commands=TOKEN_MADE),
         SESSION_FLAG,
         group=GROUP, usage=TOKEN_USAGE,
         scope=Scope.ADMIN, errors=(Code.NAME_TAKEN, Code.NO_SUCH_TOKEN, Code.QUOTA_EXCEEDED,
                                    Code.NOT_PERMITTED))
async def token(ctx: Context, action: str, name: str | None, scopes: frozenset[Scope] | None,
                ttl: float | None, session: bool) -> Ok | Deferred:
    """Manage API tokens for bots: shown once, stored only as a hash, with scopes."""
    if action == "create":
        kind = await _session_kind(ctx) if session else API_KIND
        return await _create_token(ctx, ctx.user, *_name_scopes_ttl(name, scopes, ttl), kind)
    if action == "revoke":
        if name is None:
            raise ChatError(Code.BAD_ARGUMENTS, "missing <name>.")
        return await _revoke_token(ctx, name)
    if action == "revoke-resume":
        count = await ctx.services.resume.revoke_user(ctx.user)
        return ok(f"{count} resume token{'s' * (count != 1)} revoked.", revoked=count)
    return await _token_list(ctx, ctx.user)


async def _revoke_token(ctx: Context, name: str) -> Ok | Deferred:
    """``/token revoke``. Revoking the token this connection logged in with ends the
    connection, and that end is the command's answer: the error that closes it
    carries the command's label (a client waiting for its label is answered)."""
    session, tokens = ctx.session, ctx.services.tokens
    own = next((r for r in tokens.named(ctx.user, name) if r.id == session.token_id), None)
    if own is not None:
        session.token_id = None  # (not closed with the others, unlabelled)
    try:
        await tokens.revoke(ctx.user, name)
    except ChatError:
        if own is not None:
            session.token_id = own.id
        raise
    if own is None:
        return ok(f"Token {name} revoked.", name=name)
    # The command's answer names its command, as every command's error does (the
    # other sessions of the token are told the same without it: unasked).
    told = token_ended_error(own, expired=False) | {"command": ctx.command}
    ctx.send(told)
    ctx.services.presence.end(session, told["code"])
    return DEFERRED


def _name_scopes_ttl(name: str | None, scopes: frozenset[Scope] | None,
                     ttl: float | None) -> tuple[str, frozenset[Scope] | None, float | None]:
    """``/token create 7d``, ``/token create 2h read`` and ``/token create read,post``:
    a first word that is a lifetime or a list of scopes is that, not the token's name."""
    if name is not None and name.startswith(OPTION_PREFIX):
        # /token create --sesion: the flag mistyped, not an api token named so.
        raise ChatError(Code.BAD_ARGUMENTS, expected([SESSION_FLAG.spelled], name))
    if name is not None and looks_like_duration(name):
        if ttl is not None:
            raise ChatError(Code.BAD_ARGUMENTS, f"{name} is a lifetime, and so is the last "
                            "word: name the token with a word that is not a duration.")
        try:
            return "default", scopes, parse_duration(name)
        except ValueError as exc:
            raise ChatError(Code.BAD_ARGUMENTS, f"ttl: {exc}") from None
    if name is not None and meant_as_duration(name):
        # /token create 10min: a lifetime mistyped, not a token named "10min" for ever.
        raise ChatError(Code.BAD_ARGUMENTS, f"ttl: {not_a_duration(name)} A token's name "
                        "is a word that does not look like a duration.")
    if name is not None and scopes is None and (looks_like_scopes(name) or SEPARATOR in name):
        return "default", parse_scopes(name), ttl  # names unknown scopes, if any
    return name or "default", scopes, ttl


async def _session_kind(ctx: Context) -> str:
    """``session``, the kind of a browser tab's token, unless this session logged in
    with a script's token: what a webhook made with a session token lives as long as
    is its account, and a script must not make its webhooks outlive its own token."""
    own = ctx.session.token_id
    if own is not None and await ctx.services.tokens.kind_of(ctx.user, own) != \
            SESSION_KIND:
        raise ChatError(Code.NOT_PERMITTED, "a session logged in with an API token makes "
                        "API tokens only (--session is for the web client's tabs).")
    return SESSION_KIND


async def _create_token(ctx: Context, owner: User, name: str | None,
                        scopes: frozenset[Scope] | None, ttl: float | None,
                        kind: str = API_KIND) -> Ok:
    """A token of ``kind`` for ``owner`` (the user, or one of their bots): never more
    scopes than this session has, so a token cannot mint a stronger one."""
    granted = _grantable(ctx, scopes)
    tokens, login_token = ctx.services.tokens, ctx.session.token_id
    # A session token past the account's bound revokes the least recently used of
    # them, never the one this session logged in with (a tab renewing its own). And
    # no token outlives that one: a leaked short-lived token must not mint a lasting one.
    minted = await tokens.mint(owner, name, ttl, granted, kind, keeping=login_token,
                               not_after=await tokens.expiry_of(ctx.user, login_token))
    record, secret = minted.record, minted.secret
    what = "Session token" if kind == SESSION_KIND else "Token"
    revoked = [gone.name for gone in minted.revoked]
    return ok(f"{what} {record.name} for {owner.name} ({shown(granted)}, {_lasts(minted)}): "
              f"{secret} (shown only now; log in with /login {owner.name} --token <token>)"
              f"{_made_room(revoked)}.",
              token=secret, name=record.name, user=owner.name, scopes=listed(granted),
              expires=record.expires_at, kind=record.kind,
              **({"revoked": revoked} if revoked else {}),
              **({"capped": True} if minted.capped else {}))


def _lasts(minted: Minted) -> str:
    """How long a new token lives, as its reply says: cut to the token the session
    logged in with says so, as its maker asked for longer (or for no end)."""
    expires = minted.record.expires_at
    if expires is None:
        return "never expires"
    if minted.capped:
        return f"expires with the token this session logged in with, {table_time(expires)} UTC"
    return f"expires {table_time(expires)} UTC"


def _made_room(revoked: list[str]) -> str:
    """What the sentence adds of the tab tokens revoked to make room for a new one
    past accounts.max_session_tokens: their user chose none of them, and a tab
    logged in with one is closed, so the reply says which."""
    if not revoked:
        return ""
    if len(revoked) == 1:
        return f" (revoked the least recently used tab token {revoked[0]})"
    *most, last = revoked
    return f" (revoked the least recently used tab tokens {', '.join(most)} and {last})"


def _grantable(ctx: Context, scopes: frozenset[Scope] | None) -> frozenset[Scope]:
    """The scopes a new token asked for (the default ones without a choice), refused
    (``scope``) when they are more than this session has."""
    granted = scopes if scopes is not None else DEFAULT_SCOPES
    mine = ctx.session.scopes
    if mine is not None and not granted <= mine:
        raise ChatError(Code.SCOPE, f"a token may not grant more than yours does "
                        f"({shown(mine)}).", scope=shown(granted - mine))
    return granted


async def _token_list(ctx: Context, owner: User) -> Ok:
    tokens = ctx.services.tokens
    records = tokens.of(owner)
    entries = [{"name": r.name, "kind": r.kind, "scopes": listed(tokens.scopes(r)),
                "created": r.created_at, "expires": r.expires_at,
                "last_used": tokens.last_used(r)} for r in records]
    if records:
        ctx.table(["name", "kind", "scopes", "created (UTC)", "expires (UTC)",
                   "last used (UTC)"],
                  [[r.name, r.kind, shown(tokens.scopes(r)), table_time(r.created_at),
                    _maybe_time(r.expires_at), _maybe_time(tokens.last_used(r))]
                   for r in records])
    resume = ctx.services.resume.count(owner)
    return ok(f"{len(records)} token{'s' * (len(records) != 1)}; {resume} resume "
              f"token{'s' * (resume != 1)}.", tokens=entries, resume_tokens=resume,
              user=owner.name)


def _maybe_time(stamp: float | None) -> str:
    return table_time(stamp) if stamp is not None else "never"


BOT_USAGE = ("/bot create <name> [scopes] [ttl]  |  /bot list [page]  |  /bot token <name> "
             "[scopes] [ttl]  |  /bot tokens <name>  |  /bot revoke <name> <token-name>  |  "
             "/bot delete <name>")


# As /token's: the bot's name after every sub-command but list, scopes and a lifetime
# only where a token is made, a token's name only after revoke.
BOT_NAMED = ("create", "token", "tokens", "revoke", "delete")
BOT_TOKEN_MADE = ("create", "token")
# A server admin's list is every bot: paged as the other long lists are.
BOT_PAGE = replace(PAGE, sub_commands=("list",))

# /ratelimit's word that turns a room's own rate off (in place of a rate).
RATE_OFF = "off"


@command("bot", Choice("action", choices=("create", "list", "token", "tokens", "revoke",
                                          "delete")),
         Word("name", sub_commands=BOT_NAMED),
         Scopes("scopes", optional=True, sub_commands=BOT_TOKEN_MADE),
         Duration("ttl", optional=True, meaning="a lifetime", sub_commands=BOT_TOKEN_MADE),
         Word("token_name", sub_commands=("revoke",)), BOT_PAGE, group=GROUP, usage=BOT_USAGE,
         scope=Scope.ADMIN,
         errors=(Code.NAME_TAKEN, Code.INVALID_NAME, Code.NO_SUCH_USER, Code.NOT_PERMITTED,
                 Code.QUOTA_EXCEEDED, Code.NO_SUCH_TOKEN),
         needs="logged in; token, tokens, revoke and delete: the bot's owner or a server admin")
async def bot(ctx: Context, action: str, name: str | None, scopes: frozenset[Scope] | None,
              ttl: float | None, token_name: str | None, page: int) -> Ok:
    """Make and manage bot accounts: they log in with tokens only and show as bots."""
    if action == "list":
        return _bot_list(ctx, page)
    if name is None:
        raise ChatError(Code.BAD_ARGUMENTS, "missing <name>.")
    if action == "create":
        return await _bot_create(ctx, name, scopes, ttl)
    target = _my_bot(ctx, name)
    if action == "token":
        # No name: the next free token2, token3 ..., chosen as the token is made.
        return await _create_token(ctx, target, None, scopes, ttl)
    if action == "tokens":
        return await _token_list(ctx, target)
    if action == "revoke":
        assert token_name is not None  # the parser requires it after revoke
        return await _bot_revoke(ctx, target, token_name)
    await ctx.services.presence.delete_account(target, actor=ctx.user.name)
    return ok(f"Bot {target.name} deleted.", user=target.name)


async def _bot_create(ctx: Context, name: str, scopes: frozenset[Scope] | None,
                      ttl: float | None) -> Ok:
    services, owner = ctx.services, ctx.user
    if owner.is_bot:
        raise ChatError(Code.NOT_PERMITTED, "a bot cannot make bots.")
    # Its first token's scopes are checked before the bot is made: refused after,
    # they would leave a bot without a token, holding its name and a place in the
    # owner's quota.
    _grantable(ctx, scopes)
    created = await services.accounts.create_bot(
        name, owner, actor=owner.name, quota=None if owner.is_admin else MAX_BOTS)
    result = await _create_token(ctx, created, "default", scopes, ttl)
    return ok(f"Bot {created.name} created, owned by {owner.name}. " + result.message,
              **result.fields, bot=True, owner=owner.name)


async def _bot_revoke(ctx: Context, target: User, name: str) -> Ok:
    """Revoke one of the bot's tokens as ``/token revoke`` does (its sessions, and
    those resumed from it, are closed): the owner stops one process of the bot
    without deleting the bot, and without a token of the bot's own."""
    try:
        await ctx.services.tokens.revoke(target, name)
    except ChatError as exc:  # its words speak to the token's holder: name the bot
        if exc.code is not Code.NO_SUCH_TOKEN:
            raise
        raise ChatError(exc.code, f'{target.name} has no token named "{name}"; '
                        f"/bot tokens {target.name} lists them.") from None
    # Audited as chatctl revoke-token is: one account acting on another's token.
    await ctx.services.audit.record("token-revoked", ctx.user.name, target.name, reason=name)
    return ok(f"Token {name} of {target.name} revoked.", user=target.name, name=name)


def _my_bot(ctx: Context, name: str) -> User:
    """The bot ``name``, if this user owns it (server admins: any bot)."""
    target = ctx.services.accounts.require(name)
    if not target.is_bot:
        raise ChatError(Code.NOT_PERMITTED, f"{target.name} is not a bot.")
    if target.owner_id != ctx.user.id and not ctx.user.is_admin:
        raise ChatError(Code.NOT_PERMITTED, f"{target.name} is not your bot.")
    return target


def _bot_list(ctx: Context, page: int) -> Ok:
    """Your bots (a server admin's: every bot), a page at a time."""
    accounts = ctx.services.accounts
    listed = page_of(accounts.bots_of(None if ctx.user.is_admin else ctx.user), page,
                     ctx.services.config.rooms.page_size)
    bots = listed.items
    owners = {b.id: accounts.get(b.owner_id) if b.owner_id is not None else None
              for b in bots}
    names = {b.id: owner.name if owner else None for b in bots for owner in [owners[b.id]]}
    entries = [{"user": b.name, "owner": names[b.id], "online": b.online,
                "since": b.created_at} for b in bots]
    if bots:
        ctx.table(["bot", "owner", "online", "since (UTC)"],
                  [[b.name, names[b.id] or "-", "yes" if b.online else "no",
                    table_time(b.created_at)] for b in bots])
    total = listed.total
    return ok(listed.told(f"{total} bot{'s' * (total != 1)}", "/bot list"), bots=entries,
              **listed.fields())


@command("typing", RoomRef("room", optional=True), group=GROUP,
         scope=Scope.POST, errors=(Code.NOT_IN_ROOM, Code.MUTED, Code.MODERATED),
         needs=NEEDS_MEMBER)
def typing(ctx: Context, room: Room) -> Ok:
    """Tell a room you are typing (never stored; dropped first when a client lags)."""
    if not room.is_member(ctx.user.id):
        raise ChatError(Code.NOT_IN_ROOM, f"you are not in #{room.name}.",
                        remedy=room.way_in())
    ctx.services.messaging.refuse_silenced(room, ctx.user)
    session = ctx.session
    wait = ctx.services.protection.charge_typing(session)
    if wait:
        raise ChatError(Code.RATE_LIMITED, "typing indicators are limited; wait a moment.",
                        retry_ms=max(1, round(wait * 1000)))
    ctx.services.messaging.typing(session, room)
    return ok(room=room.name)


@command("ratelimit", Word("rate"),
         Number("burst", optional=True, low=1, high=1e6, not_after=(RATE_OFF,)),
         RoomRef("room", optional=True), role=Role.OWNER, group=GROUP,
         usage="/ratelimit <messages-per-second> [burst] [room]  |  /ratelimit off [room]",
         scope=Scope.MODERATE)
async def ratelimit(ctx: Context, rate: str, burst: float | None, room: Room) -> Ok:
    """Set a room's own message rate within the server's bounds (owner), or 'off'."""
    limits = ctx.services.config.limits
    if rate.lower() == RATE_OFF:  # the burst is not taken after it: a word there is the room
        fresh: dict[str, float] = {}
        text = f"#{room.name} uses the server's message rate again."
    else:
        value = _within(_decimal(rate), "rate", limits.room_message_rate_max)
        size = _within(burst if burst is not None else max(1.0, value), "burst",
                       limits.room_message_burst_max, low=1.0)
        fresh = {ROOM_RATE: value, ROOM_BURST: size}
        # ("1 message a second", never "1 messages")
        unit = "message" if value == 1 else "messages"
        text = f"#{room.name}: {value:g} {unit} a second, bursts of {size:g}."

    def change(settings: dict[str, Any]) -> dict[str, Any]:
        # Only the rate's own keys change: the rest (e2e ...) is kept as it is now.
        settings.pop(ROOM_RATE, None)
        settings.pop(ROOM_BURST, None)
        return settings | fresh

    settings = await ctx.services.rooms.update_settings(ctx.user, room, Action.RATELIMIT,
                                                         change)
    ctx.services.protection.room_rate_changed(room)
    return ok(text, room=room.name, rate=settings.get(ROOM_RATE), burst=settings.get(ROOM_BURST))


def _decimal(raw: str) -> float:
    """The rate's value by the decimal rule of every number parameter (float() also
    takes "٣" and "1_0"); a word that is none is -1, outside every range, so that
    :func:`_within` refuses it with the range it must be in."""
    return float(raw) if is_decimal(raw) else -1.0


def _within(value: float, what: str, high: float, low: float = 0.1) -> float:
    if not low <= value <= high:
        # Only the rate may be 'off' (which turns the room's own rate off).
        off = ", or 'off'" if what == "rate" else ""
        raise ChatError(Code.BAD_ARGUMENTS, f"the {what} is a number from {low:g} to "
                        f"{high:g}{off}.")
    return value


WEBHOOK_USAGE = ("/webhook create <name> [room]  |  /webhook list [room]  |  "
                 "/webhook revoke <id> [room]")
# What /webhook create needs the post scope for, beside moderate (the refusal's words).
WEBHOOK_POSTS = "creating a webhook (it posts in the room)"


@dataclass(frozen=True, slots=True)
class _RoomOrCurrent(RoomRef):
    """``[room]``, the current room when absent (as /schema says), resolved by
    /webhook itself: /webhook list names its room in the word before, so it must
    tell a second room (too many words) from none, and needs no current room
    when the first word named one."""

    def absent(self, ctx: ParamContext) -> Any:
        return None


def _or_current(ctx: Context, room: Room | None) -> Room:
    """``room``, or when it was left out the session's current room (``no-room``
    when it has none), as any [room] left out is."""
    if room is not None:
        return room
    current: Room = RoomRef("room", optional=True).absent(ctx)
    return current


@command("webhook", Choice("action", choices=("create", "list", "revoke")),
         Word("what", optional=True), _RoomOrCurrent("room", optional=True), group=GROUP,
         usage=WEBHOOK_USAGE,
         scope=Scope.MODERATE, errors=(Code.NO_SUCH_WEBHOOK, Code.NOT_PERMITTED,
                                       Code.INVALID_NAME, Code.NAME_TAKEN,
                                       Code.QUOTA_EXCEEDED),
         needs=NEEDS_ROOM_ADMIN)
async def webhook(ctx: Context, action: str, what: str | None, room: Room | None) -> Ok:
    """Incoming webhooks of a room (its admins): a secret URL that posts as a named bot."""
    if action == "list":
        return await _webhook_list(ctx, what, room)
    if what is None:
        raise ChatError(Code.BAD_ARGUMENTS,
                        f"missing <{'name' if action == 'create' else 'id'}>.")
    room = _or_current(ctx, room)
    hooks = ctx.services.webhooks
    if action == "create":
        # A webhook posts: a token that may not post must not make something that does.
        require_scope(ctx.session.scopes, Scope.POST, WEBHOOK_POSTS)
        # Made with the session's API token, if any: the hook lives as long as it when
        # it is a script's (a browser tab's lives as the account).
        secret, record = await hooks.create(ctx.user, room, what, ctx.session.token_id)
        path = hook_path(record.id, secret)
        # Said when it is so: a hook ending with the token is no surprise then.
        lives = (" It lives as long as the API token this session logged in with."
                 if record.token_id is not None else "")
        return ok(f"Webhook {record.id} posts to #{room.name} as {bot_name(record)}: "
                  f"POST to {path} on the web listener (shown only now).{lives}",
                  path=path, secret=secret, **hooks.describe(record), room=room.name)
    if not is_number(what):
        raise ChatError(Code.BAD_ARGUMENTS, f"a webhook is revoked by its id (a number: "
                        f"/webhook list shows them), not \"{what}\".")
    record = await hooks.revoke(ctx.user, room, int(what))
    return ok(f"Webhook {record.id} ({bot_name(record)}) of #{room.name} revoked.",
              room=room.name, **hooks.describe(record))


async def _webhook_list(ctx: Context, what: str | None, room: Room | None) -> Ok:
    """``/webhook list [room]``: the room is the word after ``list`` (one only)."""
    if what is not None:
        _nothing_more(room)
        room = ctx.services.rooms.require_as(ctx.user, what)
    room = _or_current(ctx, room)
    hooks = ctx.services.webhooks
    records = await hooks.list(ctx.user, room)
    if records:
        # "by token" is JSON's by_token: whether the hook ends with the API token
        # that made it (a script's), beside what its state is now.
        ctx.table(["id", "bot", "created (UTC)", "by token", "state"],
                  [[str(r.id), bot_name(r), table_time(r.created_at),
                    "yes" if r.token_id is not None else "no", hooks.state(r)]
                   for r in records], right=(0,))
    return ok(f"#{room.name}: {len(records)} webhook{'s' * (len(records) != 1)}.",
              room=room.name, webhooks=[hooks.describe(r) for r in records])
