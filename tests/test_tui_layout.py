"""Layout at the sizes operators use (80×24, 160×45, 200×50): every column shown is shown
whole, no column is left out while there is room for it, the hex dump takes the lines and
columns its bytes need and the field tree gets the rest."""

from __future__ import annotations

import asyncio

import pytest
from tui_pilot import PCAPS, settle, table_lines, wait_loaded

from pcapip.tui.app import PcapipApp
from pcapip.tui.views import FLOW_COLUMNS

TROUBLE = PCAPS / "troubleshooting.pcap"
TITLES = {t for _, t, _ in FLOW_COLUMNS} | {"!"}


def run(coro):
    return asyncio.run(coro)


async def opened(pilot, flow: int = 6) -> None:
    await wait_loaded(pilot)
    app = pilot.app
    app.query_one("#flows").move_to(flow - 1)
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)


def header_cells(table) -> list[tuple[int, str]]:
    """(start, title) of the columns whose title is drawn, read from the drawn header."""
    head = table.visible_text()[0]
    x0 = int(table.scroll_x)
    out, pos = [], 0
    for c in table.columns():
        if pos >= x0:
            out.append((pos - x0, head[pos - x0 : pos - x0 + c.width].strip("▲▼ ")))
        pos += c.width + 1
    return out


@pytest.mark.parametrize("size", [(80, 24), (160, 45), (200, 50)])
def test_columns_are_whole_and_none_is_left_out_with_room_for_it(size) -> None:
    async def go() -> None:
        app = PcapipApp(str(TROUBLE))
        async with app.run_test(size=size) as pilot:
            await opened(pilot)
            table = app.query_one("#flows")
            width = table.scrollable_content_region.width
            cols = table.columns()
            lines = table_lines(app)
            drawn = [(x, t) for x, t in header_cells(table) if x < width]
            assert [t for _, t in drawn[:7]] == ["!" if size[0] < 150 else "Severity",
                                                 "No.", "Egress", "Client", "Method",
                                                 "Status", "Findings"]  # fmt: skip
            shown_end = 0
            for (x, title), col in zip(drawn, cols, strict=False):
                if title:  # a column whose title is drawn is drawn whole
                    assert title in TITLES, (title, lines[0])
                    assert x + col.width <= width
                    shown_end = x + col.width + 1
            # the next column would not have fitted in the space left at the right
            nxt = cols[len([t for _, t in drawn if t])]
            assert shown_end + nxt.width > width, (shown_end, nxt, width)
            # a cut cell ends in an ellipsis and only Findings is ever cut
            for line in lines[1:]:
                for (x, _), col in zip(drawn, cols, strict=False):
                    cell = line[x : x + col.width]
                    if "…" in cell:
                        assert col.key == "findings", (col.key, line)

    run(go())


@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
def test_hex_takes_the_lines_it_needs_and_the_tree_the_rest(size) -> None:
    async def go() -> None:
        app = PcapipApp(str(TROUBLE))
        async with app.run_test(size=size) as pilot:
            await opened(pilot)
            box = app.query_one("#packet-box")
            tree = app.query_one("#tree")
            hexs = app.query_one("#hex-scroll")
            need = -(-len(app.query_one("#hex").data) // 16)
            assert hexs.size.height <= need  # no empty hex lines
            assert tree.size.height + hexs.size.height == box.size.height
            assert tree.size.height >= hexs.size.height
            if hexs.size.height < need:  # only when the tree would get less than half
                assert hexs.size.height >= box.size.height * 0.4

    run(go())


def test_wide_detail_puts_tree_and_hex_side_by_side_hex_as_wide_as_its_bytes() -> None:
    async def go() -> None:
        app = PcapipApp(str(TROUBLE))
        async with app.run_test(size=(200, 50)) as pilot:
            await opened(pilot)
            box = app.query_one("#packet-box")
            tree = app.query_one("#tree")
            hexs = app.query_one("#hex-scroll")
            hexv = app.query_one("#hex")
            widest = max(len(line) for line in hexv.render_text().plain.split("\n"))
            assert tree.region.y == hexs.region.y
            assert widest <= hexs.size.width <= widest + 2
            assert tree.size.width == box.size.width - hexs.size.width
            assert tree.size.width >= 60

    run(go())


def test_an_empty_table_shows_whole_titles() -> None:
    """No flow at all (frames on a link type pcapip does not decode): the titles are not
    cut to the width of data that is not there."""

    async def go() -> None:
        app = PcapipApp(str(PCAPS / "unknown-linktype.pcap"))
        async with app.run_test(size=(100, 24)) as pilot:
            await wait_loaded(pilot)
            table = app.query_one("#flows")
            drawn = [t for _, t in header_cells(table) if t]
            assert drawn and all(t in TITLES for t in drawn), drawn
            assert "…" not in table_lines(app)[0]

    run(go())


@pytest.mark.parametrize("grouping", ["flows", "groups"])
def test_the_sorted_column_keeps_its_title_and_mark_whole(grouping) -> None:
    async def go() -> None:
        app = PcapipApp(str(PCAPS / "flow-spoof.pcap"), trusted="192.0.2.10/31")
        async with app.run_test(size=(120, 35)) as pilot:
            await wait_loaded(pilot)
            if grouping == "groups":
                await pilot.press("g", "g")  # by client IP: sorted by flow count
                want = "Flows▼"
            else:
                app.table.sort = ("packets", False)  # Pkts: a 4-cell column
                await settle(pilot)
                await pilot.press(*["right"] * 8)  # scroll it into view, a column a press
                want = "Pkts▲"
            await settle(pilot)
            head = table_lines(app)[0]
            assert want in head and "…" not in head, head

    run(go())
