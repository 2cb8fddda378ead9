"""The browser client in chromium: people in one room, history, files, reconnection."""

from __future__ import annotations

import io
import re
from typing import Any

from PIL import Image
from playwright.async_api import expect

from tests.helpers import PASSWORD
from tests.web.browser.conftest import Daemon, screenshot
from tests.web.browser.pages import enter_room, log_text, messages, register, see, type_line


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (24, 16), (30, 120, 200)).save(out, "PNG")
    return out.getvalue()


async def test_two_browser_users_and_a_tcp_user_talk_in_one_room(
        daemon: Daemon, browser: Any) -> None:
    alice, bob = await browser("alice"), await browser("bob")
    await register(alice, daemon.url, "alice")
    await enter_room(alice, "/create lobby", "lobby")
    await register(bob, daemon.url, "bob")
    await enter_room(bob, "/join lobby", "lobby")
    carol = await daemon.tcp_user("carol")
    await carol.command("/join lobby")

    await alice.locator("#composer-input").fill("hello from")  # typing, not sent yet
    await bob.locator("#typing").filter(has_text="alice is typing").wait_for()
    await type_line(alice, "hello from alice")
    await see(bob, "hello from alice")
    heard = await carol.next_event(lambda e: e.get("type") == "message")
    assert (heard["from"], heard["text"]) == ("alice", "hello from alice")

    await carol.command("/say lobby hi from tcp")
    await type_line(bob, "hi from bob")
    for page in (alice, bob):
        await see(page, "hi from tcp")
        await see(page, "hi from bob")
    assert (await carol.next_event(lambda e: e.get("from") == "bob"))["text"] == "hi from bob"

    # Presence: the member list shows all three, online.
    members = alice.locator("#member-list")
    for name in ("alice", "bob", "carol"):
        await members.get_by_role("button", name=f"{name}, ").filter(has_text="online").wait_for()

    # Text stays text: markup from another user is shown, never parsed.
    await carol.command("/say lobby <b>bold</b><img src=x>")
    await see(alice, "<b>bold</b><img src=x>")
    assert await alice.locator("#log b, #log img").count() == 0

    # A direct message counts as unread until its conversation is opened.
    await carol.command("/msg alice psst, alice")
    unread = alice.get_by_role("button", name="carol, 1 unread")
    await unread.wait_for()
    await screenshot(alice, "client-room")
    await unread.click()
    await see(alice, "psst, alice")
    await type_line(alice, "hello carol")
    reply = await carol.next_event(lambda e: e.get("to") == "carol")
    assert (reply["from"], reply["text"]) == ("alice", "hello carol")

    # Slash commands go as typed: a room owner moderates from the composer.
    await alice.get_by_role("button", name="#lobby").click()
    await type_line(alice, "/kick carol lobby enough")
    await log_text(bob, "").first.wait_for()
    await bob.locator("#log li.event").filter(has_text="carol was kicked").wait_for()
    await screenshot(bob, "client-kick-seen-by-member")
    assert alice.script_errors == [] and bob.script_errors == []


async def test_history_loads_on_scroll_up(daemon: Daemon, browser: Any) -> None:
    carol = await daemon.tcp_user("carol")
    await carol.command("/create archive")
    for n in range(130):
        await carol.command(f"/say archive m{n:03}")
    alice = await browser("alice")
    await register(alice, daemon.url, "alice")
    await enter_room(alice, "/join archive", "archive")
    await see(alice, "m129")
    shown = await messages(alice)
    assert "m000" not in shown and len(shown) == 50
    for _ in range(5):
        if "m000" in await messages(alice):
            break
        count = len(await messages(alice))
        await alice.locator("#log").evaluate("log => { log.scrollTop = 0; }")
        await alice.locator("#log li.message").nth(count).wait_for()
    shown = await messages(alice)
    assert shown == [f"m{n:03}" for n in range(130)]
    await alice.locator("#history-status").filter(has_text="start of the room").wait_for()
    await screenshot(alice, "client-history")


async def test_an_upload_shows_its_preview_as_an_image(
        daemon: Daemon, browser: Any) -> None:
    alice, bob = await browser("alice"), await browser("bob")
    await register(alice, daemon.url, "alice")
    await enter_room(alice, "/create pics", "pics")
    await register(bob, daemon.url, "bob")
    await enter_room(bob, "/join pics", "pics")
    await alice.locator("#upload-input").set_input_files(
        files=[{"name": "blue.png", "mimeType": "image/png", "buffer": png()}])
    image = bob.get_by_role("img", name="blue.png, shared by alice")
    await image.wait_for()
    await expect(image).to_have_js_property("naturalWidth", 24)  # loaded, and decoded
    source = await image.get_attribute("src")
    assert source is not None and source.startswith("/api/v1/download/")
    await alice.locator("#upload-input").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain",
                "buffer": b"first line of the notes\nsecond line\n"}])
    preview = bob.get_by_label("preview of notes.txt")
    await preview.filter(has_text="first line of the notes").wait_for()
    # Sizes read as the server's text says them, in the unit that fits.
    await bob.locator(".file-name").filter(has_text="notes.txt (36 bytes, text/plain").wait_for()
    await alice.locator("#upload-input").set_input_files(
        files=[{"name": "big.bin", "mimeType": "application/octet-stream",
                "buffer": bytes(3 * 1024 * 1024)}])
    await bob.locator(".file-name").filter(has_text="big.bin (3.0 MiB,").wait_for()
    await screenshot(bob, "client-upload-preview")

    # Stickers come from the picker, and the art is shown as text.
    await bob.get_by_role("button", name="Stickers").click()
    await bob.locator("#stickers button").first.click()
    await alice.locator("#log figure.sticker").first.wait_for()
    assert alice.script_errors == [] and bob.script_errors == []


async def test_a_file_name_the_server_would_refuse_is_shortened_not_refused(
        daemon: Daemon, browser: Any) -> None:
    # A name the computer allowed (200 characters, a space at its end, a zero-width
    # space) but the server does not take: uploaded under the nearest it takes.
    alice = await browser("alice")
    await register(alice, daemon.url, "alice")
    await enter_room(alice, "/create docs", "docs")
    long = "é" * 200 + ".txt"
    await alice.locator("#upload-input").set_input_files(
        files=[{"name": long, "mimeType": "text/plain", "buffer": b"long\n"}])
    shortened = "é" * 124 + ".txt"
    await alice.locator(".file-name").filter(has_text=f"{shortened} (5 bytes").wait_for()
    await alice.locator("#upload-input").set_input_files(
        files=[{"name": "odd\u200bname.txt ", "mimeType": "text/plain", "buffer": b"x"}])
    await alice.locator(".file-name").filter(has_text="odd_name.txt (1 byte,").wait_for()
    assert await alice.locator("#log li.error").count() == 0
    assert alice.script_errors == []


async def test_an_image_the_browser_cannot_decode_shows_the_text_preview(
        daemon: Daemon, browser: Any) -> None:
    # Named and sniffed as a PNG, but cut short: the server's preview says why there
    # is no picture, and the page shows that rather than a broken-image icon.
    alice = await browser("alice")
    await register(alice, daemon.url, "alice")
    await enter_room(alice, "/create pics", "pics")
    await alice.locator("#upload-input").set_input_files(
        files=[{"name": "cut.png", "mimeType": "image/png", "buffer": png()[:40]}])
    preview = alice.get_by_label("preview of cut.png")
    await preview.filter(has_text="no preview").wait_for()
    assert await alice.get_by_role("img", name="cut.png, shared by alice").count() == 0
    assert alice.script_errors == []


async def test_a_typed_upload_is_refused_and_the_connection_stays_usable(
        daemon: Daemon, browser: Any) -> None:
    # /upload makes every following line of the connection file data up to ".": sent
    # from the composer, it swallowed the messages typed next, and the page's own
    # commands, with nothing on screen to say why.
    page = await browser("gail")
    await register(page, daemon.url, "gail")
    await enter_room(page, "/create shed", "shed")
    for typed in ("/upload notes.txt 3", "@x /quote upload notes.txt 3"):
        await type_line(page, typed)
        await page.locator("#log li.error").filter(has_text="Upload button").last.wait_for()
    await type_line(page, "still talking")
    await see(page, "still talking")
    assert page.script_errors == []


async def test_reconnecting_after_a_restart_misses_nothing(
        daemon: Daemon, browser: Any) -> None:
    alice, bob = await browser("alice"), await browser("bob")
    await register(alice, daemon.url, "alice")
    await enter_room(alice, "/create lobby", "lobby")
    await register(bob, daemon.url, "bob")
    await enter_room(bob, "/join lobby", "lobby")
    carol = await daemon.tcp_user("carol")
    await carol.command("/join lobby")
    await type_line(bob, "before the restart")
    await see(alice, "before the restart")

    await daemon.stop()
    await alice.locator("#connection").filter(has_text="reconnecting").wait_for()
    await screenshot(alice, "client-reconnecting")
    # Back without its web listener first: what is said now, no browser can hear live.
    await daemon.start(web=False)
    carol = await daemon.tcp_user("carol")
    await carol.command("/say lobby said while you were away")
    await carol.command("/msg bob a direct one meanwhile")
    await daemon.stop()
    await daemon.start()

    for page in (alice, bob):
        await see(page, "said while you were away")
    await bob.get_by_role("button", name="alice").or_(
        bob.get_by_role("button", name="carol, 1 unread")).first.wait_for()
    await type_line(alice, "after the restart")
    await see(bob, "after the restart")
    for page in (alice, bob):
        shown = await messages(page)
        for text in ("before the restart", "said while you were away", "after the restart"):
            assert shown.count(text) == 1, (text, shown)
    await bob.get_by_role("button", name="carol, 1 unread").click()
    await see(bob, "a direct one meanwhile")
    await screenshot(alice, "client-reconnected")
    assert alice.script_errors == [] and bob.script_errors == []


async def test_a_reconnection_past_the_resume_cap_follows_every_page(
        daemon: Daemon, browser: Any) -> None:
    # One /resume answers at most rooms.resume_max messages and says more follow: the
    # page asks again from the last one until none do, so nothing past the first
    # page is lost.
    await daemon.stop()
    await daemon.start(rooms__resume_max=2)
    alice = await browser("alice")
    await register(alice, daemon.url, "alice")
    await enter_room(alice, "/create lobby", "lobby")
    carol = await daemon.tcp_user("carol")
    await carol.command("/join lobby")
    await carol.command("/say lobby before")
    await see(alice, "before")

    await daemon.stop()
    await alice.locator("#connection").filter(has_text="reconnecting").wait_for()
    await daemon.start(web=False, rooms__resume_max=2)
    carol = await daemon.tcp_user("carol")
    for n in range(5):
        await carol.command(f"/say lobby away {n}")
    await daemon.stop()
    await daemon.start(rooms__resume_max=2)

    await see(alice, "away 4")
    shown = await messages(alice)
    assert [text for text in shown if text.startswith("away")] == [
        f"away {n}" for n in range(5)], shown
    assert alice.script_errors == []


async def test_keyboard_only_use_and_the_dark_theme(daemon: Daemon, browser: Any) -> None:
    page = await browser("dana")
    await page.goto(daemon.url + "/")
    # Name, password, then Register: by keyboard alone.
    await page.keyboard.type("dana")
    await page.keyboard.press("Tab")
    await page.keyboard.type("secret-pw")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "register-button"
    await page.keyboard.press("Enter")
    await page.locator("#app").wait_for(state="visible")
    for room in ("alpha", "beta"):
        await enter_room(page, f"/create {room}", room)
    # Alt+Up and Alt+Down move between conversations; Escape goes back to the composer.
    await page.keyboard.press("Alt+ArrowUp")
    await page.locator("#view-title").filter(has_text="#alpha").wait_for()
    assert await page.evaluate("document.activeElement.dataset.key") == "#alpha"
    await page.keyboard.press("Escape")
    assert await page.evaluate("document.activeElement.id") == "composer-input"
    await page.keyboard.type("typed without a mouse")
    await page.keyboard.press("Enter")
    await see(page, "typed without a mouse")
    # The notifications panel is a dialog: Escape closes it, back to its button.
    await page.get_by_role("button", name="Notifications").press("Enter")
    assert await page.evaluate("document.activeElement.id") == "notifications-clear"
    await page.keyboard.press("Escape")
    await page.locator("#notifications").wait_for(state="hidden")
    assert await page.evaluate("document.activeElement.id") == "notifications-button"
    assert await page.get_by_role("log", name="Messages in #alpha").count() == 1

    await page.get_by_role("button", name="Dark theme").press("Enter")
    assert await page.evaluate("document.documentElement.dataset.theme") == "dark"
    await page.get_by_role("button", name="Light theme").wait_for()
    assert daemon.server is not None
    user = daemon.server.services.accounts.require("dana")
    await see(page, "typed without a mouse")
    await screenshot(page, "client-dark-theme")
    assert user.settings.get("theme") == "dark"
    assert page.script_errors == []


async def test_typed_commands_list_act_where_they_should_and_log_out_cleanly(
        daemon: Daemon, browser: Any) -> None:
    page = await browser("erin")
    await register(page, daemon.url, "erin")
    await enter_room(page, "/create yard", "yard")
    for text in ("first words", "second words"):
        await type_line(page, text)
        await see(page, text)
    # A list in an ok is shown one entry a line: /history's messages too.
    await type_line(page, "/history 2")
    await page.locator("#log li.note").filter(has_text="text: second words").wait_for()
    # /me in a direct conversation would act in the room behind it: refused here.
    await daemon.tcp_user("frank")
    await type_line(page, "/msg frank hello")
    await page.get_by_role("button", name="frank").click()
    await page.locator("#view-title").filter(has_text="frank").wait_for()
    await type_line(page, "/me waves")
    await page.locator("#log li.error").filter(has_text="/me acts in a room").wait_for()
    # A reload lists the conversation again; a mistyped name opens none.
    await page.reload()
    direct = page.locator("#direct-list")
    await direct.get_by_role("button", name="frank").wait_for()
    await page.fill("#direct-name", "nobody-here")
    await page.press("#direct-name", "Enter")
    await page.locator("#log li.error").filter(has_text="no-such-user").wait_for()
    assert await direct.get_by_role("button", name="nobody-here").count() == 0
    same = await daemon.tcp_user("erin")  # erin's own view of the room's history
    shown = await same.command("/history yard 10")
    assert [m["text"] for m in shown["messages"]] == ["first words", "second words"]
    assert daemon.server is not None
    services = daemon.server.services
    erin = services.accounts.require("erin")
    # /logout typed (here through /quote, as the server reads it) does what the Log
    # out button does: the tab's token goes too.
    assert len(services.tokens.of(erin)) == 1
    await type_line(page, "/quote LOGOUT")
    await page.locator("#login").wait_for(state="visible")
    assert services.tokens.of(erin) == []
    assert page.script_errors == []


async def test_a_space_in_a_name_or_a_password_is_said_plainly_and_nothing_is_sent(
        daemon: Daemon, browser: Any) -> None:
    # The login line is split at spaces: "bad name" was answered "too many arguments.
    # Usage: /register <name> <password>", about a command the person never typed.
    page = await browser("hana")
    sent: list[str] = []

    def note(frame: str) -> None:  # Playwright calls Python functions, not builtins
        sent.append(frame)

    page.on("websocket", lambda socket: socket.on("framesent", note))
    await page.goto(daemon.url + "/")
    error = page.locator("#login-error")
    await page.get_by_label("Name").fill("bad name")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Register").click()
    await expect(error).to_have_text('invalid user name "bad name": use 1-24 characters, '
                                     "letters A-Z a-z, digits 0-9, '_' or '-'.")
    await page.get_by_label("Name").fill("hana")
    await page.get_by_label("Password").fill("three word password")
    for button in ("Register", "Log in"):
        await page.get_by_role("button", name=button).click()
        await expect(error).to_have_text("a password has 4 to 72 bytes of printable text "
                                         "and no spaces.")
    # The admin page logs in through the same connection code.
    await page.goto(daemon.url + "/admin")
    await page.get_by_label("Name").fill("hana")
    await page.get_by_label("Password").fill("three word password")
    await page.get_by_role("button", name="Log in").click()
    await expect(error).to_have_text("a password has 4 to 72 bytes of printable text "
                                     "and no spaces.")
    assert not [line for line in sent if "/register" in line or "/login" in line], sent
    # Spaces around a password were always dropped with the line's: still so.
    await page.goto(daemon.url + "/")
    await page.get_by_label("Name").fill("hana")
    await page.get_by_label("Password").fill(f" {PASSWORD} ")
    await page.get_by_role("button", name="Register").click()
    await page.locator("#me").filter(has_text="hana").wait_for()
    # "Message a user" with such a name: the same sentence, no /whois of two words.
    await page.locator("#direct-name").fill("bad name")
    await page.locator("#direct-name").press("Enter")
    await page.locator("#log li.error").filter(
        has_text='bad-arguments: invalid user name "bad name"').wait_for()
    assert not [line for line in sent if "/whois" in line], sent
    assert page.script_errors == []


async def test_a_failed_login_then_the_login_timeout_leaves_the_page_alone(
        daemon: Daemon, browser: Any) -> None:
    page = await browser("gwen")
    await daemon.tcp_user("gwen")
    await page.goto(daemon.url + "/")
    await page.get_by_label("Name").fill("gwen")
    await page.get_by_label("Password").fill("not-the-password")
    await page.get_by_role("button", name="Log in").click()
    error = page.locator("#login-error")
    await error.filter(has_text="wrong").wait_for()
    # The user types the password again while the server closes the connection that
    # never logged in (limits.login_timeout).
    await page.get_by_label("Password").fill("half")
    assert daemon.server is not None
    daemon.clock.advance(daemon.server.config.limits.login_timeout + 1)
    daemon.server.listeners.sweep_once()
    await page.wait_for_timeout(1500)  # the page's reconnection would have come by now
    assert "wrong" in await error.text_content()
    assert await page.evaluate("document.activeElement.id") == "login-password"
    assert await page.get_by_label("Name").input_value() == "gwen"
    # And the next try logs in on a new connection.
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.locator("#me").filter(has_text="gwen").wait_for()
    # The page talks JSON to the server: typing a format change is refused here.
    await type_line(page, "/set format text")
    await page.locator("#log li.error").filter(has_text="cannot change here").wait_for()
    await type_line(page, "/whoami")
    await page.locator("#log li.note").filter(has_text="gwen").first.wait_for()
    assert page.script_errors == []


async def test_leaving_a_room_shows_everywhere_the_account_is(
        daemon: Daemon, browser: Any) -> None:
    first, second = await browser("hana"), await browser("hana-again")
    await register(first, daemon.url, "hana")
    await enter_room(first, "/create yard", "yard")
    await second.goto(daemon.url + "/")
    await second.get_by_label("Name").fill("hana")
    await second.get_by_label("Password").fill(PASSWORD)
    await second.get_by_role("button", name="Log in").click()
    await second.locator("#view-title").filter(has_text="#yard").wait_for()
    await enter_room(first, "/create shed", "shed")
    # Left in the second tab: the first lists #yard as a room it is not in.
    await second.get_by_role("button", name="#yard").click()
    await type_line(second, "/leave yard")
    await first.get_by_role("button", name="#yard, not a member").wait_for()
    # Left where it is on screen: the screen no longer claims to show it.
    await type_line(second, "/leave shed")
    await second.locator("#view-title").filter(has_text="No room yet").wait_for()
    assert await second.locator("#composer-label").text_content() == "Message"
    assert first.script_errors == [] and second.script_errors == []


async def test_the_member_list_shows_every_page_of_a_long_room(
        daemon: Daemon, browser: Any) -> None:
    # /who answers a page at a time (two to a page here): the list asks for each.
    await daemon.stop()
    await daemon.start(rooms__page_size=2)
    alice = await browser("alice")
    await register(alice, daemon.url, "alice")
    await enter_room(alice, "/create crowd", "crowd")
    for name in ("bob", "carol", "dave", "erin"):
        await (await daemon.tcp_user(name)).command("/join crowd")
    members = alice.locator("#member-list")
    for name in ("alice", "bob", "carol", "dave", "erin"):
        await members.get_by_role("button", name=f"{name}, ").wait_for()
    assert await members.get_by_role("button").count() == 5
    assert alice.script_errors == []


# Notes the close code of every WebSocket the page opens, in window.closeCodes.
CLOSE_CODES = """
window.closeCodes = [];
const Socket = window.WebSocket;
window.WebSocket = class extends Socket {
  constructor(...args) {
    super(...args);
    this.addEventListener("close", (event) => window.closeCodes.push(event.code));
  }
};
"""


async def test_a_server_going_away_closes_with_1001_and_the_page_comes_back(
        daemon: Daemon, browser: Any) -> None:
    # RFC 6455: a server going down closes with 1001 (going away); the page takes it
    # as any drop, and reconnects once the daemon is back.
    page = await browser("alice")
    await page.add_init_script(CLOSE_CODES)
    await register(page, daemon.url, "alice")
    await enter_room(page, "/create lobby", "lobby")
    await daemon.stop()
    await page.locator("#connection").filter(has_text="reconnecting").wait_for()
    assert await page.evaluate("window.closeCodes") == [1001]
    await daemon.start()
    await page.locator("#connection").filter(has_text="Reconnected").wait_for()
    carol = await daemon.tcp_user("carol")
    await carol.command("/join lobby")
    await carol.command("/say lobby back again")
    await see(page, "back again")
    assert page.script_errors == []


async def test_a_login_that_left_direct_messages_out_says_so(daemon: Daemon,
                                                              browser: Any) -> None:
    # The ones left out are marked delivered: a page that said nothing lost them
    # for the user, who had no reason to look for them.
    await daemon.stop()
    await daemon.start(rooms__offline_replay_max=1)
    bob = await daemon.tcp_user("bob")
    await bob.command("/logout")
    alice = await daemon.tcp_user("alice")
    for n in range(3):
        await alice.command(f"/msg bob note {n}")
    page = await browser("bob")
    await page.goto(daemon.url + "/")
    await page.get_by_label("Name").fill("bob")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.locator("#me").filter(has_text="bob").wait_for()
    await see(page, "note 2")
    await page.locator("#log li").filter(has_text="2 older direct messages").wait_for()
    # What it says to do brings them.
    note = await page.locator("#log li").filter(has_text="/resume").first.text_content()
    assert note is not None
    await type_line(page, note[note.index("/resume"):].split(" replays")[0])
    await see(page, "note 0")
    await see(page, "note 1")


async def test_a_typed_conversations_lists_each_one(daemon: Daemon, browser: Any) -> None:
    page = await browser("erin")
    await register(page, daemon.url, "erin")
    frank = await daemon.tcp_user("frank")
    await frank.command("/msg erin hello from frank")
    await page.get_by_role("button", name="frank, 1 unread").wait_for()
    await type_line(page, "/conversations")
    await page.locator("#log li.note").filter(has_text="1 conversation").wait_for()
    await page.locator("#log li.note").filter(has_text="user: frank").wait_for()
    assert page.script_errors == []


async def test_a_typed_list_shows_its_moments_as_dates_and_times(
        daemon: Daemon, browser: Any) -> None:
    page = await browser("erin")
    await register(page, daemon.url, "erin")
    await enter_room(page, "/create yard", "yard")
    await type_line(page, "/token list")
    token = page.locator("#log li.note").filter(has_text="name: web-")
    await token.wait_for()
    entry = await token.inner_text()
    # created, expires and last_used: each a date and a minute, none a count of seconds.
    # (The token's own name is a random word, which may hold a run of digits.)
    moments = re.sub(r"name: \S+", "", entry)
    assert re.search(r"\d{9,}", moments) is None, entry
    assert len(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d", entry)) == 3, entry
    await type_line(page, "/audit yard 1")
    audit = page.locator("#log li.note").filter(has_text="action: create")
    await audit.wait_for()
    assert re.search(r"^ts: \d{4}-\d\d-\d\d \d\d:\d\d, actor: erin", await audit.inner_text())
    assert page.script_errors == []


async def test_a_direct_conversation_says_its_earlier_messages_are_not_shown(
        daemon: Daemon, browser: Any) -> None:
    page = await browser("erin")
    await register(page, daemon.url, "erin")
    await enter_room(page, "/create yard", "yard")
    status = page.locator("#history-status")
    await status.filter(has_text="start of the room's history").wait_for()
    frank = await daemon.tcp_user("frank")
    await frank.command("/msg erin hello from frank")
    await page.get_by_role("button", name="frank, 1 unread").click()
    await see(page, "hello from frank")
    # Reloaded, the page lists the conversation but cannot read it back: it says so,
    # and no room's words stand over it.
    await page.reload()
    await page.locator("#direct-list").get_by_role("button", name="frank").click()
    await page.locator("#view-title").filter(has_text="frank").wait_for()
    await status.filter(has_text="Earlier direct messages are not shown here").wait_for()
    await page.get_by_role("button", name="#yard").click()
    await status.filter(has_text="start of the room's history").wait_for()
    assert page.script_errors == []


async def test_a_command_typed_with_its_own_label_runs_and_says_nothing_to_the_room(
        daemon: Daemon, browser: Any) -> None:
    carol = await daemon.tcp_user("carol")
    for room in ("yard", "lounge"):
        await carol.command(f"/create {room}")
    page = await browser("erin")
    await register(page, daemon.url, "erin")
    await enter_room(page, "/join yard", "yard")
    # A label as the protocol documents it: the command runs, as typed without it.
    await enter_room(page, "@q1 /join lounge", "lounge")
    await page.locator("#log li.note").filter(has_text="You joined #lounge").wait_for()
    said = await carol.command("/history yard 10")
    assert [m["text"] for m in said["messages"]] == []
    assert page.script_errors == []
