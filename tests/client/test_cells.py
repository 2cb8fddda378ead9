"""The full-screen client's width measure (chatd/client/tui/cells.py) and line wrapping
(paint.wrap): a grapheme cluster takes the cells a terminal draws it in, and a row is
never cut inside one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.layout.mouse_handlers import MouseHandlers
from prompt_toolkit.layout.screen import Screen, WritePosition
from prompt_toolkit.utils import get_cwidth

from chatd.client.tui import cells
from chatd.client.tui.clusterwindow import ClusterWindow
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
# Words of a few clusters between spaces, as a sentence has them.
_WORD = st.lists(st.sampled_from(["a", "b", "\u4e2d", E_ACUTE, FAMILY, FLAG_FR]),
                 min_size=1, max_size=8).map("".join)
_SENTENCES = st.lists(st.one_of(_WORD, st.just("https://example.org/a/long/path")),
                      max_size=20).map(" ".join)


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


@given(text=st.one_of(_SENTENCES, _TEXTS), width=st.integers(min_value=1, max_value=30))
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


def _rows_of(text: str, width: int) -> list[str]:
    rows = wrap([(STYLE, text)], width)
    return ["".join(fragment[1] for fragment in row) for row in rows]


def test_a_long_line_wraps_at_the_spaces_between_words() -> None:
    assert _rows_of("hello wonderful world", 12) == ["hello", "  wonderful", "  world"]
    assert _rows_of("a b c d e f g", 5) == ["a b c", "  d e", "  f g"]


def test_only_a_word_wider_than_a_row_is_cut_at_the_edge() -> None:
    url = "https://example.org/a/very/long/path"
    assert _rows_of(f"see {url} now", 16) == [
        "see https://exam", "  ple.org/a/very", "  /long/path now"]
    # Fourteen cells fit a continued row of sixteen (its indent takes two).
    assert _rows_of("see " + "x" * 14, 16) == ["see", "  " + "x" * 14]


def test_the_lines_of_a_message_keep_their_own_indent() -> None:
    assert _rows_of("first\n    second line here", 14) == [
        "first", "    second", "  line here"]


def _words_and_cuts(text: str, width: int) -> tuple[list[tuple[int, int]], list[int]]:
    """Where the words of ``text`` are (cluster index ranges of its non-space runs)
    and the cluster indexes the rows start at, when they continue a line."""
    found = list(cells.clusters(text))
    words: list[tuple[int, int]] = []
    for index, cluster in enumerate(found):
        if cluster in (" ", "\n"):
            continue
        if words and words[-1][1] == index:
            words[-1] = (words[-1][0], index + 1)
        else:
            words.append((index, index + 1))
    cuts, at = [], 0
    for number, row in enumerate(wrap([(STYLE, text)], width)):
        continued = bool(number) and row[:1] == [("", CONTINUATION)]
        shown = list(cells.clusters(_row_text(row, number == 0)))
        while at < len(found) and found[at] in (" ", "\n") and (not shown or
                                                               shown[0] != found[at]):
            at += 1  # the newline, or a space dropped at the cut
        if continued:
            cuts.append(at)
        at += len(shown)
    return words, cuts


@given(text=st.one_of(_SENTENCES, _TEXTS), width=st.integers(min_value=4, max_value=30))
def test_a_word_is_cut_only_when_wider_than_a_row(text: str, width: int) -> None:
    words, cuts = _words_and_cuts(text, width)
    found = list(cells.clusters(text))
    for cut in cuts:
        for start, end in words:
            if start < cut < end:  # the row starts inside this word
                assert cells.width("".join(found[start:end])) > width - len(CONTINUATION), (
                    _rows_of(text, width))


def test_the_conversation_is_drawn_one_cluster_per_cell() -> None:
    control = FormattedTextControl([("class:name", "e"), ("", "\u0301" + FAMILY + "x")])
    screen = Screen()
    ClusterWindow(control).write_to_screen(screen, MouseHandlers(), WritePosition(3, 0, 6, 1),
                                           "", False, None)
    row = screen.data_buffer[0]
    # The accent alone in its fragment is drawn into the cell before it; the family
    # is one cell two columns wide, the x right after it.
    assert [(row[x].char, row[x].width) for x in (3, 4, 6)] == [
        (E_ACUTE, 1), (FAMILY, 2), ("x", 1)]
    assert row[5].char == ""  # covered by the family
