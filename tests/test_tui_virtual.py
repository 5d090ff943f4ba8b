"""The flows table on a capture with thousands of flows: it draws only the rows on screen
from packed columns, and the rows it draws after scrolling, sorting and filtering are the
rows of ``pcapip analyze``'s own pandas frame (another path from the table's columns to
text), in the order that frame gives. Loading never imports pandas."""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from tui_pilot import settle, table_lines, wait_loaded

import pcapip
from pcapip.tui.app import PcapipApp

REPO = Path(__file__).resolve().parent.parent
SIZE = (170, 40)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = importlib.util.spec_from_file_location("gen_capture", REPO / "bench" / "gen_capture.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    path = tmp_path_factory.mktemp("virtual") / "many.pcap"
    mod.generate(path, 100_000, seed=11)
    return path


def _pair(ip: object, port: object) -> str:
    if ip is None or ip is pd.NA or (isinstance(ip, float) and ip != ip):
        return "-"
    host = f"[{ip}]" if ":" in str(ip) else str(ip)
    return host if port is pd.NA or port is None else f"{host}:{int(port)}"


def _expect_lines(lines: list[str], rows: pd.DataFrame, first: int) -> None:
    """Each drawn row (header excluded) is row ``first + k`` of ``rows``: its flow number is
    the first number on the line, its egress and client cells are on it."""
    body = lines[1:]
    assert body, "no rows drawn"
    for k, line in enumerate(body):
        r = rows.iloc[first + k]
        words = line.split()
        number = next(w for w in words if w.isdigit())
        assert int(number) == int(r["flow"]), (k, line)
        assert _pair(r["egress_ip"], r["egress_port"]) in line, (k, line)
        assert _pair(r["client_ip"], r["client_port"]) in line, (k, line)


def _first_row(app: PcapipApp) -> int:
    return int(app.table.scroll_y)


def test_scrolled_sorted_and_filtered_rows_are_analyze_rows(capture: Path) -> None:
    flows = pcapip.analyze(str(capture)).flows
    assert len(flows) > 1500  # many screens of rows

    async def go() -> None:
        app = PcapipApp(str(capture))
        async with app.run_test(size=SIZE) as pilot:
            await wait_loaded(pilot)
            table = app.table
            assert table.row_count == len(flows)
            _expect_lines(table_lines(app), flows, 0)
            # scrolled: page down a few times, then to the end
            for _ in range(7):
                await pilot.press("pagedown")
            await settle(pilot)
            assert _first_row(app) > 50
            _expect_lines(table_lines(app), flows, _first_row(app))
            await pilot.press("end")
            await settle(pilot)
            lines = table_lines(app)
            _expect_lines(lines, flows, _first_row(app))
            assert _first_row(app) + len(lines) - 1 == len(flows)  # the last row is on screen
            # sorted: most packets first, ties in flow order
            app.table.sort = ("packets", True)
            await settle(pilot)
            by_packets = flows.sort_values(["packets", "flow"], ascending=[False, True], kind="stable")
            _expect_lines(table_lines(app), by_packets, _first_row(app))
            await pilot.press("home")
            await settle(pilot)
            _expect_lines(table_lines(app), by_packets, 0)
            # sorted by egress address (numerically), then port
            app.table.sort = ("egress", False)
            await settle(pilot)
            key = [int(ipaddress.ip_address(t)) for t in flows["egress_ip"].astype(str)]
            by_egress = flows.assign(_k=key).sort_values(["_k", "egress_port", "flow"], kind="stable")
            for _ in range(3):
                await pilot.press("pagedown")
            await settle(pilot)
            _expect_lines(table_lines(app), by_egress, _first_row(app))
            # filtered (and still sorted by egress)
            port = int(flows["origin_port"].value_counts().index[-1])
            assert app.table.filter(f"origin_port=={port} and method!=none")
            await settle(pilot)
            want = by_egress[(by_egress["origin_port"] == port) & (by_egress["method"] != "none")]
            assert 0 < len(want) < len(flows)
            assert table.row_count == len(want)
            _expect_lines(table_lines(app), want, _first_row(app))

    asyncio.run(go())


def test_loading_imports_no_pandas_and_a_filter_does() -> None:
    """Pandas (~70 MB and half a second) stays out of the load path; a filter brings it."""
    code = """
import asyncio, sys
from pcapip.tui.app import PcapipApp

async def go():
    app = PcapipApp(sys.argv[1])
    async with app.run_test(size=(120, 30)) as pilot:
        while not app.loaded:
            await asyncio.sleep(0.05)
        print("pandas" in sys.modules, app.table.row_count)
        assert app.table.filter("method==ppv2")
        print("pandas" in sys.modules, app.table.row_count)

asyncio.run(go())
"""
    path = REPO / "tests" / "pcaps" / "haproxy-v2.pcap"
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        timeout=120,
    ).stdout.split("\n")
    flows = pcapip.analyze(str(path)).flows
    assert out[0] == f"False {len(flows)}"
    assert out[1] == f"True {(flows['method'] == 'ppv2').sum()}"


def _address_key(text: object) -> tuple[int, int]:
    """IPv4 before IPv6 (each by value), then text that is no address, then none."""
    if text is None or text is pd.NA or (isinstance(text, float) and text != text):
        return 3, 0
    try:
        a = ipaddress.ip_address(str(text))
    except ValueError:
        return 2, 0
    return (0 if a.version == 4 else 1), int(a)


@pytest.mark.parametrize("name", ["dissect-proxy-v2", "flow-proxy-misc", "haproxy-ipv6"])
def test_sorting_and_counts_on_packed_rows_match_analyze_frame(name: str) -> None:
    """Sorting by an address (IPv4, IPv6, a unix socket path, none) and the summary's
    counts, computed on the packed columns, are what Python computes from analyze's frame."""
    from pcapip.tui.model import FlowModel
    from pcapip.tui.stream import final_rows

    a = pcapip.analyze(str(REPO / "tests" / "pcaps" / f"{name}.pcap"))
    flows = a.flows.astype(object).where(a.flows.notna(), None)
    model = FlowModel()
    model.replace(final_rows(a), final=True)
    for col, port in (("client", "client_port"), ("egress", "egress_port")):
        model.set_sort(col, False)
        want = sorted(
            flows.itertuples(index=False),
            key=lambda r, c=f"{col}_ip", p=port: (
                _address_key(getattr(r, c)),
                -1 if getattr(r, p) is None else getattr(r, p),
                r.flow,
            ),
        )
        assert model.flows_shown().tolist() == [r.flow for r in want], col
    counts = model.counts()
    for col, key in (("method", "methods"), ("status", "statuses")):
        assert counts[key] == {k: int(v) for k, v in flows[col].dropna().value_counts().items()}
    codes: dict[str, int] = {}
    for v in flows["findings"].dropna():
        for c in filter(None, v.split(";")):
            codes[c] = codes.get(c, 0) + 1
    assert counts["codes"] == codes


def test_ipv6_addresses_a_float_cannot_tell_apart_sort_apart() -> None:
    """2001:db8::1 and ::2 are the same float64: the sort ranks IPv6 addresses exactly."""
    from pcapip.tui.model import FlowModel, normalize

    df = pd.DataFrame(
        {
            "flow": [1, 2, 3, 4, 5],
            "client_ip": ["2001:db8::2", "2001:db8::1", "10.0.0.1", None, "2001:db8::1:0"],
            "client_port": [1, 9, 5, None, 2],
            "start": [0] * 5,
            "end": [0] * 5,
            "packets": [1] * 5,
            "bytes": [1] * 5,
        }
    )
    assert float(int(ipaddress.ip_address("2001:db8::1"))) == float(
        int(ipaddress.ip_address("2001:db8::2"))
    )
    model = FlowModel()
    model.replace(normalize(df), final=True)
    model.set_sort("client", False)
    assert model.flows_shown().tolist() == [3, 2, 1, 5, 4]
    model.set_sort("client", True)
    assert model.flows_shown().tolist() == [4, 5, 1, 2, 3]
