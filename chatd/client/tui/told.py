"""A room decision's news, told by its event rather than by its reply too.

A room's decision (a kick, a ban, a mute, a change of role, a topic ...) is told to
the room by its event, which reaches the connection that made it too, labelled as
the command and before its reply (PROTOCOL.md §2, labels): shown both, a person reads
the news twice. The session finds that event among the reply's lines; the reply's
sentence then goes unshown, and what it adds (a ban's end, which the event does not
carry) is said by the event's line.
"""

from __future__ import annotations

from typing import Any, Final

# The commands whose news is an event of the same name.
TOLD_BY_EVENT: Final = frozenset({"kick", "invite", "ban", "unban", "mute", "unmute",
                                  "promote", "demote", "voice", "devoice", "topic"})


def told_by(final: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The event among a reply's ``records`` that told the decision its ``final`` ok
    answers; None when none did (an error; nothing changed, or a topic only shown)."""
    command = final.get("command")
    if final.get("type") != "ok" or command not in TOLD_BY_EVENT:
        return None
    return next((record for record in records
                 if record.get("type") == "event" and record.get("event") == command
                 and _same(record.get("room"), final.get("room"))), None)


def with_reply(event: dict[str, Any], final: dict[str, Any]) -> dict[str, Any]:
    """``event`` carrying what its reply adds: a timed ban's end (a mute's event has
    its own)."""
    if event.get("event") == "ban" and isinstance(final.get("until"), int | float):
        return {**event, "until": final["until"]}
    return event


def reply_needed(final: dict[str, Any], event: dict[str, Any] | None,
                 room_on_screen: str | None) -> bool:
    """Whether the reply's sentence is shown too: when no event told the decision,
    when its room is not the one on screen (the sentence is all that is seen there),
    and for an unban that lifted an IRC guest's ban of the name, which it names."""
    return (event is None or not _same(final.get("room"), room_on_screen)
            or "guest" in (final.get("lifted") or ()))


def _same(name: object, other: object) -> bool:
    return name is not None and other is not None \
        and str(name).casefold() == str(other).casefold()
