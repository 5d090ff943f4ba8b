"""Moving around the TUI as an operator does: focus, Esc, tab keys, [ ], findings, sort.

Issue 11: after Enter on a flow the tab keys did nothing and Esc did not return to the
table; [ ] only visited the packets that carried the client address. The packets a flow
has are taken from tshark, their bytes from dpkt, the flows with a finding from
``pcapip.analyze`` — never from the TUI itself.
"""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from tools import require_tool
from tui_pilot import PCAPS, settle, static_text, table_lines, wait_loaded

import pcapip
from pcapip.tui.app import PcapipApp
from pcapip.tui.screens import SortScreen
from pcapip.tui.widgets.packet import HexView, PacketTree
from pcapip.tui.widgets.table import VirtualTable

TROUBLE = PCAPS / "troubleshooting.pcap"


def run(coro):
    return asyncio.run(coro)


def where(app) -> str:
    return static_text(app.query_one("#where")).strip()


def footer_keys(app) -> set[str]:
    return {k.description for k in app.query("FooterKey")}


def flow_no(line: str) -> int:
    """The No. cell of a table line (the severity cell before it may be empty)."""
    cells = line.split()
    return int(cells[0]) if cells[0].isdigit() else int(cells[1])


def inside(widget, ancestor_id: str) -> bool:
    return any(a.id == ancestor_id for a in widget.ancestors_with_self)


def tshark_frames(path, a_port: int, b_port: int) -> list[int]:
    out = subprocess.run(
        ["tshark", "-r", str(path), "-Y", f"tcp.port=={a_port} && tcp.port=={b_port}",
         "-T", "fields", "-e", "frame.number"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return [int(x) for x in out.stdout.split()]


def dpkt_frames(path) -> dict[int, bytes]:
    import dpkt

    with open(path, "rb") as fh:
        return {i: bytes(buf) for i, (_, buf) in enumerate(dpkt.pcap.Reader(fh), 1)}


@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
def test_tab_keys_work_from_the_detail_and_esc_goes_back(size) -> None:
    async def go() -> None:
        app = PcapipApp(str(TROUBLE))
        async with app.run_test(size=size) as pilot:
            await wait_loaded(pilot)
            table = app.query_one("#flows", VirtualTable)
            assert where(app) == "flows table"
            assert "Back" not in footer_keys(app)  # nowhere to go back to from the top
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.focused, PacketTree)
            assert where(app) == "packet tree" and "Back" in footer_keys(app)
            detail = app.query_one("#detail")
            for key, tab, place in (
                ("t", "timeline", "timeline"),
                ("f", "findings", "flow findings"),
                ("u", "summary", "summary findings"),
                ("p", "packet", "packet tree"),
            ):
                await pilot.press(key)
                await settle(pilot)
                assert detail.active == f"tab-{tab}", key
                # the focus went with the tab, not back to a hidden widget of the old one
                assert inside(app.focused, f"tab-{tab}"), (key, app.focused)
                assert where(app) == place
            await pilot.press("escape")
            await settle(pilot)
            assert app.focused is table and where(app) == "flows table"
            # from the table the tab keys switch the tab and leave the focus alone
            await pilot.press("t")
            await settle(pilot)
            assert detail.active == "tab-timeline" and app.focused is table
            # Esc from the filter returns to the table too
            await pilot.press("slash", "x")
            assert where(app) == "filter"
            await pilot.press("escape")
            assert app.focused is table

    run(go())


def test_esc_walks_back_from_a_drilled_group_to_the_groups_then_the_flows() -> None:
    async def go() -> None:
        app = PcapipApp(str(TROUBLE))
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_loaded(pilot)
            await pilot.press("g")  # by egress IP
            await settle(pilot)
            assert where(app) == "egress groups"
            groups = table_lines(app)
            await pilot.press("enter")  # drill into the first group
            await settle(pilot)
            first = groups[1].split()[0]
            assert app.table.grouping == "flows" and app.table.model.filter_text == f"egress_ip=={first}"
            await pilot.press("enter")  # open a flow
            await settle(pilot)
            await pilot.press("escape")  # detail → table
            await settle(pilot)
            assert app.table.grouping == "flows" and isinstance(app.focused, VirtualTable)
            await pilot.press("escape")  # drilled flows → the groups, filter as before
            await settle(pilot)
            assert app.table.grouping == "egress" and app.table.model.filter_text == ""
            assert table_lines(app) == groups
            await pilot.press("escape")  # groups → flows
            await settle(pilot)
            assert app.table.grouping == "flows"
            n = len(pcapip.analyze(str(TROUBLE)).flows)
            assert static_text(app.query_one("#status")).startswith(f"{n}/{n} flows")

    run(go())


def test_brackets_step_through_every_packet_of_the_flow() -> None:
    """Flow 6 (a bad PROXY v2 CRC): starting on its header packet, ] and [ visit every
    packet tshark lists for its ports, in order, each with its own bytes in the hex."""
    require_tool("tshark")

    async def go() -> None:
        app = PcapipApp(str(TROUBLE))
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_loaded(pilot)
            app.table.filter("flow==6")
            await settle(pilot)
            rec = app.main.details.detail.rec
            want = tshark_frames(TROUBLE, rec["egress_port"], rec["origin_port"])
            assert len(want) > 4
            raw = dpkt_frames(TROUBLE)
            pane = app.query_one("#packet")
            hexv = app.query_one("#hex", HexView)
            tl = app.query_one("#timeline")
            header = pane.current.number
            assert header in want and header != want[0]
            await pilot.press("enter")  # into the tree: [ ] work there too
            await settle(pilot)
            for _ in range(want.index(header)):
                await pilot.press("left_square_bracket")
                await settle(pilot)
            seen = [pane.current.number]
            for _ in range(len(want) + 2):  # two extra presses: it stops at the last one
                await pilot.press("right_square_bracket")
                await settle(pilot)
                n = pane.current.number
                if n != seen[-1]:
                    seen.append(n)
                assert hexv.data == raw[n]
                assert tl.get_row_at(tl.cursor_row)[0] == str(n)  # the timeline follows
                title = static_text(app.query_one("#packet-title"))
                assert f"Frame {n} [{want.index(n) + 1}/{len(want)}]" in title
                # the tree is this packet's: its frame layer says its length
                tree = app.query_one("#tree", PacketTree)
                assert f"{len(raw[n])} bytes" in str(tree.root.children[0].label)
            assert seen == want
            assert isinstance(app.focused, PacketTree)

    run(go())


def test_summary_findings_filter_the_table_and_name_severity_in_words() -> None:
    async def go() -> None:
        want = pcapip.analyze(str(TROUBLE)).flows
        app = PcapipApp(str(TROUBLE))
        async with app.run_test(size=(100, 35)) as pilot:
            await wait_loaded(pilot)
            await pilot.press("enter", "u")
            await settle(pilot)
            lst = app.focused
            assert inside(lst, "tab-summary")
            lines = [
                lst.get_option_at_index(i).prompt.plain for i in range(lst.option_count)
            ]
            codes = [line.split()[1] for line in lines]
            assert "origin.rejected" in codes
            sev = {line.split()[1]: line.split()[0] for line in lines}
            assert set(sev.values()) <= {"error", "warning", "info"}
            from pcapip.flows.findings import CATALOGUE

            for code, word in sev.items():
                assert CATALOGUE[code].level.label == word
            lst.highlighted = codes.index("origin.rejected")
            await pilot.press("enter")
            await settle(pilot)
            rows = table_lines(app)[1:]
            hits = want[want.findings.fillna("").str.contains("origin.rejected", regex=False)]
            assert len(rows) == len(hits) >= 1
            assert {flow_no(r) for r in rows} == set(hits.flow)
            assert app.query_one("#filter").value == "finding:origin.rejected"
            assert isinstance(app.focused, VirtualTable)

    run(go())


def test_flow_findings_tab_filters_the_table_by_the_chosen_finding() -> None:
    async def go() -> None:
        want = pcapip.analyze(str(TROUBLE)).flows
        app = PcapipApp(str(TROUBLE))
        async with app.run_test(size=(100, 35)) as pilot:
            await wait_loaded(pilot)
            app.table.filter("finding:client.missing")
            await settle(pilot)
            await pilot.press("enter", "f")
            await settle(pilot)
            assert app.focused.id == "flow-findings"
            codes = app.main.details.detail.rec["findings"].split(";")
            last = codes[-1]
            app.focused.highlighted = 2 * (len(codes) - 1)  # separators between findings
            await pilot.press("enter")
            await settle(pilot)
            hits = want[want.findings.fillna("").str.split(";").apply(lambda c: last in c)]
            assert len(table_lines(app)) == 1 + len(hits)

    run(go())


def test_sort_menu_picks_a_column_and_reverses() -> None:
    async def go() -> None:
        want = pcapip.analyze(str(TROUBLE)).flows
        app = PcapipApp(str(TROUBLE))
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_loaded(pilot)
            await pilot.press("s")
            await settle(pilot)
            assert isinstance(app.screen, SortScreen) and where(app) == "sort menu"
            await pilot.press("g")  # the table's keys wait while the menu is open
            await settle(pilot)
            assert isinstance(app.screen, SortScreen) and app.table.grouping == "flows"
            menu = app.screen.query_one("#sort-options")
            titles = [menu.get_option_at_index(i).prompt for i in range(menu.option_count)]
            assert "Packets" in " ".join(titles) or "Pkts" in titles
            menu.highlighted = [str(t) for t in titles].index("Pkts")
            await pilot.press("enter")
            await settle(pilot)
            assert not isinstance(app.screen, SortScreen)
            assert app.table.model.sort_key == "packets" and not app.table.model.sort_desc
            nos = [flow_no(r) for r in table_lines(app)[1:]]
            pk = dict(zip(want.flow, want.packets, strict=True))
            shown = [pk[n] for n in nos]
            assert shown == sorted(shown)
            await pilot.press("s", "r")  # r in the menu: the same column, reversed
            await settle(pilot)
            assert app.table.model.sort_key == "packets" and app.table.model.sort_desc
            shown = [pk[flow_no(r)] for r in table_lines(app)[1:]]
            assert shown == sorted(shown, reverse=True)
            await pilot.press("s", "escape")  # Esc closes the menu, nothing changes
            await settle(pilot)
            assert app.table.model.sort_desc and isinstance(app.focused, VirtualTable)

    run(go())


def test_export_names_the_absolute_path(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)

    async def go() -> None:
        app = PcapipApp(str(TROUBLE))
        said: list[str] = []
        notify = app.notify
        app.notify = lambda message, **kw: (said.append(str(message)), notify(message, **kw))
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_loaded(pilot)
            await pilot.press("e")
            await settle(pilot)
            inp = app.screen.query_one("#export-path")
            assert inp.value == str(tmp_path / "troubleshooting-flows.csv")
            inp.value = "sub-out.csv"
            await pilot.press("enter")
            await settle(pilot)
        assert (tmp_path / "sub-out.csv").exists()
        assert any(f"to {tmp_path / 'sub-out.csv'}" in s for s in said), said

    run(go())


def test_capture_warnings_reach_the_status_summary_and_a_notification() -> None:
    """A frame on a link type pcapip does not decode: the reader's one-line warning (file,
    packet, byte offset) shows in the status line, the summary and a notification."""
    import dpkt

    path = PCAPS / "unknown-linktype.pcap"
    with path.open("rb") as fh:
        linktype = dpkt.pcap.Reader(fh).datalink()

    async def go() -> None:
        app = PcapipApp(str(path))
        said: list[str] = []
        notify = app.notify
        app.notify = lambda message, **kw: (said.append(str(message)), notify(message, **kw))
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_loaded(pilot)
            assert len(app.main.reader.warnings) == 1
            w = app.main.reader.warnings[0]
            assert w.startswith(f"{path}, packet 1, byte offset 24: link type {linktype} ")
            assert "1 capture warning" in static_text(app.query_one("#status"))
            summary = static_text(app.query_one("#summary .summary-head"))
            assert "Capture warnings (1)" in summary and "3 packets not decoded" in summary
            assert any(s.startswith(w) for s in said)

    run(go())


def test_engine_warnings_reach_the_tui(tmp_path) -> None:
    """A warning the engine raises (packets of a tunnel it does not open: PPTP's GRE) shows
    in the TUI exactly as analyze says it, once."""
    from gen import oddity_pcaps

    path = oddity_pcaps.tcp_and_gre(tmp_path / "mixed.pcap", oddity_pcaps.pptp_gre)
    want = [str(w) for w in pcapip.analyze(str(path)).warnings]
    assert len(want) == 1 and "GRE" in want[0]

    async def go() -> None:
        app = PcapipApp(str(path))
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_loaded(pilot)
            assert app.main.reader.warnings == want
            assert "1 capture warning" in static_text(app.query_one("#status"))

    run(go())


def test_keys_typed_in_one_burst_after_enter_act_in_the_detail() -> None:
    """A terminal delivers "↓↓↓↓↓ Enter t" as one read: the arrows move the cursor before
    Enter opens the flow, and t finds the focus already in the detail (it moves the focus
    to the timeline) instead of racing the Enter."""
    from textual import events

    async def go() -> None:
        app = PcapipApp(str(TROUBLE))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_loaded(pilot)
            for _ in range(5):
                app.post_message(events.Key("down", None))
            app.post_message(events.Key("enter", "\r"))
            app.post_message(events.Key("t", "t"))
            await settle(pilot)
            await pilot.pause(0.3)  # the detail follows the cursor after 80 ms
            await settle(pilot)
            # the Down keys moved the cursor before Enter opened the flow (row 6)
            assert app.query_one("#flows").cursor == 5 and app.main.details.detail.rec["flow"] == 6
            assert app.query_one("#detail").active == "tab-timeline"
            assert app.focused.id == "timeline" and where(app) == "timeline"

    run(go())
