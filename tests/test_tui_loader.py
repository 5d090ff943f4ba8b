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
    res = CaptureLoader(str(path), **kw).run(on_rows=seen.append)
    pd.testing.assert_frame_equal(res.analysis.flows, want.flows)
    pd.testing.assert_frame_equal(res.analysis.findings, want.findings)
    assert res.analysis.stats == want.stats
    assert [str(e) for e in res.errors] == [str(e) for e in want.errors]
    # every flow was shown once before the end, with the same endpoints
    prov = pd.concat(seen, ignore_index=True) if seen else normalize(want.flows.iloc[:0])
    key = ["transport", "egress_ip", "egress_port", "origin_ip", "origin_port", "start"]
    final = normalize(want.flows)
    assert sorted(map(tuple, prov[key].astype(str).values.tolist())) == sorted(
        map(tuple, final[key].astype(str).values.tolist())
    )


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
    assert sum(n for n, _ in calls) == total
    assert loader.index.count == 6 * FIRST_BATCH
