"""Server administration: useradd, userdel, the live feed, figures, broadcasts."""

from __future__ import annotations

from typing import Any

from chatd.domain.accounts import User
from chatd.domain.scopes import Scope
from chatd.errors import Code
from chatd.protocol.context import Context
from chatd.protocol.params import Choice, Text, UserRef, Word
from chatd.protocol.registry import command
from chatd.protocol.results import Ok, ok

GROUP = "admin"


@command("useradd", Word("name"), Word("password"), Choice("admin", optional=True,
         choices=("admin",)), server_admin=True, group=GROUP,
         scope=Scope.ADMIN, errors=(Code.NAME_TAKEN, Code.INVALID_NAME))
async def useradd(ctx: Context, name: str, password: str, admin: str | None) -> Ok:
    """Create an account (add 'admin' to make it a server admin)."""
    user = await ctx.services.accounts.create(name, password, is_admin=admin == "admin",
                                              actor=ctx.user.name)
    return ok(f"Account {user.name} created{' (server admin)' if user.is_admin else ''}.",
              user=user.name, admin=user.is_admin)


@command("userdel", UserRef("name"), server_admin=True, group=GROUP, scope=Scope.ADMIN)
async def userdel(ctx: Context, name: User) -> Ok:
    """Delete an account: it leaves its rooms and its connections are closed."""
    await ctx.services.presence.delete_account(name, actor=ctx.user.name, keep=ctx.session)
    return ok(f"Account {name.name} deleted.", user=name.name)


@command("adminfeed", Choice("state", choices=("on", "off")), server_admin=True, group=GROUP)
def adminfeed(ctx: Context, state: str) -> Ok:
    """Follow the audit log and who comes online, live (notices with audit or presence)."""
    feed = ctx.services.admin_feed
    if state == "on":
        changed = feed.follow(ctx.session)
        sentence = "You follow the audit log and presence live; /adminfeed off stops it."
    else:
        changed = feed.unfollow(ctx.session)
        sentence = "You no longer follow the audit log and presence."
    return ok(sentence, following=state == "on", changed=changed)


# At most this many names in /stats's list of who is online (the count is exact).
ONLINE_SHOWN = 500


@command("stats", server_admin=True, group=GROUP)
def stats(ctx: Context) -> Ok:
    """The server's key figures: connections, users online, message rate, storage lag."""
    services = ctx.services
    figures = services.stats
    online = sorted((u for u in services.accounts.all() if u.online),
                    key=lambda u: u.name.casefold())
    result: dict[str, Any] = {
        "uptime": round(services.clock.time() - services.started_at, 3),
        "connections": len(services.presence.sessions),
        "users_online": services.presence.users_online,
        "users": services.accounts.count, "rooms": services.rooms.count,
        "messages": figures.messages,
        "messages_per_second": round(figures.messages_per_second, 3),
        "deliveries": figures.deliveries, "loop_lag": figures.loop_lag,
        "storage_pending": figures.storage_pending,
        "storage_flush_seconds": figures.flush_seconds,
        "online": [{"user": u.name, "connections": u.connections, "admin": u.is_admin}
                   for u in online[:ONLINE_SHOWN]],
        "followers": services.admin_feed.followers}
    ctx.table(("figure", "value"), [(k, shown_figure(k, v)) for k, v in result.items()
                                    if k != "online"], right=(1,))
    names = ", ".join(u.name for u in online[:ONLINE_SHOWN])
    return ok(f"{len(online)} online: {names}." if online else "Nobody is online.", **result)


def shown_figure(key: str, value: float) -> str:
    """A /stats figure as text mode shows it: rounded, with its unit (JSON keeps the
    raw number)."""
    if key == "uptime":
        return _span(value)
    if key in ("loop_lag", "storage_flush_seconds"):
        return f"{value * 1000:.1f} ms"
    if key == "messages_per_second":
        return f"{value:.1f}/s"
    return str(value)


def _span(seconds: float) -> str:
    """``3d 4h``, ``5m 3s``, ``42s``: the largest unit of a duration and the next."""
    left = round(seconds)
    counts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, left = divmod(left, size)
        counts.append((count, unit))
    first = next((i for i, (count, _) in enumerate(counts) if count), len(counts) - 1)
    return " ".join(f"{count}{unit}" for count, unit in counts[first:first + 2]
                    if count or unit == counts[first][1])


@command("broadcast", Text("text"), server_admin=True, group=GROUP)
async def broadcast(ctx: Context, text: str) -> Ok:
    """Send a notice to every connection, logged in or not, on every node of a
    cluster (as chatctl broadcast)."""
    sent = ctx.services.presence.broadcast(text, ctx.session, ctx.label)
    await ctx.services.audit.record("broadcast", ctx.user.name, reason=text)
    cluster = ctx.services.config.cluster
    where = " on this node; every other node sends it to its own" \
        if cluster.enabled and cluster.redis else ""
    return ok(f"Sent to {sent} connection{'s' * (sent != 1)}{where}.", sessions=sent)
