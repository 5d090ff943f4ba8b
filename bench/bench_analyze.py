"""End-to-end benchmark of ``pcapip analyze --format csv`` against tshark.

    .venv/bin/python bench/bench_analyze.py [CAPTURE] [--tshark-packets N] [--runs N]

Without CAPTURE, a 1,000,000-packet capture of 50-packet proxied connections
is written with bench/make_flow_bench.py (into a temporary directory).
Measures wall time and peak RSS of the CLI (one process per run, as an
operator runs it), packets per second, and tshark's time to extract
ip/tcp/proxy fields from the first N packets of the same file (tshark is
linear in packets, so its rate on a prefix is its rate on the file).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capture: Path) -> tuple[float, float, int, int]:
    """(wall seconds, CPU seconds, peak RSS in KiB, flows) of one ``pcapip analyze --format csv``."""
    t0 = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = r0.ru_maxrss
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pcapip",
            "analyze",
            str(capture),
            "--format",
            "csv",
            "--no-progress",
        ],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    dt = time.perf_counter() - t0
    if out.returncode not in (0, 1):
        raise SystemExit(out.stderr.decode())
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return dt, cpu, max(r1.ru_maxrss, before), out.stdout.count(b"\n") - 1


def count_packets(capture: Path) -> int:
    from pcapip.sources import open_capture

    n = 0
    with open_capture(capture) as src:
        for b in src:
            n += len(b)
    return n


def tshark_rate(capture: Path, packets: int) -> float | None:
    tshark = shutil.which("tshark")
    if tshark is None:
        return None
    fields = [
        "ip.src",
        "ip.dst",
        "ipv6.src",
        "ipv6.dst",
        "tcp.srcport",
        "tcp.dstport",
        "tcp.options",
        "proxy.src.ipv4",
        "proxy.src.ipv6",
        "proxy.srcport",
    ]
    argv = [tshark, "-r", str(capture), "-c", str(packets), "-T", "fields"]
    for f in fields:
        argv += ["-e", f]
    t0 = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True)
    return packets / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture", nargs="?")
    ap.add_argument("--tshark-packets", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--per-flow", type=int, default=50, help="packets per generated connection")
    args = ap.parse_args()
    tmp = None
    if args.capture:
        capture = Path(args.capture)
    else:
        tmp = tempfile.mkdtemp(prefix="pcapip-bench-")
        capture = Path(tmp) / "flows.pcap"
        sys.path.insert(0, str(ROOT / "bench"))
        from make_flow_bench import write

        write(capture, 1_000_000, args.per_flow)
    try:
        n = count_packets(capture)
        runs = [run_cli(capture) for _ in range(args.runs)]
        best = min(r[0] for r in runs)
        cpu = min(r[1] for r in runs)
        rss = max(r[2] for r in runs)
        flows = runs[0][3]
        print(
            f"capture: {capture} ({os.path.getsize(capture) / 1e6:.0f} MB, {n} packets, {flows} flows)"
        )
        print(
            f"pcapip analyze --format csv: best of {args.runs}: {best:.2f} s = "
            f"{n / best / 1e6:.2f} M packets/s (CPU {cpu:.2f} s = {n / cpu / 1e6:.2f} M packets/s "
            f"per core), peak RSS {rss / 1024:.0f} MiB"
        )
        rate = tshark_rate(capture, min(args.tshark_packets, n))
        if rate:
            print(
                f"tshark fields: {rate / 1e3:.0f} k packets/s -> pcapip is {n / best / rate:.1f}x "
                f"faster (wall), {n / cpu / rate:.1f}x (CPU)"
            )
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
