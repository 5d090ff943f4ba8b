"""How long `pcapip tui FILE` takes to show its first rows and to finish loading, against
`pcapip analyze` on the same file in the same minutes.

    .venv/bin/python bench/tui_load.py FILE [--runs 3] [--size 120x40]

Each run is a fresh child process (so imports and peak RSS are its own): the TUI child
runs the real App headless with Textual's ``run_test()`` and polls the flows table
(every 10 ms until the first rows are drawn, then every 50 ms until it is loaded, then
until the first flow's packets show in the detail pane); the
analyze child is ``python -m pcapip analyze FILE --format csv -o /dev/null``. Rounds
alternate the two; the table shows medians. Times count from the child's start
(interpreter start-up included); peak RSS is the child's ``ru_maxrss`` from ``wait4``, CPU
its user + system seconds (every thread: steadier than wall time on a shared machine).
"""

from __future__ import annotations

import time

T0 = time.monotonic()  # before the imports: the child's clock starts here

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _maxrss() -> float:
    """This process' peak RSS so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(path: str, size: tuple[int, int]) -> None:
    """Run the App headless until the capture is loaded; print the times as JSON."""
    import asyncio

    from pcapip.tui.app import PcapipApp

    out: dict[str, float | int | None] = {"import_s": time.monotonic() - T0}

    async def drive() -> None:
        app = PcapipApp(path)
        async with app.run_test(size=size):
            # plain sleeps, not Pilot.pause(): a pause walks every widget and redraws the
            # whole screen, which would take the reader's time (the GIL) as no user does
            table = app.query_one("#flows")
            first = None
            out["rss_started_mb"] = _maxrss()
            while not app.loaded:
                if first is None and table.row_count and table.visible_text()[1].strip():
                    first = time.monotonic() - T0
                    out["rss_first_mb"] = _maxrss()
                await asyncio.sleep(0.01 if first is None else 0.05)
            out["loaded_s"] = time.monotonic() - T0
            out["rss_loaded_mb"] = _maxrss()
            out["first_rows_s"] = first if first is not None else out["loaded_s"]
            out["rows"] = table.row_count
            out["reader_s"] = app.progress.seconds
            # then the first flow's packets in the detail pane (what the user sees next;
            # its memory counts too): the peak RSS is read after it
            end = time.monotonic() + 10
            while time.monotonic() < end:
                det = app.detail
                if det is not None and det.rec.get("flow") is not None and det.packets:
                    break
                await asyncio.sleep(0.05)
            out["detail_s"] = time.monotonic() - T0

    asyncio.run(drive())
    out["maxrss_mb"] = _maxrss()
    print(json.dumps(out))


def _run(argv: list[str], root: str) -> tuple[float, float, str, float]:
    """Wall seconds, peak RSS (MB), stdout and CPU seconds (user + system, every thread)
    of a child process run on the tree ``root``."""
    env = {**os.environ, "PYTHONPATH": root}
    t = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, cwd=root)
    assert proc.stdout is not None
    data = proc.stdout.read().decode()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed (status {status})")
    return wall, ru.ru_maxrss / 1024, data, ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", default="120x40", help="terminal COLSxROWS")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-analyze", action="store_true")
    ap.add_argument("--root", default=ROOT, help="the source tree to measure (default: this one)")
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    if args.child:
        child(args.path, (w, h))
        return
    py = sys.executable
    an: list[tuple[float, float, float]] = []
    tui: list[dict[str, float]] = []
    for i in range(args.runs):
        if not args.no_analyze:
            cmd = [py, "-m", "pcapip", "analyze", args.path, "--format", "csv", "-o", "/dev/null"]
            wall, rss, _, cpu = _run(cmd, args.root)
            an.append((wall, rss, cpu))
            print(
                f"round {i + 1}: analyze {wall:.2f} s (cpu {cpu:.2f} s) {rss:.0f} MB",
                file=sys.stderr,
            )
        me = os.path.abspath(__file__)
        argv = [py, me, args.path, "--child", "--size", args.size]
        wall, rss, data, cpu = _run(argv, args.root)
        rec = json.loads(data.strip().splitlines()[-1])
        rec.update(wall_s=wall, rss_mb=rss, cpu_s=cpu)
        tui.append(rec)
        print(
            f"round {i + 1}: tui first rows {rec['first_rows_s']:.2f} s, loaded "
            f"{rec['loaded_s']:.2f} s (cpu {cpu:.2f} s), {rss:.0f} MB ({rec['rows']} rows)",
            file=sys.stderr,
        )

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    res = {
        "tui_first_rows_s": med([r["first_rows_s"] for r in tui]),
        "tui_loaded_s": med([r["loaded_s"] for r in tui]),
        "tui_rss_mb": med([r["rss_mb"] for r in tui]),
        "tui_cpu_s": med([r["cpu_s"] for r in tui]),
        "rows": tui[-1]["rows"],
    }
    if an:
        res["analyze_s"] = med([a[0] for a in an])
        res["analyze_rss_mb"] = med([a[1] for a in an])
        res["analyze_cpu_s"] = med([a[2] for a in an])
        res["loaded_ratio"] = res["tui_loaded_s"] / res["analyze_s"]
        res["rss_ratio"] = res["tui_rss_mb"] / res["analyze_rss_mb"]
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
