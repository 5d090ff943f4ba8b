"""The TUI driven like a user would (Textual pilot): load, filter, select, expand, export.

What the screen shows is checked against sources that are not the TUI: HAProxy's own
log of which client each connection carried (``*.truth.json``), the generator's record of
what every synthetic connection was built with, tshark, and ``pcapip analyze``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import ipaddress
import json
import socket
import subprocess
from pathlib import Path

import pytest
from tools import require_tool
from tui_pilot import PCAPS, settle, static_text, table_lines, wait_for, wait_loaded

import pcapip
from pcapip.tui.app import HelpScreen, PcapipApp
from pcapip.tui.widgets.packet import HexView, PacketTree
from pcapip.tui.widgets.table import VirtualTable


def run(coro):
    return asyncio.run(coro)


def truth(name: str) -> dict:
    return json.loads((PCAPS / name).with_suffix(".truth.json").read_text())


def find_node(tree: PacketTree, name: str):
    def walk(node):
        if node.data is not None and getattr(node.data, "name", None) == name:
            return node
        for c in node.children:
            r = walk(c)
            if r is not None:
                return r
        return None

    return walk(tree.root)


def frame_bytes(path: Path, number: int) -> bytes:
    """Frame ``number`` read with dpkt, not with pcapip."""
    import dpkt

    with path.open("rb") as fh:
        for i, (_, buf) in enumerate(dpkt.pcap.Reader(fh), 1):
            if i == number:
                return bytes(buf)
    raise AssertionError(f"no frame {number}")


def test_rows_and_colours_follow_the_analysis() -> None:
    async def go() -> None:
        path = PCAPS / "flow-toa.pcap"
        app = PcapipApp(str(path))
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_loaded(pilot)
            lines = table_lines(app)
            want = pcapip.analyze(str(path)).flows
            assert len(lines) == 1 + len(want)
            for line, r in zip(lines[1:], want.itertuples(), strict=True):
                cells = line.split()
                if cells[0] in ("E", "W", "i", "error", "warning", "info"):  # severity (blank: none)
                    cells = cells[1:]
                assert int(cells[0]) == r.flow and r.egress_ip in cells[1]
                assert r.method in cells and r.status in cells
            # the status column is coloured by status
            view = app.table.flows_view
            styles = {view.cells(i)[5][0]: view.cells(i)[5][1] for i in range(len(want))}
            assert styles["ok"].color.name == "green"
            assert styles["malformed"].color.name == "red"
            assert styles["absent"].color.name == "magenta"

    run(go())


def test_filter_select_expand_and_hex_marks_the_field() -> None:
    """PROXY v2 with a unique id: the tree's source address and unique-id TLV mark exactly the
    bytes that carry HAProxy's logged client and unique id."""

    async def go() -> None:
        name = "haproxy-v2-crc-uid.pcap"
        path = PCAPS / name
        rec = truth(name)["haproxy_records"][2]
        app = PcapipApp(str(path))
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_loaded(pilot)
            await pilot.press("slash")
            await pilot.press(*f"egress_port=={rec['egress_port']}")
            await pilot.press("enter")
            await settle(pilot)
            lines = table_lines(app)
            assert len(lines) == 2, lines
            assert f"{rec['client_ip']}:{rec['client_port']}" in lines[1]
            assert "1/4 flows" in static_text(app.query_one("#status"))
            await pilot.press("enter")  # open the flow: focus goes to the field tree
            await settle(pilot)
            tree = app.query_one("#tree", PacketTree)
            assert tree.has_focus
            hexv = app.query_one("#hex", HexView)
            number = app.main.details.detail.packets[0].number
            frame = frame_bytes(path, number)
            assert hexv.data == frame
            # the cursor starts on the PROXY header: its bytes are marked
            root = tree.cursor_node.data
            assert root.name == "proxy"
            assert hexv.marked_bytes() == frame[root.offset : root.offset + root.length]
            assert hexv.marked_bytes().startswith(b"\r\n\r\n\x00\r\nQUIT\n")
            src = find_node(tree, "proxy.src.ipv4")
            tree.move_cursor(src)
            await settle(pilot)
            assert hexv.marked_bytes() == socket.inet_aton(rec["client_ip"])
            assert frame[src.data.offset : src.data.offset + 4] == socket.inet_aton(
                rec["client_ip"]
            )
            # a collapsed TLV: Enter expands it, its value marks the unique id HAProxy logged
            tlv = next(
                n
                for n in src.parent.children
                if n.data.name == "proxy.v2.tlv" and find_node_in(n, "proxy.v2.tlv.unique_id")
            )
            tree.move_cursor(tlv)
            await settle(pilot)
            assert not tlv.is_expanded
            await pilot.press("enter")
            await settle(pilot)
            assert tlv.is_expanded
            uid = find_node_in(tlv, "proxy.v2.tlv.unique_id")
            tree.move_cursor(uid)
            await settle(pilot)
            assert hexv.marked_bytes() == rec["unique_id"].encode()

    run(go())


def option_text(option_list) -> str:
    """The prompts of an OptionList, as plain text."""
    return "\n".join(
        str(getattr(o.prompt, "plain", o.prompt))
        for o in (option_list.get_option_at_index(i) for i in range(option_list.option_count))
    )


def find_node_in(node, name):
    if node.data is not None and getattr(node.data, "name", None) == name:
        return node
    for c in node.children:
        r = find_node_in(c, name)
        if r is not None:
            return r
    return None


def test_toa_flow_marks_the_client_address_bytes() -> None:
    async def go() -> None:
        path = PCAPS / "toa-variants.pcap"
        app = PcapipApp(str(path))
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_loaded(pilot)
            want = pcapip.analyze(str(path)).flows
            toa = want[(want.method == "toa") & want.client_ip.notna()]
            assert len(toa) >= 5
            checked = 0
            for r in toa.itertuples():
                app.table.filter(f"flow=={r.flow}")
                await settle(pilot)
                tree = app.query_one("#tree", PacketTree)
                hexv = app.query_one("#hex", HexView)
                node = tree.cursor_node
                assert node is not None and node.data.name == "toa", r
                addr = find_node_in(node, "toa.addr")
                if addr is None:
                    continue
                tree.move_cursor(addr)
                await settle(pilot)
                ip = ipaddress.ip_address(r.client_ip)
                marked = hexv.marked_bytes()
                # the marked bytes are the option's address bytes (CDN kind 28 may carry a
                # prefix of the address; all others the whole address)
                assert ip.packed.startswith(marked) and len(marked) >= 3, (r.flow, marked)
                checked += 1
            assert checked >= 5

    run(go())


def test_missing_client_shows_first_packet_and_advice() -> None:
    async def go() -> None:
        path = PCAPS / "flow-proxy-misc.pcap"
        app = PcapipApp(str(path))
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_loaded(pilot)
            app.table.filter("finding:client-missing")
            await settle(pilot)
            want = pcapip.analyze(str(path)).flows
            missing = want[want.findings.str.contains("client.missing")]
            assert len(table_lines(app)) == 1 + len(missing) >= 2
            assert "no packet of this flow carried" in static_text(app.query_one("#packet-title"))
            await pilot.press("f")
            await settle(pilot)
            text = option_text(app.query_one("#flow-findings"))
            assert "client.missing" in text and "What to do:" in text

    run(go())


def test_timeline_matches_tshark() -> None:
    require_tool("tshark")

    async def go() -> None:
        path = PCAPS / "haproxy-v1.pcap"
        app = PcapipApp(str(path))
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_loaded(pilot)
            det = app.main.details.detail
            r = det.rec
            out = subprocess.run(
                [
                    "tshark",
                    "-r",
                    str(path),
                    "-Y",
                    f"tcp.port=={r['egress_port']} && tcp.port=={r['origin_port']}",
                    "-T",
                    "fields",
                    "-e",
                    "frame.number",
                    "-e",
                    "tcp.flags.syn",
                    "-e",
                    "tcp.flags.fin",
                    "-e",
                    "tcp.len",
                    "-e",
                    "ip.src",
                ],
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            )
            rows = [line.split("\t") for line in out.stdout.splitlines()]
            assert [e.frame for e in det.timeline] == [int(x[0]) for x in rows]
            for e, (_, syn, fin, ln, src) in zip(det.timeline, rows, strict=True):
                assert ("SYN" in e.flags) == (syn in ("1", "True"))
                assert ("FIN" in e.flags) == (fin in ("1", "True"))
                assert e.length == int(ln)
                assert (e.direction == "→") == (src == r["egress_ip"])
            await pilot.press("t")
            await settle(pilot)
            tl = app.query_one("#timeline")
            assert tl.row_count == len(rows)
            # Enter on a timeline row dissects that packet
            tl.focus()
            tl.move_cursor(row=0)
            await pilot.press("enter")
            await settle(pilot)
            assert app.query_one("#packet").current.number == int(rows[0][0])
            assert app.query_one("#detail").active == "tab-packet"

    run(go())


def test_grouping_counts_and_drill_down() -> None:
    async def go() -> None:
        path = PCAPS / "flow-spoof.pcap"
        app = PcapipApp(str(path), trusted="192.0.2.10/31")
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_loaded(pilot)
            want = pcapip.analyze(str(path), trusted="192.0.2.10/31").flows
            await pilot.press("g")
            await settle(pilot)
            lines = table_lines(app)
            counts = want.groupby("egress_ip", observed=True).size().to_dict()
            got = {line.split()[0]: int(line.split()[1]) for line in lines[1:]}
            assert got == {str(k): v for k, v in counts.items()}
            await pilot.press("g")  # by client
            await settle(pilot)
            got = {line.split()[0]: int(line.split()[1]) for line in table_lines(app)[1:]}
            by_client = want.groupby(want.client_ip.fillna("(none)")).size().to_dict()
            assert got == by_client
            # Enter on the first group filters the flows to it
            first = table_lines(app)[1].split()[0]
            await pilot.press("enter")
            await settle(pilot)
            assert app.table.grouping == "flows"
            value = "none" if first == "(none)" else first
            assert app.query_one("#filter").value == f"client_ip=={value}"
            assert len(table_lines(app)) == 1 + by_client[first]

    run(go())


def test_rules_judge_the_flows_as_analyze_does(tmp_path: Path) -> None:
    """``pcapip tui --rules``: the rows (rule column, rule findings) are analyze's with the
    same rules; a flagged flow's findings pane names its rule and the mismatch."""
    from pcapip.rules import RuleSet

    rules = tmp_path / "edge.rules"
    rules.write_text("tcp:8002 10.77.2.2 9001 off ppv1\n")

    async def go() -> None:
        path = PCAPS / "haproxy-v2.pcap"
        want = pcapip.analyze(str(path), rules=rules)
        app = PcapipApp(str(path), rules=RuleSet.load(rules))
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_loaded(pilot)
            out = tmp_path / "tui.csv"
            assert app.table.export_csv(str(out), app.main.reader.analysis) == len(want)
            assert out.read_text() == want.to_csv()
            app.table.filter("finding:rule.mismatch")
            await settle(pilot)
            mismatched = want.flows[want.flows.findings.str.contains("rule.mismatch")]
            assert len(table_lines(app)) == 1 + len(mismatched) >= 2
            await pilot.press("f")
            await settle(pilot)
            head = static_text(app.query_one("#findings"))
            assert "rule 1: tcp:8002 10.77.2.2 9001 off ppv1" in head
            text = option_text(app.query_one("#flow-findings"))
            assert "rule.mismatch" in text and "says ppv1" in text

    run(go())


def test_export_writes_the_filtered_view_in_analyze_schema(tmp_path: Path) -> None:
    async def go() -> None:
        path = PCAPS / "flow-proxy-misc.pcap"
        a = pcapip.analyze(str(path))
        app = PcapipApp(str(path))
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_loaded(pilot)
            whole = tmp_path / "all.csv"
            assert app.table.export_csv(str(whole), app.main.reader.analysis) == len(a)
            assert whole.read_text() == a.to_csv()
            # through the dialog, with a filter and a sort
            app.table.filter("method==ppv1 or method==ppv2")
            app.table.sort = ("client", True)
            await settle(pilot)
            await pilot.press("e")
            await settle(pilot)
            inp = app.screen.query_one("#export-path")
            inp.value = str(tmp_path / "some.csv")
            await pilot.press("enter")
            await wait_for(pilot, lambda: (tmp_path / "some.csv").exists(), 10)
            await settle(pilot)
        got = list(csv.DictReader(io.StringIO((tmp_path / "some.csv").read_text())))
        ref = list(csv.DictReader(io.StringIO(a.to_csv())))
        want = [r for r in ref if r["method"] in ("ppv1", "ppv2")]
        assert sorted(got, key=lambda r: r["flow"]) == sorted(want, key=lambda r: r["flow"])
        clients = [ipaddress.ip_address(r["client_ip"]) if r["client_ip"] else None for r in got]
        present = [c for c in clients if c is not None]
        assert present == sorted(present, reverse=True)

    run(go())


def test_small_terminal_shows_the_main_columns_and_keys() -> None:
    async def go() -> None:
        app = PcapipApp(str(PCAPS / "haproxy-v1.pcap"))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_loaded(pilot)
            head = table_lines(app)[0]
            for col in ("No.", "Egress", "Client", "Method", "Status"):
                assert col in head
            assert len(table_lines(app)) >= 5  # header + the 4 flows
            # the footer shows the keys a Wireshark user looks for, and they fit
            shown = {k.description: k for k in app.query("FooterKey")}
            for label in ("Filter", "Help", "Quit", "Group", "Export", "Open"):
                assert label in shown and shown[label].region.right <= 80, label
            # scrolling right brings the other columns in
            await pilot.press("right", "right", "right", "right", "right", "right")
            await settle(pilot)
            assert "Origin" in table_lines(app)[0] or "Start" in table_lines(app)[0]

    run(go())


def test_keys_help_tab_and_quit() -> None:
    async def go() -> None:
        app = PcapipApp(str(PCAPS / "haproxy-v2.pcap"))
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_loaded(pilot)
            await pilot.press("question_mark")
            await settle(pilot)
            assert isinstance(app.screen, HelpScreen)
            assert "finding:origin-rejected" in static_text(app.screen.query_one("Static"))
            await pilot.press("escape")
            await settle(pilot)
            assert not isinstance(app.screen, HelpScreen)
            assert isinstance(app.focused, VirtualTable)
            await pilot.press("tab")
            assert not isinstance(app.focused, VirtualTable)
            await pilot.press("shift+tab")
            assert isinstance(app.focused, VirtualTable)
            # / focuses the filter; typing "q" there types, it does not quit
            await pilot.press("slash", "q")
            assert app.query_one("#filter").value == "q" and app.is_running
            await pilot.press("escape")
            assert isinstance(app.focused, VirtualTable)
            await pilot.press("q")
            await pilot.pause(0.2)
            assert not app.is_running

    run(go())


def test_keys_typed_at_once_after_slash_reach_the_filter() -> None:
    """A fast typist (or a terminal multiplexer) delivers "/" and the filter in one burst;
    "/" inside the filter is text (CIDRs)."""
    from textual import events

    async def go() -> None:
        app = PcapipApp(str(PCAPS / "haproxy-v1.pcap"))
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_loaded(pilot)
            text = "client_ip in 10.77.1.0/24"
            names = {" ": "space", "/": "slash", ".": "full_stop", "_": "underscore"}
            app.post_message(events.Key("slash", "/"))
            for ch in text:
                app.post_message(events.Key(names.get(ch, ch), ch))
            app.post_message(events.Key("enter", "\r"))
            await settle(pilot)
            assert app.table.model.filter_text == text
            assert len(table_lines(app)) == 1 + 4

    run(go())


def test_mouse_click_selects_a_row_and_sorts_by_header() -> None:
    async def go() -> None:
        app = PcapipApp(str(PCAPS / "flow-toa.pcap"))
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_loaded(pilot)
            table = app.query_one("#flows", VirtualTable)
            await pilot.click("#flows", offset=(10, 4))  # header is line 0: row 3
            await settle(pilot)
            assert table.cursor == 3 and app.main.details.detail.rec["flow"] == 4
            head = table_lines(app)[0]
            x = head.index("Client")
            await pilot.click("#flows", offset=(x + 1, 0))
            await settle(pilot)
            assert app.table.model.sort_key == "client" and not app.table.model.sort_desc
            await pilot.click("#flows", offset=(x + 1, 0))
            await settle(pilot)
            assert app.table.model.sort_desc
            # the cursor stayed on flow 4
            assert app.main.details.detail.rec["flow"] == 4

    run(go())


def test_damaged_capture_keeps_flows_and_says_where() -> None:
    async def go() -> None:
        app = PcapipApp(str(PCAPS / "bad-truncated-last.pcap"))
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_loaded(pilot)
            status = static_text(app.query_one("#status"))
            assert "damaged" in status and "bad-truncated-last.pcap" in status
            assert "packet 6" in status
            assert len(table_lines(app)) >= 2

    run(go())


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
def test_layout_scales(size: tuple[int, int]) -> None:
    async def go() -> None:
        app = PcapipApp(str(PCAPS / "haproxy-v2-crc-uid.pcap"))
        async with app.run_test(size=size) as pilot:
            await wait_loaded(pilot)
            table = app.query_one("#flows")
            tree = app.query_one("#tree")
            assert table.size.height >= 5 and tree.size.height >= 3
            side = app.query_one("#side")
            assert side.display == (size[0] >= app.main.WIDE)

    run(go())
