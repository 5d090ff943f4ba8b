"""``--attempt-timeout``: how long an incomplete handshake may stay quiet before it ends.

A client whose SYN goes unanswered retransmits it with the same sequence number (Linux:
after 1, 3, 7 s...). Within the timeout the retransmissions belong to one attempt; past
it, each is an attempt of its own: the option must change exactly that, in ``pcapip
analyze``, ``pcapip.analyze`` and ``pcapip live``'s tracker alike.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest

from pcapip import analyze
from pcapip.flows.attempts import ATTEMPT_TIMEOUT

SYN_TIMES = (0.0, 4.0, 8.0)  # gaps of 4 s: one attempt at 5 s, three at 3 s


def _syns(path: Path) -> Path:
    with open(path, "wb") as fh:
        w = dpkt.pcap.Writer(fh)
        for t in SYN_TIMES:
            tcp = dpkt.tcp.TCP(sport=40000, dport=443, seq=1000, flags=dpkt.tcp.TH_SYN, off=5)
            ip = dpkt.ip.IP(src=bytes([10, 0, 0, 1]), dst=bytes([10, 0, 0, 2]), p=6, data=tcp)
            ip.len = len(ip)
            eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip)
            w.writepkt(bytes(eth), ts=1_700_000_000 + t)
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pcapip", *args], capture_output=True, text=True, timeout=120
    )


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize(("seconds", "flows"), [(None, 1), (3.0, 3), (3.9, 3), (4.1, 1)])
def test_retransmitted_syns_are_one_attempt_within_the_timeout(
    tmp_path: Path, seconds: float | None, flows: int
) -> None:
    cap = _syns(tmp_path / "syns.pcap")
    extra = [] if seconds is None else ["--attempt-timeout", str(seconds)]
    r = _run("analyze", "--format", "csv", *extra, str(cap))
    assert r.returncode == 0, r.stderr
    rows = _rows(r.stdout)
    assert len(rows) == flows
    assert {row["status"] for row in rows} == {"unanswered"}
    assert sum(int(row["packets"]) for row in rows) == len(SYN_TIMES)
    # the Python entry point takes the same value and gives the same rows
    a = analyze(cap, attempt_timeout=seconds)
    assert len(a.table) == flows


@pytest.mark.parametrize("bad", ["0", "-1", "soon", "nan", "inf", "9.3e9"])
def test_a_timeout_that_is_not_a_positive_number_is_a_usage_error(tmp_path: Path, bad: str) -> None:
    cap = _syns(tmp_path / "syns.pcap")
    for cmd in (
        ["analyze", "--attempt-timeout", bad, str(cap)],
        ["live", "-i", "lo", "--attempt-timeout", bad],
    ):
        r = _run(*cmd)
        assert r.returncode == 2, (cmd, r.stderr)
        assert "--attempt-timeout" in r.stderr and "Traceback" not in r.stderr


def test_the_help_states_the_engines_default() -> None:
    for cmd in ("analyze", "live"):
        r = _run(cmd, "--help")
        assert r.returncode == 0
        assert f"Default: {ATTEMPT_TIMEOUT:g}." in " ".join(r.stdout.split()), cmd


def test_live_tracker_takes_the_timeout() -> None:
    """``pcapip live`` builds its tracker from the same option (no capture needed to see it)."""
    from pcapip.flows.run import timeouts
    from pcapip.live.tracking import LiveTracker

    t = LiveTracker(**timeouts(2.5))
    assert t.attempt_ns == 2_500_000_000
    assert LiveTracker(**timeouts(None)).attempt_ns == int(ATTEMPT_TIMEOUT * 1e9)
