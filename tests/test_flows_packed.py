"""Packed rows: what the table holds for every ended flow, in memory or in temporary files.

The packed form must give back exactly the rows it was given (text verbatim,
missing values missing), and a table built from rows that went to disk must
be the table built from rows that stayed in memory.
"""

from __future__ import annotations

import copy
import io
import ipaddress
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from flowpaths import flow_path, tracked
from hypothesis import given, settings
from hypothesis import strategies as st

from pcapip.flows import holding
from pcapip.flows.findings import CATALOGUE
from pcapip.flows.packed import NO_IP, DiskStore, PackedRows, Vocab
from pcapip.flows.run import read_captures
from pcapip.flows.tracker import FlowTracker
from pcapip.report import export
from pcapip.report.export import write_csv, write_jsonl

PCAPS = Path(__file__).parent / "pcaps"
CAPTURES = [
    "troubleshooting.pcap",
    "flow-udp.pcap",
    "flow-proxy-misc.pcap",
    "flow-toa.pcap",
    "haproxy-ipv6.pcap",
    "haproxy-v2-crc-uid.pcap",
    "toa-variants.pcap",
    "flow-spoof.pcap",
]


def _dump(table) -> str:
    buf = io.StringIO()
    write_csv(table, buf)
    write_jsonl(table, buf)
    buf.write(json.dumps(table.stats, sort_keys=True))
    for f in table.findings:
        buf.write(f"\n{f.flow}|{f.code}|{f.message}|{f.frame}|{f.capture}")
    buf.write(repr(sorted(table.header_frames.items())))
    return buf.getvalue()


def _reference_rows(name: str) -> list:
    from pcapip.decode import decode
    from pcapip.sources import open_capture

    with flow_path("rules"):  # every packet through the rules: rows of Python flows too
        t = FlowTracker()
        with open_capture(PCAPS / name) as src:
            for batch in src:
                t.feed(decode(batch))
        return t.finish()


@pytest.mark.parametrize("name", CAPTURES)
def test_rows_survive_packing(name: str) -> None:
    rows = _reference_rows(name)
    assert rows
    vocab = Vocab()
    packed = PackedRows.from_rows(rows, vocab)
    assert len(packed) == len(rows)
    back = packed.to_rows(vocab)
    assert back == rows
    # the same through temporary files, appended in two parts
    store = DiskStore()
    half = len(rows) // 2
    disk = PackedRows(store)
    from pcapip.flows.packed import spill

    spill(store, PackedRows.from_rows(rows[:half], vocab))
    spill(store, PackedRows.from_rows(rows[half:], vocab))
    assert disk.to_rows(vocab) == rows
    store.close()


@given(
    st.lists(
        st.tuples(st.integers(1, 9), st.booleans(), st.integers(-3, 3)), min_size=1, max_size=8
    ),
    st.integers(0, 80),
    st.integers(0, 80),
    st.integers(0, 300),
)
@settings(max_examples=100, deadline=None)
def test_constant_segments_read_back_like_written_ones(
    parts: list[tuple[int, bool, int]], lo: int, hi: int, room: int
) -> None:
    """A segment of one repeated value is kept as that value, not written: every slice of
    a column mixing such segments with written ones, of each dtype, reads what was appended,
    also when the file's disk fills up after ``room`` bytes (the rest kept in memory)."""
    import tempfile

    rng = np.random.default_rng(len(parts))
    cols: dict[str, list[np.ndarray]] = {"i8": [], "b": [], "u1": []}
    store = DiskStore()
    real = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115 (store.close closes it)
    store._file = _FillingFile([room], real)
    try:
        for size, same, v in parts:
            for name, dt in (("i8", np.int64), ("b", bool), ("u1", np.uint8)):
                vals = np.full(size, abs(v), dtype=dt) if same else rng.integers(0, 3, size).astype(dt)
                if name == "i8" and same:
                    vals = np.full(size, v, dtype=dt)
                store.append(name, vals)
                cols[name].append(vals)
        for name, got in cols.items():
            want = np.concatenate(got)
            assert store.slice(name, lo, hi).tolist() == want[lo:hi].tolist()
            assert store.slice(name, lo, hi).dtype == want.dtype
            assert store[name].tolist() == want.tolist()
    finally:
        store.close()


_V4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_V6 = st.integers(0, 2**128 - 1).map(lambda v: str(ipaddress.IPv6Address(v)))
# texts a header may carry that are not an address's usual spelling: kept as they are
_ODD = st.sampled_from(["010.0.0.1", "1.2.3", "::FFFF:1.2.3.4", "0x7f.0.0.1", "", " 1.2.3.4"])


@given(st.lists(st.one_of(st.none(), _V4, _V6, _ODD), max_size=40))
@settings(max_examples=200, deadline=None)
def test_address_codes_give_back_the_text(values: list[str | None]) -> None:
    vocab = Vocab()
    codes = vocab.ip_encode(values)
    assert vocab.ip_decode(codes) == values
    for v, c in zip(values, codes.tolist(), strict=True):
        if v is None:
            assert c == NO_IP
        elif c >= 0:  # stored as a number only when the text is the dotted form of it
            assert str(ipaddress.IPv4Address(c)) == v


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=30), st.data())
def test_address_halves_match_their_text(los: list[int], data: st.DataObject) -> None:
    from pcapip.flows.rows import ip_text

    his = [data.draw(st.sampled_from([0, 1, 2**63, 2**64 - 1])) for _ in los]
    # a share of IPv4-mapped ones (hi 0, lo ::ffff:a.b.c.d)
    los = [(0xFFFF << 32) | (lo & 0xFFFFFFFF) if k % 2 else lo for k, lo in enumerate(los)]
    his = [0 if k % 2 else h for k, h in enumerate(his)]
    vocab = Vocab()
    hi = np.array(his, dtype=np.uint64).view(np.int64)
    lo = np.array(los, dtype=np.uint64).view(np.int64)
    got = vocab.ip_decode(vocab.ip_from_halves(hi, lo))
    assert got == [ip_text(h, low) for h, low in zip(his, los, strict=True)]


@pytest.mark.parametrize("way", ["normal", "rules"])
def test_a_table_from_spilled_rows_is_the_same_table(
    way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read(paths, **kw):
        return tracked(paths, way, **kw)[:2]

    paths = [PCAPS / n for n in CAPTURES]
    expect = [_dump(read([p], trusted="10.77.2.0/29")[0]) for p in paths]
    together = _dump(read(paths, trusted="10.0.0.0/8")[0])
    # every packed block goes to disk as soon as it is made
    monkeypatch.setattr(holding, "SPILL_BYTES", 0)
    monkeypatch.setattr(holding, "PACK_ROWS", 2)
    spilled = [read([p], trusted="10.77.2.0/29")[0] for p in paths]
    assert all(t.rows.cols.on_disk for t in spilled if len(t) > 1)
    assert [_dump(t) for t in spilled] == expect
    assert _dump(read(paths, trusted="10.0.0.0/8")[0]) == together
    # the writers read a table on disk a slice at a time
    t = spilled[0]
    for chunk in (1, 7):
        monkeypatch.setattr(export, "_LINES", chunk)
        assert _dump(t) == expect[0]
    # a pickled or copied table carries its rows, not the temporary files
    for other in (pickle.loads(pickle.dumps(spilled[0])), copy.deepcopy(spilled[0])):
        assert not other.rows.cols.on_disk
        assert _dump(other) == expect[0]


@pytest.mark.parametrize("max_runs", [2, 512])
@pytest.mark.parametrize("spill", [True, False])
@pytest.mark.parametrize("size", [1, 3, 30])
def test_the_table_is_built_a_slice_at_a_time(
    size: int, spill: bool, max_runs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ordering, moving, counting and comparing flows a few rows at a time (buckets of
    rows by key range, each a span of every sorted run, as for a flood of millions; with
    too many runs, each slice sorted first) gives the table built at once. (Rows here
    leave the tracker as they end, not waiting for the flows that began before them, so
    the table has to order them.)"""
    from pcapip.flows import ending, reorder, tally

    paths = [PCAPS / n for n in CAPTURES]
    expect = _dump(read_captures(paths, trusted="10.0.0.0/8")[0])
    if spill:
        monkeypatch.setattr(holding, "SPILL_BYTES", 0)
        monkeypatch.setattr(holding, "PACK_ROWS", 4)
    monkeypatch.setattr(reorder, "SLICE", size)
    monkeypatch.setattr(tally, "SLICE", size)
    monkeypatch.setattr(reorder, "_SAMPLE", 2)
    monkeypatch.setattr(reorder, "MAX_RUNS", max_runs)
    monkeypatch.setattr(reorder, "_HF_STEP", 2)
    monkeypatch.setattr(ending, "WAIT_MAX", -1)
    monkeypatch.setattr(ending, "COMPACT_ROWS", 2)
    moved = []
    run = reorder.Moved.run
    monkeypatch.setattr(reorder.Moved, "run", lambda self: moved.append(1) or run(self))
    t = read_captures(paths, trusted="10.0.0.0/8")[0]
    assert len(t) > 3 * size and t.rows.cols.on_disk == spill
    assert moved and _dump(t) == expect


def _feed_all(limit: int | None) -> list:
    from pcapip.decode import decode
    from pcapip.sources import open_capture

    with flow_path("rules"):
        t = FlowTracker(linger=0.0)
        for name in CAPTURES:
            with open_capture(PCAPS / name, batch_size=64) as src:
                for batch in src:
                    t.feed(decode(batch), 0)
                    if limit is not None:
                        assert t.held_bytes <= limit
    t.end_all()
    if limit is not None:
        assert t.rows_on_disk > 50
    else:
        assert t.rows_on_disk == 0
    return t.take_ended()


def test_memory_holds_at_most_the_spill_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """However many flows end, the packed rows kept in memory stay under SPILL_BYTES."""
    expect = _feed_all(None)
    assert len(expect) > 50
    monkeypatch.setattr(holding, "SPILL_BYTES", 4096)
    monkeypatch.setattr(holding, "PACK_ROWS", 16)
    assert _feed_all(4096) == expect


@pytest.mark.parametrize("name", CAPTURES)
def test_columns_slices_and_levels(name: str) -> None:
    table, _ = read_captures([PCAPS / name], trusted="192.0.2.0/24")
    n = len(table)
    for col in table.columns:
        whole = table.column(col, 0, n)
        assert table.columns[col] == whole
        parts = [x for a in range(0, n, 3) for x in table.columns.slice(col, a, a + 3)]
        assert parts == whole
    levels = [CATALOGUE[f.code].level for f in table.findings]
    assert table.worst_level() == (max(levels) if levels else None)
    assert table.stats["findings_info"] + table.stats["findings_warning"] + table.stats[
        "findings_error"
    ] == len(table.findings)


class _FillingFile:
    """A temporary file on a disk with ``room[0]`` bytes left for all of them: a write
    past that fails as a full disk does (ENOSPC, after writing what fitted)."""

    def __init__(self, room: list[int], real) -> None:
        self.room, self.real = room, real

    def write(self, data) -> int:
        import errno

        n = min(len(data), self.room[0])
        if n == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room[0] -= n
        return self.real.write(bytes(data[:n]))

    def __getattr__(self, name: str):
        return getattr(self.real, name)


@pytest.mark.parametrize("way", ["normal", "rules"])
@pytest.mark.parametrize("share", [0.0, 0.01, 0.3, 0.7, 0.99])
def test_a_full_disk_keeps_the_rows_in_memory(
    share: float, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporary files that stop taking writes (no space left) cost memory, never rows,
    and the table's warnings say where: the disk fills after ``share`` of the bytes the
    run writes with room to spare."""
    import tempfile

    def read(paths, **kw):
        return tracked(paths, way, **kw)[0]

    paths = [PCAPS / n for n in CAPTURES]
    expect = _dump(read(paths, trusted="10.0.0.0/8"))
    monkeypatch.setattr(holding, "SPILL_BYTES", 0)
    monkeypatch.setattr(holding, "PACK_ROWS", 4)
    real = tempfile.TemporaryFile
    room = [1 << 40]

    def temporary(*args, **kw):
        return _FillingFile(room, real(*args, **kw))

    monkeypatch.setattr(tempfile, "TemporaryFile", temporary)
    table = read(paths, trusted="10.0.0.0/8")
    assert _dump(table) == expect and not [w for w in table.warnings if w.kind == "spool_in_memory"]
    total = (1 << 40) - room[0]
    assert total > 10_000
    room[0] = int(total * share)
    table = read(paths, trusted="10.0.0.0/8")
    assert room[0] == 0  # the disk did fill up
    assert _dump(table) == expect
    (said,) = [w for w in table.warnings if w.kind == "spool_in_memory"]
    assert said.file == tempfile.gettempdir() and "No space left on device" in str(said)


def test_disk_store_segments_read_back_whatever_their_values() -> None:
    """Constant segments (kept as one value), segments of close values (written narrower,
    as distances from their smallest), of extreme and of missing values, read back whole
    and in any slice exactly as appended."""
    rng = np.random.default_rng(1)
    store = DiskStore()
    expect = {}
    for name, dt in [("i8", np.int64), ("i4", np.int32), ("b", np.bool_)]:
        parts = []
        for k in range(50):
            n = int(rng.integers(0, 40))
            info = np.iinfo(np.int64 if dt is np.bool_ else dt)
            v = [
                np.full(n, 7),
                rng.integers(-300, 300, n),
                rng.integers(0, 70_000, n) + info.min + 5,
                rng.integers(info.min, info.max, n, dtype=info.dtype),
                np.where(rng.random(n) < 0.3, info.min, rng.integers(0, 5, n)),
            ][k % 5]
            v = (rng.random(n) < 0.5) if dt is np.bool_ else v.astype(dt)
            store.append(name, v)
            parts.append(v)
        expect[name] = np.concatenate(parts)
    for name, whole in expect.items():
        assert np.array_equal(store[name], whole) and store[name].dtype == whole.dtype
        for _ in range(200):
            lo, hi = sorted(rng.integers(0, whole.size + 3, 2).tolist())
            assert np.array_equal(store.slice(name, lo, hi), whole[lo:hi]), (name, lo, hi)
    assert store.constant("i8") is None
    store.close()
