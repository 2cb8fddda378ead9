"""Mode strings and what they do to a room's modes (chatd.domain.modes): pure, no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.domain.modes import (
    KEY_MAX,
    LIMIT_MAX,
    ModeChange,
    RoomModes,
    Takes,
    apply_changes,
    format_changes,
    parse_mode_string,
    valid_key,
    valid_limit,
)
from chatd.errors import ChatError, Code

IRC = {"b": Takes.ALWAYS, "k": Takes.ALWAYS, "o": Takes.ALWAYS, "v": Takes.ALWAYS,
       "l": Takes.ON_SET}
LETTERS = "bklmnostvRi"
WORDS = st.text(alphabet="abcxyz019", min_size=1, max_size=6)
SPECS = st.text(alphabet=LETTERS + "+-", max_size=12)


def test_a_mode_string_hands_arguments_in_order() -> None:
    changes, left = parse_mode_string("+kl-m+v", ["pw", "10", "bob", "extra"], IRC)
    assert changes == [ModeChange(True, "k", "pw"), ModeChange(True, "l", "10"),
                       ModeChange(False, "m"), ModeChange(True, "v", "bob")]
    assert left == ["extra"]
    # -l takes no argument; -k does (IRC's CHANMODES type B); missing ones are None.
    assert parse_mode_string("-lk", ["pw"], IRC)[0] == [ModeChange(False, "l"),
                                                        ModeChange(False, "k", "pw")]
    assert parse_mode_string("+b", [], IRC)[0] == [ModeChange(True, "b")]
    assert parse_mode_string("m", [], IRC)[0] == [ModeChange(True, "m")]


@given(SPECS, st.lists(WORDS, max_size=8))
def test_parsing_uses_each_argument_once_in_order(spec: str, arguments: list[str]) -> None:
    changes, left = parse_mode_string(spec, arguments, IRC)
    used = [c.argument for c in changes if c.argument is not None]
    assert used + left == arguments
    assert [c.letter for c in changes] == [ch for ch in spec if ch not in "+-"]
    for change in changes:
        takes = IRC.get(change.letter)
        if change.argument is not None:
            assert takes is Takes.ALWAYS or (takes is Takes.ON_SET and change.on)


@given(st.lists(st.builds(ModeChange, st.booleans(), st.sampled_from(LETTERS),
                          st.none() | WORDS), max_size=8))
def test_a_formatted_mode_string_parses_back(changes: list[ModeChange]) -> None:
    # Arguments only where parsing would give them back (every letter takes one here).
    changes = [ModeChange(c.on, c.letter, c.argument) for c in changes if c.argument]
    spec, arguments = format_changes(changes)
    takes = dict.fromkeys(LETTERS, Takes.ALWAYS)
    assert parse_mode_string(spec, arguments, takes) == (changes, [])


@given(st.lists(st.sampled_from(["+k", "-k", "+l", "-l", "+m", "-m", "+s", "-s", "+n", "-n",
                                 "+t", "-t"]), max_size=10))
def test_applying_changes_is_applying_them_one_by_one(signed: list[str]) -> None:
    changes = [ModeChange(s[0] == "+", s[1], {"k": "pw", "l": "7"}.get(s[1]) if s[0] == "+"
                          else None) for s in signed]
    state, effective = apply_changes(RoomModes(), changes)
    step = RoomModes()
    for change in changes:
        step = apply_changes(step, [change])[0]
    assert state == step
    # Only real changes are reported, and replaying them gives the same state.
    assert apply_changes(RoomModes(), effective)[0] == state
    assert len(effective) <= len(changes)
    letters = [c.letter for c in effective]
    assert len(letters) == len(set(letters))  # one change per letter, at most


def test_only_what_differs_in_the_end_is_reported() -> None:
    keyed = RoomModes(key="pw")
    assert apply_changes(RoomModes(), [ModeChange(True, "k", "pw"), ModeChange(False, "k")]
                         ) == (RoomModes(), [])
    assert apply_changes(RoomModes(), [ModeChange(True, "m"), ModeChange(False, "m")]
                         ) == (RoomModes(), [])
    state, effective = apply_changes(RoomModes(), [
        ModeChange(True, "k", "a"), ModeChange(True, "m"), ModeChange(True, "k", "b")])
    assert state == RoomModes(key="b", moderated=True)
    assert effective == [ModeChange(True, "m"), ModeChange(True, "k", "b")]
    # A key cleared and set again to the same: nothing to tell.
    assert apply_changes(keyed, [ModeChange(False, "k"), ModeChange(True, "k", "pw")]
                         ) == (keyed, [])


def test_apply_reports_the_argument_each_change_stands_for() -> None:
    state, effective = apply_changes(RoomModes(), [
        ModeChange(True, "k", "pw"), ModeChange(True, "l", "0010"), ModeChange(True, "n"),
        ModeChange(False, "t"), ModeChange(True, "m")])
    assert state == RoomModes(key="pw", limit=10, moderated=True, topic_lock=False)
    assert [c.signed for c in effective] == ["+k", "+l", "-t", "+m"]
    assert effective[1].argument == "10"
    assert state.letters() == "nklm" and state.arguments() == ["pw", "10"]
    assert state.arguments(show_key=False) == ["<key>", "10"]
    cleared, undone = apply_changes(state, [ModeChange(False, "k", "whatever"),
                                            ModeChange(False, "l")])
    assert (cleared.key, cleared.limit) == (None, None)
    assert undone == [ModeChange(False, "k"), ModeChange(False, "l")]


@pytest.mark.parametrize("key", [None, "", "two words", "a,b", ":x", "x" * (KEY_MAX + 1),
                                 "bell\x07"])
def test_bad_keys_are_refused(key: str | None) -> None:
    with pytest.raises(ChatError) as caught:
        valid_key(key)
    assert caught.value.code is Code.BAD_ARGUMENTS


@pytest.mark.parametrize("limit", [None, "", "0", "-1", "1.5", "ten", "٣",
                                   str(LIMIT_MAX + 1), "9" * 5000])
def test_bad_limits_are_refused(limit: str | None) -> None:
    with pytest.raises(ChatError) as caught:
        valid_limit(limit)
    assert caught.value.code is Code.BAD_ARGUMENTS


def test_a_bad_argument_changes_nothing() -> None:
    with pytest.raises(ChatError):
        apply_changes(RoomModes(), [ModeChange(True, "m"), ModeChange(True, "l", "x")])
    with pytest.raises(ValueError):
        apply_changes(RoomModes(), [ModeChange(True, "v", "bob")])
