"""What marks a line in the web client beyond its text, in chromium: a line that names
the person logged in, an error line; each seen without its colour, and heard."""

from __future__ import annotations

from typing import Any

from tests.web.browser.conftest import Daemon, screenshot
from tests.web.browser.pages import enter_room, register, see, type_line
from tests.web.browser.test_accessibility import THEME_COLOURS, contrast

# How a line of the log is drawn: its left bar and its sender's weight.
LINE_LOOK = """(node) => ({
    bar: getComputedStyle(node).borderLeftColor,
    barWidth: parseFloat(getComputedStyle(node).borderLeftWidth),
    senderWeight: Number(getComputedStyle(node.querySelector(".from")).fontWeight),
})"""


async def test_a_line_naming_you_is_marked_counted_and_heard(daemon: Daemon, browser: Any) -> None:
    page = await browser("ann")
    await register(page, daemon.url, "ann")
    await enter_room(page, "/create alpha", "alpha")
    await enter_room(page, "/create beta", "beta")
    bob = await daemon.tcp_user("bob")
    await bob.command("/join alpha")
    await bob.command("/join beta")
    # The terminal client's rule: the name as a word, in any case, "@" before it or not.
    for line in ("hello Ann, look", "joanne and ann-marie are here", "@ANN: and you?"):
        await bob.command(f"/say alpha {line}")
    await page.get_by_role("button", name="#alpha, 3 unread").wait_for()
    assert await page.get_by_role("button", name="#alpha, 3 unread, 2 mentioning you").count() == 1
    await page.get_by_role("button", name="#alpha, 3 unread").click()
    await see(page, "and you?")
    await type_line(page, "ann is here")
    await see(page, "ann is here")
    marked = page.locator("#log li.message.mention")
    assert await marked.locator(".text").all_inner_texts() == ["hello Ann, look", "@ANN: and you?"]
    plain = page.locator("#log li.message").filter(has_text="joanne")
    # Heard: the line's own words say it, when read and when announced as it comes.
    assert "(mentions you)" in await marked.first.text_content()
    assert "mentions you" not in await plain.text_content()
    await bob.command("/say alpha one more for ann")
    await see(page, "one more for ann")
    assert await page.locator("#announcer").filter(
        has_text="bob: one more for ann (mentions you)").count() == 1
    # Seen without its colour: a bar at its side and a heavier name; the bar reads 3:1.
    for theme in ("light", "dark"):
        await page.evaluate(f"document.documentElement.dataset.theme = '{theme}'")
        colours = await page.evaluate(THEME_COLOURS)
        look = await marked.first.evaluate(LINE_LOOK)
        usual = await plain.evaluate(LINE_LOOK)
        assert look["barWidth"] >= 3 and usual["barWidth"] == 0, theme
        assert look["senderWeight"] > usual["senderWeight"], theme
        for behind in ("bg", "panel"):
            assert contrast(look["bar"], colours[behind]) >= 3, (theme, behind)
        await screenshot(page, f"client-mention-{theme}")
    assert page.script_errors == []


async def test_an_error_line_says_it_is_one_in_words(daemon: Daemon, browser: Any) -> None:
    page = await browser("ann")
    await register(page, daemon.url, "ann")
    # The page's own refusal, before any room is open, and the server's, in a room.
    await type_line(page, "hello?")
    errors = page.locator("#log li.error")
    await errors.filter(has_text="join or create a room first").wait_for()
    assert (await errors.text_content()).startswith("Error: join or create a room first")
    await enter_room(page, "/create alpha", "alpha")
    await type_line(page, "/whois nobody-here")
    await errors.filter(has_text="no-such-user").wait_for()
    texts = [" ".join(text.split()) for text in await errors.all_text_contents()]
    # The code and its message stay as the server sent them, after the word.
    assert texts[-1].startswith("Error: no-such-user: "), texts
    mark = errors.last.locator(".error-mark")
    assert await mark.is_visible() and await mark.inner_text() == "Error:"
    # Heard as well: the word is in what the screen reader is told as it comes.
    assert await page.locator("#announcer").filter(has_text="Error: no-such-user: ").count() == 1
    assert page.script_errors == []
