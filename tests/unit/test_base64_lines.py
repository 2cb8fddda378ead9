"""Base64Lines: an upload's base64, however its lines are cut, decodes to its bytes."""

from __future__ import annotations

import base64
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.protocol.upload import Base64Lines


@given(data=st.binary(max_size=200), cuts=st.lists(st.integers(0, 300), max_size=8),
       padded=st.booleans())
def test_any_cut_of_the_text_decodes_to_the_bytes(data: bytes, cuts: list[int],
                                                 padded: bool) -> None:
    text = base64.b64encode(data).decode()
    if not padded:
        text = text.rstrip("=")
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    decoder = Base64Lines()
    got = b"".join(decoder.feed(text[a:b]) for a, b in itertools.pairwise(bounds))
    assert got + decoder.end() == data


@given(good=st.binary(min_size=3, max_size=3),
       bad=st.text(st.characters(blacklist_characters="ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "abcdefghijklmnopqrstuvwxyz0123456789+/="),
                   min_size=1, max_size=3))
def test_a_character_no_base64_has_is_refused_on_its_line(good: bytes, bad: str) -> None:
    decoder = Base64Lines()
    assert decoder.feed(base64.b64encode(good).decode()) == good
    with pytest.raises(ValueError):
        decoder.feed(bad)
