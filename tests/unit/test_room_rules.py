"""The pure room rules: succession and termination (Room.plan_departure / apply_departure)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.domain.room import Departure, Member, Mode, Role, Room
from storage.records import RoomRecord, SanctionRecord

FAST = settings(max_examples=300, deadline=None)
OWN, A, M = Role.OWNER, Role.ADMIN, Role.MEMBER


@dataclass(frozen=True)
class Spec:
    """One member to build: their role and, optionally, since when they hold it."""

    role: Role
    role_since: float | None = None


def build(*specs: Role | Spec) -> Room:
    """A room whose members (ids 1..n) joined in that order, at times 10, 20, 30 ..."""
    room = Room(RoomRecord(1, "r", Mode.OPEN.value, "", 0.0))
    for index, item in enumerate(specs, start=1):
        spec = item if isinstance(item, Spec) else Spec(item)
        joined = 10.0 * index
        since = joined if spec.role_since is None else spec.role_since
        room.members[index] = Member(index, f"u{index}", spec.role, joined, since, seq=index)
    return room


def roles(room: Room) -> dict[int, Role]:
    return {uid: m.role for uid, m in room.members.items()}


def depart(room: Room, user_id: int, now: float = 1000.0) -> Departure:
    departure = room.plan_departure(user_id, now)
    room.apply_departure(departure, now)
    return departure


# -- termination ---------------------------------------------------------------------


def test_the_last_member_leaving_terminates_the_room() -> None:
    room = build(OWN)
    departure = depart(room, 1)
    assert departure.terminate and departure.evicted is None
    assert departure.leaving == [1] and room.members == {}


def test_two_member_room_whose_admin_leaves_is_terminated_and_the_member_evicted() -> None:
    room = build(OWN, M)
    departure = depart(room, 1)
    assert departure.terminate and departure.evicted == 2
    assert departure.role_changes == [] and room.members == {}


def test_two_member_room_whose_plain_admin_leaves_is_terminated() -> None:
    # A (non-owner) admin leaving a member alone: the member is not an admin.
    room = build(M, A)
    departure = depart(room, 2)
    assert departure.terminate and departure.evicted == 1


def test_two_member_room_whose_plain_member_leaves_stays_with_its_owner() -> None:
    room = build(OWN, M)
    departure = depart(room, 2)
    assert not departure.terminate and departure.evicted is None
    assert departure.role_changes == [] and roles(room) == {1: OWN}


def test_two_member_room_whose_admin_member_leaves_stays_with_its_owner() -> None:
    room = build(OWN, A)
    departure = depart(room, 2)
    assert not departure.terminate and roles(room) == {1: OWN}


def test_owner_leaving_a_lone_admin_makes_that_admin_the_owner() -> None:
    room = build(OWN, A)
    departure = depart(room, 1, now=500.0)
    assert not departure.terminate and departure.evicted is None
    assert departure.role_changes == [(2, OWN)]
    assert roles(room) == {2: OWN} and room.members[2].role_since == 500.0


def test_a_lone_remaining_owner_keeps_the_room() -> None:
    room = build(OWN, A, M)
    depart(room, 2)
    departure = depart(room, 3)
    assert not departure.terminate and roles(room) == {1: OWN}


# -- succession ----------------------------------------------------------------------


def test_sole_admin_leaving_three_member_room_hands_it_to_the_earliest_joiner() -> None:
    room = build(OWN, M, M)
    departure = depart(room, 1)
    assert not departure.terminate and departure.evicted is None
    assert departure.role_changes == [(2, OWN)]
    assert roles(room) == {2: OWN, 3: M}


def test_earliest_joiner_is_by_join_order_not_by_id() -> None:
    room = Room(RoomRecord(1, "r", "open", "", 0.0))
    room.members[7] = Member(7, "owner", OWN, 1.0, 1.0, seq=1)
    room.members[9] = Member(9, "early", M, 2.0, 2.0, seq=2)
    room.members[3] = Member(3, "late", M, 3.0, 3.0, seq=5)
    assert room.plan_departure(7, 0.0).role_changes == [(9, OWN)]


def test_join_order_ties_of_time_are_broken_by_sequence() -> None:
    room = Room(RoomRecord(1, "r", "open", "", 0.0))
    room.members[1] = Member(1, "owner", OWN, 5.0, 5.0, seq=1)
    room.members[2] = Member(2, "second", M, 5.0, 5.0, seq=3)
    room.members[3] = Member(3, "first", M, 5.0, 5.0, seq=2)
    assert room.plan_departure(1, 0.0).role_changes == [(3, OWN)]


def test_owner_leaving_with_several_admins_the_longest_held_admin_inherits() -> None:
    # u2 joined first but was made admin last; u4 has held the role the longest.
    room = build(OWN, Spec(A, role_since=300.0), M, Spec(A, role_since=100.0),
                 Spec(A, role_since=200.0))
    departure = depart(room, 1)
    assert departure.role_changes == [(4, OWN)]
    assert roles(room) == {2: A, 3: M, 4: OWN, 5: A}


def mute(room: Room, user_id: int, until: float | None = None) -> None:
    room.mutes[user_id] = SanctionRecord(room.id, user_id, 1, "", 0.0, until)


def test_a_muted_member_inherits_only_when_everyone_else_is_muted_too() -> None:
    # Nobody in the room could lift the mute of its owner: a muted heir comes last.
    room = build(OWN, M, M, M)
    mute(room, 2)
    mute(room, 3, until=500.0)  # over by the time of the departure: not muted
    assert depart(room, 1, now=1000.0).role_changes == [(3, OWN)]
    room = build(OWN, M, M)
    mute(room, 2)
    mute(room, 3)
    assert depart(room, 1).role_changes == [(2, OWN)]


def test_a_muted_admin_inherits_the_ownership_after_the_others() -> None:
    room = build(OWN, Spec(A, role_since=100.0), Spec(A, role_since=200.0), M)
    mute(room, 2)
    assert depart(room, 1).role_changes == [(3, OWN)]


def test_admin_role_ties_are_broken_by_join_order() -> None:
    room = build(OWN, M, Spec(A, role_since=100.0), Spec(A, role_since=100.0))
    assert room.plan_departure(1, 0.0).role_changes == [(3, OWN)]


def test_owner_leaving_with_no_admin_the_earliest_joiner_becomes_owner() -> None:
    room = build(OWN, M, M, M)
    departure = depart(room, 1)
    assert departure.role_changes == [(2, OWN)]
    assert roles(room) == {2: OWN, 3: M, 4: M}


def test_owner_leaving_with_one_admin_and_members_the_admin_inherits() -> None:
    room = build(OWN, M, M, A)
    assert depart(room, 1).role_changes == [(4, OWN)]
    assert roles(room) == {2: M, 3: M, 4: OWN}


def test_a_non_owner_admin_leaving_changes_no_role() -> None:
    room = build(OWN, A, M)
    departure = depart(room, 2)
    assert departure.role_changes == [] and roles(room) == {1: OWN, 3: M}


def test_a_member_leaving_changes_no_role() -> None:
    room = build(OWN, M, M)
    departure = depart(room, 3)
    assert departure.role_changes == [] and not departure.terminate


def test_last_admin_without_owner_passes_the_admin_role_to_the_earliest_joiner() -> None:
    # A room that has somehow no owner: its last admin leaving still leaves an admin.
    room = build(M, A, M)
    departure = depart(room, 2)
    assert not departure.terminate and len(departure.role_changes) == 1
    heir, role = departure.role_changes[0]
    assert heir == 1 and role.rank >= A.rank


def test_plan_departure_changes_nothing_until_applied() -> None:
    room = build(OWN, M)
    before = roles(room)
    room.plan_departure(1, 0.0)
    assert roles(room) == before


def test_set_roles_stamps_role_since() -> None:
    room = build(OWN, M)
    room.set_roles([(2, A)], 77.0)
    assert room.members[2].role is A and room.members[2].role_since == 77.0
    assert room.members[2].is_admin and room.members[1].is_admin
    assert room.owner is room.members[1]
    assert [m.user_id for m in room.admins()] == [1, 2]


@pytest.mark.parametrize(("specs", "leaver", "terminate", "evicted"), [
    ((OWN,), 1, True, None),
    ((OWN, M), 1, True, 2),
    ((OWN, M), 2, False, None),
    ((OWN, A), 1, False, None),
    ((OWN, A), 2, False, None),
    ((OWN, M, M), 1, False, None),
    ((OWN, M, M), 2, False, None),
])
def test_termination_table(specs: tuple[Role, ...], leaver: int, terminate: bool,
                           evicted: int | None) -> None:
    departure = build(*specs).plan_departure(leaver, 0.0)
    assert (departure.terminate, departure.evicted) == (terminate, evicted)


# -- property ------------------------------------------------------------------------


@st.composite
def rooms(draw: st.DrawFn) -> Room:
    """A valid room: one owner, any admins and members, joined in some order."""
    size = draw(st.integers(1, 8))
    owner_at = draw(st.integers(0, size - 1))
    specs: list[Role | Spec] = []
    for index in range(size):
        if index == owner_at:
            specs.append(Spec(OWN, role_since=10.0 * (index + 1)))
            continue
        role = draw(st.sampled_from([A, M]))
        since = draw(st.floats(10.0 * (index + 1), 500.0)) if role is A else None
        specs.append(Spec(role, since))
    return build(*specs)


def check_valid(room: Room) -> None:
    owners = [m for m in room.members.values() if m.role is OWN]
    if len(room.members) >= 2:
        assert len(owners) == 1
        assert room.admins()
    elif len(room.members) == 1:
        assert owners, "a room left with one member keeps it only if it is the owner"


@FAST
@given(rooms(), st.data())
def test_after_any_departure_a_room_has_one_owner_and_an_admin(room: Room,
                                                               data: st.DataObject) -> None:
    leaver = data.draw(st.sampled_from(sorted(room.members)))
    remaining = len(room.members) - 1
    departure = depart(room, leaver)
    assert leaver not in room.members
    if departure.terminate:
        assert room.members == {}
        assert remaining <= 1
    else:
        assert len(room.members) == remaining >= 1
        check_valid(room)


@FAST
@given(rooms(), st.data())
def test_a_room_stays_valid_through_a_series_of_departures(room: Room,
                                                           data: st.DataObject) -> None:
    while room.members:
        leaver = data.draw(st.sampled_from(sorted(room.members)))
        before = dict(roles(room))
        departure = depart(room, leaver)
        # Only the remaining members change roles, and only upwards.
        for user_id, role in departure.role_changes:
            assert user_id in room.members and role.rank > before[user_id].rank
        if departure.terminate:
            assert room.members == {}
            break
        check_valid(room)
