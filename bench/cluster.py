"""Benchmark: rotated captures on a Dask LocalCluster vs one process (issue: many captures).

    python bench/cluster.py FILE... [--workers 2] [--rounds 3]

Starts a LocalCluster (its start-up timed apart), then per round: the single-process read
of FILES (``pcapip.flows.run.read_captures``) and the cluster read
(``pcapip.flows.parts.read_recording`` through the cluster's map), both ending in the
CSV bytes, which must be equal. The cluster read is split into its phases: the first pass
(a task per part of consecutive files), the second pass (frames of the cut connections),
the merge on this machine (replay + join + table) and the CSV (written as one process
writes it). Peak RSS of each worker process is read after the run.
Medians are printed; the machine is shared, so quote them with the load.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from collections import defaultdict


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files-per-task", type=int, default=None,
                    help="consecutive files a task reads (default: pcapip's, two tasks a worker)")
    args = ap.parse_args()

    from pcapip.cluster.connect import connect
    from pcapip.cluster.run import ClusterProgress, _Mapper, files_per_part
    from pcapip.flows.parts import PartOptions, read_recording
    from pcapip.flows.run import read_captures
    from pcapip.report.export import write_csv

    files = sorted(args.files)
    size = sum(os.path.getsize(f) for f in files)
    t0 = time.perf_counter()
    with connect(None, args.workers) as client:
        client.wait_for_workers(args.workers)
        startup = time.perf_counter() - t0
        most = args.files_per_task or files_per_part(len(files), client)
        res: dict[str, list[float]] = defaultdict(list)
        for _ in range(args.rounds):
            t = time.perf_counter()
            table, _ = read_captures(files)
            buf = io.StringIO()
            write_csv(table, buf)
            res["single"].append(time.perf_counter() - t)
            single = buf.getvalue()

            spent: dict[str, float] = defaultdict(float)
            inner = _Mapper(client, ClusterProgress(len(files)), None)

            def timed(fn, a, inner=inner, spent=spent):  # type: ignore[no-untyped-def]
                s = time.perf_counter()
                out = inner(fn, a)
                spent[fn.__name__] += time.perf_counter() - s
                return out

            t = time.perf_counter()
            table, _ = read_recording(files, PartOptions(), mapper=timed, files_per_part=most)
            read = time.perf_counter() - t
            buf = io.StringIO()
            write_csv(table, buf)
            total = time.perf_counter() - t
            assert buf.getvalue() == single, "the cluster's CSV differs from one read's"
            res["cluster"].append(total)
            res["first pass"].append(spent["read_part"])
            res["second pass"].append(spent["take_frames"])
            res["merge"].append(read - spent["read_part"] - spent["take_frames"])
            res["csv"].append(total - read)
        rss = client.run(_peak_rss)
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"{len(files)} files, {size / 1e9:.2f} GB, {args.workers} workers, {most} files a task; "
          f"load {os.getloadavg()[0]:.1f}; cluster start-up {startup:.2f} s")
    for k, v in med.items():
        print(f"  {k:12s} {v:7.2f} s  (rounds: {', '.join(f'{x:.2f}' for x in res[k])})")
    print(f"  speed-up     {med['single'] / med['cluster']:.2f}x one process; merge "
          f"{100 * med['merge'] / med['cluster']:.1f}% of the cluster run")
    print(f"  throughput   {size / 1e6 / med['cluster']:.0f} MB/s on the cluster, "
          f"{size / 1e6 / med['single']:.0f} MB/s in one process; "
          f"{len(files) / med['first pass'] / args.workers:.2f} files/s per worker")
    for w, r in sorted(rss.items()):
        print(f"  worker {w}: peak RSS {r / 2**20:.0f} MiB")


def _peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    main()
