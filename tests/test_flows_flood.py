"""A SYN flood: every attempt is a row with the status tshark's view of it implies, and the
flows held open stay those of the attempt timeout's window, not of the whole flood.

The capture comes from the benchmark's generator (bench/gen_flood.py) at a small size:
6,000 SYNs from distinct source address/port pairs over 15 s of capture time, some
answered by a SYN-ACK that is never acknowledged, some by a RST, and a real proxied
connection among them.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from flowpaths import analysis, flow_path

from pcapip.decode import decode
from pcapip.flows.attempts import ATTEMPT_TIMEOUT
from pcapip.flows.run import read_captures
from pcapip.flows.tracker import FlowTracker
from pcapip.report.analysis import Analysis
from pcapip.report.notes import flood_line
from pcapip.sources import accel, open_capture

REPO = Path(__file__).resolve().parents[1]
SYNS, RATE = 6000, 400.0  # 15 s of capture time, three attempt timeouts


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


gen_flood = _load("gen_flood", REPO / "bench" / "gen_flood.py")


@pytest.fixture(scope="module")
def flood(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    path = tmp_path_factory.mktemp("flood") / "flood.pcap"
    return path, gen_flood.write(path, SYNS, RATE)


def _tshark_view(path: Path) -> dict[tuple[str, int], str]:
    """Per TCP stream (keyed by the initiator's address and port), what tshark's packets
    show: unanswered (only SYNs from the initiator), refused (the responder's only answer
    a RST), half-open (a SYN-ACK and nothing more from the initiator), else other."""
    out = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=,"]
        + sum(
            (
                ["-e", f]
                for f in (
                    "tcp.stream",
                    "ip.src",
                    "tcp.srcport",
                    "tcp.flags.syn",
                    "tcp.flags.ack",
                    "tcp.flags.reset",
                    "tcp.len",
                )
            ),
            [],
        ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    streams: dict[str, list[tuple[str, int, bool, bool, bool, int]]] = defaultdict(list)
    for line in out.splitlines():
        st, ip, port, syn, ack, rst, ln = line.split(",")
        streams[st].append(
            (
                ip,
                int(port),
                syn in ("1", "True"),
                ack in ("1", "True"),
                rst in ("1", "True"),
                int(ln),
            )
        )
    view = {}
    for pkts in streams.values():
        first = pkts[0]
        init = (first[0], first[1])
        mine = [p for p in pkts if (p[0], p[1]) == init]
        theirs = [p for p in pkts if (p[0], p[1]) != init]
        only_syns = all(p[2] and not p[3] and p[5] == 0 for p in mine)
        if not (first[2] and not first[3]):
            kind = "other"
        elif only_syns and not theirs:
            kind = "unanswered"
        elif only_syns and all(p[4] and not p[2] for p in theirs):
            kind = "refused"
        elif only_syns and all(p[2] and p[3] and p[5] == 0 for p in theirs):
            kind = "half-open"
        else:
            kind = "other"
        view[init] = kind
    return view


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
@pytest.mark.parametrize("way", ["normal", "rules"])
def test_flood_rows_and_statuses_against_tshark(flood, way: str) -> None:
    path, info = flood
    a = analysis([path], way, batch_size=512)
    view = _tshark_view(path)
    c = a.table.columns
    ours = {
        (ip, port): st
        for ip, port, st in zip(c["egress_ip"], c["egress_port"], c["status"], strict=True)
    }
    assert len(a.table) == len(view) == info["flows"]  # one row per flow, none lost
    assert sum(c["packets"]) == info["packets"]
    for key, kind in view.items():
        assert ours[key] == (kind if kind != "other" else "ok"), key
    counts = {k: sum(1 for v in view.values() if v == k) for k in ("unanswered", "refused")}
    assert a.stats["status_unanswered"] == counts["unanswered"] == info["unanswered"]
    assert a.stats["status_refused"] == counts["refused"] == info["refused"]
    assert a.stats["status_half-open"] == info["half_open"]
    # the summary: the attempts, their sources (every flood address is distinct but the bots')
    f = a.table.flood
    assert f.attempts == info["unanswered"] + info["refused"] + info["half_open"]
    assert f.targets[0] == (f"{gen_flood.ORIGIN}:{gen_flood.PORT}", f.attempts)
    bots = {f"203.0.113.{k}" for k in range(1, gen_flood.BOTS + 1)}
    assert {ip for ip, _ in f.top} <= bots
    per_bot = defaultdict(int)
    for (ip, _), st in ours.items():
        if ip in bots and st != "ok":
            per_bot[ip] += 1
    assert all(per_bot[ip] == n for ip, n in f.top)
    line = flood_line(f)
    assert line is not None and f"{f.attempts} connection attempts" in line


@pytest.mark.parametrize("way", ["compiled", "pure", "rules"])
def test_open_flows_stay_within_the_attempt_window(flood, way: str) -> None:
    """Fed 256 packets at a time, the tracker never holds more attempts than arrive in one
    attempt timeout (plus a batch); without the timeout it would hold the whole flood."""
    path, info = flood

    def peak(**kw) -> tuple[int, int]:
        with flow_path(way):
            t = FlowTracker(**kw)
            most = 0
            with open_capture(path, batch_size=256) as src:
                for batch in src:
                    t.feed(decode(batch))
                    most = max(most, t.open_flows)
            return most, len(t.finish())

    most, rows = peak()
    window = RATE * ATTEMPT_TIMEOUT
    assert window * 0.95 <= most <= window + 256 + 50
    assert rows == info["flows"]
    most, rows = peak(attempt_timeout=3600.0)
    assert most >= info["syns"] - 10 and rows == info["flows"]


def test_no_flood_line_for_ordinary_captures() -> None:
    """A capture with a few lone SYNs says nothing about floods (it may have attempts)."""
    for name in ("troubleshooting.pcap", "eth-mixed-us-le.pcap", "flow-capture-end.pcap"):
        a = Analysis(*read_captures([REPO / "tests" / "pcaps" / name]))
        f = a.table.flood
        assert f.attempts == sum(a.stats.get(f"status_{s}", 0) for s in f.by_status)
        assert flood_line(f) is None


def _one_bucket(v, name):
    """Distinct values of sorted ``v`` and the TOP_SOURCES most frequent, counted as one
    bucket (the summary's counting without the hash buckets)."""
    from pcapip.flows import attempts

    return attempts._merged([attempts._tally(*attempts._runs(v))], name)


def test_distinct_and_top_sources_against_a_counter() -> None:
    """The summary's source counting (only repeats counted) against collections.Counter."""
    import random
    from collections import Counter

    import numpy as np

    from pcapip.flows.attempts import TOP_SOURCES

    rng = random.Random(7)
    for repeated in (0, 2, 9):
        values = [rng.randrange(1 << 30) for _ in range(500)]
        for k in range(repeated):
            values += [k + 1] * (k + 2)
        v = np.sort(np.array(values, dtype=np.int64))
        distinct, top = _one_bucket(v, lambda keys: [str(int(x)) for x in keys])
        counts = Counter(values)
        assert distinct == len(counts)
        assert len(top) == TOP_SOURCES
        assert all(counts[int(k)] == n for k, n in top)
        best = sorted(counts.values(), reverse=True)[:TOP_SOURCES]
        assert [n for _, n in top] == best


def test_sources_dealt_into_buckets_count_as_one() -> None:
    """The summary's sources dealt into hash buckets (temporary files, read back in
    chunks) give the distinct count and top sources of one sorted array, and Counter's."""
    import random
    from collections import Counter

    import numpy as np

    from pcapip.flows import attempts

    rng = random.Random(11)
    values = [rng.randrange(1 << 32) for _ in range(3000)] + [-7, -7, -3]
    values += [5] * 9 + [6] * 9 + [1 << 31] * 4 + [rng.randrange(50) for _ in range(400)]
    rng.shuffle(values)
    name = lambda keys: [str(int(x)) for x in keys]  # noqa: E731
    alone = np.array(rng.sample(range(10, 1 << 20), 2000) + [3, 3], dtype=np.int64)  # one repeat
    for k in (2, 5):  # then the values seen once fill the top, smallest first
        b = attempts._Buckets(k)
        b.add(alone)
        got = attempts._merged([attempts._tally(*kc) for kc in b.counted()], name)
        b.close()
        assert got == _one_bucket(np.sort(alone), name)
        assert got[0] == 2001 and got[1][0] == ("3", 2) and len(got[1]) == attempts.TOP_SOURCES
    v = np.array(values, dtype=np.int64)
    one = _one_bucket(np.sort(v), name)
    for k in (1, 2, 5):
        b = attempts._Buckets(k)
        try:
            for lo in range(0, v.size, 700):
                b.add(v[lo : lo + 700])
            got = attempts._merged([attempts._tally(*kc) for kc in b.counted()], name)
        finally:
            b.close()
        assert got == one, k
    counts = Counter(values)
    assert one[0] == len(counts)
    best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: attempts.TOP_SOURCES]
    assert one[1] == [(str(k), n) for k, n in best]


def test_tracker_fed_again_after_its_table_was_released(flood) -> None:
    """After the last flow ends the table's memory is given back (madvise): a tracker fed
    again afterwards (a live capture's next round) gives the same rows."""
    path, info = flood
    with flow_path("compiled"):
        t = FlowTracker()
    assert t.compiled or accel.pure_forced()

    def once() -> list:
        with open_capture(path, batch_size=4096) as src:
            for batch in src:
                t.feed(decode(batch))
        return t.finish()

    first = [(r.egress_ip, r.egress_port, r.status, r.packets) for r in once()]
    assert t.open_flows == 0 and not t._tcp.S.any()  # every page reads as zero again
    second = [(r.egress_ip, r.egress_port, r.status, r.packets) for r in once()]
    assert len(first) == info["flows"]
    assert sorted(second) == sorted(first)


def test_a_full_temporary_directory_is_said_and_loses_nothing(tmp_path: Path) -> None:
    """``pcapip analyze`` with TMPDIR on a real filesystem that fills up (a 64 KiB tmpfs the
    test mounts) while rows of ended flows move there: the same rows as with room, exit
    status 0, and a warning naming the directory and the error. (Before, the rows fell
    back to memory without a word, and a flood of over a million attempts ended with
    "standard output: No space left on device", exit status 2 and no rows.)"""
    import os

    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    path = tmp_path / "flood.pcap"
    gen_flood.write(path, 60_000, 4000.0)
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tiny)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    cmd = [sys.executable, "-m", "pcapip", "analyze", "--format", "csv", str(path)]
    try:
        roomy = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        env = {**os.environ, "TMPDIR": str(tiny)}
        full = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    finally:
        subprocess.run(["umount", str(tiny)], check=True)
    assert roomy.returncode == 0 and full.returncode == 0, full.stderr
    assert roomy.stdout.count("\n") == 60_006 + 1
    assert full.stdout == roomy.stdout
    said = f"pcapip: warning: {tiny}: pcapip's temporary files could not be written here"
    assert said + " (No space left on device)" in full.stderr
    assert "temporary files" not in roomy.stderr
