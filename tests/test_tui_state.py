"""The flows table's state set from outside, as any widget or the app sets it.

The table owns its filter, sort and grouping as reactive attributes; setting one must
change the rows (checked against ``pcapip.analyze``'s frame, filtered and sorted with
pandas here, not with the TUI's filter engine), the status line, the filter bar and the
detail of the flow under the cursor, exactly as the keys do.
"""

from __future__ import annotations

import asyncio
import csv
import io

from tui_pilot import PCAPS, settle, static_text, table_lines, wait_for, wait_loaded

import pcapip
from pcapip.tui.app import PcapipApp
from pcapip.tui.live import records_frame
from pcapip.tui.widgets.detail_tabs import NOTE_LIVE, NOTE_READING

CAPTURE = PCAPS / "troubleshooting.pcap"


def shown_flows(app: PcapipApp) -> list[int]:
    """Flow numbers of the table's rows, top to bottom."""
    m = app.table.model
    return [int(m.value("flow", m.position(i))) for i in range(len(m.view))]


def status(app: PcapipApp) -> str:
    return static_text(app.query_one("#status")).strip()


def test_filter_set_on_the_table_filters_rows_status_bar_and_detail() -> None:
    flows = pcapip.analyze(str(CAPTURE)).flows
    want = flows[flows["method"] == "ppv1"]["flow"].tolist()
    assert 0 < len(want) < len(flows)

    async def go() -> None:
        app = PcapipApp(str(CAPTURE))
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_loaded(pilot)
            app.table.filter_text = "method==ppv1"
            await settle(pilot)
            assert shown_flows(app) == want
            assert table_lines(app)[1].split()[0] == str(want[0])
            assert status(app).startswith(
                f"{len(want)}/{len(flows)} flows · filter: method==ppv1"
            )
            assert app.query_one("#filter").value == "method==ppv1"  # the bar follows
            assert app.main.details.detail.rec["flow"] == want[0]  # the detail too

    asyncio.run(go())


def test_a_filter_that_does_not_parse_changes_nothing_and_says_why() -> None:
    said: list[tuple[str, str]] = []

    async def go() -> None:
        app = PcapipApp(str(CAPTURE))
        notify = app.notify
        app.notify = lambda message, **kw: (
            said.append((kw.get("title", ""), str(message))),
            notify(message, **kw),
        )
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_loaded(pilot)
            assert app.table.filter("status==malformed")
            await settle(pilot)
            before, line = shown_flows(app), status(app)
            assert not app.table.filter("status==")
            await settle(pilot)
            assert app.table.filter_text == "status==malformed"
            assert shown_flows(app) == before and status(app) == line
            assert [t for t, _ in said] == ["Filter"] and said[0][1]

    asyncio.run(go())


def test_sort_and_grouping_set_on_the_table() -> None:
    flows = pcapip.analyze(str(CAPTURE)).flows
    by_packets = flows.sort_values(["packets", "flow"], ascending=[False, True])
    egress = flows["egress_ip"].nunique()

    async def go() -> None:
        app = PcapipApp(str(CAPTURE))
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_loaded(pilot)
            app.table.sort = ("packets", True)
            await settle(pilot)
            assert shown_flows(app) == by_packets["flow"].tolist()
            assert "sort: packets ▼" in status(app)
            assert app.table.source.sort_state() == ("packets", True)  # (the header's ▼)
            app.table.grouping = "egress"
            await settle(pilot)
            assert status(app).startswith(f"{egress} egress IPs over {len(flows)}/{len(flows)}")
            assert static_text(app.query_one("#where")).strip() == "egress groups"
            assert len(table_lines(app)) == 1 + egress

    asyncio.run(go())


def test_a_live_note_reaches_the_status_line_and_the_detail() -> None:
    """A live capture's note (the screen's reactive ``live_note``, set before the app runs
    as ``pcapip live --tui`` does): the status line shows it, and the detail of a flow
    says its packets show when the capture stops (the tabs' note is bound to it)."""
    text = pcapip.analyze(str(CAPTURE)).to_csv()
    records = list(csv.DictReader(io.StringIO(text)))[:5]

    async def go() -> None:
        app = PcapipApp(None)
        app.main.live_note = "capturing on lo"
        async with app.run_test(size=(120, 35)) as pilot:
            await settle(pilot)
            assert "capturing on lo" in status(app)
            app.main.add_rows(records_frame(records))  # what the live feed does
            await settle(pilot)
            assert status(app).startswith("5/5 flows · capturing on lo")
            await pilot.press("down")
            await wait_for(pilot, lambda: app.main.details.detail is not None)
            det = app.main.details.detail
            assert det.rec["flow"] == 2 and det.note == NOTE_LIVE and not det.packets
            app.main.live_note = None  # the capture stopped
            await pilot.press("up")
            await wait_for(pilot, lambda: app.main.details.detail.rec["flow"] == 1)
            assert app.main.details.detail.note == NOTE_READING
            assert "capturing" not in status(app)

    asyncio.run(go())
