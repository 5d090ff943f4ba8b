"""A table that draws only the lines on screen (Textual's line API).

A capture can hold hundreds of thousands of flows; a widget, or even a
stored row object per flow, would make the first screen wait for all of
them. This table asks its source for the cells of the rows it is about to
draw, so its cost is the height of the terminal, whatever the row count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


@dataclass
class Column:
    key: str
    title: str
    width: int
    right: bool = False


class TableSource(Protocol):
    """What the table needs from its data."""

    def columns(self, width: int | None = None) -> list[Column]:
        """The columns, fitted to ``width`` cells when the source can."""
        ...
    def row_count(self) -> int: ...
    def cells(self, row: int) -> list[tuple[str, Style | None]]: ...
    def row_style(self, row: int) -> Style | None: ...
    def sort_state(self) -> tuple[str | None, bool]: ...


class EmptySource:
    def columns(self, width: int | None = None) -> list[Column]:
        return []

    def row_count(self) -> int:
        return 0

    def cells(self, row: int) -> list[tuple[str, Style | None]]:
        return []

    def row_style(self, row: int) -> Style | None:
        return None

    def sort_state(self) -> tuple[str | None, bool]:
        return None, False


_HEADER = Style(bold=True, reverse=False, underline=True)
_CURSOR_FOCUSED = Style(reverse=True, bold=True)
_CURSOR_BLURRED = Style(reverse=True)


def _fit(text: str, width: int, right: bool) -> str:
    if len(text) > width:
        return text[: max(0, width - 1)] + "…" if width > 1 else text[:width]
    return text.rjust(width) if right else text.ljust(width)


class VirtualTable(ScrollView, can_focus=True):
    """Rows from a TableSource, a cursor, a header that sorts on click."""

    DEFAULT_CSS = """
    VirtualTable {
        background: $surface;
        scrollbar-size-vertical: 1;
        scrollbar-size-horizontal: 0;
    }
    """

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("left", "scroll_cols(-8)", "Left", show=False),
        Binding("right", "scroll_cols(8)", "Right", show=False),
        Binding("enter", "select", "Open", show=True),
    ]

    cursor = reactive(0, always_update=True)

    @dataclass
    class _RowMessage(Message):
        """A message about one view row of the table (the table is its ``control``)."""

        table: VirtualTable
        row: int

        @property
        def control(self) -> VirtualTable:
            return self.table

    class Highlighted(_RowMessage):
        """The cursor moved to ``row`` (view row index)."""

    class Selected(_RowMessage):
        """Enter (or a click) on ``row``."""

    @dataclass
    class HeaderClicked(Message):
        """A click on the header of column ``key`` (the flows table sorts by it)."""

        table: VirtualTable
        key: str

        @property
        def control(self) -> VirtualTable:
            return self.table

    def __init__(self, source: TableSource | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.source: TableSource = source or EmptySource()
        self._row_count = 0
        self._layout: tuple[Any, list[Column]] | None = None
        #: called with the row on Enter or a double click, instead of posting Selected
        self.opener: Callable[[int], None] | None = None

    # ------------------------------------------------------------ data
    def columns(self) -> list[Column]:
        """The source's columns fitted to the width on screen (cached per data and width)."""
        width = self.scrollable_content_region.width
        sort = self.source.sort_state()
        key = (
            id(self.source),
            width,
            self._row_count,
            getattr(self.source, "generation", None),
            sort,
        )
        if self._layout is None or self._layout[0] != key:
            cols = self.source.columns(width or None)
            # the sorted column's title keeps its ▲/▼ whole
            cols = [
                replace(c, width=max(c.width, len(c.title) + 1)) if c.key == sort[0] else c
                for c in cols
            ]
            self._layout = (key, cols)
        return self._layout[1]

    def set_source(self, source: TableSource, *, cursor: int | None = None) -> None:
        self.source = source
        self.reload(cursor=cursor)

    def reload(self, *, cursor: int | None = None) -> None:
        """The source's rows changed; keep the cursor (or move it to ``cursor``)."""
        self._row_count = self.source.row_count()
        self._layout = None
        width = sum(c.width + 1 for c in self.columns())
        self.virtual_size = Size(width, self._row_count + 1)
        target = self.cursor if cursor is None else cursor
        target = max(0, min(target, self._row_count - 1)) if self._row_count else 0
        changed = target != self.cursor
        self.set_reactive(VirtualTable.cursor, target)
        self._scroll_to_cursor()
        self.call_after_refresh(self._sync_scrollbar)
        self.refresh()
        if changed or cursor is not None:
            self.post_message(self.Highlighted(self, target))

    def _sync_scrollbar(self) -> None:
        # a scroll made before the scroll bar is shown does not move its thumb: set it here
        self.vertical_scrollbar.position = self.scroll_y

    @property
    def row_count(self) -> int:
        return self._row_count

    # ------------------------------------------------------------ cursor
    def watch_cursor(self, old: int, new: int) -> None:
        self._scroll_to_cursor()
        self.refresh()
        if self._row_count:
            self.post_message(self.Highlighted(self, new))

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_to_cursor(self) -> None:
        h = self._page()
        y = int(self.scroll_y)
        if self.cursor < y:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= y + h:
            self.scroll_to(y=self.cursor - h + 1, animate=False, immediate=True)

    def move_to(self, row: int) -> None:
        if self._row_count:
            self.cursor = max(0, min(row, self._row_count - 1))

    def action_cursor(self, delta: int) -> None:
        self.move_to(self.cursor + delta)

    def action_page(self, delta: int) -> None:
        self.move_to(self.cursor + delta * self._page())

    def action_jump(self, where: int) -> None:
        self.move_to(self._row_count - 1 if where < 0 else where)

    def action_scroll_cols(self, delta: int) -> None:
        """Scroll by whole columns: the first column shown starts at the left edge."""
        starts = self._starts()[:-1]
        x = int(self.scroll_x)
        if delta > 0:
            nxt = [s for s in starts if s > x]
            last = max(0, int(self.virtual_size.width) - self.scrollable_content_region.width)
            target = min(nxt[0], last) if nxt else x
        else:
            prev = [s for s in starts if s < x]
            target = prev[-1] if prev else 0
        self.scroll_to(x=target, animate=False)

    def _starts(self) -> list[int]:
        """Where each column starts, and where the last one ends (+1)."""
        out, pos = [], 0
        for c in self.columns():
            out.append(pos)
            pos += c.width + 1
        return [*out, pos]

    def action_select(self) -> None:
        if self._row_count:
            self._select(self.cursor)

    def _select(self, row: int) -> None:
        """Open ``row``: by the ``opener`` callback when one is set (it runs now, before the
        next key), else by a Selected message."""
        if self.opener is not None:
            self.opener(row)
        else:
            self.post_message(self.Selected(self, row))

    # ------------------------------------------------------------ mouse
    def _column_at(self, x: int) -> str | None:
        pos = 0
        for c in self.columns():
            if pos <= x < pos + c.width + 1:
                return c.key
            pos += c.width + 1
        return None

    async def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            key = self._column_at(offset.x + int(self.scroll_x))
            if key is not None:
                self.post_message(self.HeaderClicked(self, key))
            return
        row = int(self.scroll_y) + offset.y - 1
        if 0 <= row < self._row_count:
            if row == self.cursor and event.chain >= 2:
                self._select(row)
            self.cursor = row

    # ------------------------------------------------------------ drawing
    def _line(self, cells: list[tuple[str, Style | None]], base: Style | None) -> list[Segment]:
        segs: list[Segment] = []
        for (text, style), col in zip(cells, self.columns(), strict=False):
            st = base + style if (base and style) else (style or base)
            segs.append(Segment(_fit(text, col.width, col.right), st))
            segs.append(Segment(" ", base))
        return segs

    def _header(self) -> list[Segment]:
        key, desc = self.source.sort_state()
        segs: list[Segment] = []
        for c in self.columns():
            title = c.title
            if key == c.key:
                title = f"{title}{'▼' if desc else '▲'}"
            segs.append(Segment(_fit(title, c.width, c.right), _HEADER))
            segs.append(Segment(" "))
        return segs

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        x0 = int(self.scroll_x)
        if y == 0:
            segs = self._header()
        else:
            row = int(self.scroll_y) + y - 1
            if row >= self._row_count:
                return Strip.blank(width, self.rich_style)
            base = self.source.row_style(row)
            cells = self.source.cells(row)
            if row == self.cursor:
                cur = _CURSOR_FOCUSED if self.has_focus else _CURSOR_BLURRED
                base = (base + cur) if base else cur
                cells = [(t, None) for t, _ in cells]
            segs = self._line(cells, base)
        strip = Strip(segs).crop(x0, self._visible_end(x0, width))
        return strip.extend_cell_length(width, self.rich_style).apply_style(self.rich_style)

    def _visible_end(self, x0: int, width: int) -> int:
        """Right edge of the last column shown whole: a column that does not fit is left
        out rather than cut to its first letters (← → bring it in)."""
        ends = [e for e in self._starts()[1:] if x0 < e <= x0 + width + 1]
        return min(x0 + width, ends[-1]) if ends else x0 + width

    def on_resize(self) -> None:
        self._layout = None
        self.reload()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def visible_text(self) -> list[str]:
        """The lines as drawn now (header first), for tests and screen readers."""
        return [self.render_line(y).text for y in range(self.scrollable_content_region.height)]
