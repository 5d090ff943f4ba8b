"""The flow path against itself with every packet handed to the per-packet rules.

The compiled loop applies the common packets itself and hands only unusual
ones to the state machine (``pcapip.flows.machine``); with the test switch
``PCAPIP_CHECK_RULES=1`` it hands every packet over. Both, and the loop's
pure-Python twin, must give identical flows and findings, also when flows
span batch boundaries (tiny batches) and on shuffled, retransmitted,
port-reusing traffic.
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pandas as pd
import pytest
from flowpaths import analysis, flow_path, tracked
from gen import flow_pcaps as gen
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcapip.decode import decode
from pcapip.flows.table import finish_table
from pcapip.flows.tracker import FlowTracker
from pcapip.report.analysis import Analysis
from pcapip.sources import open_capture

HERE = Path(__file__).resolve().parent
PCAPS = HERE / "pcaps"
PUBLIC = PCAPS / "public"  # captures vendored from other projects (tests/pcaps/README.md)




def _both(path: Path, batch_size: int, way: str = "compiled") -> tuple[Analysis, Analysis]:
    """The path run ``way``, and run with every packet through the rules."""
    return analysis([path], way, batch_size=batch_size), analysis([path], "rules", batch_size=batch_size)


def _same(fast: Analysis, ref: Analysis) -> None:
    pd.testing.assert_frame_equal(fast.flows, ref.flows)
    pd.testing.assert_frame_equal(fast.findings, ref.findings)
    assert fast.stats == ref.stats
    assert fast.table.header_frames == ref.table.header_frames


CAPTURES = sorted(str(p.relative_to(PCAPS)) for d in (PCAPS, PUBLIC) for p in d.glob("*.pcap*"))


@pytest.mark.parametrize("batch_size", [1, 3, 64, 65536])
@pytest.mark.parametrize("name", CAPTURES)
def test_fast_equals_reference(name: str, batch_size: int) -> None:
    """The compiled loop (numba) against every packet through the per-packet machine."""
    _same(*_both(PCAPS / name, batch_size))


@pytest.mark.parametrize("batch_size", [1, 65536])
@pytest.mark.parametrize("name", CAPTURES)
def test_pure_twin_equals_reference(name: str, batch_size: int) -> None:
    """The compiled loop's Python twin (what runs without numba) gives the same flows."""
    _same(*_both(PCAPS / name, batch_size, way="pure"))


def test_fast_path_skips_bulk_packets(tmp_path: Path) -> None:
    """The point of the fast path: most packets of long flows are never looked at one by one."""
    bench = _load_bench()
    path = tmp_path / "bulk.pcap"
    bench(path, 4000, 200)
    with flow_path("compiled"):
        tracker = FlowTracker()
        with open_capture(path) as src:
            for batch in src:
                tracker.feed(decode(batch), 0)
        table = finish_table(tracker, [str(path)])
    assert tracker.compiled
    assert table.stats["packets"] == 4000
    assert tracker.per_packet < 0.1 * table.stats["packets"]
    ref, _, checked = tracked([path], "rules")
    assert checked.per_packet == table.stats["packets"]  # (tracked checks it too)
    assert ref.columns == table.columns


def _load_bench():
    spec = importlib.util.spec_from_file_location(
        "make_flow_bench", HERE.parent / "bench" / "make_flow_bench.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.write


def _conn_frames(rng: random.Random, n: int) -> list[tuple[float, bytes, int]]:
    """Several connections with random faults, interleaved; some reuse a 4-tuple."""
    cap = gen.Capture("random.pcap", "")
    conns = []
    for k in range(n):
        sub = gen.Capture("x", "")
        port = 50000 + rng.randrange(4)  # few ports: port reuse happens
        e = (gen.PROXY1, port)
        o = (gen.ORIGIN, 80)
        c = gen.Conn(sub, e, o, isn_e=rng.randrange(1 << 32), isn_o=rng.randrange(1 << 32))
        kind = rng.randrange(5)
        toa = gen.toa200(f"100.64.9.{k}", 1000 + k) if kind == 0 else b""
        if rng.random() < 0.8:
            c.handshake(
                syn_opts=toa if rng.random() < 0.7 else b"",
                ack_opts=toa if rng.random() < 0.7 else b"",
            )
        client = (f"100.64.8.{k}", 2000 + k)
        h = (
            gen.v1(client[0], gen.ORIGIN, client[1], 80)
            if kind == 1
            else gen.v2(client[0], gen.ORIGIN, client[1], 80)
            if kind == 2
            else b""
        )
        data = h + b"GET / HTTP/1.1\r\n\r\n"
        cut = rng.randrange(1, len(data))
        if rng.random() < 0.3:  # split, maybe out of order, maybe retransmitted
            parts = [(0, data[:cut]), (cut, data[cut:])]
            if rng.random() < 0.5:
                parts.reverse()
            if rng.random() < 0.5:
                parts.append(parts[0])
            for at, d in parts:
                c.send(d, at=at)
        else:
            c.send(data)
        for _ in range(rng.randrange(6)):
            c.reply(b"y" * rng.randrange(1, 300))
            c.ack_o() if rng.random() < 0.2 else c.send(b"z" * rng.randrange(0, 3))
        r = rng.random()
        if r < 0.6:
            c.close(origin_first=rng.random() < 0.3)
        elif r < 0.8:
            c.close(rst=True, origin_first=rng.random() < 0.5)
        conns.append(sub.frames)
    # interleave: keep each connection's own order, mix connections (port reuse stays ordered)
    t = 1_700_000_000.0
    queues = [list(f) for f in conns]
    active = []
    while queues or active:
        while queues and (len(active) < 3 or rng.random() < 0.1):
            active.append(queues.pop(0))
        q = rng.choice(active)
        _, frame, snap = q.pop(0)
        t += 0.0001
        cap.frames.append((t, frame, snap))
        if not q:
            active.remove(q)
    return cap.frames


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12), batch=st.sampled_from([1, 2, 5, 17, 4096])
)
def test_random_traffic_fast_equals_reference(
    tmp_path_factory, seed: int, n: int, batch: int
) -> None:
    rng = random.Random(seed)
    path = tmp_path_factory.mktemp("rnd") / "r.pcap"
    gen.write_pcap(path, _conn_frames(rng, n))
    _same(*_both(path, batch))
    _same(*_both(path, batch, way="pure"))


@pytest.mark.parametrize(
    "name",
    [
        "ndpi-haproxy.pcap",
        "toa-252-alibaba-vpc.pcap",
        "toa-254-250-alibaba-slb.pcap",
        "toa-253-bad-record-lengths.pcap",
    ],
)
def test_public_captures_fast_equals_reference(name: str) -> None:
    path = PUBLIC / name
    _same(*_both(path, 2))
    _same(*_both(path, 2, way="pure"))
