"""A prompt_toolkit container that draws one grapheme cluster per screen cell.

prompt_toolkit's Window puts each code point in a cell of its own width, so a
family of three people joined by ZERO WIDTH JOINERs fills six cells of its
screen while the terminal draws it in two: the rest of the row lands four cells
left of where prompt_toolkit believes it is, and the next redraw, which writes
only the cells that changed, leaves stray characters behind. This container
draws a control's rows as the terminal will: a whole cluster in one cell,
as wide as cells.cluster_width measures it. The rows must already fit the
width (paint.wrap cuts them so); what would overflow is left out.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from prompt_toolkit.data_structures import Point
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout.containers import Container
from prompt_toolkit.layout.controls import UIControl
from prompt_toolkit.layout.dimension import Dimension
from prompt_toolkit.layout.mouse_handlers import MouseHandlers
from prompt_toolkit.layout.screen import Char, Screen, WritePosition
from prompt_toolkit.mouse_events import MouseEvent

from chatd.client.tui.cells import cluster_width, clusters

if TYPE_CHECKING:  # prompt_toolkit defines it for type checkers only
    from prompt_toolkit.key_binding.key_bindings import NotImplementedOrNone

# What covers the second cell of a wide cluster: the renderer skips it, as it
# skips the one prompt_toolkit's own Window leaves there.
_COVERED = Char("", "")


@lru_cache(maxsize=8192)
def _cell(cluster: str, style: str) -> Char:
    """One cell's content, as wide as the terminal draws the cluster."""
    cell = Char(cluster, style)
    # A control character Char shows as ^X keeps the width of what it shows.
    cell.width = cluster_width(cell.char)
    return cell


class ClusterWindow(Container):
    """Draws ``content``'s rows, top-aligned, one grapheme cluster per cell."""

    def __init__(self, content: UIControl) -> None:
        self.content = content

    def reset(self) -> None:
        self.content.reset()

    def preferred_width(self, max_available_width: int) -> Dimension:
        return Dimension()

    def preferred_height(self, width: int, max_available_height: int) -> Dimension:
        return Dimension()

    def get_children(self) -> list[Container]:
        return []

    def write_to_screen(self, screen: Screen, mouse_handlers: MouseHandlers,
                        write_position: WritePosition, parent_style: str, erase_bg: bool,
                        z_index: int | None) -> None:
        where = write_position
        drawn = self.content.create_content(where.width, where.height)
        for y in range(min(where.height, drawn.line_count)):
            _write_row(screen.data_buffer[where.ypos + y], where.xpos, where.width,
                       drawn.get_line(y), parent_style)

        def handler(event: MouseEvent) -> NotImplementedOrNone:
            inside = Point(x=event.position.x - where.xpos, y=event.position.y - where.ypos)
            return self.content.mouse_handler(MouseEvent(inside, event.event_type,
                                                         event.button, event.modifiers))

        mouse_handlers.set_mouse_handler_for_range(
            x_min=where.xpos, x_max=where.xpos + where.width,
            y_min=where.ypos, y_max=where.ypos + where.height, handler=handler)


def _write_row(row: dict[int, Char], left: int, width: int, fragments: StyleAndTextTuples,
               parent_style: str) -> None:
    x, last = 0, None  # the cell written last, where a cluster of no width goes
    for fragment in fragments:
        style = f"{parent_style} {fragment[0]}"
        for cluster in clusters(fragment[1]):
            cell = _cell(cluster, style)
            if cell.width == 0:
                # A mark with nothing before it in its fragment (a combining accent
                # after a styled name): the terminal joins it to the cell before.
                if last is not None:
                    row[last] = _joined(row[last], cluster)
                continue
            if x + cell.width > width:
                return
            row[left + x] = cell
            for covered in range(1, cell.width):
                row[left + x + covered] = _COVERED
            last, x = left + x, x + cell.width


def _joined(cell: Char, mark: str) -> Char:
    """``cell`` with ``mark`` drawn into it, as wide as the cells it was given."""
    joined = Char(cell.char + mark, cell.style)
    joined.width = cell.width
    return joined
