"""Benchmark pcapip's capture reading + decoding against tshark and tcpdump.

For each requested size it generates (once, cached in ``--out``) an
Ethernet/IPv4/TCP capture (see gen_capture.py), warms the page cache, then
times in the same run, each as a child process pinned to one CPU:

* ``pcapip``  - bench/read_decode.py: open_capture + decode of every batch
* ``tshark``  - ``tshark -r FILE -T fields -e ip.src -e tcp.srcport -e tcp.options``
* ``tcpdump`` - ``tcpdump -r FILE -w /dev/null 'tcp[tcpflags] & tcp-syn != 0'`` (the C floor)

and prints packets/s and peak RSS (the child's own ``ru_maxrss`` from
``wait4``) of each, medians over ``--runs`` runs, and the ratios.

Extend by adding entries to COMMANDS (name -> function(capture path) ->
argv); ``time_command`` works for any command.

    .venv/bin/python bench/bench_engine.py                 # 1M and 5M packets, 3 runs
    .venv/bin/python bench/bench_engine.py --quick         # 100k packets, 1 run
    .venv/bin/python bench/bench_engine.py --packets 2000000 --runs 5 --tools pcapip,tcpdump
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from gen_capture import generate  # noqa: E402

GENERATOR_VERSION = 1


@dataclass
class Timing:
    """One timed run of one command."""

    name: str
    wall_s: float
    peak_rss_mb: float
    packets: int
    returncode: int
    stdout: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def pkts_per_s(self) -> float:
        return self.packets / self.wall_s if self.wall_s > 0 else 0.0


def time_command(
    argv: list[str],
    *,
    packets: int,
    name: str = "",
    cpu: int | None = None,
    env: dict[str, str] | None = None,
    capture_stdout: bool = False,
) -> Timing:
    """Run ``argv`` once; wall time and the child's own peak RSS (``wait4`` rusage).

    stdout goes to /dev/null unless ``capture_stdout`` (then it must stay
    small: it is read after the child exits). ``cpu`` pins the child to one CPU.
    """

    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    out = subprocess.PIPE if capture_stdout else subprocess.DEVNULL
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=out, stderr=subprocess.PIPE, preexec_fn=pin, env=env, cwd=REPO
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {stderr.strip()[-500:]}")
    return Timing(
        name=name or Path(argv[0]).name,
        wall_s=wall,
        peak_rss_mb=usage.ru_maxrss / 1024.0,  # Linux reports KiB
        packets=packets,
        returncode=proc.returncode,
        stdout=stdout,
    )


def pcapip_cmd(path: Path) -> list[str]:
    return [sys.executable, str(HERE / "read_decode.py"), str(path)]


def tshark_cmd(path: Path) -> list[str]:
    return [
        "tshark",
        "-r",
        str(path),
        "-T",
        "fields",
        "-e",
        "ip.src",
        "-e",
        "tcp.srcport",
        "-e",
        "tcp.options",
    ]


def tcpdump_cmd(path: Path) -> list[str]:
    # -Z root: run as root, tcpdump would otherwise chown its -w file (here /dev/null) to the
    # tcpdump user when it drops privileges.
    return [
        "tcpdump", "-Z", "root", "-r", str(path), "-w", "/dev/null", "tcp[tcpflags] & tcp-syn != 0",
    ]


COMMANDS: dict[str, Callable[[Path], list[str]]] = {
    "pcapip": pcapip_cmd,
    "tshark": tshark_cmd,
    "tcpdump": tcpdump_cmd,
}


def capture_for(out_dir: Path, packets: int) -> Path:
    """The benchmark capture with ``packets`` frames, generated unless already there."""
    path = out_dir / f"eth-tcp-{packets}.pcap"
    meta = path.with_suffix(".json")
    want = {"packets": packets, "seed": 1, "generator": GENERATOR_VERSION}
    if path.exists() and meta.exists():
        try:
            if json.loads(meta.read_text()) == want:
                return path
        except ValueError:
            pass
    t0 = time.perf_counter()
    size = generate(path, packets, seed=1)
    meta.write_text(json.dumps(want))
    print(f"generated {path} ({size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s", flush=True)
    return path


def warm(path: Path) -> None:
    """Read the file once so every tool starts from a warm page cache."""
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass


def run_tool(name: str, path: Path, packets: int, runs: int, cpu: int | None) -> list[Timing]:
    argv = COMMANDS[name](path)
    results = []
    for _ in range(runs):
        t = time_command(argv, packets=packets, name=name, cpu=cpu, capture_stdout=name == "pcapip")
        if name == "pcapip":
            info = json.loads(t.stdout.strip().splitlines()[-1])
            if info["packets"] != packets:
                raise RuntimeError(f"pcapip read {info['packets']} packets, expected {packets}")
            t.extra = info
        results.append(t)
    return results


def summarize(name: str, timings: list[Timing]) -> dict:
    wall = statistics.median(t.wall_s for t in timings)
    rss = statistics.median(t.peak_rss_mb for t in timings)
    packets = timings[0].packets
    row = {
        "tool": name,
        "runs": len(timings),
        "wall_s": wall,
        "pkts_per_s": packets / wall,
        "peak_rss_mb": rss,
        "max_rss_mb": max(t.peak_rss_mb for t in timings),
        "walls": [round(t.wall_s, 3) for t in timings],
    }
    if name == "pcapip":
        loop = statistics.median(t.extra["seconds"] for t in timings)
        row["loop_s"] = loop
        row["loop_pkts_per_s"] = packets / loop
        row["backend"] = timings[0].extra.get("backend")
    return row


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k"


def print_table(packets: int, rows: list[dict]) -> None:
    print(f"\n== {packets:,} packets ==")
    print(f"{'tool':<9} {'runs':>4} {'wall s':>8} {'pkt/s':>9} {'peak RSS MB':>12}   runs (s)")
    for r in rows:
        print(
            f"{r['tool']:<9} {r['runs']:>4} {r['wall_s']:>8.3f} {fmt_rate(r['pkts_per_s']):>9} "
            f"{r['peak_rss_mb']:>12.0f}   {r['walls']}"
        )
        if "loop_s" in r:
            print(
                f"{'':<9} read+decode loop only: {r['loop_s']:.3f} s = "
                f"{fmt_rate(r['loop_pkts_per_s'])} pkt/s (backend {','.join(r['backend'])})"
            )
    by = {r["tool"]: r for r in rows}
    if "pcapip" in by:
        for other in ("tshark", "tcpdump"):
            if other in by:
                ratio = by["pcapip"]["pkts_per_s"] / by[other]["pkts_per_s"]
                print(f"pcapip / {other}: {ratio:.2f}x packets/s (wall)")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--packets", type=int, action="append", help="capture size (repeatable); default 1M and 5M"
    )
    ap.add_argument("--quick", action="store_true", help="100k packets, one run of each tool")
    ap.add_argument(
        "--runs", type=int, default=None, help="runs per tool (median reported); default 3"
    )
    ap.add_argument(
        "--tshark-runs", type=int, default=None, help="runs of tshark (default: as --runs)"
    )
    ap.add_argument(
        "--tools",
        default="pcapip,tshark,tcpdump",
        help="comma-separated subset of " + ",".join(COMMANDS),
    )
    ap.add_argument(
        "--tshark-max-packets",
        type=int,
        default=1_000_000,
        help="skip tshark on larger captures (it needs ~30 s per million packets)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=HERE / "out",
        help="where captures are generated (not committed)",
    )
    ap.add_argument(
        "--cpu",
        type=int,
        default=None,
        help="pin children to this CPU (default: the last one; -1: no pinning)",
    )
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    sizes = args.packets or ([100_000] if args.quick else [1_000_000, 5_000_000])
    runs = args.runs or (1 if args.quick else 3)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in tools:
        if t not in COMMANDS:
            ap.error(f"unknown tool {t!r}")
        if t != "pcapip" and shutil.which(t) is None:
            ap.error(f"{t} not found on PATH")
    cpu = args.cpu
    if cpu is None:
        cpu = max(os.sched_getaffinity(0))
    elif cpu < 0:
        cpu = None

    report = {"cpu": cpu, "runs": runs, "results": {}}
    for packets in sizes:
        path = capture_for(args.out, packets)
        warm(path)
        if "pcapip" in tools:  # untimed: fills the numba cache on a first-ever run
            time_command(pcapip_cmd(path), packets=packets, cpu=cpu, capture_stdout=True)
        rows = []
        for tool in tools:
            if tool == "tshark" and packets > args.tshark_max_packets:
                print(
                    f"(tshark skipped on {packets:,} packets; raise --tshark-max-packets to include it)"
                )
                continue
            n = args.tshark_runs if tool == "tshark" and args.tshark_runs else runs
            rows.append(summarize(tool, run_tool(tool, path, packets, n, cpu)))
        print_table(packets, rows)
        report["results"][str(packets)] = {"file_mb": path.stat().st_size / 1e6, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=lambda o: asdict(o)))


if __name__ == "__main__":
    main()
