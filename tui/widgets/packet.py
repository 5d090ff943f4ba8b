"""The packet part of the detail pane: a field tree and a hex dump that marks the field's bytes."""

from __future__ import annotations

import contextlib
from typing import Any

from rich.style import Style
from rich.text import Text
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

HEX_MARK = Style(reverse=True, bold=True, color="yellow")
_EXPERT_STYLE = {
    "chat": Style(color="cyan", dim=True),
    "note": Style(color="cyan"),
    "warning": Style(color="yellow"),
    "error": Style(color="red", bold=True),
}
WIDTH = 16


def field_label(f: Any) -> Text:
    label = f"[{f.label}]" if f.generated else f.label
    t = Text(label)
    if f.generated:
        t.stylize("italic dim")
    worst = max((e.severity for e in f.all_experts()), default=None)
    if worst is not None and int(worst) >= 2:
        t.stylize("yellow" if int(worst) == 2 else "bold red")
    return t


class PacketTree(Tree[Any]):
    """Wireshark's packet details pane: one root per layer, experts as coloured children.

    Node data is the Field (or the Expert) so the hex view can mark its bytes. No horizontal
    scroll bar: one appearing after the cursor was scrolled into view would cover the last
    line, which is where the interesting field usually is.
    """

    DEFAULT_CSS = """
    PacketTree { background: $surface; scrollbar-size-vertical: 1; overflow-x: hidden; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("packet", **kwargs)
        self.show_root = False
        self.guide_depth = 2
        self.auto_expand = True
        self._generation = 0

    def show(self, layers: list[Any], focus: Any = None) -> TreeNode[Any] | None:
        """Replace the tree; expand the path to ``focus`` and put the cursor on it."""
        self.clear()
        self.scroll_to(0, 0, animate=False, immediate=True)  # same view whatever came before
        self._generation += 1
        target: TreeNode[Any] | None = None
        path = _path_to(layers, focus) if focus is not None else []
        for layer in layers:
            node = self._add(self.root, layer, path)
            if target is None and focus is not None:
                target = _find_node(node, focus)
        self.root.expand()
        if target is not None:
            self.call_after_refresh(self._land, target, self._generation)
        return target

    def _land(self, node: TreeNode[Any], generation: int) -> None:
        if generation != self._generation:
            return  # the tree was replaced since: this node is gone
        # the tree numbers its lines lazily (on idle); number them now, so the cursor and the
        # scroll position do not depend on whether an idle pass came first
        with contextlib.suppress(AttributeError):
            self._tree_lines  # noqa: B018 (the property builds the lines)
        self.move_cursor(node, animate=False)
        self.scroll_to_node(node, animate=False)
        self.call_after_refresh(self._sync_scrollbar)

    def on_resize(self) -> None:
        # the pane's height is settled by the layout, which may come after the landing above
        # (the hex dump below takes its lines once it knows them): keep the cursor in view
        if self.cursor_node is not None and self.cursor_line > 0:
            self.call_after_refresh(self.scroll_to_node, self.cursor_node, animate=False)

    def _sync_scrollbar(self) -> None:
        # a scroll made before the scroll bar is shown does not move its thumb: set it here
        self.vertical_scrollbar.position = self.scroll_y

    def _add(self, parent: TreeNode[Any], f: Any, path: list[Any]) -> TreeNode[Any]:
        has_kids = bool(f.children or f.experts)
        node = parent.add(
            field_label(f), data=f, expand=any(p is f for p in path), allow_expand=has_kids
        )
        for e in f.experts:
            t = Text(
                f"[Expert Info ({e.severity.label}): {e.message}]",
                style=_EXPERT_STYLE.get(e.severity.label),
            )
            node.add_leaf(t, data=e)
        for c in f.children:
            self._add(node, c, path)
        return node


def _path_to(layers: list[Any], target: Any) -> list[Any]:
    def walk(f: Any, acc: list[Any]) -> list[Any] | None:
        if f is target:
            return [*acc, f]
        for c in f.children:
            r = walk(c, [*acc, f])
            if r is not None:
                return r
        return None

    for layer in layers:
        r = walk(layer, [])
        if r is not None:
            return r  # the target and its ancestors: its fields show at once
    return []


def _find_node(node: TreeNode[Any], target: Any) -> TreeNode[Any] | None:
    if node.data is target:
        return node
    for c in node.children:
        r = _find_node(c, target)
        if r is not None:
            return r
    return None


class HexView(Static):
    """16 bytes a line (offset, hex, ASCII); the selected field's bytes drawn reversed in both
    columns."""

    DEFAULT_CSS = """
    HexView { width: auto; height: auto; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.data = b""
        self.mark: tuple[int, int] | None = None

    def show(self, data: bytes, mark: tuple[int, int] | None = None) -> None:
        self.data = bytes(data)
        self.mark = mark
        self.update(self.render_text())

    def set_mark(self, mark: tuple[int, int] | None) -> None:
        self.mark = mark
        self.update(self.render_text())

    def render_text(self) -> Text:
        data = self.data
        n = len(data)
        if not n:
            return Text("")
        lo = hi = 0
        if self.mark is not None and self.mark[1] > 0:
            lo = max(0, self.mark[0])
            hi = min(n, self.mark[0] + self.mark[1])
        digits = max(4, len(f"{n - 1:x}"))
        out = Text(no_wrap=True, overflow="crop")
        for start in range(0, n, WIDTH):
            if start:
                out.append("\n")
            row = data[start : start + WIDTH]
            out.append(f"{start:0{digits}x}  ", style="dim")
            for k in range(WIDTH):
                i = start + k
                if k == 8:
                    out.append(" ")
                if k < len(row):
                    st = HEX_MARK if lo <= i < hi else None
                    out.append(f"{row[k]:02x}", style=st)
                    # the space between two marked bytes is marked too: one visible block
                    out.append(
                        " ",
                        style=HEX_MARK
                        if lo <= i < hi - 1 and k != 7 and k < len(row) - 1
                        else None,
                    )
                else:
                    out.append("   ")
            out.append(" ")
            for k, b in enumerate(row):
                ch = chr(b) if 0x20 <= b < 0x7F else "."
                out.append(ch, style=HEX_MARK if lo <= start + k < hi else None)
        return out

    def marked_bytes(self) -> bytes:
        """The bytes drawn marked in the hex column, read back from the rendered text."""
        text = self.render_text()
        plain = text.plain
        marked = bytearray()
        for line_start, line in _lines(plain):
            hex_start = line.index("  ") + 2
            for k in range(WIDTH):
                col = hex_start + k * 3 + (1 if k >= 8 else 0)
                cell = line[col : col + 2]
                if len(cell) < 2 or cell == "  ":
                    break
                if _styled(text, line_start + col, HEX_MARK):
                    marked.append(int(cell, 16))
        return bytes(marked)


def _lines(plain: str) -> list[tuple[int, str]]:
    out = []
    pos = 0
    for line in plain.split("\n"):
        out.append((pos, line))
        pos += len(line) + 1
    return out


def _styled(text: Text, index: int, style: Style) -> bool:
    return any(s.start <= index < s.end and s.style == style for s in text.spans)
