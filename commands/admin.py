"""Server administration: useradd, userdel."""

from __future__ import annotations

from chatd.accounts import User
from chatd.context import Context
from chatd.params import Choice, UserRef, Word
from chatd.registry import Ok, command, ok

GROUP = "admin"


@command("useradd", Word("name"), Word("password"), Choice("admin", optional=True,
         choices=("admin",)), server_admin=True, group=GROUP)
async def useradd(ctx: Context, name: str, password: str, admin: str | None) -> Ok:
    """Create an account (add 'admin' to make it a server admin)."""
    user = await ctx.services.accounts.create(name, password, is_admin=admin == "admin")
    await ctx.services.audit.record("account-created", actor=ctx.user.name, target=user.name,
                                    reason="admin" if user.is_admin else "")
    return ok(f"Account {user.name} created{' (server admin)' if user.is_admin else ''}.",
              user=user.name, admin=user.is_admin)


@command("userdel", UserRef("name"), server_admin=True, group=GROUP)
async def userdel(ctx: Context, name: User) -> Ok:
    """Delete an account: it leaves its rooms and its connections are closed."""
    services = ctx.services
    for room in services.rooms.of_user(name):
        await services.rooms.remove(room, name, "leave", actor_name=ctx.user.name,
                                    reason="account deleted")
    for session in list(name.sessions):
        if session is not ctx.session:
            session.send({"type": "notice", "text": "your account was deleted."})
            session.close("account deleted")
        services.presence.logout(session)
    await services.accounts.delete(name)
    await services.audit.record("account-deleted", actor=ctx.user.name, target=name.name)
    return ok(f"Account {name.name} deleted.", user=name.name)
