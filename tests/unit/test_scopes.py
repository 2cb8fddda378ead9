"""Scopes and the parameter types of this issue: parsing, storage form, descriptions."""

from __future__ import annotations

import secrets
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

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
from chatd.domain.tokens import PREFIX, looks_like_token
from chatd.errors import ChatError, Code
from chatd.irc.channels import topic_scope
from chatd.irc.modes import mode_scope
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


# As /login's: a first word "--resume" names the resume form.
PARAMS = (Word("name", names_form=True), Secret("password"), Secret("token", optional=True),
          Flag("resume"))


@pytest.mark.parametrize(("line", "expected"), [
    ("alice pw", ("alice", "pw", None, False)),
    ("alice pw --resume", ("alice", "pw", None, True)),
    ("alice --token t --RESUME", ("alice", "--token", "t", True)),
    ("--resume tok", ("--resume", "tok", None, False)),
    ("alice --pw", ("alice", "--pw", None, False)),
    ("alice --resume pw", ("alice", "pw", None, True)),
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


@given(st.binary(min_size=32, max_size=32))
def test_every_token_the_server_makes_has_the_token_form(random: bytes) -> None:
    """A login that takes a password or a token (IRC's PASS and SASL) tells them
    apart by this form alone: each token made has it, and passwords rarely would."""
    with patch("chatd.domain.tokens.secrets.token_bytes", return_value=random):
        made = PREFIX + secrets.token_urlsafe(32)
    assert looks_like_token(made)
    assert not looks_like_token(made[:-1]) and not looks_like_token(made + "x")
    assert not looks_like_token("chatd_" + "!" * 43)
    assert not looks_like_token("correct-horse") and not looks_like_token("chatdr_" + "a" * 43)


@pytest.mark.parametrize(("params", "scope"), [
    (("#room",), Scope.READ), (("#room", "b"), Scope.READ), (("#room", "+b"), Scope.READ),
    (("nick", "+B"), Scope.READ), (("#room", "+b", "bob"), Scope.MODERATE),
    (("#room", "-k"), Scope.MODERATE), (("#room", "+o", "bob"), Scope.MODERATE)])
def test_what_mode_needs_of_a_token(params: tuple[str, ...], scope: Scope) -> None:
    assert mode_scope(params) is scope


def test_what_topic_needs_of_a_token() -> None:
    assert topic_scope(("#room",)) is Scope.READ
    assert topic_scope(("#room", "new topic")) is Scope.MODERATE
