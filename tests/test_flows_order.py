"""Rows leave the tracker in first-packet order when they can, and the table then keeps
them as they are (``pcapip.flows.watermark``, ``ending.flush``, ``table._moved``).

A flush hands out only the rows that no unfinished flow began before; the others wait
(at most ``ending.WAIT_MAX``). Whether rows waited, left out of order, or were reordered
by the table, the table is the same; a SYN flood's rows need no reordering at all.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from flowpaths import flow_path

from pcapip.decode import decode
from pcapip.flows import ending, holding, reorder
from pcapip.flows import layout as L
from pcapip.flows.packed import DiskStore, PackedRows
from pcapip.flows.reorder import in_order, sort_key
from pcapip.flows.run import read_captures
from pcapip.flows.tracker import FlowTracker
from pcapip.flows.watermark import NONE, Watermark
from pcapip.report.export import write_csv
from pcapip.sources import open_capture

REPO = Path(__file__).resolve().parents[1]
PCAPS = REPO / "tests" / "pcaps"
# captures with many flows of every kind, UDP among them, long ones next to short ones
CAPTURES = [
    "troubleshooting.pcap",
    "flow-udp.pcap",
    "flow-proxy-misc.pcap",
    "flow-toa.pcap",
    "flow-attempts.pcap",
    "flow-capture-end.pcap",
    "eth-mixed-us-le.pcap",
    "haproxy-ipv6.pcap",
    "flow-spoof.pcap",
]


def _gen_flood():
    spec = importlib.util.spec_from_file_location("gen_flood", REPO / "bench" / "gen_flood.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gen_flood"] = mod
    spec.loader.exec_module(mod)
    return mod


def _csv(paths: list[Path]) -> str:
    out = io.StringIO()
    write_csv(read_captures(paths, trusted="10.0.0.0/8", batch_size=64)[0], out)
    return out.getvalue()


@pytest.mark.parametrize("way", ["normal", "pure"])
def test_a_flood_leaves_its_rows_in_table_order(
    tmp_path: Path, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fed a small batch at a time, a flood's rows (unanswered, half-open and refused
    attempts that end on different clocks, real connections among them) leave in order of
    their first packet, each once, and the table is built without moving them."""
    info = _gen_flood().write(tmp_path / "f.pcap", 3000, 400.0)
    monkeypatch.setattr(holding, "SPILL_BYTES", 0)  # (on disk, as a large flood's)
    monkeypatch.setattr(ending, "COMPACT_ROWS", 64)  # (rows leave while it is read)
    with flow_path(way):
        t = FlowTracker()
        most = 0
        with open_capture(tmp_path / "f.pcap", batch_size=128) as src:
            for batch in src:
                t.feed(decode(batch))
                most = max(most, t._tcp.nwaiting)
        t.end_all()
        rows = PackedRows.concat(t.take_blocks())
    n = len(rows)
    assert n == info["flows"]
    key = sort_key(rows.cols, 0, n)
    assert (key[1:] > key[:-1]).all()  # in order, none twice
    assert in_order(rows.cols, n) and rows.cols.on_disk
    assert 0 < most <= ending.WAIT_MAX  # some waited (the refused end early), boundedly

    def refuse(*_a, **_k):
        raise AssertionError("rows in order are not moved")

    monkeypatch.setattr(reorder.Moved, "run", refuse)
    table, errors = read_captures([tmp_path / "f.pcap"], batch_size=128)
    assert len(table) == info["flows"] and not errors


@pytest.mark.parametrize("wait", [-1, 0, 3])
def test_the_table_is_the_same_however_rows_wait(
    wait: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows that may not wait (-1: every flush hands out all it has, so rows leave out of
    order and the table sorts them), or only a few, give the same CSV as rows that wait
    for every flow that began before them; captures read one after another too."""
    paths = [PCAPS / n for n in CAPTURES]
    expect = [_csv([p]) for p in paths] + [_csv(paths)]
    monkeypatch.setattr(ending, "WAIT_MAX", wait)
    monkeypatch.setattr(ending, "COMPACT_ROWS", 2)
    got = [_csv([p]) for p in paths] + [_csv(paths)]
    assert got == expect


def test_the_bound_is_the_oldest_unfinished_flow() -> None:
    """``Watermark.bound`` against the flows it counts: the smallest first packet of any
    flow created in an epoch (1,024 serials) that still holds a flow neither handed out
    nor asked about; never above the oldest such flow's own first packet."""
    rng = np.random.default_rng(7)
    n = 6000
    S = np.zeros((n, L.XBASE), dtype=np.int64)
    mark = Watermark()
    first: dict[int, int] = {}  # serial -> first packet, of every flow created
    live: set[int] = set()  # serials not handed out
    clock = made = 0
    while made < n:
        k = int(rng.integers(1, 300))
        rows = np.arange(made, min(n, made + k))[::-1]  # (the free stack's slice: last first)
        late = rng.random() < 0.3  # a batch whose first packets are not in serial order
        for r in rows[::-1].tolist():  # serials in creation order
            clock += int(rng.integers(0, 3))
            S[r, L.F_FIRST_FRAME] = clock - (int(rng.integers(0, 50)) if late else 0)
            S[r, L.F_SERIAL] = r + 1
            first[r + 1] = int(S[r, L.F_FIRST_FRAME])
            live.add(r + 1)
        mark.created(S, rows, made + 1, not late)
        made += rows.size
        pool = np.array(sorted(live), dtype=np.int64)
        out = rng.choice(pool, size=min(pool.size, int(rng.integers(0, 250))), replace=False)
        mark.handed_out(out)
        live -= set(out.tolist())
        ask = np.array(sorted(live), dtype=np.int64)[: int(rng.integers(0, 50))]
        rest = live - set(ask.tolist())
        epochs = {s >> 10 for s in rest}
        want = min((f for s, f in first.items() if s >> 10 in epochs), default=NONE)
        got = mark.bound(ask)
        assert got == want
        assert got <= min((first[s] for s in rest), default=NONE)


def test_sparse_segments_read_back() -> None:
    """A segment that is one value but for a few (NULLs with a few ports, one status with
    a few others, flags mostly false) is written as where the others are and their
    values; every slice reads back what was appended, whatever the dtype."""
    rng = np.random.default_rng(3)
    store = DiskStore()
    expect: dict[str, list[np.ndarray]] = {}
    null = np.iinfo(np.int64).min
    for k in range(60):
        n = int(rng.integers(60, 3000))
        few = rng.random(n) < rng.choice([0.0005, 0.01, 0.05, 0.3])
        cols = {
            "i8": np.where(few, rng.integers(0, 65536, n), null),  # (common: the smallest)
            "i4": np.where(few, rng.integers(-5, 5, n), 7).astype(np.int32),  # (not the smallest)
            "b": few.copy(),
            "u1": np.where(few, 2, 9).astype(np.uint8),
        }
        if k % 7 == 0:
            cols["i8"][0] = 12  # (the first value differs from the common one)
        for name, v in cols.items():
            store.append(name, v)
            expect.setdefault(name, []).append(v)
    try:
        for name, parts in expect.items():
            whole = np.concatenate(parts)
            assert np.array_equal(store[name], whole) and store[name].dtype == whole.dtype
            for _ in range(300):
                lo, hi = sorted(rng.integers(0, whole.size + 3, 2).tolist())
                assert np.array_equal(store.slice(name, lo, hi), whole[lo:hi]), (name, lo, hi)
        sparse = sum(1 for s in store._segs["i8"] if s[3] is not None and len(s[3]) == 3)
        assert sparse > 30  # (the form was used, not only the others)
    finally:
        store.close()
