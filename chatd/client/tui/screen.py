"""The full-screen terminal interface of chatd-client, built with prompt_toolkit.

    +-----------+------------------------------------------------+
    | server    | [10:02] <bob> morning all                      |
    | #general  | [10:02] <alice> hi bob                         |
    | #dev (3)  |                                                |
    | @carol    |                                                |
    +-----------+------------------------------------------------+
    | alice . connected . #general . bob is typing                |
    | #general> half-typed line_                                  |
    +--------------------------------------------------------------+

The input line edits like a shell's (arrows, Home/End, Ctrl-A/E/W/U ...),
Up/Down recall earlier lines, Tab completes commands, nicks and rooms, and
what arrives is drawn above it, never over it. PageUp/PageDown scroll the
conversation (fetching older history at the top); Ctrl-N/Ctrl-P or
Alt-Right/Alt-Left change conversation, Alt-1..9 jump to one; Ctrl-D on an
empty line or /quit ends. Colours follow the account's theme.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from functools import lru_cache

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import (
    BufferControl,
    Float,
    FloatContainer,
    FormattedTextControl,
    HSplit,
    Layout,
    VSplit,
    Window,
)
from prompt_toolkit.layout.controls import UIContent, UIControl
from prompt_toolkit.layout.dimension import Dimension
from prompt_toolkit.layout.menus import CompletionsMenu
from prompt_toolkit.layout.processors import BeforeInput
from prompt_toolkit.mouse_events import MouseEvent, MouseEventType
from prompt_toolkit.output import Output
from prompt_toolkit.styles import BaseStyle, DynamicStyle
from prompt_toolkit.utils import get_cwidth

from chatd.client.tui.clusterwindow import ClusterWindow
from chatd.client.tui.complete import ChatCompleter, Vocabulary
from chatd.client.tui.controller import Controller, Reconnect
from chatd.client.tui.lines import Line
from chatd.client.tui.paint import fragments, style_sheet, theme_of, wrap
from chatd.client.tui.session import ClientSession
from chatd.client.tui.state import SCROLLBACK, ChatState
from chatd.protocol.render import Theme

ROOM_LIST_WIDTH = 20
# On a narrow terminal the room list takes at most this share of the width: at 40
# columns, 20 for the list would leave the conversation 19, a few words a row.
ROOM_LIST_SHARE = 4
INPUT_ROWS = 5  # the input line grows to show a paste of several lines, up to this
WHEEL_ROWS = 3
TICK = 1.0  # seconds between redraws that expire typing notices


# Lines kept wrapped (at one width, in one theme): every line of a conversation's
# scrollback and as many again, so that a view scrolled to its top wraps each once.
WRAPPED_LINES = 2 * SCROLLBACK


def _wrapped(line: Line, theme: Theme | None, current: str | None,
             width: int) -> tuple[StyleAndTextTuples, ...]:
    """The screen rows of ``line``: the same for the same line, theme, room and width."""
    return tuple(wrap(fragments(line, theme, current), width))


class ScrollbackControl(UIControl):
    """The conversation on screen, newest line at the bottom, scrolled by whole rows."""

    def __init__(self, state: ChatState, color: bool, on_top: Callable[[], None],
                 on_wheel: Callable[[int], None]) -> None:
        self.state = state
        self.color = color
        self.on_top = on_top
        self.on_wheel = on_wheel
        self.height = 0
        # A redraw (a key, the clock's tick) lays out every line from the newest up to
        # the top of the view: wrapped afresh each time, a view scrolled to the top of
        # thousands of lines took most of a second a redraw, and keys waited on it.
        self._rows = lru_cache(maxsize=WRAPPED_LINES)(_wrapped)

    def create_content(self, width: int, height: int) -> UIContent:
        self.height = height
        shown = self.state.shown
        theme = theme_of(self.state.theme, self.color)
        current = shown.key if shown.is_room else None
        if shown.unplaced:  # lines came below a view scrolled up: it keeps its place
            newer = list(shown.lines)[-shown.unplaced:]
            shown.scroll += sum(len(self._rows(line, theme, current, width))
                                for line in newer)
            shown.unplaced = 0
        need, scroll = shown.scroll + height, shown.scroll
        rows = self._newest_rows((self._rows(line, theme, current, width)
                                  for line in reversed(shown.lines)), need)
        if len(rows) < need:  # every line held is in reach: no scrolling past the oldest
            limit = max(0, len(rows) - height)
            if shown.scroll > limit and shown.is_room and not shown.history_done:
                self.on_top()  # older lines are wanted: the request stands while they come
            else:
                shown.scroll_by(min(shown.scroll, limit) - shown.scroll)
            scroll = min(shown.scroll, limit)
        end = len(rows) - scroll
        visible = rows[max(0, end - height):end]
        if scroll:
            visible[-1:] = [[("class:scrolled", _below(shown.below, scroll).ljust(width))]]
        visible[:0] = [[] for _ in range(height - len(visible))]
        return UIContent(get_line=lambda i: visible[i], line_count=len(visible),
                         show_cursor=False)

    @staticmethod
    def _newest_rows(newest_first: Iterable[tuple[StyleAndTextTuples, ...]],
                     need: int) -> list[StyleAndTextTuples]:
        """The rows of the newest lines, oldest first, enough for ``need`` rows (fewer
        when the lines run out)."""
        taken: list[tuple[StyleAndTextTuples, ...]] = []
        count = 0
        for line_rows in newest_first:
            taken.append(line_rows)
            count += len(line_rows)
            if count >= need:
                break
        # Put in order once: rows put before the others one line at a time would move
        # every row taken so far, for each line.
        return [row for line_rows in reversed(taken) for row in line_rows]

    def mouse_handler(self, mouse_event: MouseEvent) -> None:
        if mouse_event.event_type == MouseEventType.SCROLL_UP:
            self.on_wheel(WHEEL_ROWS)
        elif mouse_event.event_type == MouseEventType.SCROLL_DOWN:
            self.on_wheel(-WHEEL_ROWS)

    def is_focusable(self) -> bool:
        return False


class Screen:
    """The application: room list, scrollback, status bar and input line."""

    def __init__(self, controller: Controller, color: bool = True, mouse: bool = False,
                 input: Input | None = None, output: Output | None = None) -> None:
        self.controller = controller
        self.state = controller.state
        self.color = color
        # What was typed, and the conversation on screen when it was.
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.input = Buffer(multiline=False, history=InMemoryHistory(),
                            completer=ChatCompleter(controller.vocabulary),
                            complete_while_typing=False, accept_handler=self._accept,
                            on_text_changed=lambda b: controller.typed(b.text))
        self.scrollback = ScrollbackControl(self.state, color, controller.reached_top,
                                            controller.scroll)
        self.app: Application[int] = Application(
            layout=Layout(self._layout(), focused_element=self.input),
            key_bindings=self._bindings(), style=DynamicStyle(self._style),
            full_screen=True, mouse_support=mouse, input=input, output=output)
        controller.redraw = self.app.invalidate

    def _style(self) -> BaseStyle:
        return style_sheet(theme_of(self.state.theme, self.color))

    def _layout(self) -> FloatContainer:
        body = VSplit([
            Window(FormattedTextControl(self._room_list),
                   width=lambda: Dimension.exact(self._list_width())),
            Window(width=1, char="\N{BOX DRAWINGS LIGHT VERTICAL}", style="class:separator"),
            ClusterWindow(self.scrollback),
        ])
        status = Window(FormattedTextControl(self._status), height=1, style="class:status")
        prompt = BeforeInput(self._prompt, style="class:prompt")
        line = Window(BufferControl(self.input, input_processors=[prompt]),
                      height=self._input_height, get_horizontal_scroll=self._sideways)
        return FloatContainer(HSplit([body, status, line]), floats=[
            Float(xcursor=True, ycursor=True, content=CompletionsMenu(max_height=8))])

    def _prompt(self) -> str:
        return f"{self.state.shown.title}> "

    def _sideways(self, line: Window) -> int:
        """How far the input line is scrolled sideways: as far as before, but never past
        what its cursor's line needs. prompt_toolkit keeps a scroll while the cursor is
        in sight, so a line emptied (Enter, Ctrl-U) or a terminal widened after being
        narrower than the prompt stayed scrolled, the prompt out of sight."""
        document = self.input.document
        shown = (self._prompt() if document.cursor_position_row == 0 else "") + \
            document.current_line
        # The cell after the text, where the cursor may be, is in sight too.
        needed = get_cwidth(shown) + 1 - self.app.output.get_size().columns
        return max(0, min(line.horizontal_scroll, needed))

    def _input_height(self) -> Dimension:
        """One row, or one per line of a paste: shown on one row, its last line alone
        would be in sight, without the prompt, as if the others had gone."""
        return Dimension.exact(min(self.input.document.line_count, INPUT_ROWS))

    # -- what is drawn ------------------------------------------------------------------

    def _list_width(self) -> int:
        """The room list's columns: ROOM_LIST_WIDTH, less on a narrow terminal."""
        return min(ROOM_LIST_WIDTH, self.app.output.get_size().columns // ROOM_LIST_SHARE)

    def _room_list(self) -> StyleAndTextTuples:
        out: StyleAndTextTuples = []
        width = self._list_width()
        for number, key in enumerate(self.state.keys(), start=1):
            conversation = self.state.conversations[key]
            count, style = "", "class:roomlist.current" if key == self.state.current else ""
            if conversation.mentions:
                count, style = f" ({conversation.unread}!)", style + " class:mention"
            elif conversation.unread:
                count, style = f" ({conversation.unread})", style + " class:unread"
            # A long name is cut, never the count after it: that is what the list is for.
            name = _cut(f"{number}:{conversation.title}", width - len(count))
            out.append((style, (name + count).ljust(width) + "\n", self._clicked(key)))
        return out

    def _clicked(self, key: str) -> Callable[[MouseEvent], None]:
        def handler(event: MouseEvent) -> None:
            if event.event_type == MouseEventType.MOUSE_UP:
                self.controller.jump(key)
        return handler

    def _status(self) -> StyleAndTextTuples:
        state, shown = self.state, self.state.shown
        parts = [state.me or "?", state.connection, shown.title]
        typers = state.typers(shown.key, self.controller.clock()) if shown.is_room else []
        if typers:
            parts.append(f"{', '.join(typers)} {'is' if len(typers) == 1 else 'are'} typing")
        hint = "PgUp older  Ctrl-N/P rooms  Tab complete  /quit"
        return [("class:status", " " + " \N{MIDDLE DOT} ".join(parts) + "   " + hint)]

    # -- keys ------------------------------------------------------------------------------

    def _bindings(self) -> KeyBindings:
        keys = KeyBindings()
        empty = Condition(lambda: not self.input.text)
        keys.add("pageup")(lambda e: self.controller.scroll(self._page()))
        keys.add("pagedown")(lambda e: self.controller.scroll(-self._page()))
        for combo, by in ((("c-n",), 1), (("c-p",), -1), (("escape", "right"), 1),
                          (("escape", "left"), -1)):
            keys.add(*combo)(self._stepper(by))
        for number in range(1, 10):
            keys.add("escape", str(number))(self._jumper(number))
        keys.add("c-c")(lambda e: self._quit())
        keys.add("c-d", filter=empty)(lambda e: self._quit())
        return keys

    def _page(self) -> int:
        return max(1, self.scrollback.height - 2)

    def _stepper(self, by: int) -> Callable[[KeyPressEvent], None]:
        return lambda event: self.controller.step(by)

    def _jumper(self, number: int) -> Callable[[KeyPressEvent], None]:
        def jump(event: KeyPressEvent) -> None:
            keys = self.state.keys()
            if number <= len(keys):
                self.controller.jump(keys[number - 1])
        return jump

    def _quit(self) -> None:
        if not self.app.is_done:
            self.app.exit(result=0)

    # -- running ---------------------------------------------------------------------------

    def _accept(self, buffer: Buffer) -> bool:
        self._queue.put_nowait((buffer.text, self.state.current))
        self.controller.state.shown.to_bottom()  # what you send, you see
        return False

    async def _typed_lines(self) -> None:
        """Handle typed lines one at a time, in order, as the server must see them."""
        while True:
            if not await self.controller.submit(*await self._queue.get()):
                self._quit()
                return

    async def _pump(self) -> None:
        await self.controller.pump()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self.app.invalidate()

    async def run(self) -> int:
        """Until /quit, Ctrl-D or Ctrl-C; 0."""
        workers = [asyncio.ensure_future(work) for work in
                   (self._typed_lines(), self._pump(), self._tick())]
        try:
            return await self.app.run_async()
        finally:
            for worker in workers:
                worker.cancel()
                with contextlib.suppress(BaseException):
                    await worker
            await self.controller.close()


def _below(new: int, rows: int) -> str:
    """The bottom row of a view scrolled up: how far, and how many lines came since."""
    if not new:
        return f" {rows} rows below: PageDown "
    return f" {new} new line{'s' * (new != 1)}, {rows} rows below: PageDown "


def _cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, an ellipsis saying it was cut."""
    return text if len(text) <= width else text[:max(0, width - 1)] + "\N{HORIZONTAL ELLIPSIS}"


async def chat(session: ClientSession, said: list[Line], reconnect: Reconnect | None = None,
               color: bool = True, mouse: bool = False, input: Input | None = None,
               output: Output | None = None) -> bool:
    """Run the full screen over a logged-in session; whether it is still connected."""
    state = ChatState(session.user)
    controller = Controller(session, state, Vocabulary(), reconnect)
    screen = Screen(controller, color, mouse, input, output)
    await controller.start(said)
    await screen.run()
    return state.connection == "connected"
