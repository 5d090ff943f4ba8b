"""``pcapip live`` under load: 10,000 connections through HAProxy (send-proxy and
send-proxy-v2, parallel clients) while it captures on the origin; every connection must be
mapped as HAProxy logged it, and dumpcap must report no packet dropped.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import peers
import pytest
from live_run import LiveRun

pytestmark = [pytest.mark.system, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
ROUTES = ["v1", "v2"]
CONNECTIONS = 10_000
RATE = 800.0  # connections per second, well under what this 2-core machine sustains


def drive(topo: peers.Topology, count: int, rate: float) -> dict:
    spec = {
        "host": peers.addresses(4).proxy_front,
        "ports": [peers.route(r).port for r in ROUTES],
        "count": count,
        "rate": rate,
        "concurrency": 100,
        "request": peers.route("v1").request.decode("latin-1"),
    }
    r = topo.run("client", [sys.executable, str(HERE / "load_clients.py"), json.dumps(spec)],
                 timeout=count / rate + 120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_ten_thousand_connections_all_mapped_none_dropped(tmp_path: Path) -> None:
    peers.require_peers("dumpcap")
    with peers.Topology(tmp_path / "lab") as topo:
        peers.start_origins(topo, family=4)
        haproxy = peers.start_haproxy(topo, ROUTES, origin_family=4)
        flows = tmp_path / "flows.json"
        args = ["-i", peers.ORIGIN_IF, "--format", "json", "--flows", str(flows),
                "-o", str(tmp_path / "summary.json"), "-B", "64"]
        with LiveRun(args, prefix=topo.command("origin", [])) as run:
            run.wait_ready()
            got = drive(topo, CONNECTIONS, RATE)
            assert got["ok"] == CONNECTIONS, got
            records = haproxy.wait_records(CONNECTIONS, timeout=60)
            time.sleep(3.0)  # the last connections' packets reach pcapip
            run.interrupt()
            assert run.wait(timeout=120) == 0, run.stderr
        assert len(records) == CONNECTIONS
        said = [ln for ln in run.stderr.splitlines() if "packets received" in ln]
        assert said and ", 0 dropped by the kernel" in said[0], run.stderr[-3000:]
        rows = [json.loads(ln) for ln in flows.read_text().splitlines()]
        # an egress port comes back within a run of 10,000: compare per egress ip:port, in
        # order (HAProxy logs a connection when it ends, pcapip numbers it when it starts)
        mapped: dict[tuple, list] = defaultdict(list)
        for r in sorted(rows, key=lambda r: r["flow"]):
            if r["transport"] == "tcp":
                mapped[(r["egress_ip"], r["egress_port"])].append(
                    (r["method"], r["client_ip"], r["client_port"]))
        logged: dict[tuple, list] = defaultdict(list)
        for rec in records:
            logged[(rec.egress_ip, rec.egress_port)].append(
                ("ppv1" if rec.route == "v1" else "ppv2", rec.client_ip, rec.client_port))
        assert len(rows) == CONNECTIONS
        wrong = [(k, v, mapped.get(k)) for k, v in logged.items()
                 if sorted(v) != sorted(mapped.get(k, []))]
        assert not wrong, (len(wrong), wrong[:3])
        print(f"load: {got['rate']:.0f} connections/s achieved, {said[0]}")
