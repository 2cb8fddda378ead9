"""What a person does in the browser client and on the admin page, step by step."""

from __future__ import annotations

from typing import Any

from tests.helpers import PASSWORD


async def register(page: Any, url: str, name: str) -> None:
    """Open the client and register ``name``; wait for the chat screen."""
    await page.goto(url + "/")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Register").click()
    await page.locator("#app").wait_for(state="visible")
    await page.locator("#me").filter(has_text=name).wait_for()


async def type_line(page: Any, line: str) -> None:
    """Type ``line`` into the composer and press Enter, as a keyboard user does."""
    composer = page.locator("#composer-input")
    await composer.fill(line)
    await composer.press("Enter")


async def enter_room(page: Any, line: str, room: str) -> None:
    """Run ``/join room`` or ``/create room`` and wait until the room is on screen."""
    await type_line(page, line)
    await page.locator("#view-title").filter(has_text=f"#{room}").wait_for()


def log_text(page: Any, text: str) -> Any:
    """The messages of the room on screen holding ``text``."""
    return page.locator("#log li.message").filter(has_text=text)


async def see(page: Any, text: str) -> None:
    await log_text(page, text).first.wait_for()


async def messages(page: Any) -> list[str]:
    """The text of every message of the room on screen, in order."""
    return [str(t) for t in await page.locator("#log li.message .text").all_inner_texts()]


def websockets(page: Any) -> list[Any]:
    """The WebSockets ``page`` opens from now on (a list that grows)."""
    opened: list[Any] = []

    def note(socket: Any) -> None:  # Playwright calls Python functions, not builtins
        opened.append(socket)

    page.on("websocket", note)
    return opened
