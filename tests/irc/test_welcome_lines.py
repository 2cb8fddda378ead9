"""The welcome's replies formatted once (002-005, the MOTD) or from counts (LUSERS)
are the lines the general formatter writes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chatd.irc import numerics as n
from chatd.irc.codec import format_line
from chatd.irc.welcome import _counted

_COUNTS = st.lists(st.integers(min_value=0, max_value=10**9).map(str), max_size=3)
# chatd's own words, with the counts put in them: no line break, no leading colon.
_TEXT = st.text(st.characters(whitelist_categories=("L", "N", "Zs"), max_codepoint=0x7ff),
                min_size=1, max_size=80).filter(lambda t: not t.startswith(":"))


@given(_COUNTS, _TEXT, st.sampled_from([n.RPL_LUSEROP, n.RPL_LOCALUSERS, n.RPL_STATSCONN]))
def test_a_reply_of_counts_ends_as_the_general_formatter_writes_it(
        counts: list[str], text: str, numeric: str) -> None:
    head = f":irc.test {numeric} *"
    general = format_line(numeric, "*", *counts, text, source="irc.test")
    assert general == head + _counted(numeric, *counts, text)[2]
