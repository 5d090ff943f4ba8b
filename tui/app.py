"""The pcapip terminal UI: flows table, detail pane, summary, filter bar.

Threads: the capture is read by a worker thread (the loader); it posts
provisional rows every few seconds, and the UI thread folds them into the
model and redraws only what is on screen. The detail of a selected flow is
gathered by another worker (reading a few frames at known offsets), so
moving the cursor never waits for the disk.

The app is thin: it holds the style sheet and the app-wide keys, each handed to the
widget that owns what it changes, and starts the reading. The main screen
(tui.main_screen) composes the widgets and carries their dataclass messages; the flows
table (tui.widgets.flows_table) owns its filter, sort and grouping as reactive
attributes, the detail tabs the selected flow's detail, the capture reader
(tui.widgets.reader) the reading, the dialogs (tui.screens) their answers.
"""

from __future__ import annotations

import os
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.widgets import Input

from pcapip.tui.main_screen import MainScreen
from pcapip.tui.screens import HelpScreen
from pcapip.tui.widgets.packet_pane import PacketPane

__all__ = ["HelpScreen", "PcapipApp"]


class PcapipApp(App[int]):
    """``pcapip tui CAPTURE``; also the screen of ``pcapip live --tui`` (see tui.live)."""

    TITLE = "pcapip"
    CSS = """
    Screen { layout: vertical; }
    #filter { height: 1; border: none; padding: 0 1; background: $boost; }
    #filter.-invalid { background: $error 30%; }
    #filter.-valid { background: $success 15%; }
    #status { height: 1; padding: 0 1; background: $panel; color: $text-muted; }
    #main { height: 1fr; }
    #left { width: 1fr; }
    #flows { height: 45%; min-height: 4; }
    #detail { height: 1fr; }
    #detail ContentSwitcher { height: 1fr; }
    #detail TabPane { padding: 0; height: 1fr; }
    #detail ContentTabs { height: 1; }
    #detail Underline { display: none; }
    #detail Tab.-active { text-style: bold reverse; }
    #side { width: 44; display: none; border-left: tall $panel; }
    .wide #side { display: block; }
    #bottom { height: 1; dock: bottom; }
    #where { width: auto; height: 1; padding: 0 1; background: $accent; color: $text;
             text-style: bold; }
    #bottom Footer { dock: none; width: 1fr; }
    """

    BINDINGS = [
        # priority: handled before the key travels to the focused widget, so the keys typed
        # right after "/" already reach the filter (check_action lets "/" through to inputs)
        Binding("slash", "focus_filter", "Filter", priority=True),
        Binding("escape", "escape", "Back"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("g", "group", "Group"),
        Binding("s", "sort", "Sort"),
        Binding("S", "sort_reverse", "Reverse", show=False),
        Binding("e", "export", "Export"),
        Binding("p", "tab('packet')", "Packet", show=False),
        Binding("t", "tab('timeline')", "Timeline", show=False),
        Binding("f", "tab('findings')", "Findings", show=False),
        Binding("u", "tab('summary')", "Summary", show=False),
        Binding("left_square_bracket", "packet(-1)", "Prev packet", show=False),
        Binding("right_square_bracket", "packet(1)", "Next packet", show=False),
        Binding("x", "stop_live", "Stop capture", show=False),
    ]

    def __init__(
        self,
        capture: str | None = None,
        *,
        trusted: str | list[str] | None = None,
        toa_kinds: list[str] | None = None,
        vxlan_ports: tuple[int, ...] = (),
        title: str | None = None,
        rules: Any = None,
    ) -> None:
        super().__init__()
        self.capture = capture
        self.export_stem: str | None = None  # default export file name stem
        self.sub_title = title or (os.path.basename(capture) if capture else "")
        self.main = MainScreen(
            trusted=trusted, toa_kinds=toa_kinds, vxlan_ports=tuple(vxlan_ports), rules=rules
        )

    def get_default_screen(self) -> MainScreen:
        return self.main

    # what the widgets know, as the app's own (tests, tui.live and bench/tui_load.py ask)
    table = property(lambda self: self.main.table)
    loaded = property(lambda self: self.main.reader.loaded)
    progress = property(lambda self: self.main.reader.progress)
    detail = property(lambda self: self.main.details.detail)

    def on_main_screen_ready(self, msg: MainScreen.Ready) -> None:
        if self.capture is not None:
            self.start_loader(self.capture, provisional=True)

    def start_loader(self, path: str, *, provisional: bool) -> None:
        """Read ``path``; provisional rows show as they come (unless the live feed already
        showed them)."""
        self.main.reader.start(path, provisional=provisional)

    def on_descendant_focus(self, event: Any) -> None:
        if self.screen_stack and self.main.is_mounted:  # (not while the app closes)
            self.main.show_place()

    # ---------------------------------------------------------------- keys
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if len(self.screen_stack) > 1:
            return action == "quit"  # a dialog is open: its keys, not the table's
        if action == "focus_filter":
            return not isinstance(self.focused, Input)
        if action == "escape":
            return self.main.back_target() is not None
        return True

    def action_focus_filter(self) -> None:
        # focus now, not after a refresh: the keys typed right after "/" belong to the filter
        self.screen.set_focus(self.main.query_one("#filter", Input))

    def action_escape(self) -> None:
        self.main.back()

    def action_group(self) -> None:
        self.table.next_grouping()

    def action_sort(self) -> None:
        self.main.ask_sort()

    def action_sort_reverse(self) -> None:
        self.table.reverse()

    def action_export(self) -> None:
        self.main.ask_export(self.capture, self.export_stem)

    def action_tab(self, name: str) -> None:
        self.main.switch_tab(name, focus=self.main.in_detail(self.focused))

    def action_packet(self, delta: int) -> None:
        self.main.query_one(PacketPane).step(delta)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_stop_live(self) -> None:
        """Only the live app (tui.live) has a capture to stop."""
