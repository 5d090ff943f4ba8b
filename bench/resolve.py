"""Benchmark of ``pcapip resolve``: an origin's log of N records against the 1M-packet capture.

    .venv/bin/python bench/resolve.py                                   # 100k, 300k, 1M records, 3 runs
    .venv/bin/python bench/resolve.py --records 1000000 --runs 5 --capture FILE
    .venv/bin/python bench/resolve.py --baseline DIR                    # DIR/pcapip timed too, outputs compared
    .venv/bin/python bench/resolve.py --kind jsonl                      # a JSON Lines log instead

The capture is the engine benchmark's (bench/gen_capture.py, generated once into
``--out``): ~20,000 connections over 11 seconds. The log is written from the capture's
own connections (``pcapip.analyze``): each record picks a TCP connection at random and a
time inside its lifetime (the request's end), with a request duration that reaches back no
further than the connection's start, so every record has exactly one true connection.
nginx records carry ``$remote_addr $remote_port [$time_local] $msec "$request" $status
$body_bytes_sent $request_time "$http_user_agent"`` (``$time_local`` in +0100, ``$msec``
to the millisecond); 1% of them log ``-`` for the port (matched by address only). JSON
Lines records carry ``ip``, ``port``, ``time`` (ISO 8601 with ``Z``, milliseconds),
``request_time`` and ``status``.

Each run is ``pcapip resolve CAPTURE --log LOG --format csv -o /dev/null`` as one process,
pinned to one CPU, timed by ``wait4`` (wall, CPU = user + system, the child's own peak
RSS, as ``/usr/bin/time -v`` reports it); medians of ``--runs``. One more run per size
writes the CSV, checked against the truth the log was written from (every record's
``flow`` is its connection's); with ``--baseline DIR`` the same command runs with
``PYTHONPATH=DIR`` too (an older checkout), alternating run by run, and the two CSVs must
be byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_analyze import timed  # noqa: E402
from bench_engine import capture_for, warm  # noqa: E402

NGINX_FORMAT = (
    '$remote_addr $remote_port [$time_local] $msec "$request" $status $body_bytes_sent '
    '$request_time "$http_user_agent"'
)
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_REQUESTS = ["GET / HTTP/1.1", "GET /api/v1/items?page=2 HTTP/1.1", "POST /login HTTP/1.1",
             "GET /static/app.js HTTP/1.1", "GET /health HTTP/1.0"]
_AGENTS = ["curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
           "python-requests/2.31"]
_STATUS = ["200", "200", "200", "304", "404", "502"]


def connections(capture: Path) -> dict[str, np.ndarray]:
    """The capture's TCP connections: egress address and port, first and last packet (ns)."""
    import pcapip

    f = pcapip.analyze(str(capture)).flows
    f = f[(f["transport"] == "tcp").to_numpy(dtype=bool)]
    ns = lambda c: c.dt.tz_convert("UTC").dt.as_unit("ns").astype("int64").to_numpy()  # noqa: E731
    return {
        "ip": f["egress_ip"].astype(str).to_numpy(),
        "port": f["egress_port"].astype("int64").to_numpy(),
        "start": ns(f["start"]),
        "end": ns(f["end"]),
        "flow": f["flow"].astype("int64").to_numpy(),
    }


def records(conns: dict[str, np.ndarray], n: int, seed: int = 7) -> dict[str, np.ndarray]:
    """``n`` records, each from a random connection: its end time (ms), duration (ms) and
    whether it logs its port."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(conns["flow"]), n)
    start, end = conns["start"][pick], conns["end"][pick]
    # the request's end, to the millisecond, inside the connection's lifetime
    t_ms = (start + 999_999) // 1_000_000 + (rng.random(n) * np.maximum(
        end // 1_000_000 - (start + 999_999) // 1_000_000, 0)).astype(np.int64)
    t_ms = np.maximum(t_ms, start // 1_000_000)
    dur_ms = (rng.random(n) * np.maximum(t_ms - (start + 999_999) // 1_000_000, 0)).astype(np.int64)
    return {"pick": pick, "t_ms": t_ms, "dur_ms": dur_ms, "port_logged": rng.random(n) >= 0.01,
            "request": rng.integers(0, len(_REQUESTS), n), "status": rng.integers(0, len(_STATUS), n),
            "bytes": rng.integers(0, 200_000, n), "agent": rng.integers(0, len(_AGENTS), n)}


def _time_local(sec: int) -> str:
    t = time.gmtime(sec + 3600)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0100"


def write_log(path: Path, conns: dict[str, np.ndarray], rec: dict[str, np.ndarray], kind: str) -> None:
    """The log file, one record a line, in time order (as a server writes it)."""
    order = np.argsort(rec["t_ms"], kind="stable")
    ips, ports = conns["ip"][rec["pick"]], conns["port"][rec["pick"]]
    local = {s: _time_local(s) for s in np.unique(rec["t_ms"] // 1000).tolist()}
    with open(path, "w", buffering=1 << 20) as out:
        for i in order.tolist():
            ms = int(rec["t_ms"][i])
            port = str(ports[i]) if rec["port_logged"][i] else "-"
            dur = f"{rec['dur_ms'][i] / 1000:.3f}"
            status = _STATUS[rec["status"][i]]
            if kind == "nginx":
                out.write(
                    f'{ips[i]} {port} [{local[ms // 1000]}] {ms // 1000}.{ms % 1000:03d} '
                    f'"{_REQUESTS[rec["request"][i]]}" {status} {rec["bytes"][i]} {dur} '
                    f'"{_AGENTS[rec["agent"][i]]}"\n'
                )
            else:
                t = time.gmtime(ms // 1000)
                iso = (f"{t.tm_year}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:"
                       f"{t.tm_sec:02d}.{ms % 1000:03d}Z")
                p = ports[i] if rec["port_logged"][i] else "null"
                out.write(f'{{"time":"{iso}","ip":"{ips[i]}","port":{p},"request_time":{dur},'
                          f'"status":{status}}}\n')
    np.save(path.with_suffix(".truth.npy"), conns["flow"][rec["pick"]][order])


def resolve_cmd(capture: Path, log: Path, kind: str, out: str) -> list[str]:
    argv = [sys.executable, "-m", "pcapip", "resolve", str(capture), "--log", str(log),
            "--format", "csv", "-o", out, "--force"]
    if kind == "nginx":
        argv += ["--nginx-format", NGINX_FORMAT]
    else:
        argv += ["--jsonl", "--duration-field", "request_time"]
    return argv


def with_tree(argv: list[str], tree: Path | None) -> list[str]:
    """``argv`` run in ``tree`` (``python -m`` imports the working directory's pcapip
    first), with it on PYTHONPATH; None: this checkout."""
    tree = REPO if tree is None else tree.resolve()
    return ["env", "-C", str(tree), f"PYTHONPATH={tree}", *argv]


def check(csv_path: Path, truth: np.ndarray) -> str:
    """Every record whose port is logged names its true connection (``exact``); a summary."""
    import pandas as pd

    df = pd.read_csv(csv_path, usecols=["flow", "match"], dtype={"flow": "Int64", "match": str})
    if len(df) != len(truth):
        raise SystemExit(f"{csv_path}: {len(df)} records, the log has {len(truth)}")
    exact = (df["match"] == "exact").to_numpy()
    wrong = int((df["flow"][exact].to_numpy(dtype=np.int64) != truth[exact]).sum())
    by_addr = (df["match"] == "by-address").to_numpy()
    wrong += int((df["flow"][by_addr].to_numpy(dtype=np.int64) != truth[by_addr]).sum())
    if wrong:
        raise SystemExit(f"{csv_path}: {wrong} records matched to another connection")
    counts = df["match"].value_counts().to_dict()
    return ", ".join(f"{counts.get(m, 0):,} {m}" for m in ("exact", "by-address", "ambiguous", "none"))


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def bench_size(args: argparse.Namespace, capture: Path, conns: dict, n: int, cpu: int) -> list[dict]:
    log = args.out / f"resolve-{args.kind}-{n}.log"
    if not log.exists() or not log.with_suffix(".truth.npy").exists():
        t0 = time.perf_counter()
        write_log(log, conns, records(conns, n), args.kind)
        print(f"wrote {log} ({log.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")
    truth = np.load(log.with_suffix(".truth.npy"))
    warm(log)
    trees = {"pcapip": None} | ({"baseline": args.baseline} if args.baseline else {})
    outputs = {}
    for name, tree in trees.items():  # untimed: .pyc files written; the output kept
        csv_path = args.out / f"resolve-{args.kind}-{n}.{name}.csv"
        timed(with_tree(resolve_cmd(capture, log, args.kind, str(csv_path)), tree), cpu)
        outputs[name] = csv_path
    print(f"{n:,} records: {check(outputs['pcapip'], truth)}; sha256 {digest(outputs['pcapip'])[:16]}")
    if args.baseline:
        same = outputs["pcapip"].read_bytes() == outputs["baseline"].read_bytes()
        print(f"  baseline output {'byte-identical' if same else 'DIFFERS'}")
        if not same:
            raise SystemExit("the outputs differ")
    runs: dict[str, list] = {name: [] for name in trees}
    for _ in range(args.runs):
        for name, tree in trees.items():  # alternating: the neighbours' load hits both alike
            runs[name].append(timed(with_tree(resolve_cmd(capture, log, args.kind, "/dev/null"), tree), cpu))
    rows = []
    for name, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu")}
        rows.append({"name": name, "records": n, **med, "rss_mb": statistics.median(r["rss_mb"] for r in rs),
                     "walls": [round(r["wall"], 2) for r in rs]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--kind", choices=("nginx", "jsonl"), default="nginx")
    ap.add_argument("--packets", type=int, default=1_000_000, help="generated capture size")
    ap.add_argument("--capture", type=Path, help="use this capture instead of a generated one")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per size (median reported)")
    ap.add_argument("--baseline", type=Path, help="a checkout whose pcapip is timed too")
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU (default: the last)")
    ap.add_argument("--out", type=Path, default=HERE / "out", help="where logs and outputs go")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.out = args.out.resolve()
    capture = (args.capture or capture_for(args.out, args.packets)).resolve()
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    conns = connections(capture)
    warm(capture)
    rows = [r for n in args.records for r in bench_size(args, capture, conns, n, cpu)]
    load = os.getloadavg()
    print(f"{capture} ({len(conns['flow']):,} TCP connections), {args.kind} log, CPU {cpu}, "
          f"load {load[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'':<10}{'records':>10}{'wall s':>8}{'cpu s':>8}{'rec/s wall':>12}{'rec/s cpu':>11}{'peak RSS':>10}")
    for r in rows:
        print(f"{r['name']:<10}{r['records']:>10,}{r['wall']:>8.2f}{r['cpu']:>8.2f}"
              f"{r['records'] / r['wall'] / 1e3:>11.0f}k{r['records'] / r['cpu'] / 1e3:>10.0f}k"
              f"{r['rss_mb']:>8.0f}MB   {r['walls']}")


if __name__ == "__main__":
    main()
