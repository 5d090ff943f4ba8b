"""The tracker's public API: callbacks, previews, draining, the flow cap, the eviction schedule.

Live capture and the terminal UI drive the flow stage batch by batch through
this API; these tests hold every way of running the one flow path (every
packet through the per-packet rules, the compiled loop, its Python twin, and
the switch from the twin to compiled code mid-capture) to the same answers.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from flowpaths import analysis, flow_path
from hypothesis import given, settings
from hypothesis import strategies as st

from pcapip import analyze
from pcapip.decode import decode
from pcapip.flows import kernel as K
from pcapip.flows import layout as L
from pcapip.flows.attempts import is_attempt
from pcapip.flows.ending import FLOW_LIMIT
from pcapip.flows.findings import CATALOGUE, ORDER, Level
from pcapip.flows.state import HS_DONE, HS_NONE, HS_PENDING
from pcapip.flows.table import finish_table
from pcapip.flows.tcptable import row_hash
from pcapip.flows.tracker import FlowTracker
from pcapip.report.analysis import Analysis
from pcapip.sources import accel, open_capture

PCAPS = Path(__file__).resolve().parent / "pcaps"
KINDS = ["rules", "compiled", "pure"]  # tests/flowpaths.py
CAPTURES = [
    "haproxy-v1.pcap",
    "haproxy-v2-crc-uid.pcap",
    "haproxy-health-checks.pcap",
    "flow-proxy-misc.pcap",
    "flow-proxy-split.pcap",
    "flow-toa.pcap",
    "flow-udp.pcap",
    "public/ndpi-haproxy.pcap",
]


class Recorder:
    """Everything the callbacks report, with the feed number it came after."""

    def __init__(self, way: str = "normal", **kw) -> None:
        self.feed_no = 0
        self.settled: dict[int, tuple[int, object]] = {}
        self.ended: dict[int, object] = {}
        self.way = way
        with flow_path(way):
            self.tracker = FlowTracker(on_settled=self.on_settled, on_ended=self.on_ended, **kw)

    def on_settled(self, flow) -> None:
        assert flow.serial not in self.settled, "settled twice"
        assert flow.serial not in self.ended, "settled after it ended"
        assert flow.settled
        n = len(flow.findings)
        row = self.tracker.preview(flow)
        assert self.tracker.preview(flow) == row  # a preview changes nothing...
        assert len(flow.findings) == n  # ...in the flow either
        self.settled[flow.serial] = (self.feed_no, row)

    def on_ended(self, flow, row) -> None:
        assert flow.serial not in self.ended, "ended twice"
        self.ended[flow.serial] = row

    def run(self, path: Path, batch_size: int = 1) -> Analysis:
        with flow_path(self.way), open_capture(path, batch_size=batch_size) as src:
            for batch in src:
                self.feed_no += 1
                self.tracker.feed(decode(batch), 0)
        table = finish_table(self.tracker, [str(path)])
        if self.way == "rules":
            assert (
                self.tracker.per_packet == table.stats["packets_tcp"] + table.stats["packets_udp"]
            )
        return Analysis(table)


def _in_table_order(rec: Recorder) -> list:
    """The final rows in the table's order (by first packet)."""
    return sorted(rec.ended.values(), key=lambda r: (r.capture, r.first_frame))


@pytest.mark.parametrize("name", CAPTURES)
def test_callbacks_agree_across_backends(name: str) -> None:
    runs = []
    ref = analyze(PCAPS / name)
    for way in KINDS:
        rec = Recorder(way)
        a = rec.run(PCAPS / name)
        assert a.to_csv() == ref.to_csv()
        # every flow ends exactly once, with the row the table numbers
        c = a.table.columns
        ordered = _in_table_order(rec)
        assert len(ordered) == len(a)
        for fid, r in enumerate(ordered):
            assert (r.method, r.client_ip, r.status) == (
                c["method"][fid],
                c["client_ip"][fid],
                c["status"][fid],
            )
        # a settled flow's preview already gives its final answer
        for serial, (_, row) in rec.settled.items():
            r = rec.ended[serial]
            assert (row.method, row.client_ip, row.client_port) == (
                r.method,
                r.client_ip,
                r.client_port,
            )
        runs.append(
            sorted((row.first_frame, feed, row.method) for feed, row in rec.settled.values())
        )
    # the same flows settle after the same packet, whichever way the flows are kept
    assert runs[0] == runs[1] == runs[2]


@pytest.mark.parametrize("way", KINDS)
def test_header_flows_settle_while_open(way: str) -> None:
    """haproxy-v1: every connection carries a header and goes on after it, so each is
    reported settled while open: not before its header packet, and (HAProxy sends the
    header in a segment of its own) once the next data shows no second header follows."""
    rec = Recorder(way)
    a = rec.run(PCAPS / "haproxy-v1.pcap", batch_size=1)
    ordered = _in_table_order(rec)
    settled_at = {row.first_frame: feed for feed, row in rec.settled.values()}
    assert len(a.table.header_frames) == len(a)
    for fid, frames in a.table.header_frames.items():
        assert a.table.columns["method"][fid - 1] == "ppv1"
        assert settled_at[ordered[fid - 1].first_frame] > frames[0][1]


@pytest.mark.parametrize("way", KINDS)
def test_udp_settles_at_its_first_datagram_with_payload(way: str) -> None:
    rec = Recorder(way)
    a = rec.run(PCAPS / "flow-udp.pcap", batch_size=1)
    udp = [r for r in rec.ended.values() if r.transport == "udp"]
    assert udp and len(udp) == a.stats["flows_udp"]
    settled = {
        row.first_frame: feed for feed, row in rec.settled.values() if row.transport == "udp"
    }
    for r in udp:
        if r.first_frame in settled:
            # the first datagram of these flows carries payload
            assert settled[r.first_frame] == r.first_frame


@pytest.mark.parametrize("way", KINDS)
def test_take_ended_drains(way: str) -> None:
    with flow_path(way):
        tracker = FlowTracker()
        rows = []
        with open_capture(PCAPS / "haproxy-health-checks.pcap", batch_size=4) as src:
            for batch in src:
                tracker.feed(decode(batch), 0)
                rows += tracker.take_ended()
    assert tracker.take_ended() == []
    rows += tracker.finish()
    assert tracker.take_ended() == [] and tracker.open_flows == 0
    ref = analyze(PCAPS / "haproxy-health-checks.pcap")
    assert len(rows) == len(ref) and len({(r.capture, r.first_frame) for r in rows}) == len(rows)


@pytest.mark.parametrize("way", KINDS)
def test_flow_cap_inside_the_tracker(way: str) -> None:
    """19 connections that never close: with room for 2, the 17 oldest are cut while open."""
    assert CATALOGUE[FLOW_LIMIT].level is Level.WARNING and FLOW_LIMIT in ORDER
    path = PCAPS / "dissect-toa-edge.pcap"
    ref = analyze(path)
    rec = Recorder(way, max_flows=2)
    a = rec.run(path)
    assert rec.tracker.limit_hits == len(ref) - 2
    cut = sorted(f.flow for f in a.table.findings if f.code == FLOW_LIMIT)
    assert cut == list(range(1, len(ref) - 1))
    for col in ("egress_ip", "egress_port", "method", "client_ip", "client_port", "status"):
        assert a.table.columns[col] == ref.table.columns[col]


def test_switching_to_compiled_code_mid_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without current ahead-of-time kernels the table starts on the loop's pure twin and
    swaps in the compiled functions once numba is loaded (same arrays, no flows moved): the
    result is that of every packet through the rules."""
    accel.numba_importable()
    for name in (
        "flow-proxy-misc.pcap",
        "flow-proxy-split.pcap",
        "flow-toa.pcap",
        "public/ndpi-haproxy.pcap",
    ):
        path = PCAPS / name
        ref = analysis([path], "rules", batch_size=3)
        for switch_at in (1, 2, 4):
            loaded = {"on": False}
            monkeypatch.setattr(accel, "compiled_cheap", lambda loaded=loaded: loaded["on"])
            tracker = FlowTracker()
            assert not tracker.compiled
            switched = False
            with open_capture(path, batch_size=3) as src:
                for k, batch in enumerate(src):
                    loaded["on"] = k >= switch_at
                    p = decode(batch, backend="pure")
                    tracker.feed(p, 0)
                    if (p.proto == 6).any():  # (the table chooses at a TCP batch)
                        switched = switched or k >= switch_at
                        assert tracker.compiled == switched or accel.pure_forced()
            got = Analysis(finish_table(tracker, [str(path)]))
            monkeypatch.undo()
            assert got.to_csv() == ref.to_csv()
            assert got.table.header_frames == ref.table.header_frames
            assert [(f.flow, f.code, f.frame) for f in got.table.findings] == [
                (f.flow, f.code, f.frame) for f in ref.table.findings
            ]


def test_compiled_loop_follows_the_table_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's field numbers come from the layout, frozen into machine code: a change to
    one the loop or a helper in another module names changes the fingerprint that keys
    both the ahead-of-time module and numba's JIT cache."""
    from pcapip.flows import kernel_flow
    from pcapip.sources import accel

    base = accel.kernel_fingerprint(K.track_tcp)
    assert "F_PACKETS" not in K.track_tcp.py_func.__code__.co_names  # a helper's only
    monkeypatch.setattr(kernel_flow, "F_PACKETS", L.F_PACKETS + 1)
    assert accel.kernel_fingerprint(K.track_tcp) != base
    monkeypatch.undo()
    assert accel.kernel_fingerprint(K.track_tcp) == base
    monkeypatch.setattr(K, "F_MARK", L.F_MARK + 1)
    assert accel.kernel_fingerprint(K.track_tcp) != base


def test_every_flow_fact_is_declared_once() -> None:
    """Each TcpFlow attribute is a field the layout declares (its row <-> object copy is
    generated from that), has a rule of its own in rowflow, or is Python-only state: a new
    attribute that is none of these fails here instead of being silently dropped."""
    from pcapip.flows import rowflow
    from pcapip.flows.state import FlowBase, TcpFlow

    slots = set(FlowBase.__slots__) | set(TcpFlow.__slots__)
    declared = {attr for _, attr, _, _ in L.ATTRS}
    assert not declared & set(rowflow.RULES) and not declared & set(rowflow.PYTHON_ONLY)
    assert declared | set(rowflow.RULES) | set(rowflow.PYTHON_ONLY) == slots


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_a_flow_round_trips_through_its_row(seed: int) -> None:
    """store then load gives back every declared fact, the closes and the first payloads."""
    from pcapip.flows import rowflow
    from pcapip.flows.state import TcpFlow

    rng = random.Random(seed)
    tracker = FlowTracker()
    tab = tracker._tcp
    tab._reserve(1)
    s = 0
    tun = tracker.tunnels.codes(1, rng.randrange(1 << 24))[0] if rng.random() < 0.5 else 0
    key = (6, rng.getrandbits(64), rng.getrandbits(64), 1, rng.getrandbits(64), 5, 2)
    tab.S[s, L.K_AHI : L.K_BPORT + 1] = np.array(key[1:], dtype=np.uint64).view(np.int64)
    tab.S[s, L.K_TUN] = tun
    key = (*key, tracker.tunnels.label(tun))
    fl = TcpFlow(key, 0, 0, 0, 0, 0)
    for _, attr, item, kind in L.ATTRS:
        v = {L.INT: rng.randrange(1 << 40), L.BOOL: rng.random() < 0.5}.get(kind)
        if kind == L.OPT:
            v = None if rng.random() < 0.3 else rng.randrange(1 << 40)
        if item is None:
            setattr(fl, attr, v)
        else:
            getattr(fl, attr)[item] = v
    fl.closes = [(rng.randrange(2), rng.choice(["fin", "rst"]), 7, 1, True, False)][
        : rng.randrange(2)
    ]
    fl.pay_seen = [True, rng.random() < 0.5]
    fl.first_pay = [(3, 0, b"GET /"), (4, 0, b"HTTP/1.1 200") if fl.pay_seen[1] else None]
    fl.serial = 9
    tab.S[s, L.F_SERIAL] = 9
    rowflow.store(tab, s, fl)
    # nothing Python-only but ``truncated``, which rowflow also counts as Python state
    assert (s in tab.extra) == fl.truncated
    tab.extra.pop(s, None)  # the row alone holds the flow now
    back = rowflow.load(tab, s)
    assert back is not fl and back.key == fl.key and back.serial == 9
    for attr in {a for _, a, _, _ in L.ATTRS} | {"closes", "first_pay"}:
        assert getattr(back, attr) == getattr(fl, attr), attr


@pytest.mark.parametrize("way", ["compiled", "pure"])
@pytest.mark.parametrize(
    "name", ["haproxy-ipv6.pcap", "flow-proxy-misc.pcap", "dissect-toa-edge.pcap"]
)
def test_loop_hashes_keys_as_python_does(way: str, name: str) -> None:
    """The loop's flow-key hash (compiled: int64 arithmetic that must not overflow) equals
    Python's, on either backend: a table switched mid-capture keeps its index."""
    with flow_path(way):
        tracker = FlowTracker(linger=1e9, evict_after=1e9)
        with open_capture(PCAPS / name) as src:
            for batch in src:
                tracker.feed(decode(batch), 0)
    S = tracker._tcp.S
    rows = np.flatnonzero(S[:, L.F_STATE] == L.ST_OPEN)
    assert rows.size
    for r in S[rows].tolist():
        assert r[L.K_HASH] == row_hash(*r[L.K_AHI : L.K_TUN + 1])


# ---------------------------------------------------------------------- eviction schedule
def _naive_due(S, closed_rows, now, linger, evict_after, attempt=None) -> set[int]:
    due = set()
    for s in range(S.shape[0]) if attempt is not None else closed_rows:
        if S[s, L.F_STATE] != L.ST_OPEN:
            continue
        fm = S[s, L.F_FIN_MASK]
        if S[s, L.F_CLOSED]:
            delay = linger if (fm & 4 or fm == 3) else evict_after
        elif attempt is not None and is_attempt(
            False,
            S[s, L.F_HS],
            S[s, L.F_SYN_SEQ] >= 0,
            S[s, L.F_SYNACK] != 0,
            S[s, L.F_PAY0] != 0 or S[s, L.F_PAY1] != 0,
        ):
            delay = attempt
        else:
            continue
        if S[s, L.F_END] + delay < now:
            due.add(s)
    return due


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    backend=st.sampled_from(["pure", "compiled"]),
)
def test_expire_finds_exactly_the_flows_a_full_scan_finds(seed: int, backend: str) -> None:
    """The eviction queue and heap against scanning every closed flow each time (what
    they replace): flows close, get more packets, become fully closed, are re-scheduled;
    after every step both agree on which are due."""
    rng = random.Random(seed)
    n = 40
    S = np.zeros((n, L.NFIELDS), dtype=np.int64)
    S[:] = L.template()
    S[:, L.F_SERIAL] = np.arange(1, n + 1)
    hp, fq = (np.zeros((3, 8 * n), dtype=np.int64) for _ in range(2))  # (fq: a ring)
    hn = np.zeros(3, dtype=np.int64)
    expire = K.expire.get(accel.choose(backend, want_compiled=True))
    linger, evict_after, attempt = 20, 500, 60
    now = 0
    used = 0
    closed: set[int] = set()
    for _ in range(60):
        events = []
        now += rng.randrange(0, 40)
        for _ in range(rng.randrange(0, 6)):
            s = rng.randrange(n)
            if S[s, L.F_STATE] != L.ST_OPEN:
                continue
            S[s, L.F_END] = max(S[s, L.F_END], now - rng.randrange(0, 30))
            what = rng.random()
            if what < 0.2 and S[s, L.F_HS] == HS_NONE:  # a SYN: the flow becomes an attempt
                S[s, L.F_SYN_SEQ] = 1
                S[s, L.F_HS] = HS_PENDING
                if not S[s, L.F_CLOSED]:
                    events.append(s)
            elif what < 0.3:  # the handshake completes, or payload: no longer an attempt
                if rng.random() < 0.5:
                    S[s, L.F_HS] = HS_DONE
                else:
                    S[s, L.F_PAY0 + rng.randrange(2)] = 1
            elif what < 0.5:  # a FIN or RST
                was_closed = S[s, L.F_CLOSED]
                fm = S[s, L.F_FIN_MASK]
                was_done = fm & 4 or fm == 3
                S[s, L.F_FIN_MASK] |= rng.choice([1, 2, 4])
                fm = S[s, L.F_FIN_MASK]
                S[s, L.F_CLOSED] = 1
                closed.add(s)
                if not was_closed or ((fm & 4 or fm == 3) and not was_done):
                    events.append(s)
        expect = _naive_due(S, closed, now, linger, evict_after, attempt)
        ev = np.asarray(events, dtype=np.int64)
        out = np.empty(int(hn[0] + hn[2]) + ev.size + 1, dtype=np.int64)
        k = expire(ev, ev.size, S, (hp, fq, hn), now, (linger, evict_after, attempt), out)
        assert set(out[:k].tolist()) == expect
        assert all(S[s, L.F_STATE] == L.ST_ENDED for s in expect)
        # the schedule stays a binary heap of deadlines and a queue in deadline order
        h = hp[0, : int(hn[0])].tolist()
        assert all(h[(i - 1) // 2] <= h[i] for i in range(1, len(h)))
        q = fq[0, (int(hn[1]) + np.arange(int(hn[2]))) % fq.shape[1]].tolist()
        assert q == sorted(q)
        used = max(used, int(hn[2]))
    assert used > 0  # (the queue was used)


@settings(max_examples=60, deadline=None)
@given(
    hashes=st.lists(st.integers(0, 2**31 - 1), min_size=0, max_size=200),
    grow=st.integers(1, 3),
)
def test_a_grown_index_finds_every_row_without_reading_rows(hashes: list[int], grow: int) -> None:
    """``kernel.rehash`` moves an index into one 2**grow times larger using only the hash bits
    each entry carries: every row is then found by probing from its key hash's home, as
    ``find_flow`` does, and the compiled kernel and its Python twin agree."""
    small = 1 << max(1, (2 * len(hashes)).bit_length())
    old = np.zeros(small, dtype=np.int64)
    for row, h in enumerate(hashes):  # linear probing, as track_tcp inserts
        pos = h & (small - 1)
        while old[pos]:
            pos = (pos + 1) & (small - 1)
        old[pos] = (h << 32) | (row + 1)
    grown = {}
    for backend in ("pure", accel.BACKEND_COMPILED):
        H = np.zeros(small << grow, dtype=np.int64)
        K.rehash.get(backend)(old, H)
        grown[backend] = H
    assert np.array_equal(grown["pure"], grown[accel.BACKEND_COMPILED])
    H = grown["pure"]
    assert np.count_nonzero(H) == len(hashes)
    mask = H.shape[0] - 1
    for row, h in enumerate(hashes):
        pos = h & mask
        while H[pos] and H[pos] & 0xFFFFFFFF != row + 1:
            pos = (pos + 1) & mask
        assert H[pos] == (h << 32) | (row + 1)
