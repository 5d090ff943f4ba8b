"""Snapshots of the main screens (pytest-textual-snapshot), over committed captures.

Deterministic by construction: fixed terminal sizes, captures from tests/pcaps (times come
from the capture, never from the clock), rows in flow order, and every screenshot taken
after the capture is read and no worker is running. Update after an intended change with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and review the SVGs.
"""

from __future__ import annotations

import time

import pytest_textual_snapshot
from tui_pilot import PCAPS, settle, wait_loaded

from pcapip.tui.app import PcapipApp

# pytest-textual-snapshot 1.0.0 names its extension with the attribute older syrupy read
# (``_file_extension``); syrupy 7 reads ``file_extension`` and would store ".raw" files.
pytest_textual_snapshot.SVGImageExtension.file_extension = "svg"


def loaded(*keys: str, filter_text: str | None = None):
    async def before(pilot) -> None:
        await wait_loaded(pilot)
        if filter_text is not None:
            # the table's reactive filter, as any widget sets it (the filter bar follows)
            pilot.app.table.filter_text = filter_text
            await settle(pilot)
        for k in keys:
            await pilot.press(k)
            await settle(pilot)
        # let every widget repaint what the last messages changed (scroll bars follow their
        # view one refresh later)
        await pilot.wait_for_scheduled_animations()
        await pilot.pause(0.2)
        await _scrolling_done(pilot)

    return before


async def _scrolling_done(pilot, rounds: int = 3, timeout: float = 10.0) -> None:
    """Until no widget's scroll offset has moved for ``rounds`` pauses: on a loaded machine
    the packet tree scrolls to the node it selected a refresh or two after the load."""
    deadline = time.monotonic() + timeout
    last, same = None, 0
    while same < rounds and time.monotonic() < deadline:
        await pilot.pause(0.1)
        now = [(id(w), w.scroll_offset) for w in pilot.app.screen.query("*") if w.is_scrollable]
        same = same + 1 if now == last else 0
        last = now


def test_flows_80x24(snap_compare) -> None:
    """The smallest supported terminal: table, packet tree with the TOA option, hex dump."""
    app = PcapipApp(str(PCAPS / "flow-toa.pcap"))
    assert snap_compare(app, terminal_size=(80, 24), run_before=loaded())


def test_filtered_findings_tab(snap_compare) -> None:
    """A filter from the issue, and the selected flow's findings with their advice."""
    app = PcapipApp(str(PCAPS / "flow-proxy-misc.pcap"))
    assert snap_compare(
        app, terminal_size=(120, 35), run_before=loaded("f", filter_text="finding:origin-rejected")
    )


def test_grouped_by_client(snap_compare) -> None:
    app = PcapipApp(str(PCAPS / "flow-spoof.pcap"), trusted="192.0.2.10/31")
    assert snap_compare(app, terminal_size=(120, 35), run_before=loaded("g", "g"))


def test_timeline_tab(snap_compare) -> None:
    app = PcapipApp(str(PCAPS / "haproxy-v1.pcap"))
    assert snap_compare(app, terminal_size=(120, 35), run_before=loaded("down", "t"))


def test_wide_with_summary(snap_compare) -> None:
    """A large terminal: summary beside the table, tree and hex side by side."""
    app = PcapipApp(str(PCAPS / "haproxy-v2-crc-uid.pcap"))
    assert snap_compare(app, terminal_size=(180, 50), run_before=loaded("enter"))


def test_help(snap_compare) -> None:
    app = PcapipApp(str(PCAPS / "flow-toa.pcap"))
    assert snap_compare(app, terminal_size=(100, 40), run_before=loaded("question_mark"))


def opened(flow: int):
    """Flow ``flow`` opened with Enter: the focus is in its packet tree."""

    async def before(pilot) -> None:
        await wait_loaded(pilot)
        pilot.app.query_one("#flows").move_to(flow - 1)
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.wait_for_scheduled_animations()
        await pilot.pause(0.2)

    return before


def test_opened_flow_80x24(snap_compare) -> None:
    """80×24 after Enter on a flow with a bad PROXY v2 checksum: the footer says the focus
    is in the packet tree, the tree gets the lines the hex dump does not need, the table
    shows its first columns whole (Findings shortened, not the others)."""
    app = PcapipApp(str(PCAPS / "troubleshooting.pcap"))
    assert snap_compare(app, terminal_size=(80, 24), run_before=opened(6))


def test_opened_flow_160x45(snap_compare) -> None:
    """160×45: severity in words, Origin whole next to Findings, the summary beside the
    table with its findings list, tree above a hex dump exactly as tall as the packet."""
    app = PcapipApp(str(PCAPS / "troubleshooting.pcap"))
    assert snap_compare(app, terminal_size=(160, 45), run_before=opened(6))
