"""What users write, as chromium draws it: right-to-left text reads in its own
direction, on a page whose own words run left to right."""

from __future__ import annotations

from typing import Any

from tests.web.browser.conftest import Daemon, screenshot
from tests.web.browser.pages import enter_room, register, see

# Where the first ``mark`` is drawn in the first element of ``selector`` holding
# ``holding`` (in its first text node), as a fraction of that element's width: 0 is
# its left edge, 1 its right.
_PLACE_OF = """([selector, holding, mark]) => {
    const node = Array.from(document.querySelectorAll(selector))
        .find((n) => n.textContent.includes(holding));
    const text = node.firstChild;
    const at = text.textContent.indexOf(mark);
    const range = document.createRange();
    range.setStart(text, at);
    range.setEnd(text, at + mark.length);
    const box = node.getBoundingClientRect();
    const drawn = range.getBoundingClientRect();
    return (drawn.left + drawn.width / 2 - box.left) / box.width;
}"""


async def place_of(page: Any, selector: str, holding: str, mark: str) -> float:
    return float(await page.evaluate(_PLACE_OF, [selector, holding, mark]))


async def test_right_to_left_text_reads_in_its_own_direction(daemon: Daemon,
                                                             browser: Any) -> None:
    alice = await daemon.tcp_user("alice")
    await alice.command("/create lobby")
    topic = "ברוכים הבאים!"
    await alice.command(f"/topic lobby {topic}")
    dave = await browser("dave")
    await register(dave, daemon.url, "dave")
    await enter_room(dave, "/join lobby", "lobby")
    question = "שלום, מה נשמע?"
    await alice.command(f"/say lobby {question}")
    await alice.command("/me אומר שלום.")
    await see(dave, question)
    await see(dave, "אומר")
    # A Hebrew sentence starts at its right and ends at its left, where its final
    # mark is drawn: in a message, an action and the topic alike.
    said = "#log li.message .text"
    assert await place_of(dave, said, question, "?") < await place_of(dave, said, question, "שלום")
    assert await place_of(dave, said, "אומר", ".") < await place_of(dave, said, "אומר", "אומר")
    await dave.locator("#view-topic").filter(has_text=topic).wait_for()
    assert (await place_of(dave, "#view-topic", topic, "!")
            < await place_of(dave, "#view-topic", topic, "ברוכים"))
    await screenshot(dave, "right-to-left")
    assert dave.script_errors == []
