"""Notifications: list and clear them."""

from __future__ import annotations

from chatd.domain.events import Notified
from chatd.domain.scopes import Scope
from chatd.protocol.context import Context, table_time
from chatd.protocol.params import Choice
from chatd.protocol.records import notification_record
from chatd.protocol.registry import command
from chatd.protocol.results import Ok, ok

GROUP = "account"


@command("notifications", Choice("action", optional=True, choices=("clear",)), group=GROUP,
         scope=Scope.READ)
async def notifications(ctx: Context, action: str | None) -> Ok:
    """List your notifications, or clear them with /notifications clear."""
    notifier = ctx.services.notifier
    if action == "clear":
        cleared = await notifier.clear(ctx.user)
        return ok(f"{cleared} notification{'s' * (cleared != 1)} cleared.", cleared=cleared)
    pending, total = await notifier.pending(ctx.user)
    rows = [[table_time(n.created_at), n.kind,
             n.payload.get("text", "")] for n in pending]
    if rows:
        ctx.table(["when (UTC)", "kind", "what"], rows)
    items = [notification_record(Notified(n))["notification"] | {"text": n.payload.get("text", "")}
             for n in pending]
    return ok(_summary(len(pending), total), notifications=items, total=total)


def _summary(shown: int, total: int) -> str:
    if not total:
        return "No notifications."
    said = f"{total} notification{'s' * (total != 1)}"
    if shown < total:
        said += f", the newest {shown} shown"
    return f"{said}; /notifications clear clears them."
