"""End-to-end benchmark of ``pcapip analyze --format csv`` against tshark.

    .venv/bin/python bench/bench_analyze.py                   # 1M packets, 5 runs, tshark once
    .venv/bin/python bench/bench_analyze.py --packets 5000000 --tshark-runs 0
    .venv/bin/python bench/bench_analyze.py --capture FILE --runs 3
    .venv/bin/python bench/bench_analyze.py --flood 2000000 --runs 3   # a SYN flood (gen_flood.py)

The capture is the engine benchmark's (bench/gen_capture.py, generated once
into bench/out/): ~50 packets per connection (1M packets = ~20k
connections), handshakes with options, a third with TOA options, 10% PROXY
v1 and 10% PROXY v2 requests, bulk data, FIN exchange. Each run is one
process, as an operator runs it, pinned to one CPU, CSV to /dev/null;
reported: the median wall time and CPU time (user + system), packets per
second for both, and the child's own peak RSS (``wait4``). In the same run
tshark extracts ip/tcp/proxy fields from the same file
(``tshark -r FILE -T fields -e ip.src -e tcp.srcport -e tcp.options -e
proxy.src.ipv4``), and ``bench/read_decode.py`` shows what reading and
decoding alone cost (the floor under analyze).

Children run with bytecode caching on (PYTHONDONTWRITEBYTECODE removed from
their environment): an installed package has its ``.pyc`` files, and
compiling pcapip's sources on every run would add ~60 ms that no user pays.
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_engine import capture_for, warm  # noqa: E402


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def timed(argv: list[str], cpu: int | None) -> dict[str, float]:
    """One run: wall, user, system seconds and peak RSS (MiB) of the child alone."""

    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=pin,
        env=_env(),
        cwd=REPO,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):  # 1: findings at --fail-on level (not used here)
        raise RuntimeError(f"{argv[0]} exited {code}: {err.strip()[-500:]}")
    return {
        "wall": wall,
        "user": usage.ru_utime,
        "sys": usage.ru_stime,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024.0,
    }


def flood_for(out_dir: Path, syns: int) -> Path:
    """The SYN-flood capture with ``syns`` SYNs (100k SYN/s), generated unless already there."""
    import gen_flood

    path = out_dir / f"flood-{syns}.pcap"
    if not path.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        gen_flood.write(tmp, syns)
        tmp.rename(path)
    return path


def analyze_cmd(path: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pcapip",
        "analyze",
        str(path),
        "--format",
        "csv",
        "--no-progress",
    ]


def engine_cmd(path: Path) -> list[str]:
    return [sys.executable, str(HERE / "read_decode.py"), str(path)]


def tshark_cmd(path: Path) -> list[str]:
    argv = ["tshark", "-r", str(path), "-T", "fields"]
    for f in ("ip.src", "tcp.srcport", "tcp.options", "proxy.src.ipv4"):
        argv += ["-e", f]
    return argv


def summary(name: str, runs: list[dict[str, float]], packets: int) -> dict:
    med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "user", "sys", "cpu")}
    return {
        "name": name,
        "runs": len(runs),
        **med,
        "pkts_per_s_wall": packets / med["wall"],
        "pkts_per_s_cpu": packets / med["cpu"],
        "peak_rss_mb": max(r["rss_mb"] for r in runs),
        "walls": [round(r["wall"], 3) for r in runs],
    }


def rate(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.0f}k"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--packets", type=int, default=1_000_000, help="generated capture size")
    ap.add_argument("--capture", type=Path, help="use this capture instead of a generated one")
    ap.add_argument(
        "--flood", type=int, help="use a SYN flood of this many SYNs (bench/gen_flood.py)"
    )
    ap.add_argument("--runs", type=int, default=5, help="runs of pcapip (median reported)")
    ap.add_argument("--tshark-runs", type=int, default=1, help="runs of tshark (0: skip)")
    ap.add_argument("--no-engine", action="store_true", help="skip the read+decode baseline")
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU (default: the last)")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="then N rounds of (--runs analyze runs, one tshark run), each giving its own "
        "ratio: on a shared machine the neighbours' load changes within minutes",
    )
    args = ap.parse_args()

    path = args.capture or (
        flood_for(args.out, args.flood) if args.flood else capture_for(args.out, args.packets)
    )
    from pcapip.sources import open_capture

    with open_capture(path) as src:
        packets = sum(len(b) for b in src)
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    warm(path)
    timed(analyze_cmd(path), cpu)  # untimed: writes .pyc files, fills the numba cache
    rows = [
        summary(
            "pcapip analyze", [timed(analyze_cmd(path), cpu) for _ in range(args.runs)], packets
        )
    ]
    if not args.no_engine:
        rows.append(
            summary(
                "read+decode", [timed(engine_cmd(path), cpu) for _ in range(args.runs)], packets
            )
        )
    if args.tshark_runs and shutil.which("tshark"):
        rows.append(
            summary(
                "tshark", [timed(tshark_cmd(path), cpu) for _ in range(args.tshark_runs)], packets
            )
        )
    load = os.getloadavg()
    print(
        f"{path} ({path.stat().st_size / 1e6:.0f} MB, {packets:,} packets), CPU {cpu}, load {load[0]:.2f}"
    )
    print(
        f"{'':<16}{'runs':>5}{'wall s':>8}{'cpu s':>8}{'pkt/s wall':>12}{'pkt/s cpu':>11}{'peak RSS':>10}"
    )
    for r in rows:
        print(
            f"{r['name']:<16}{r['runs']:>5}{r['wall']:>8.3f}{r['cpu']:>8.3f}"
            f"{rate(r['pkts_per_s_wall']):>12}{rate(r['pkts_per_s_cpu']):>11}"
            f"{r['peak_rss_mb']:>8.0f}MB   {r['walls']}"
        )
    by = {r["name"]: r for r in rows}
    if "tshark" in by:
        a, t = by["pcapip analyze"], by["tshark"]
        print(
            f"pcapip analyze / tshark: {t['wall'] / a['wall']:.1f}x (wall), "
            f"{t['cpu'] / a['cpu']:.1f}x (CPU)"
        )
    rounds = []
    for k in range(args.rounds if shutil.which("tshark") else 0):
        a = summary(
            "pcapip analyze", [timed(analyze_cmd(path), cpu) for _ in range(args.runs)], packets
        )
        t = summary("tshark", [timed(tshark_cmd(path), cpu)], packets)
        rounds.append({"analyze": a["wall"], "tshark": t["wall"], "ratio": t["wall"] / a["wall"]})
        print(
            f"round {k + 1}: analyze {a['wall']:.3f} s (median of {args.runs}), tshark "
            f"{t['wall']:.2f} s: {t['wall'] / a['wall']:.1f}x, load {os.getloadavg()[0]:.2f}"
        )
    if rounds:
        ratios = sorted(r["ratio"] for r in rounds)
        print(
            f"pcapip analyze / tshark over {len(rounds)} rounds: median "
            f"{statistics.median(ratios):.1f}x, range {ratios[0]:.1f}x-{ratios[-1]:.1f}x"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "capture": str(path),
                    "packets": packets,
                    "cpu": cpu,
                    "load": load,
                    "rows": rows,
                    "rounds": rounds,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
