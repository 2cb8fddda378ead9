"""Server administration: useradd, userdel."""

from __future__ import annotations

from chatd.domain.accounts import User
from chatd.domain.scopes import Scope
from chatd.errors import Code
from chatd.protocol.context import Context
from chatd.protocol.params import Choice, UserRef, Word
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
