"""Who may do what in a room. Pure rules, checked at the moment an action runs.

- Admins and the owner may invite, answer requests, kick, ban, mute and voice
  members, and change the room's modes (key, limit, moderated, secret, n, t).
- Only the owner may promote, demote, change the mode (who may join) or the
  message rate, hand ownership over, or kick, ban or mute an admin.
- The topic is set by admins, or by any member while the room's topic lock
  (IRC's ``t``) is off.
- Nobody but a server admin acts against the owner.
- Server admins may do anything in any room.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from chatd.domain.names import format_duration
from chatd.domain.room import Role
from chatd.errors import ChatError, Code

if TYPE_CHECKING:
    from chatd.domain.accounts import User
    from chatd.domain.room import Room


class Action(StrEnum):
    KICK = "kick"
    BAN = "ban"
    UNBAN = "unban"
    MUTE = "mute"
    UNMUTE = "unmute"
    PROMOTE = "promote"
    DEMOTE = "demote"
    VOICE = "voice"
    DEVOICE = "devoice"
    INVITE = "invite"
    ACCEPT = "accept"
    DECLINE = "decline"
    REQUESTS = "see requests"
    MODE = "change the mode"
    MODES = "change the room's modes"
    RATELIMIT = "set the message rate"
    TRANSFER = "transfer ownership"
    TOPIC = "set the topic"
    E2E = "change end-to-end encryption"
    AUDIT = "read the audit log"


OWNER_ONLY = frozenset({Action.PROMOTE, Action.DEMOTE, Action.MODE, Action.RATELIMIT,
                        Action.TRANSFER})
# Actions aimed at a member whose own role protects them.
AGAINST_MEMBER = frozenset({Action.KICK, Action.BAN, Action.MUTE, Action.UNMUTE,
                            Action.PROMOTE, Action.DEMOTE, Action.VOICE, Action.DEVOICE})


def needed_role(action: Action) -> Role:
    return Role.OWNER if action in OWNER_ONLY else Role.ADMIN


def administers(user: User, room: Room | None) -> bool:
    """Whether ``user`` is an admin (or the owner) of ``room``, or a server admin: who
    manages what a room holds beside its members (its webhooks, the files shared in
    it). A room that ended (None) is governed by server admins alone."""
    return administering(room.role_of(user.id) if room is not None else None, user.is_admin)


def administering(role: Role | None, server_admin: bool) -> bool:
    """:func:`administers` by the role held in the room (None: not a member), for a
    caller that knows the role another way (the cluster's gate, as its log says)."""
    return server_admin or (role is not None and role.rank >= Role.ADMIN.rank)


def speaks_when_moderated(role: Role | None, server_admin: bool) -> bool:
    """Whether one holding ``role`` in a room (None: not a member) speaks while it is
    moderated: members with voice, room admins and server admins do."""
    return server_admin or (role is not None and role.rank >= Role.VOICE.rank)


def unvoiced(room: str) -> ChatError:
    """The refusal of a message to the moderated room ``room`` from one without voice."""
    return ChatError(Code.MODERATED, f"#{room} is moderated: only members with voice and "
                     "its admins speak.")


def hook_unadministered(hook: str, creator: str, room: str) -> ChatError:
    """The refusal of webhook ``hook``'s post: its creator is no longer an admin of
    ``room``, and a hook posts only with the right its making needed."""
    return ChatError(Code.NOT_PERMITTED, f"{hook} posts only while its creator, {creator}, "
                     f"is an admin of #{room}.")


def refuse_muted(room: Room, user: User, now: float) -> None:
    """Raise ``muted`` (with when it ends) if ``user`` is muted in ``room`` at ``now``."""
    mute = room.muted(user.id, now)
    if mute is None:
        return
    left = "" if mute.until is None else f" for {format_duration(mute.until - now)} more"
    raise ChatError(Code.MUTED, f"you are muted in #{room.name}{left}.", until=mute.until,
                    retry_ms=None if mute.until is None else round((mute.until - now) * 1000))


def refuse_unvoiced(room: Room, user: User) -> None:
    """Raise ``moderated`` if ``room`` is moderated and ``user`` may not speak in it:
    only members with voice, room admins and server admins do."""
    if room.modes.moderated and not speaks_when_moderated(room.role_of(user.id), user.is_admin):
        raise unvoiced(room.name)


def refuse_silenced(room: Room, user: User, now: float) -> None:
    """Raise ``muted`` or ``moderated`` when what ``user`` says in ``room`` at ``now``
    would not reach its members. What holds their messages back holds back the
    rest of what they would say to the room: a typing indicator, IRC's client tags,
    a topic, a leave's reason."""
    refuse_muted(room, user, now)
    refuse_unvoiced(room, user)


def heard(user: User, room: Room, now: float) -> bool:
    """Whether what ``user`` says in ``room`` at ``now`` reaches its members
    (:func:`refuse_silenced` would refuse nothing)."""
    try:
        refuse_silenced(room, user, now)
    except ChatError:
        return False
    return True


def authorize(action: Action, room: Room, actor: User, target: User | None = None) -> None:
    """Raise ``not-permitted`` naming the role needed, unless ``actor`` may act."""
    if target is not None and target.id == actor.id and action in AGAINST_MEMBER:
        raise ChatError(Code.NOT_PERMITTED, f"you cannot {action.value} yourself.")
    if actor.is_admin:
        return
    role = room.role_of(actor.id)
    if action is Action.TOPIC and role is not None and not room.modes.topic_lock:
        return
    needed = needed_role(action)
    if role is None or role.rank < needed.rank:
        who = "the owner" if needed is Role.OWNER else "an admin or the owner"
        raise ChatError(Code.NOT_PERMITTED, f"only {who} of #{room.name} can {action.value}.")
    if target is None or action not in AGAINST_MEMBER:
        return
    target_role = room.role_of(target.id)
    if target_role is Role.OWNER:
        raise ChatError(Code.NOT_PERMITTED,
                        f"only a server admin can {action.value} the owner of #{room.name}.")
    if target_role is Role.ADMIN and role is not Role.OWNER:
        raise ChatError(Code.NOT_PERMITTED,
                        f"only the owner of #{room.name} can {action.value} an admin.")
