"""IRC masks: one matcher for WHO, LIST and MODE +b (RFC 2812 §2.5), checked against
a plain reference, then through the socket."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.irc.masks import Mask, has_wildcards, irc_lower, matches
from tests.irc.conftest import IrcFactory
from tests.irc.helpers import IrcClient

# Letters in both cases, the look-alike Kelvin sign, the wildcards, the escape and
# the brackets a shell's glob would read as a class.
_CHARS = "aAbBkK\u212a[]!*?\\-^"


def _reference(mask: str, name: str) -> bool:
    """The rule as the spec words it, made a regular expression: ``*`` any run, ``?``
    one character, ``\\`` makes the next of ``*?\\`` itself; ASCII letters alone fold."""
    fold = {chr(c): chr(c + 32) for c in range(ord("A"), ord("Z") + 1)}
    lower = "".join(fold.get(c, c) for c in name)
    parts, index = [], 0
    while index < len(mask):
        char = mask[index]
        if char == "\\" and index + 1 < len(mask) and mask[index + 1] in "*?\\":
            parts.append(re.escape(fold.get(mask[index + 1], mask[index + 1])))
            index += 2
            continue
        parts.append(".*" if char == "*" else "." if char == "?"
                     else re.escape(fold.get(char, char)))
        index += 1
    return re.fullmatch("".join(parts), lower, re.DOTALL) is not None


@settings(max_examples=400, deadline=None)
@given(st.text(_CHARS, max_size=10), st.text(_CHARS, max_size=12))
def test_the_matcher_agrees_with_the_reference(mask: str, name: str) -> None:
    assert matches(mask, name) == _reference(mask, name)


@settings(max_examples=200, deadline=None)
@given(st.text(_CHARS.replace("*", "").replace("?", "").replace("\\", ""), max_size=12))
def test_a_name_is_its_own_mask_in_any_ascii_case(name: str) -> None:
    assert Mask(name).matches(name) and Mask(name.upper()).matches(irc_lower(name))
    assert not has_wildcards(name)


def test_brackets_are_themselves_and_case_is_ascii() -> None:
    assert matches("[x]*", "[x]bot") and not matches("[x]*", "xavier")
    assert matches("[", "[") and matches("*]", "a]")
    assert matches("BOB*", "bobby") and not matches("\u212a*", "kate")
    assert matches("a\\*", "a*") and not matches("a\\*", "ab")
    assert not has_wildcards("a\\*b\\?")


def test_many_stars_take_no_exponential_time() -> None:
    assert not matches("*a" * 200 + "b", "a" * 400)


async def _who(client: IrcClient, mask: str) -> list[str]:
    client.send(f"WHO {mask}")
    return [m.params[5] for m in await client.until("315") if m.command == "352"]


async def test_who_masks_read_brackets_as_themselves(irc: IrcFactory) -> None:
    """fnmatch read ``[x]*`` as "x then anything": a mask's brackets are literal."""
    bob = await irc("bob")
    await irc("xavier")
    await irc("kate")
    assert await _who(bob, "x*") == ["xavier"]
    assert await _who(bob, "[x]*") == []
    assert await _who(bob, "[*") == []
    assert await _who(bob, "\u212a*") == []  # CASEMAPPING=ascii: not kate
    assert await _who(bob, "KAT?") == ["kate"]


async def test_list_masks_read_brackets_as_themselves(irc: IrcFactory) -> None:
    bob = await irc("bob")
    bob.send("JOIN #dev,#ops")
    for _ in range(2):
        await bob.expect("366")

    async def listed(query: str) -> list[str]:
        bob.send(f"LIST {query}")
        return sorted(m.params[1] for m in await bob.until("323") if m.command == "322")

    assert await listed("#[d]ev") == []
    assert await listed("#[do]*") == []
    assert await listed("!#[d]*") == ["#dev", "#ops"]
    assert await listed("#D?V") == ["#dev"]


async def test_a_ban_mask_folds_ascii_case_only(irc: IrcFactory) -> None:
    alice, kate = await irc("alice"), await irc("kate")
    alice.send("JOIN #m")
    await alice.expect("366")
    kate.send("JOIN #m")
    await kate.expect("366")
    alice.send("MODE #m +b \u212aat?!*@*")  # a Kelvin sign, not a K
    assert (await alice.expect("400", "MODE")).params[1:] == (
        "MODE", "a ban names one user: +b nick")
    alice.send("MODE #m +b KAT?!*@*")
    assert (await alice.expect("MODE")).params == ("#m", "+b", "kate!*@*")
