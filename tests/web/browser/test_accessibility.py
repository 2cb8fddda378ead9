"""The web client for a keyboard and screen reader user, in chromium: where the focus
goes when the page redraws, what a dialog does with it, what is announced, and how
the themes' colours read."""

from __future__ import annotations

import re
from typing import Any

from tests.web.browser.conftest import Daemon, screenshot
from tests.web.browser.pages import enter_room, register, see, type_line

FOCUSED = "document.activeElement.getAttribute('aria-label') || document.activeElement.tagName"


def member(page: Any, name: str) -> Any:
    return page.get_by_role("button", name=re.compile(f"^{name}, "))


async def test_the_focus_stays_on_a_list_redrawn_under_it(daemon: Daemon, browser: Any) -> None:
    page = await browser("ann")
    await register(page, daemon.url, "ann")
    await enter_room(page, "/create alpha", "alpha")
    await enter_room(page, "/create beta", "beta")
    bob = await daemon.tcp_user("bob")
    await bob.command("/join alpha")
    await bob.command("/join beta")
    await member(page, "bob").wait_for()
    # On #alpha's button in the room list, a message in #alpha redraws the list (its
    # count of unread messages): the focus stays on #alpha's button, not the page.
    await page.locator("button.conv[data-key='#alpha']").focus()
    await bob.command("/say alpha ping")
    await page.get_by_role("button", name="#alpha, 1 unread").wait_for()
    assert await page.evaluate(FOCUSED) == "#alpha, 1 unread"
    # On bob in the member list, a join redraws it: the focus stays on bob.
    await member(page, "bob").focus()
    carol = await daemon.tcp_user("carol")
    await carol.command("/join beta")
    await member(page, "carol").wait_for()
    assert (await page.evaluate(FOCUSED)).startswith("bob, ")
    # bob leaves: the focus goes to the member drawn in his place.
    await bob.command("/leave beta")
    await member(page, "bob").wait_for(state="detached")
    assert (await page.evaluate(FOCUSED)).startswith("carol, ")
    assert page.script_errors == []


async def test_the_notifications_dialog_keeps_the_focus_until_escape(
        daemon: Daemon, browser: Any) -> None:
    page = await browser("ann")
    await register(page, daemon.url, "ann")
    await enter_room(page, "/create alpha", "alpha")
    await enter_room(page, "/create beta", "beta")
    button = page.get_by_role("button", name="Notifications, 0 unread")
    assert await button.get_attribute("aria-expanded") == "false"
    await button.press("Enter")
    dialog = page.get_by_role("dialog", name="Notifications")
    await dialog.wait_for()
    assert await dialog.get_attribute("aria-modal") == "true"
    # Tab and Shift+Tab go round its two buttons, never behind it.
    seen = []
    for key in ("Tab", "Tab", "Tab", "Shift+Tab", "Shift+Tab"):
        await page.keyboard.press(key)
        seen.append(await page.evaluate("document.activeElement.id"))
    assert seen == ["notifications-close", "notifications-clear", "notifications-close",
                    "notifications-clear", "notifications-close"]
    # Nor does Alt+Up, which moves between conversations, take it behind the dialog.
    await page.keyboard.press("Alt+ArrowUp")
    assert await page.evaluate("document.activeElement.id") == "notifications-close"
    await page.keyboard.press("Escape")
    await dialog.wait_for(state="hidden")
    assert await page.evaluate("document.activeElement.id") == "notifications-button"
    assert await button.get_attribute("aria-expanded") == "false"
    assert page.script_errors == []


# The text of each part of the page a screen reader announces as it changes: a live
# region (aria-live, or a role whose default is live) not turned off.
LIVE_TEXTS = """() => Array.from(
        document.querySelectorAll("[aria-live], [role=log], [role=status], [role=alert]"))
    .filter((node) => node.getAttribute("aria-live") !== "off")
    .map((node) => node.textContent)"""


async def live_text(page: Any) -> str:
    return "\n".join(await page.evaluate(LIVE_TEXTS))


async def test_new_lines_are_announced_and_history_is_not(daemon: Daemon, browser: Any) -> None:
    bob = await daemon.tcp_user("bob")
    await bob.command("/create alpha")
    for number in range(3):
        await bob.command(f"/say alpha old line {number}")
    page = await browser("ann")
    await register(page, daemon.url, "ann")
    await enter_room(page, "/create beta", "beta")
    await enter_room(page, "/join alpha", "alpha")
    await see(page, "old line 2")
    await bob.command("/say alpha fresh line")
    await see(page, "fresh line")
    assert "bob: fresh line" in await live_text(page)
    # Read from history, on joining and on opening the room again: never announced.
    await page.keyboard.press("Alt+ArrowDown")
    await page.locator("#view-title").filter(has_text="#beta").wait_for()
    await page.keyboard.press("Alt+ArrowUp")
    await page.locator("#view-title").filter(has_text="#alpha").wait_for()
    await see(page, "old line 0")
    assert "old line" not in await live_text(page)
    assert "fresh line" not in await live_text(page)
    await type_line(page, "my own line")
    await see(page, "my own line")
    live = await live_text(page)
    assert "ann: my own line" in live and "08:00" not in live
    assert page.script_errors == []


def contrast(first: str, second: str) -> float:
    """The WCAG contrast ratio of two CSS colours ("#rrggbb", "rgb(r, g, b)")."""
    def luminance(colour: str) -> float:
        text = colour.strip()
        if text.startswith("#"):
            channels = [int(text[i:i + 2], 16) for i in (1, 3, 5)]
        else:
            channels = [int(float(part)) for part in re.findall(r"[\d.]+", text)[:3]]
        linear = [c / 3294.6 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4
                  for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


THEME_COLOURS = """() => {
    const style = getComputedStyle(document.documentElement);
    const names = ["fg", "bg", "panel", "muted", "accent", "accent-fg", "error", "event",
                   "n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"];
    const colours = Object.fromEntries(names.map((n) => [n, style.getPropertyValue(`--${n}`)]));
    colours.field = getComputedStyle(document.getElementById("composer-input")).borderTopColor;
    return colours;
}"""
TEXT_COLOURS = ["fg", "muted", "accent", "error", "event"] + [f"n{i}" for i in range(8)]


async def test_each_theme_reads_at_the_contrast_wcag_asks(daemon: Daemon, browser: Any) -> None:
    page = await browser("ann")
    await register(page, daemon.url, "ann")
    for theme in ("light", "dark"):
        await page.evaluate(f"document.documentElement.dataset.theme = '{theme}'")
        colours = await page.evaluate(THEME_COLOURS)
        for name in TEXT_COLOURS:  # text on the page and on its panels: 4.5:1
            for behind in ("bg", "panel"):
                assert contrast(colours[name], colours[behind]) >= 4.5, (theme, name, behind)
        assert contrast(colours["accent-fg"], colours["accent"]) >= 4.5, theme  # buttons
        for behind in ("bg", "panel"):  # a form field's edge: 3:1
            assert contrast(colours["field"], colours[behind]) >= 3, (theme, behind)


async def test_each_list_and_control_is_named_once(daemon: Daemon, browser: Any) -> None:
    page = await browser("ann")
    await register(page, daemon.url, "ann")
    await enter_room(page, "/create alpha", "alpha")
    await page.get_by_role("list", name="Members").get_by_role("button").first.wait_for()
    # The Upload button is the file field, named by its label: the label itself is
    # not read out a second time after it.
    composer = await page.locator("#composer").aria_snapshot()
    assert '- button "Upload"' in composer
    assert "text: Upload" not in composer
    # Stickers opens a group of buttons under it (a disclosure), not a menu: it does
    # not say it has a pop-up, which a screen reader would announce as a menu.
    stickers = page.get_by_role("button", name="Stickers")
    assert await stickers.get_attribute("aria-haspopup") is None
    await stickers.press("Enter")
    await page.get_by_role("group", name="Stickers").wait_for()
    assert await stickers.get_attribute("aria-expanded") == "true"


async def test_text_at_200_percent_keeps_the_messages_readable(
        daemon: Daemon, browser: Any) -> None:
    page = await browser("ann")
    # The test's 1200 by 760 window with the text zoomed to 200%.
    zoomed = {"width": 600, "height": 380}
    await page.set_viewport_size(zoomed)
    await register(page, daemon.url, "ann")
    await enter_room(page, "/create alpha", "alpha")
    await type_line(page, "a line " + "of several words " * 12)
    await see(page, "of several words")
    # The messages had 48 pixels, two lines, between the lists and the composer.
    log = await page.locator("#log").bounding_box()
    assert log is not None and log["height"] >= zoomed["height"] * 0.5, log
    assert await page.evaluate("document.documentElement.scrollWidth") <= zoomed["width"]
    assert await page.evaluate("document.getElementById('log').scrollWidth") <= log["width"]
    # The composer, below, is scrolled to when the keyboard reaches it.
    await page.locator("#log").focus()
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "composer-input"
    box = await page.locator("#composer-input").bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= zoomed["height"]
    await screenshot(page, "client-text-200-percent")
    assert page.script_errors == []


async def test_someone_still_typing_is_announced_once(daemon: Daemon, browser: Any) -> None:
    page = await browser("ann")
    await register(page, daemon.url, "ann")
    await enter_room(page, "/create alpha", "alpha")
    bob = await daemon.tcp_user("bob")
    await bob.command("/join alpha")
    await page.evaluate("""() => {
        window.typingChanges = 0;
        new MutationObserver(() => { window.typingChanges += 1; })
            .observe(document.getElementById("typing"),
                     {childList: true, characterData: true, subtree: true});
    }""")
    await bob.command("/typing alpha")
    await page.locator("#typing").filter(has_text="bob is typing").wait_for()
    # bob types on: his next /typing (and a line of the page's own after it, to know
    # the page has read it) changes nothing a screen reader would say again.
    await bob.command("/typing alpha")
    await bob.command("/say alpha done")
    await see(page, "done")
    await page.locator("#typing").filter(has_text="bob").wait_for(state="detached")
    assert await page.evaluate("window.typingChanges") == 2  # shown, then cleared


# Counts each change in a live region's text from now on (window.liveChanges).
COUNT_LIVE_CHANGES = """() => {
    window.liveChanges = 0;
    const observer = new MutationObserver(() => { window.liveChanges += 1; });
    for (const node of document.querySelectorAll("[aria-live], [role=status], [role=alert]")) {
        if (node.getAttribute("aria-live") === "off") continue;
        observer.observe(node, {childList: true, characterData: true, subtree: true});
    }
}"""


async def test_the_line_length_is_announced_near_and_over_the_limit_not_at_each_key(
        daemon: Daemon, browser: Any) -> None:
    page = await browser("ann")
    await register(page, daemon.url, "ann")
    await enter_room(page, "/create alpha", "alpha")
    composer = page.locator("#composer-input")
    await composer.fill("x" * 3900)  # near the 4080 bytes a line may have
    await page.locator("#composer-limit").wait_for()
    await page.evaluate(COUNT_LIVE_CHANGES)
    await composer.press("End")
    await page.keyboard.type("yyyyy")
    await page.locator("#composer-limit").filter(has_text="3905 of").wait_for()
    assert await page.evaluate("window.liveChanges") == 0
    # Going over the limit is said once, however many keys go on past it.
    await composer.fill("x" * 4100)
    await page.keyboard.type("zz")
    await page.locator("#composer-limit").filter(has_text="4102 bytes: over").wait_for()
    assert "over the" in await live_text(page)
    assert await page.evaluate("window.liveChanges") == 1
    assert page.script_errors == []


async def test_a_direct_message_behind_the_room_on_screen_is_announced(
        daemon: Daemon, browser: Any) -> None:
    page = await browser("ann")
    await register(page, daemon.url, "ann")
    await enter_room(page, "/create alpha", "alpha")
    bob = await daemon.tcp_user("bob")
    await bob.command("/msg ann a word in private")
    await page.get_by_role("button", name="bob, 1 unread").wait_for()
    assert "New direct message from bob." in await live_text(page)
    assert "a word in private" not in await live_text(page)


async def test_the_skip_link_is_offered_where_it_leads_somewhere(
        daemon: Daemon, browser: Any) -> None:
    page = await browser("ann")
    await page.goto(daemon.url + "/")
    await page.get_by_label("Name").wait_for()
    skip = page.get_by_role("link", name="Skip to the message box")
    # Logging in, the message box is hidden: a link to it would lead nowhere.
    assert await skip.count() == 0
    await register(page, daemon.url, "ann")
    # The first stop of the client, before the top bar's buttons.
    await page.locator("#notifications-button").focus()
    await page.keyboard.press("Shift+Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to the message box"
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "composer-input"


# The opacity the messages are drawn at: their own times every ancestor's.
LOG_OPACITY = """() => {
    let opacity = 1;
    for (let node = document.getElementById("log"); node; node = node.parentElement)
        opacity *= Number(getComputedStyle(node).opacity);
    return opacity;
}"""


async def test_the_messages_keep_their_contrast_while_the_connection_is_away(
        daemon: Daemon, browser: Any) -> None:
    page = await browser("ann")
    await register(page, daemon.url, "ann")
    await enter_room(page, "/create alpha", "alpha")
    await daemon.stop()
    await page.locator("body.offline").wait_for(state="attached")
    await page.locator("#connection").filter(has_text="reconnecting").wait_for()
    # Dimmed to 75%, the muted text (times, names, events) read at 3.4:1 in the light
    # theme. The log shows the panels' colour instead, on which every text reads 4.5:1.
    assert await page.evaluate(LOG_OPACITY) == 1
    colours = await page.evaluate(THEME_COLOURS)
    log_background = await page.evaluate(
        "getComputedStyle(document.getElementById('log')).backgroundColor")
    for name in TEXT_COLOURS:
        assert contrast(colours[name], log_background) >= 4.5, name


async def test_each_file_shared_has_a_download_button_of_its_own_name(
        daemon: Daemon, browser: Any) -> None:
    page = await browser("ann")
    await register(page, daemon.url, "ann")
    await enter_room(page, "/create alpha", "alpha")
    for name in ("one.txt", "two.txt"):
        await page.locator("#upload-input").set_input_files(
            files=[{"name": name, "mimeType": "text/plain", "buffer": b"some text\n"}])
        await page.get_by_label(f"preview of {name}").wait_for()
    # A list of the page's buttons tells the two apart.
    for name in ("one.txt", "two.txt"):
        assert await page.get_by_role("button", name=f"Download {name}").count() == 1


async def test_the_theme_button_says_the_theme_it_switches_to_and_nothing_else(
        daemon: Daemon, browser: Any) -> None:
    page = await browser("ann")
    await register(page, daemon.url, "ann")
    await page.get_by_role("button", name="Dark theme").press("Enter")
    await page.get_by_role("button", name="Light theme").wait_for()
    assert await page.evaluate("document.documentElement.dataset.theme") == "dark"
    # Not "Light theme, pressed", which says the light theme is on.
    top = await page.get_by_role("banner").aria_snapshot()
    assert '- button "Light theme"\n' in top + "\n" and "pressed" not in top


# Each text a live region is given from now on (window.heard): what a screen reader says.
RECORD_HEARD = """() => {
    window.heard = [];
    const observer = new MutationObserver((changes) => {
        for (const change of changes) {
            if (change.type === "characterData") window.heard.push(change.target.data);
            for (const node of change.addedNodes) window.heard.push(node.textContent);
        }
    });
    for (const node of document.querySelectorAll("[aria-live], [role=status], [role=alert]")) {
        if (node.getAttribute("aria-live") === "off") continue;
        observer.observe(node, {childList: true, characterData: true, subtree: true});
    }
}"""


async def heard(page: Any, words: str) -> int:
    """How many times a live region was given ``words`` since RECORD_HEARD."""
    texts: list[str] = await page.evaluate("window.heard")
    return sum(words in text for text in texts)


async def test_the_history_line_is_announced_once_per_conversation(
        daemon: Daemon, browser: Any) -> None:
    page = await browser("ann")
    await register(page, daemon.url, "ann")
    await page.evaluate(RECORD_HEARD)
    await enter_room(page, "/create alpha", "alpha")
    status = page.locator("#history-status")
    await status.filter(has_text="start of the room's history").wait_for()
    await enter_room(page, "/create beta", "beta")
    await status.filter(has_text="start of the room's history").wait_for()
    bob = await daemon.tcp_user("bob")
    await bob.command("/msg ann hello")
    await page.get_by_role("button", name="bob, 1 unread").wait_for()
    # Back and forth between the three, each time the line is shown again.
    rooms = "start of the room's history"
    direct = "Earlier direct messages are not shown here"
    for key, words in (("#alpha", rooms), ("#beta", rooms), ("@bob", direct),
                       ("#alpha", rooms), ("@bob", direct), ("#beta", rooms)):
        await page.locator(f"button.conv[data-key='{key}']").click()
        await page.locator("#view-title").filter(has_text=key.lstrip("@")).wait_for()
        await status.filter(has_text=words).wait_for()
    # Said once for each of the two rooms and once for the direct conversation.
    assert await heard(page, rooms) == 2
    assert await heard(page, direct) == 1
    assert page.script_errors == []


async def test_a_click_outside_the_notifications_dialog_closes_it(
        daemon: Daemon, browser: Any) -> None:
    page = await browser("ann")
    await register(page, daemon.url, "ann")
    await enter_room(page, "/create alpha", "alpha")
    await enter_room(page, "/create beta", "beta")
    button = page.locator("#notifications-button")
    dialog = page.get_by_role("dialog", name="Notifications")
    await button.click()
    await dialog.wait_for()
    # A click inside it keeps it open.
    await page.locator("#notifications-title").click()
    assert await dialog.is_visible()
    # A click on #alpha's button behind it (where the pointer is, as a person clicks)
    # neither opens #alpha nor takes the focus behind the dialog: it closes the dialog,
    # the focus back on the Notifications button.
    alpha = await page.locator("button.conv[data-key='#alpha']").bounding_box()
    assert alpha is not None
    await page.mouse.click(alpha["x"] + alpha["width"] / 2, alpha["y"] + alpha["height"] / 2)
    await dialog.wait_for(state="hidden")
    assert await page.evaluate("document.activeElement.id") == "notifications-button"
    assert await button.get_attribute("aria-expanded") == "false"
    assert await page.locator("#view-title").inner_text() == "#beta"
    # Closed, the page behind answers clicks again.
    await page.locator("button.conv[data-key='#alpha']").click()
    await page.locator("#view-title").filter(has_text="#alpha").wait_for()
    assert page.script_errors == []
