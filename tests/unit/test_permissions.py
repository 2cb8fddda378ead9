"""The permission matrix of chatd.domain.permissions.authorize, table-driven.

Every action x actor (owner, admin, member, non-member, server admin) x target
(owner, admin, member, non-member, self) has an expected allow (Y) or deny (-).
"""

from __future__ import annotations

import dataclasses

import pytest

from chatd.domain.accounts import User
from chatd.domain.permissions import Action, authorize, needed_role, speaks_when_moderated
from chatd.domain.room import Member, Role, Room
from chatd.errors import ChatError, Code
from storage.records import RoomRecord, UserRecord

ACTORS = ("owner", "admin", "member", "stranger", "server-admin")
TARGETS = ("owner", "admin", "member", "stranger", "self")

# Actions against a member, protected by the target's role, that admins may take.
SANCTIONS = (Action.KICK, Action.BAN, Action.MUTE, Action.UNMUTE, Action.VOICE,
             Action.DEVOICE)
# Role changes: the owner's (and server admins') alone.
ROLE_CHANGES = (Action.PROMOTE, Action.DEMOTE)
# Room administration by admins; the target, if any, does not matter.
ADMIN_ROOM = (Action.INVITE, Action.ACCEPT, Action.DECLINE, Action.REQUESTS, Action.TOPIC,
              Action.E2E, Action.AUDIT, Action.UNBAN, Action.MODES)
# Room administration by the owner alone.
OWNER_ROOM = (Action.MODE, Action.RATELIMIT, Action.TRANSFER)

#                       target: owner admin member stranger self
EXPECTED: dict[tuple[Action, ...], dict[str, str]] = {
    SANCTIONS: {
        "owner":        "-     Y     Y      Y        -",
        "admin":        "-     -     Y      Y        -",
        "member":       "-     -     -      -        -",
        "stranger":     "-     -     -      -        -",
        "server-admin": "Y     Y     Y      Y        -",
    },
    ROLE_CHANGES: {
        "owner":        "-     Y     Y      Y        -",
        "admin":        "-     -     -      -        -",
        "member":       "-     -     -      -        -",
        "stranger":     "-     -     -      -        -",
        "server-admin": "Y     Y     Y      Y        -",
    },
    ADMIN_ROOM: {
        "owner":        "Y     Y     Y      Y        Y",
        "admin":        "Y     Y     Y      Y        Y",
        "member":       "-     -     -      -        -",
        "stranger":     "-     -     -      -        -",
        "server-admin": "Y     Y     Y      Y        Y",
    },
    OWNER_ROOM: {
        "owner":        "Y     Y     Y      Y        Y",
        "admin":        "-     -     -      -        -",
        "member":       "-     -     -      -        -",
        "stranger":     "-     -     -      -        -",
        "server-admin": "Y     Y     Y      Y        Y",
    },
}


def _cases() -> list[tuple[Action, str, str, bool]]:
    cases = []
    for actions, rows in EXPECTED.items():
        for action in actions:
            for actor, row in rows.items():
                for target, mark in zip(TARGETS, row.split(), strict=True):
                    cases.append((action, actor, target, mark == "Y"))
    return cases


CASES = _cases()


def _user(user_id: int, name: str, is_admin: bool = False) -> User:
    return User(UserRecord(user_id, name, b"", is_admin, 0.0))


# Room members: 1 owner, 2 and 6 admins, 3 and 7 members; 4, 8 strangers; 5 server admin.
USERS = {
    "owner": _user(1, "owner"), "admin": _user(2, "admin"), "member": _user(3, "member"),
    "stranger": _user(4, "stranger"), "server-admin": _user(5, "root", is_admin=True),
}
OTHER = {"owner": USERS["owner"], "admin": _user(6, "admin2"), "member": _user(7, "member2"),
         "stranger": _user(8, "stranger2")}


def _room() -> Room:
    room = Room(RoomRecord(1, "r", "open", "", 0.0))
    for seq, (user, role) in enumerate([(USERS["owner"], Role.OWNER),
                                        (USERS["admin"], Role.ADMIN),
                                        (USERS["member"], Role.MEMBER),
                                        (OTHER["admin"], Role.ADMIN),
                                        (OTHER["member"], Role.MEMBER)], start=1):
        room.members[user.id] = Member(user.id, user.name, role, float(seq), float(seq), seq)
    return room


def _target(actor: str, target: str) -> User:
    return USERS[actor] if target == "self" else OTHER[target]


def test_the_matrix_covers_every_action_actor_and_target() -> None:
    assert {case[0] for case in CASES} == set(Action)
    assert len(CASES) == len(Action) * len(ACTORS) * len(TARGETS)


@pytest.mark.parametrize(("action", "actor", "target", "allowed"), CASES,
                         ids=[f"{a.name.lower()}-{b}-on-{c}" for a, b, c, _ in CASES])
def test_authorize(action: Action, actor: str, target: str, allowed: bool) -> None:
    room = _room()
    if allowed:
        authorize(action, room, USERS[actor], _target(actor, target))
        return
    with pytest.raises(ChatError) as caught:
        authorize(action, room, USERS[actor], _target(actor, target))
    assert caught.value.code is Code.NOT_PERMITTED


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("actor", ACTORS)
def test_authorize_without_a_target_depends_on_the_actor_alone(action: Action,
                                                                 actor: str) -> None:
    needed = needed_role(action)
    allowed = actor in {"server-admin", "owner"} or (actor == "admin" and needed is Role.ADMIN)
    if allowed:
        authorize(action, _room(), USERS[actor])
    else:
        with pytest.raises(ChatError) as caught:
            authorize(action, _room(), USERS[actor])
        assert caught.value.code is Code.NOT_PERMITTED


@pytest.mark.parametrize(("action", "needed"), [
    *((a, Role.OWNER) for a in (*ROLE_CHANGES, *OWNER_ROOM)),
    *((a, Role.ADMIN) for a in (*SANCTIONS, *ADMIN_ROOM)),
])
def test_needed_role(action: Action, needed: Role) -> None:
    assert needed_role(action) is needed


# The refusal names the role that would have been needed.
@pytest.mark.parametrize(("action", "actor", "target", "named"), [
    (Action.KICK, "member", "member", "an admin or the owner"),
    (Action.BAN, "stranger", "member", "an admin or the owner"),
    (Action.INVITE, "member", "stranger", "an admin or the owner"),
    (Action.PROMOTE, "admin", "member", "the owner"),
    (Action.MODE, "admin", "self", "the owner"),
    (Action.KICK, "admin", "admin", "the owner"),
    (Action.MUTE, "admin", "admin", "the owner"),
    (Action.BAN, "admin", "owner", "a server admin"),
    (Action.DEMOTE, "owner", "self", "yourself"),
])
def test_a_refusal_names_the_role_needed(action: Action, actor: str, target: str,
                                         named: str) -> None:
    with pytest.raises(ChatError) as caught:
        authorize(action, _room(), USERS[actor], _target(actor, target))
    assert named in caught.value.message


def test_a_role_change_is_seen_at_once() -> None:
    room = _room()
    member, target = USERS["member"], OTHER["member"]
    with pytest.raises(ChatError):
        authorize(Action.KICK, room, member, target)
    room.set_roles([(member.id, Role.ADMIN)], 10.0)
    authorize(Action.KICK, room, member, target)
    room.set_roles([(member.id, Role.MEMBER)], 11.0)
    with pytest.raises(ChatError):
        authorize(Action.KICK, room, member, target)


def test_without_the_topic_lock_any_member_sets_the_topic() -> None:
    room = _room()
    room.modes = dataclasses.replace(room.modes, topic_lock=False)
    authorize(Action.TOPIC, room, USERS["member"])
    with pytest.raises(ChatError) as caught:
        authorize(Action.TOPIC, room, USERS["stranger"])
    assert caught.value.code is Code.NOT_PERMITTED
    # The lock is about the topic alone: other admin actions still need the role.
    with pytest.raises(ChatError):
        authorize(Action.INVITE, room, USERS["member"])


def test_a_voiced_member_is_no_admin() -> None:
    room = _room()
    room.members[3].role = Role.VOICE
    assert speaks_when_moderated(room.role_of(3), False) and not room.members[3].is_admin
    assert not speaks_when_moderated(room.role_of(7), False)
    assert not speaks_when_moderated(room.role_of(4), False)
    assert speaks_when_moderated(room.role_of(7), True)  # a server admin
    with pytest.raises(ChatError):
        authorize(Action.KICK, room, USERS["member"], OTHER["member"])
