"""The flow stage's connection lookup checked by an independent implementation: Wireshark's
TCP conversations (``tcp.stream``).

Every TCP flow pcapip reports must be one of tshark's streams, packet for packet: the same
first frame and the same number of packets. That holds the flow lookup (both directions one
connection), port reuse (a new SYN after a close is a new connection), the attempt timeout
and the capture's end to a reading that shares none of pcapip's code, in every way the
tests run the flow stage (the ``rules`` switch included).

Left out, each for a reason tshark and pcapip differ on purpose: tunnels (pcapip keeps two
tenants' identical inner connections apart, tshark merges them:
``test_dissect_tshark.test_wireshark_merges_two_tenants_into_one_tcp_stream``), and the
hand-built link-layer and damage fixtures, whose frames have bogus header lengths, headers
cut by the snap length or IPv6 routing headers (tshark still makes streams of them, pcapip
counts them as not decoded, and tshark keys a routed packet by its final destination).
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from engine_ref import capture_files
from flowpaths import analysis
from tools import require_tool

REPO = Path(__file__).resolve().parent.parent
HAND_BUILT = ("eth-", "loop-", "null-", "raw", "sll", "multi-section", "all-links", "tunnel-")
CAPTURES = [p for p in capture_files() if not p.name.startswith(HAND_BUILT)]


def tshark_streams(path: Path) -> list[tuple[int, int]]:
    """(first frame, packets) of each TCP stream tshark finds, sorted."""
    out = subprocess.run(
        ["tshark", "-r", str(path), "-Y", "tcp", "-T", "fields", "-E", "separator=,",
         "-e", "tcp.stream", "-e", "frame.number"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    frames: dict[str, list[int]] = defaultdict(list)
    for line in out.splitlines():
        stream, number = line.split(",")[:2]
        frames[stream].append(int(number))
    return sorted((min(v), len(v)) for v in frames.values())


def pcapip_streams(path: Path, way: str) -> list[tuple[int, int]]:
    """(first frame, packets) of each TCP flow pcapip reports, sorted."""
    table = analysis([path], way).table
    n = len(table)
    first = table.rows.cols.slice("first_frame", 0, n).tolist()
    c = table.columns
    return sorted(
        (f, k) for f, k, t in zip(first, c["packets"], c["transport"], strict=True) if t == "tcp"
    )


def test_the_set_covers_port_reuse_attempts_and_real_stacks() -> None:
    names = {p.name for p in CAPTURES}
    assert {"flow-proxy-misc.pcap", "flow-attempts.pcap", "flow-capture-end.pcap",
            "troubleshooting.pcap", "haproxy-health-checks.pcap"} <= names
    assert len(CAPTURES) >= 30


@pytest.mark.parametrize("way", ["normal", "rules", "pure"])
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_each_tcp_flow_is_one_of_tsharks_streams(path: Path, way: str) -> None:
    require_tool("tshark")
    assert pcapip_streams(path, way) == tshark_streams(path)


@pytest.mark.system
def test_the_benchmarks_connections_are_tsharks_streams(tmp_path: Path) -> None:
    """20,000 packets of the benchmark's traffic (~440 connections, interleaved, PROXY v1/v2
    and TOA): the same streams, in every way."""
    require_tool("tshark")
    path = tmp_path / "b20k.pcap"
    subprocess.run([sys.executable, str(REPO / "bench" / "gen_capture.py"), "--packets", "20000",
                    str(path)], check=True, capture_output=True)
    want = tshark_streams(path)
    assert len(want) > 400
    for way in ("normal", "rules"):
        assert pcapip_streams(path, way) == want, way
