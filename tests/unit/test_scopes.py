"""Scopes and the parameter types of this issue: parsing, storage form, descriptions."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.domain.scopes import (
    ALL_SCOPES,
    Scope,
    listed,
    loaded,
    looks_like_scopes,
    parse_scopes,
    shown,
    stored,
)
from chatd.errors import ChatError, Code
from chatd.protocol.params import Flag, Scopes, Secret, Word, parse

CTX: Any = SimpleNamespace(services=None, session=None)


@given(st.sets(st.sampled_from(list(Scope)), min_size=1))
def test_scopes_round_trip_through_every_form(chosen: set[Scope]) -> None:
    scopes = frozenset(chosen)
    assert loaded(stored(scopes)) == scopes
    assert parse_scopes(shown(scopes)) == scopes
    assert parse_scopes(shown(scopes).upper()) == scopes
    assert looks_like_scopes(shown(scopes))
    assert listed(scopes) == [s.value for s in Scope if s in scopes]


def test_all_and_refusals() -> None:
    assert parse_scopes("all") == ALL_SCOPES and looks_like_scopes("ALL")
    assert not looks_like_scopes("mybot") and not looks_like_scopes("read,")
    with pytest.raises(ChatError) as refused:
        parse_scopes("read,write")
    assert refused.value.code is Code.BAD_ARGUMENTS and "read, post" in refused.value.message
    assert loaded("read future-scope") == {Scope.READ}  # an unknown stored word grants nothing


PARAMS = (Word("name"), Secret("password"), Secret("token", optional=True), Flag("resume"))


@pytest.mark.parametrize(("line", "expected"), [
    ("alice pw", ("alice", "pw", None, False)),
    ("alice pw --resume", ("alice", "pw", None, True)),
    ("alice --token t --RESUME", ("alice", "--token", "t", True)),
    ("--resume tok", ("--resume", "tok", None, False)),
    ("alice --pw", ("alice", "--pw", None, False)),
])
def test_secrets_leave_flags_to_the_flag(line: str, expected: tuple[Any, ...]) -> None:
    values = parse(PARAMS, CTX, line, "usage")
    assert tuple(values[p.name] for p in PARAMS) == expected


def test_a_wrong_flag_is_refused_with_the_flag_named() -> None:
    with pytest.raises(ChatError) as refused:
        parse(PARAMS, CTX, "alice pw t --nope", "usage")
    assert 'expected --resume, not "--nope"' in refused.value.message


def test_an_optional_scopes_parameter_takes_only_scope_lists() -> None:
    params = (Scopes("scopes", optional=True), Word("rest", optional=True))
    assert parse(params, CTX, "read,post", "u")["scopes"] == {Scope.READ, Scope.POST}
    assert parse(params, CTX, "mybot", "u") == {"scopes": None, "rest": "mybot"}
    assert parse((Scopes("scopes"),), CTX, "all", "u")["scopes"] == ALL_SCOPES


def test_descriptions() -> None:
    assert Flag("resume").describe() == {"name": "resume", "type": "flag", "optional": True,
                                         "rest": False}
    assert Flag("resume").usage == "[--resume]"
    assert Secret("token").describe()["type"] == "secret"
    assert Scopes("scopes").describe()["choices"] == ["read", "post", "moderate", "admin"]
