"""A command's flags may stand anywhere among its words (chatd.protocol.params):
a line reads the same whatever the place of its flags, for the commands declared
with flags, as ``ls -l file`` and ``ls file -l`` do. The text of a rest-of-line
parameter is never searched for flags."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import commands
from chatd.errors import ChatError
from chatd.protocol.params import Flag, Param, Text, Word, parse

TABLE = commands.load()
FAST = settings(max_examples=300, deadline=None)

# The parameters of these commands look nothing up: parsing needs no context.
NO_CONTEXT: Any = None

# Words no parameter of these commands reads as a flag, a scope or a lifetime.
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(
    lambda word: not any(ch.isdigit() for ch in word) and word not in
    {"read", "post", "moderate", "admin", "all"})
FLAG_SPELLINGS = st.sampled_from(["--resume", "--RESUME", "--Resume"])

# (command, its positional words before the flags): each form of each command.
FORMS = st.one_of(
    st.tuples(st.just("auth"), st.lists(NAMES, min_size=0, max_size=1)),
    st.tuples(st.just("login"), st.tuples(NAMES, NAMES).map(list)),
    st.tuples(st.just("login"), st.tuples(NAMES, st.just("--token"), NAMES).map(list)),
    st.tuples(st.just("token"), st.tuples(
        st.just("create"), NAMES,
        st.sampled_from(["read", "read,post", "all", "admin,read"]),
        st.sampled_from(["7d", "1h30m", "30s"])).flatmap(
            lambda words: st.integers(2, len(words)).map(lambda n: list(words[:n])))),
)


def _outcome(command: str, words: list[str]) -> Any:
    """What parsing ``words`` for ``command`` gives: its values, or its refusal."""
    cmd = TABLE.get(command)
    assert cmd is not None
    try:
        return parse(cmd.params, NO_CONTEXT, " ".join(words), cmd.usage)
    except ChatError as exc:
        return (exc.code, exc.message)


def _flag_of(command: str) -> str:
    return "--session" if command == "token" else "--resume"


@FAST
@given(FORMS, st.data())
def test_a_flag_reads_the_same_wherever_it_stands(form: tuple[str, list[str]],
                                                   data: st.DataObject) -> None:
    command, words = form
    flag = data.draw(FLAG_SPELLINGS) if command != "token" else "--session"
    # After a sub-command's word (/token create): the flag is the sub-command's. And
    # a first word "--resume" of /login names its resume form (tests/unit/test_scopes.py).
    first = 0 if command == "auth" else 1
    place = data.draw(st.integers(first, len(words)))
    placed = [*words[:place], flag, *words[place:]]
    last = _outcome(command, [*words, _flag_of(command)])
    assert _outcome(command, placed) == last
    assert not isinstance(last, tuple)  # every such line parses, the flag set
    assert last[_flag_of(command).removeprefix("--")] is True


def test_a_flag_before_a_word_moves_out_and_a_rest_of_line_text_keeps_its_own() -> None:
    params: tuple[Param, ...] = (Word("to"), Flag("loud"), Text("text"))
    assert parse(params, NO_CONTEXT, "--loud bob hi --loud there", "/x") == \
        {"to": "bob", "loud": True, "text": "hi --loud there"}
    assert parse(params, NO_CONTEXT, "bob hi --loud", "/x") == \
        {"to": "bob", "loud": False, "text": "hi --loud"}
