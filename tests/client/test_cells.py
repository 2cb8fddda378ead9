"""The full-screen client's width measure (chatd/client/tui/cells.py) and line wrapping
(paint.wrap): a grapheme cluster takes the cells a terminal draws it in, and a row is
never cut inside one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.utils import get_cwidth

from chatd.client.tui import cells
from chatd.client.tui.paint import CONTINUATION, wrap

ZWJ, VS16 = "\u200d", "\ufe0f"
MAN, WOMAN, GIRL, LAPTOP = "\U0001F468", "\U0001F469", "\U0001F467", "\U0001F4BB"
FAMILY = MAN + ZWJ + WOMAN + ZWJ + GIRL
WOMAN_TECHNOLOGIST = WOMAN + ZWJ + LAPTOP
FLAG_FR = "\U0001F1EB\U0001F1F7"  # regional indicators F and R
THUMBS_UP_MEDIUM = "\U0001F44D\U0001F3FD"  # with its skin-tone modifier
RED_HEART = "\u2764" + VS16  # text presentation made emoji
E_ACUTE = "e\u0301"  # a letter and its combining accent
STYLE = "class:text"  # the text's own style: the continuation indent has none

# The pieces clusters are made of, and plain text around them.
_PARTS = st.sampled_from(["a", "b", " ", "-", "\u4e2d", "\n", ZWJ, VS16, "\u0301", MAN, WOMAN,
                          GIRL, LAPTOP, "\u2764", "\U0001F44D", "\U0001F3FD", "\U0001F1EB",
                          "\U0001F1F7", FAMILY, FLAG_FR, "https://example.org/a/long/path"])
_TEXTS = st.lists(_PARTS, max_size=40).map("".join)


@pytest.mark.parametrize(("text", "expected"), [
    (FAMILY, 2), (WOMAN_TECHNOLOGIST, 2), (FLAG_FR, 2), (THUMBS_UP_MEDIUM, 2), (RED_HEART, 2),
    (E_ACUTE, 1), ("\u4e2d", 2), ("abc", 3), ("", 0), (FLAG_FR + "\U0001F1EB", 4),
    (f"{FAMILY} and {FLAG_FR}", 2 + 5 + 2),
])
def test_a_cluster_takes_the_cells_a_terminal_draws(text: str, expected: int) -> None:
    assert cells.width(text) == expected


def test_each_sequence_is_one_cluster() -> None:
    text = FAMILY + WOMAN_TECHNOLOGIST + FLAG_FR + THUMBS_UP_MEDIUM + RED_HEART + E_ACUTE
    assert list(cells.clusters(text)) == [FAMILY, WOMAN_TECHNOLOGIST, FLAG_FR,
                                          THUMBS_UP_MEDIUM, RED_HEART, E_ACUTE]


def test_a_cluster_no_terminal_draws_whole_comes_as_its_parts() -> None:
    # A skin-tone modifier after a letter joins it by Unicode's rules, yet the
    # terminal draws the letter and then the modifier's two cells: a row may end
    # between them, and a narrow one still holds each.
    assert list(cells.clusters("a\U0001F3FD")) == ["a", "\U0001F3FD"]
    assert cells.width("a\U0001F3FD") == 3
    rows = wrap([(STYLE, "aaa\U0001F3FD")], 4)
    assert [cells.width("".join(f[1] for f in row)) for row in rows] == [3, 4]


@given(text=_TEXTS)
def test_the_measure_is_the_sum_of_its_clusters_at_most_two_cells_each(text: str) -> None:
    found = list(cells.clusters(text))
    assert "".join(found) == text
    assert all(0 <= cells.cluster_width(cluster) <= 2 for cluster in found)
    assert cells.width(text) == sum(cells.cluster_width(cluster) for cluster in found)


@given(text=_TEXTS)
def test_the_measure_is_never_wider_than_its_code_points(text: str) -> None:
    # Joining only merges cells; the one exception is VARIATION SELECTOR-16, which
    # asks for the emoji presentation of a one-cell symbol: one cell more.
    assert cells.width(text) <= sum(get_cwidth(char) for char in text) + text.count(VS16)


def _row_text(row: StyleAndTextTuples, first: bool) -> str:
    """A row's text without the indent wrap adds before a continued row."""
    fragments = row[1:] if not first and row and row[0] == ("", CONTINUATION) else row
    return "".join(fragment[1] for fragment in fragments)


def _unwrapped(rows: list[StyleAndTextTuples]) -> list[str]:
    """The clusters the rows show, in order, without the indents wrap added."""
    shown: list[str] = []
    for index, row in enumerate(rows):
        shown += cells.clusters(_row_text(row, index == 0))
    return shown


@given(text=_TEXTS, width=st.integers(min_value=1, max_value=30))
def test_wrapped_rows_fit_and_never_split_a_cluster(text: str, width: int) -> None:
    rows = wrap([(STYLE, text)], width)
    assert all(cells.width("".join(f[1] for f in row)) <= max(width, 4) for row in rows)
    # What the rows show is the text, cluster by cluster: only the newlines (each a
    # row of its own) and spaces where a row was cut may be gone, never part of one.
    shown = _unwrapped(rows)
    wanted = [cluster for cluster in cells.clusters(text) if cluster != "\n"]
    assert [c for c in shown if c != " "] == [c for c in wanted if c != " "]
    assert shown.count(" ") <= wanted.count(" ")


def test_a_row_of_emoji_sequences_fills_the_width() -> None:
    rows = wrap([(STYLE, FAMILY * 10)], 10)
    assert [_row_text(row, i == 0) for i, row in enumerate(rows)] == [
        FAMILY * 5, FAMILY * 4, FAMILY]
