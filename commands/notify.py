"""Notifications: list and clear them."""

from __future__ import annotations

from dataclasses import dataclass, replace

from chatd.domain import names
from chatd.domain.events import Notified
from chatd.domain.scopes import Scope
from chatd.errors import ChatError, Code
from chatd.protocol.context import Context, table_time
from chatd.protocol.paging import PAGE, page_read, skipped
from chatd.protocol.params import Choice
from chatd.protocol.params import Context as ParamContext
from chatd.protocol.records import notification_record
from chatd.protocol.registry import command
from chatd.protocol.results import Ok, ok

GROUP = "account"


# No default page: "/notifications clear 2" is refused, not a clear of every page.
NOTIFICATIONS_PAGE = replace(PAGE, default=None)


@dataclass(frozen=True, slots=True)
class Action(Choice):
    """``clear``, where a page number may stand instead: a number nobody took is a
    page out of range, refused as the page (as ``/who 0`` is), not as no "clear"."""

    def refusal(self, ctx: ParamContext, word: str) -> ChatError:
        if names.is_number(word):
            return NOTIFICATIONS_PAGE.refusal(ctx, word)
        return Choice.refusal(self, ctx, word)


@command("notifications", Action("action", optional=True, choices=("clear",)),
         NOTIFICATIONS_PAGE, group=GROUP, scope=Scope.READ)
async def notifications(ctx: Context, action: str | None, page: int | None) -> Ok:
    """List your notifications, the newest page first, or clear them with /notifications
    clear."""
    if action == "clear":
        if page is not None:
            raise ChatError(Code.BAD_ARGUMENTS, "clear takes no page: it clears every "
                                                "notification.")
        cleared = await ctx.services.notifier.clear(ctx.user)
        return ok(f"{cleared} notification{'s' * (cleared != 1)} cleared.", cleared=cleared)
    number, size = page or 1, ctx.services.config.rooms.page_size
    # Read a page from the database, not all of them: a flood of notifications
    # (direct messages while away) would be read whole for every page.
    records, total = await ctx.services.notifier.pending(ctx.user, size, skipped(number, size))
    shown = page_read(records, number, size, total)
    rows = [[table_time(n.created_at), n.kind, n.payload.get("text", "")] for n in records]
    if rows:
        ctx.table(["when (UTC)", "kind", "what"], rows)
    items = [notification_record(Notified(n))["notification"] | {"text": n.payload.get("text", "")}
             for n in records]
    sentence = (f"{total} notification{'s' * (total != 1)}; /notifications clear clears them"
                if total else "No notifications")
    # The newest page is the reading that tells of the dropped ones (once).
    dropped = await ctx.services.notifier.take_dropped(ctx.user) if number == 1 else 0
    told = shown.told(sentence, "/notifications") + _dropped_sentence(
        dropped, ctx.services.notifier.keep)
    return ok(told, notifications=items, dropped=dropped, **shown.fields())


def _dropped_sentence(dropped: int, keep: int) -> str:
    """What the listing adds when the oldest notifications were dropped past the bound."""
    if not dropped:
        return ""
    were = "s were" if dropped != 1 else " was"
    return f" {dropped} older notification{were} dropped (the newest {keep} are kept)."
