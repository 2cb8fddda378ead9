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


def clusters(text: str) -> Iterator[str]:
    """The grapheme clusters of ``text``, in order; joined, they are ``text``."""
    return iter_graphemes(text)


@lru_cache(maxsize=8192)
def cluster_width(cluster: str) -> int:
    """The cells one grapheme cluster takes: 0, 1 or 2 (2 for emoji presentation).

    A control character measures -1 in wcwidth; text reaches the screen cleaned of
    them (lines.clean), and one left over takes no cell rather than a negative one.
    """
    return max(0, wcswidth(cluster))


def width(text: str) -> int:
    """The cells ``text`` takes on one terminal row."""
    if text.isascii() and text.isprintable():
        return len(text)
    return sum(cluster_width(cluster) for cluster in clusters(text))
