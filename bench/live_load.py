"""Benchmark: the highest connection rate ``pcapip live`` keeps up with, vs ``tshark -i``.

    sudo python bench/live_load.py [--count 20000] [--rates 1000,2000,4000]

Builds the tests' namespace lab (client → HAProxy send-proxy/-v2 → nginx origin), then for
each rate drives ``--count`` connections from parallel clients (``tests/load_clients.py``)
while a capture runs on the origin's interface, twice: ``pcapip live --format json`` (every
connection checked against HAProxy's log), and ``tshark -i`` extracting the same fields
(``-T fields -e ip.src -e tcp.srcport -e tcp.options -e proxy.src.ipv4``). Prints per rate
the rate achieved, packets received/dropped as each capture reports them, and whether
pcapip mapped every connection. The lab's namespaces are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import peers  # noqa: E402

ROUTES = ["v1", "v2"]


def drive(topo: peers.Topology, count: int, rate: float) -> dict:
    spec = {"host": peers.addresses(4).proxy_front,
            "ports": [peers.route(r).port for r in ROUTES], "count": count, "rate": rate,
            "concurrency": 200, "request": peers.route("v1").request.decode("latin-1")}
    r = topo.run("client", [sys.executable, str(ROOT / "tests" / "load_clients.py"),
                            json.dumps(spec)], timeout=count / rate + 300)
    return json.loads(r.stdout)


def capture_during(topo: peers.Topology, argv: list[str], count: int, rate: float,
                   timeout: float) -> tuple[dict, str]:
    """Run the capture ``argv`` on the origin while ``count`` connections are driven at
    ``rate``, then stop it as Ctrl-C does: (what the clients achieved, its stderr)."""
    proc = subprocess.Popen(topo.command("origin", argv), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(3)
    got = drive(topo, count, rate)
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=timeout)
    return got, err


def run_pcapip(topo: peers.Topology, tmp: Path, count: int, rate: float, haproxy) -> str:
    flows = tmp / "flows.json"
    flows.unlink(missing_ok=True)
    before = len(haproxy.records())
    got, err = capture_during(
        topo, [sys.executable, "-m", "pcapip", "live", "-i", peers.ORIGIN_IF, "--format", "json",
               "--flows", str(flows), "-B", "64"], count, rate, 300)
    stats = re.search(r"(\d+) packets received, (\d+) dropped|reports (\d+) packets dropped.*of (\d+)", err)
    records = haproxy.records()[before:]
    rows = {(r["egress_ip"], r["egress_port"], r["client_port"])
            for r in map(json.loads, flows.read_text().splitlines())}
    missing = sum((r.egress_ip, r.egress_port, r.client_port) not in rows for r in records)
    return (f"pcapip: {got['rate']:.0f}/s achieved ({got['failed']} failed); "
            f"{stats.group(0) if stats else 'no stats'}; {missing} of {len(records)} "
            "logged connections not mapped")


def run_tshark(topo: peers.Topology, count: int, rate: float) -> str:
    got, err = capture_during(
        topo, ["tshark", "-i", peers.ORIGIN_IF, "-B", "64", "-T", "fields", "-e", "ip.src",
               "-e", "tcp.srcport", "-e", "tcp.options", "-e", "proxy.src.ipv4"], count, rate, 600)
    said = " ".join(ln.strip() for ln in err.splitlines() if "captured" in ln or "dropped" in ln)
    return f"tshark: {got['rate']:.0f}/s achieved; {said or 'no stats'}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--rates", default="1000,2000,4000")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, peers.Topology(Path(d) / "lab") as topo:
        peers.start_origins(topo, family=4)
        haproxy = peers.start_haproxy(topo, ROUTES, origin_family=4)
        for node in ("client", "proxy"):  # ports in TIME_WAIT may be reused: runs follow fast
            topo.run(node, ["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"])
            topo.run(node, ["sysctl", "-qw", "net.ipv4.ip_local_port_range=10000 65000"])
        for rate in (float(x) for x in args.rates.split(",")):
            print(f"rate {rate:.0f}/s, {args.count} connections (load {os.getloadavg()[0]:.1f})")
            print("  " + run_pcapip(topo, Path(d), args.count, rate, haproxy), flush=True)
            time.sleep(5)
            print("  " + run_tshark(topo, args.count, rate), flush=True)
            time.sleep(5)


if __name__ == "__main__":
    main()
