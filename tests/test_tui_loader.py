"""The TUI's one-pass loader: provisional rows early, ``analyze``'s rows at the end, and a frame
index that returns exactly the bytes an independent reader (dpkt, tshark) finds."""

from __future__ import annotations

import gzip
import importlib.util
import io
import subprocess
from pathlib import Path

import dpkt
import pandas as pd
import pytest
from tools import require_tool

import pcapip
from pcapip.tui.model import normalize
from pcapip.tui.stream import FIRST_BATCH, CaptureLoader

REPO = Path(__file__).resolve().parent.parent
PCAPS = REPO / "tests" / "pcaps"
CAPTURES = sorted(
    p
    for d in (PCAPS, PCAPS / "public")
    for p in d.iterdir()
    if p.suffix in (".pcap", ".pcapng", ".gz")
)


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_final_rows_are_analyze_rows(path: Path) -> None:
    kw = {"trusted": "192.0.2.10/31"} if path.name == "flow-spoof.pcap" else {}
    want = pcapip.analyze(str(path), **kw)
    seen: list[pd.DataFrame] = []
    res = CaptureLoader(str(path), **kw).run(on_rows=lambda rows: seen.append(rows.frame()))
    pd.testing.assert_frame_equal(res.analysis.flows, want.flows)
    pd.testing.assert_frame_equal(res.analysis.findings, want.findings)
    assert res.analysis.stats == want.stats
    assert [str(e) for e in res.errors] == [str(e) for e in want.errors]
    # the rows shown before the end: a flow's preview once its client is known, its final
    # row once it ends (at most those two). Both name the client the final row names; a
    # preview has seen no more packets than the flow, and an ended flow's row is the final
    # row but for the flow number and the findings that compare flows (added at the end)
    prov = pd.concat(seen, ignore_index=True) if seen else normalize(want.flows.iloc[:0])
    key = ["transport", "egress_ip", "egress_port", "origin_ip", "origin_port", "start"]
    client = ["method", "client_ip", "client_port", "proxy_ip"]
    final = normalize(want.flows)
    final_by_key = {tuple(map(str, r[key])): r for _, r in final.iterrows()}
    shown: dict[tuple, list] = {}
    for _, r in prov.iterrows():
        shown.setdefault(tuple(map(str, r[key])), []).append(r)
    for k, rows in shown.items():
        f = final_by_key[k]
        assert len(rows) <= 2, k
        for r in rows:
            assert [str(r[c]) for c in client] == [str(f[c]) for c in client], k
            assert int(r["packets"]) <= int(f["packets"]) and r["end"] <= f["end"], k
            assert set(filter(None, r["findings"].split(";"))) <= set(f["findings"].split(";"))
        if len(rows) == 2:  # the second is the flow's ended row
            same = ["end", "status", "packets", "bytes"]
            assert [str(rows[1][c]) for c in same] == [str(f[c]) for c in same], k


def _dpkt_frames(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    fh = io.BytesIO(raw)
    reader = dpkt.pcapng.Reader(fh) if raw[:4] == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(fh)
    return [bytes(buf) for _, buf in reader]


INDEXABLE = [
    p
    for p in CAPTURES
    if not p.name.startswith(("bad-", "empty", "not-a-", "multi-section", "toa-253"))
]


@pytest.mark.parametrize("path", INDEXABLE, ids=[p.name for p in INDEXABLE])
def test_frame_index_returns_the_captured_bytes(path: Path) -> None:
    """Each frame's bytes through the index (pread at the recorded offset) equal dpkt's."""
    loader = CaptureLoader(str(path))
    loader.run()
    want = _dpkt_frames(path)
    got = loader.index.frames(range(1, len(want) + 1))
    assert loader.index.count == len(want)
    assert [got[n].data for n in range(1, len(want) + 1)] == want


def test_multi_section_pcapng_index_matches_the_reader() -> None:
    """Three sections, two byte orders, EPB/SPB/PB blocks: index reads equal the engine's."""
    from pcapip.sources import open_capture

    path = PCAPS / "multi-section.pcapng"
    loader = CaptureLoader(str(path))
    loader.run()
    with open_capture(str(path)) as src:
        want = {b.first_frame + i: b.frame_bytes(i) for b in src for i in range(len(b))}
    got = loader.index.frames(want)
    assert {n: f.data for n, f in got.items()} == want and len(want) > 5


def test_flow_packets_match_tshark() -> None:
    """The packets the index finds for each flow are the frames tshark finds for its 4-tuple."""
    require_tool("tshark")
    path = PCAPS / "haproxy-v2-crc-uid.pcap"
    loader = CaptureLoader(str(path))
    a = loader.run().analysis
    flows = normalize(a.flows)
    assert len(flows) == 4
    for r in flows.to_dict("records"):
        nums = loader.index.flow_frames(
            r["transport"],
            r["egress_ip"],
            int(r["egress_port"]),
            r["origin_ip"],
            int(r["origin_port"]),
            r["start"],
            r["end"],
        )
        out = subprocess.run(
            [
                "tshark",
                "-r",
                str(path),
                "-Y",
                f"ip.addr=={r['egress_ip']} && tcp.port=={r['egress_port']} && "
                f"ip.addr=={r['origin_ip']} && tcp.port=={r['origin_port']}",
                "-T",
                "fields",
                "-e",
                "frame.number",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert [int(x) for x in out.stdout.split()] == [int(n) for n in nums]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_capture", REPO / "bench" / "gen_capture.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def long_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 400,000-packet capture (~4.4 s of capture time, 342 MB), written once for the
    tests that read one: three copies cost a gigabyte of disk."""
    path = tmp_path_factory.mktemp("long") / "long.pcap"
    _generator().generate(path, 400_000, seed=5)
    return path


def test_first_rows_come_before_the_end(tmp_path: Path) -> None:
    """On a capture of several batches, rows are handed over while reading, not at the end."""
    path = tmp_path / "many.pcap"
    _generator().generate(path, 6 * FIRST_BATCH, seed=3)
    calls: list[tuple[int, int]] = []  # (rows handed over, frames read at that moment)
    loader = CaptureLoader(str(path))
    res = loader.run(on_rows=lambda df: calls.append((len(df), loader.progress.frames)))
    total = len(res.analysis)
    assert total > 100
    rows, frames = calls[0]
    assert rows > 0 and frames <= FIRST_BATCH, "the first rows waited for more than one batch"
    assert sum(n for n, _ in calls) <= total
    assert loader.index.count == 6 * FIRST_BATCH


def test_ended_flows_show_while_reading(long_capture: Path) -> None:
    """Flows that end (2 s of capture time after their FIN) are handed over while the
    capture is still being read, in coarse steps, not one call per flow."""
    path = long_capture
    calls: list[tuple[int, int]] = []
    loader = CaptureLoader(str(path))
    res = loader.run(
        on_rows=lambda df: calls.append((len(df), loader.progress.frames)), interval=0.0
    )
    middle = [n for n, frames in calls if FIRST_BATCH < frames < 400_000]
    assert sum(middle) > len(res.analysis) // 4
    assert len(calls) < 100


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_final_rows_from_the_table_are_normalized_analysis_flows(path: Path) -> None:
    """The final rows read from the flow table's packed columns are exactly the pandas
    route's (``normalize(Analysis.flows)``): same values, same dtypes, same hidden columns,
    and so are they once the model has recoded them into its own vocabulary."""
    from pcapip.tui.model import FlowModel
    from pcapip.tui.stream import final_rows

    a = pcapip.analyze(str(path))
    want = normalize(a.flows)
    pd.testing.assert_frame_equal(final_rows(a).frame(), want)
    model = FlowModel()
    model.replace(final_rows(a), final=True)
    pd.testing.assert_frame_equal(model.df, want)
    # what the table draws: each cell of each row is the frame's value
    for pos in range(0, len(want), max(1, len(want) // 50)):
        rec = model.record(pos)
        for c in want.columns[:-1]:
            v = want[c].iat[pos]
            assert rec[c] == (None if v is pd.NA or v is None else v), (c, pos)


def test_previews_and_ended_rows_gathered_together_make_one_row_each(long_capture: Path) -> None:
    """The reader hands the UI several chunks at once (one concatenated frame), so a
    flow's preview and its ended row may arrive together: the model keeps one row per
    flow, the later (ended) one, and the table ends with exactly analyze's flows."""
    from pcapip.tui.model import FlowModel

    path = long_capture
    from pcapip.tui.rows import Rows

    seen: list[Rows] = []
    res = CaptureLoader(str(path)).run(on_rows=seen.append, interval=0.0)
    model = FlowModel()
    model.append(Rows.concat(seen))  # as the reader gathers them
    both = Rows.concat(seen).frame()
    assert both["_frame"].duplicated().any(), "no flow was shown twice (the test shows nothing)"
    frames = model.df["_frame"].to_numpy()
    assert len(set(frames)) == len(frames)
    last = both.drop_duplicates("_frame", keep="last").set_index("_frame")
    got = model.df.set_index("_frame")
    assert (got.loc[last.index, "packets"] == last["packets"]).all()
    assert len(model.df) <= len(res.analysis.table)


def test_a_preview_row_is_replaced_by_its_ended_row(long_capture: Path) -> None:
    """A flow shown early (its client known in the first batch) and again when it ends is
    one row of the model, holding the ended row."""
    from pcapip.tui.model import FlowModel

    path = long_capture
    chunks = []
    res = CaptureLoader(str(path)).run(on_rows=chunks.append, interval=0.0)
    model = FlowModel()
    for rows in chunks:
        model.append(rows)
    seen = [rows.frame() for rows in chunks]
    frames = model.df["_frame"].to_numpy()
    assert len(set(frames)) == len(frames)  # one row per flow
    again = set(seen[0]["_frame"]) & {f for rows in seen[1:] for f in rows["_frame"]}
    assert again, "no preview was followed by its ended row (the test shows nothing)"
    final = normalize(res.analysis.flows).set_index("start")
    for _, r in model.df[model.df["_frame"].isin(again)].iterrows():
        f = final.loc[r["start"]]
        assert (r["packets"], r["bytes"], r["status"]) == (f["packets"], f["bytes"], f["status"])


def _interleaved_tenants(path: Path) -> Path:
    """Two VXLAN tenants (VNIs 1 and 2) open the same inner connection at the same time,
    each with its own client in a TOA option; their packets interleave."""
    from scapy.all import IP, TCP, UDP, Ether, wrpcap
    from scapy.layers.vxlan import VXLAN

    e, o = "192.0.2.10", "198.51.100.20"
    pkts = []
    for step, (src, dst, sp, dp, flags, seq, ack) in enumerate([
        (e, o, 40001, 80, "S", 100, 0), (o, e, 80, 40001, "SA", 500, 101),
        (e, o, 40001, 80, "A", 101, 501),
    ]):  # fmt: skip
        for vni in (1, 2):
            opts = [(200, bytes([0x13, 0x88 + vni]) + bytes([203, 0, 113, vni]))]
            inner = IP(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags=flags, seq=seq, ack=ack,
                                               options=opts if flags == "A" else [])
            mac = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")  # (scapy would ARP)
            p = Ether(**mac) / IP(src="10.9.0.1", dst="10.9.0.2") / UDP(dport=4789) / VXLAN(vni=vni)
            p = p / Ether(**mac) / inner
            p.time = 1_700_000_000 + step * 0.01 + vni * 0.001
            pkts.append(p)
    wrpcap(str(path), pkts)
    return path


def test_the_detail_keeps_to_the_flows_tenant(tmp_path: Path) -> None:
    """Two VXLAN tenants send the same inner connection at once: each flow's timeline holds
    the frames tshark selects with the flow's display filter (its VNI), not the other's."""
    require_tool("tshark")
    pytest.importorskip("scapy")
    from pcapip.cli.show import flow_display_filter
    from pcapip.dissect import DEFAULT_REGISTRY
    from pcapip.tui.detail import build_detail

    path = _interleaved_tenants(tmp_path / "tenants.pcap")
    loader = CaptureLoader(str(path))
    a = loader.run().analysis
    flows = normalize(a.flows)
    seen = []
    for r in flows.to_dict("records"):
        det = build_detail(r, loader.index, registry=DEFAULT_REGISTRY, header_frames=[],
                           findings=[])
        out = subprocess.run(
            ["tshark", "-r", str(path), "-Y", flow_display_filter(a, int(r["flow"])),
             "-T", "fields", "-e", "frame.number"],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        frames = [e.frame for e in det.timeline]
        assert frames == [int(x) for x in out.stdout.split()], r["tunnel"]
        seen.append(frames)
    assert sorted(map(sorted, seen)) == [[1, 3, 5], [2, 4, 6]]  # two tenants, interleaved


def test_detail_reads_one_flows_findings_and_header_packets() -> None:
    """The detail reads a final flow's findings and header packets from the table's packed
    columns for that flow only; on every bundled capture they are what the Analysis lists
    (``FlowTable.findings``, ``Analysis.header_frames``), flow by flow, in order."""
    from pcapip.flows.findings import CATALOGUE
    from pcapip.tui.detail import findings_for, header_frames_of

    seen_findings = seen_headers = 0
    for path in CAPTURES:
        a = pcapip.analyze(str(path))
        by_flow: dict[int, list] = {}
        for f in a.table.findings:
            by_flow.setdefault(f.flow, []).append(
                (CATALOGUE[f.code].level.label, f.code, f.frame, f.message)
            )
        for flow in range(1, len(a.table) + 1):
            got = [(v.severity, v.code, v.packet, v.message) for v in findings_for(a, flow, None)]
            assert got == by_flow.get(flow, []), (path.name, flow)
            want = [n for _, n in a.header_frames(flow)]
            assert header_frames_of(a, flow) == want, (path.name, flow)
            seen_findings += len(got)
            seen_headers += bool(want)
        assert header_frames_of(a, len(a.table) + 1) == []
    assert seen_findings > 100 and seen_headers > 100  # (the comparison compared something)


def test_every_timeline_holds_the_packets_the_flow_counted() -> None:
    """On every bundled capture, each flow's timeline in the detail lists exactly the packets
    analyze counted for it; a packet of the connection the flow did not count (its header
    cut before its flags, as in multi-section.pcapng) is listed with a note saying why."""
    from pcapip.dissect import DEFAULT_REGISTRY
    from pcapip.tui.detail import TIMELINE_MAX, build_detail

    uncounted = []
    for path in CAPTURES:
        loader = CaptureLoader(str(path))
        a = loader.run().analysis
        for r in normalize(a.flows).to_dict("records"):
            if r["egress_port"] is None or r["packets"] > TIMELINE_MAX:
                continue
            det = build_detail(r, loader.index, registry=DEFAULT_REGISTRY, header_frames=[],
                               findings=[])
            counted = [e for e in det.timeline if not e.note.startswith("not counted")]
            assert len(counted) == r["packets"], (path.name, r["flow"])
            uncounted += [(path.name, e.frame, e.note) for e in det.timeline if e not in counted]
    cut = "not counted: headers cut by the snap length"
    assert ("multi-section.pcapng", 7, cut) in uncounted  # (tshark's frame 7 too)
