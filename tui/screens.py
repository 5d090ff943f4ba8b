"""The modal screens: help, export path, sort menu.

Each one returns its answer through ``dismiss`` (the app passes a callback), so the app
holds no state for them.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option


def help_text() -> str:
    """The help screen's text (built when shown: the filter module brings pandas)."""
    from pcapip.report import filters

    return (
    """\
[b]pcapip tui[/b] — which flows lost their real client, and why.

[b u]Keys[/b u]  (they work wherever the focus is; the footer's left end says where it is)
  [b]/[/b]            edit the filter (Enter applies)
  [b]Esc[/b]          back one level: detail or filter → table, groups → flows,
               a drilled-down group → the groups, dialogs close
  [b]↑ ↓ PgUp PgDn[/b] move in the table;  [b]← →[/b] scroll columns
  [b]Enter[/b]        table: open the flow (or the group) · tree: expand / collapse
               findings: show only the flows with that finding
  [b]Tab[/b] / [b]Shift+Tab[/b]  switch panes
  [b]s[/b]            sort menu (or click a header);  [b]S[/b] reverse the order
  [b]g[/b]            group by: flows → egress IP → client IP
  [b]p t f u[/b]      detail tabs: packet, timeline, findings, summary
  [b][ ][/b]          previous / next packet of the flow (every packet, in capture order)
  [b]e[/b]            export the current view to CSV
  [b]x[/b]            stop a live capture (the recording is then analysed in full)
  [b]?[/b]            this help;  [b]q[/b] quit

[b u]Filter[/b u]  (terms next to each other must all match)
  method==ppv2          egress_ip=198.51.100.1      client_ip in 203.0.113.0/24
  finding:origin-rejected    finding:toa (every TOA finding)    status!=ok
  origin_port>=8000     has:client_ip    client_ip==none    tlvs~unique_id
  is:problem (a warning or error finding)
  a or b,  not a,  ( ),  any other word: text anywhere in the row
  Fields: """
    + ", ".join(filters.FIELDS)
    + """
  Short names: client, egress, origin, proxy, ip (any address), port (any port)

[b u]Colours[/b u]  status: [green]ok[/] [red]malformed[/] [yellow]incomplete[/] [magenta]absent[/] [dim]mid-stream[/]
          attempts that never completed: [dim yellow]unanswered refused half-open[/]
  severity column: [red]error[/] [yellow]warning[/] [cyan]info[/] (E W i when the terminal is narrow)
"""
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    #help { width: 100; max-width: 100%; height: auto; max-height: 100%;
            border: round $accent; background: $panel; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(help_text(), markup=True)

    def action_dismiss(self) -> None:
        self.dismiss(None)


class ExportScreen(ModalScreen[str | None]):
    """Asks where to write; the answer is an absolute path (what the notification repeats)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    ExportScreen { align: center middle; }
    #export { width: 90; max-width: 100%; height: auto; border: round $accent;
              background: $panel; padding: 0 1; }
    #export Input { width: 100%; }
    """

    def __init__(self, default: str, what: str) -> None:
        super().__init__()
        self.default = default
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(id="export"):
            yield Label(f"Export {self.what} to CSV file:")
            yield Input(self.default, id="export-path")
            yield Label("Enter writes it, Esc cancels", classes="dim")

    @on(Input.Submitted, "#export-path")
    def _done(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SortScreen(ModalScreen[tuple[str, bool] | None]):
    """The sort menu: one line per column, the current one marked; Enter sorts ascending,
    ``r`` (or choosing the current column again) reverses."""

    BINDINGS = [
        Binding("escape,s", "cancel", "Cancel"),
        Binding("r", "reverse", "Reverse"),
    ]
    DEFAULT_CSS = """
    SortScreen { align: center middle; }
    #sort { width: 44; height: auto; max-height: 100%; border: round $accent;
            background: $panel; padding: 0 1; }
    #sort OptionList { height: auto; max-height: 20; border: none; padding: 0; }
    #sort OptionList:focus { border: none; }
    """

    def __init__(self, columns: list[tuple[str, str]], key: str | None, desc: bool) -> None:
        super().__init__()
        self.columns = columns  # (key, title)
        self.key = key
        self.desc = desc

    def compose(self) -> ComposeResult:
        opts = []
        for k, title in self.columns:
            mark = (" ▼" if self.desc else " ▲") if k == self.key else ""
            opts.append(Option(f"{title}{mark}", id=k))
        with Vertical(id="sort"):
            yield Label("[b]Sort flows by[/b]  Enter · r reverse · Esc")
            yield OptionList(*opts, id="sort-options")

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        keys = [k for k, _ in self.columns]
        ol.highlighted = keys.index(self.key) if self.key in keys else 0

    @on(OptionList.OptionSelected, "#sort-options")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        key = str(event.option.id)
        self.dismiss((key, (not self.desc) if key == self.key else False))

    def action_reverse(self) -> None:
        ol = self.query_one(OptionList)
        if ol.highlighted is not None:
            key = self.columns[ol.highlighted][0]
            self.dismiss((key, not self.desc if key == self.key else True))

    def action_cancel(self) -> None:
        self.dismiss(None)
