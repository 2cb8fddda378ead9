"""How many terminal cells text takes, one grapheme cluster at a time.

A terminal draws a grapheme cluster (what a reader sees as one character) in one
cell or two, however many code points make it: a family joined by ZERO WIDTH
JOINERs, a flag of two regional indicators, a thumbs-up with its skin tone, a
heart with VARIATION SELECTOR-16, an ``e`` with its combining accent. Summing
the code points' widths, as prompt_toolkit's ``get_cwidth`` does, counts the
family as six cells and the flag as four, and every cell after them on the row
drifts. wcwidth (which prompt_toolkit itself measures with) splits text into
clusters by Unicode's rules (UAX #29) and measures each as terminals draw it.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from wcwidth import iter_graphemes, wcswidth

# No glyph a terminal draws is wider than this.
WIDEST = 2


def clusters(text: str) -> Iterator[str]:
    """The grapheme clusters of ``text``, in order; joined, they are ``text``.

    A cluster measured wider than WIDEST is no glyph the terminal draws whole (a
    skin-tone modifier after a letter: a letter, then the modifier's own two cells),
    so it comes as those parts, each of at most two cells, and a row may end
    between them.
    """
    for cluster in iter_graphemes(text):
        if cluster_width(cluster) <= WIDEST:
            yield cluster
        else:
            yield from _parts(cluster)


def _parts(cluster: str) -> Iterator[str]:
    """Each code point of ``cluster`` with the ones of no width after it."""
    part = ""
    for char in cluster:
        if part and cluster_width(char) > 0:
            yield part
            part = ""
        part += char
    yield part


@lru_cache(maxsize=8192)
def cluster_width(cluster: str) -> int:
    """The cells one grapheme cluster takes: 2 for an emoji presentation, 1 for a
    letter and its accents, 0 for marks alone.

    A control character measures -1 in wcwidth; text reaches the screen cleaned of
    them (lines.clean), and one left over takes no cell rather than a negative one.
    """
    return max(0, wcswidth(cluster))


def width(text: str) -> int:
    """The cells ``text`` takes on one terminal row."""
    if text.isascii() and text.isprintable():
        return len(text)
    return sum(cluster_width(cluster) for cluster in clusters(text))
