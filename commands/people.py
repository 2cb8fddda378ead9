"""People: who someone is (/whois), being away (/away), and names that stay (/nick).

IRC users reach for these by habit; each says what chatd knows or does instead.
"""

from __future__ import annotations

from chatd.domain.accounts import User
from chatd.domain.presence import AWAY_MAX
from chatd.domain.scopes import Scope
from chatd.errors import ChatError, Code
from chatd.protocol.codec import iso_ts
from chatd.protocol.context import Context
from chatd.protocol.params import Text, UserOrGuest
from chatd.protocol.registry import Need, command
from chatd.protocol.results import Ok, ok

GROUP = "account"


@command("whois", UserOrGuest("user"), group=GROUP, scope=Scope.READ)
def whois(ctx: Context, user: User) -> Ok:
    """Tell about a user: online or away, their rooms you can see, since when they exist."""
    services = ctx.services
    away = services.presence.away(user) if user.online else ""
    # Private rooms stay private: only those the asker may see are named.
    rooms = [room.name for room in ctx.services.rooms.of_user(user)
             if services.rooms.can_see(ctx.user, room)]
    since = iso_ts(user.created_at)
    status = "offline" if not user.online else f"away: {away}" if away else "online"
    rows = [("user", user.name), ("status", status),
            ("rooms", " ".join(f"#{name}" for name in rooms) or "none you can see"),
            ("since", since[:10])]
    if user.is_admin:
        rows.append(("role", "server admin"))
    owner = _owner(ctx, user)
    if user.is_bot:
        rows.append(("kind", f"bot, owned by {owner}" if owner else "bot"))
    guest = not user.has_account
    if guest:
        rows.append(("kind", "IRC guest, connected over IRC without an account"))
    ctx.text([f"  {key:<6}  {value}" for key, value in rows])
    sentence = f"{user.name} is away." if away else \
        f"{user.name} is {'online' if user.online else 'offline'}."
    if guest:
        sentence = f"{sentence[:-1]}: an IRC guest, without an account."
    return ok(sentence, user=user.name, online=user.online, away=away or None,
              rooms=rooms, admin=user.is_admin, since=since, bot=user.is_bot, owner=owner,
              guest=guest)




def _owner(ctx: Context, user: User) -> str | None:
    """The name of the bot's owner (None for people, and for a bot whose owner is gone)."""
    found = ctx.services.accounts.get(user.owner_id) if user.owner_id is not None else None
    return found.name if found is not None else None


@command("away", Text("message", optional=True, default=""), group=GROUP, scope=Scope.POST,
         errors=(Code.RATE_LIMITED,))
async def away(ctx: Context, message: str) -> Ok:
    """Mark yourself away with a message (direct messages answer with it); alone, be back."""
    if len(message) > AWAY_MAX:
        raise ChatError(Code.BAD_ARGUMENTS, f"an away message has at most {AWAY_MAX} "
                                            f"characters, not {len(message)}.")
    presence = ctx.services.presence
    was = presence.away(ctx.user)
    if message != was:
        # A change is shown to every IRC client with away-notify sharing a room with
        # the user, as a message is: it takes a message token (rate-limited without).
        charged = ctx.services.protection.charge_message(ctx.session, None)
        if charged is not None:
            await charged
    presence.set_away(ctx.user, message)
    if message:
        return ok(f"You are away: {message}. /away alone brings you back.", away=message)
    return ok("You are back." if was else "You were not away.", away=None)


@command("nick", Text("name", optional=True, default=""), need=Need.ANY, group=GROUP,
         scope=Scope.READ, errors=(Code.NOT_PERMITTED,))
def nick(ctx: Context, name: str) -> Ok:
    """Names cannot change: a name is its account. Says how to get another."""
    raise ChatError(Code.NOT_PERMITTED,
                    "a chatd name is its account and cannot change. /register <name> "
                    "<password> makes another account; /logout and /login switch between them.")
