"""``pcapip live --metrics``: a real Prometheus server scrapes it in the HAProxy/nginx lab.

HAProxy sends PROXY v1/v2 (and nothing) to nginx origins, two of which do not expect the
header and answer 400. pcapip live captures on the origin's interface and serves metrics;
Prometheus (the Debian package) scrapes them every second inside the origin's namespace.
Its HTTP API must then say what HAProxy logged (connections by method) and what nginx
answered (``origin.rejected``: the 400s to a PROXY header).
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import peers
import pytest
from live_run import LiveRun

from pcapip.errors import UsageError
from pcapip.live.metrics import METRICS, Metrics, parse_address

ROUTES = ["v1", "v2", "noheader", "rejected", "rejected-v2"]
METHOD = {"v1": "ppv1", "v2": "ppv2", "none": "none"}
PER_ROUTE = 4
METRICS_PORT = 19877
PROM_PORT = 19090


def test_metric_names_and_text() -> None:
    """The names operators' dashboards use, in the exposition format, with no per-address
    label unless asked."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    m = Metrics("127.0.0.1:9877")
    names = {f.name for f in text_string_to_metric_families(generate_latest(m.registry).decode())}
    want = {n for n in METRICS if n != "pcapip_egress_flows"}
    assert names == want
    for name, (_, _, labels) in METRICS.items():
        assert not {"client_ip", "egress_ip"} & set(labels) or name == "pcapip_egress_flows"


def test_egress_series_are_capped() -> None:
    from prometheus_client import generate_latest

    class Row:
        transport, method, status, hs_done, hs_toa, toa_in_syn = "tcp", "ppv2", "ok", 1, 0, 0

        def __init__(self, ip: str) -> None:
            self.egress_ip = ip

    m = Metrics("127.0.0.1:9877", egress_series=2)
    m.flows([Row(f"10.0.0.{k % 5}") for k in range(20)])
    text = generate_latest(m.registry).decode()
    lines = [ln for ln in text.splitlines() if ln.startswith("pcapip_egress_flows_total{")]
    assert len(lines) == 3, lines  # two addresses and "other"
    assert 'egress_ip="other"} 12.0' in text
    assert 'pcapip_flows_total{method="ppv2",status="ok",transport="tcp"} 20.0' in text


@pytest.mark.parametrize("bad", ["9877", "host:", "h:0", "h:70000", "h:x"])
def test_bad_addresses(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_address(bad)


def _query(topo: peers.Topology, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{PROM_PORT}/api/v1/query?query={urllib.parse.quote(expr)}"
    r = topo.run("origin", ["curl", "-s", "--max-time", "5", url])
    if r.returncode != 0 or not r.stdout:
        return []
    body = json.loads(r.stdout)
    return body["data"]["result"] if body.get("status") == "success" else []


@pytest.mark.system
@pytest.mark.slow
def _query_value_lines(summary: Path, code: str) -> int:
    """Flows of the final summary (JSON lines) with finding ``code``."""
    rows = [json.loads(line) for line in summary.read_text().splitlines()]
    return sum(code in (r["findings"] or "").split(";") for r in rows)


def test_prometheus_scrapes_what_haproxy_logged_and_nginx_answered(tmp_path: Path) -> None:
    peers.require_peers("dumpcap", "curl")
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus (Debian package prometheus) is missing")
    with peers.Topology(tmp_path / "lab") as topo:
        origins = peers.start_origins(topo, family=4)
        haproxy = peers.start_haproxy(topo, ROUTES, origin_family=4)
        conf = tmp_path / "prometheus.yml"
        conf.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: pcapip\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{METRICS_PORT}']}}]\n"
        )
        topo.spawn("origin", ["prometheus", f"--config.file={conf}",
                              f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                              f"--web.listen-address=127.0.0.1:{PROM_PORT}"],
                   log=tmp_path / "prometheus.log")
        # --rules with the noheader frontend (8004 -> 9080) left out: the rules forwarding to
        # 9080 say ppv1/ppv2, so its connections (no header) are flagged rule.mismatch
        rules = tmp_path / "edge.rules"
        rules.write_text("tcp:8001 10.77.2.2 9001 off ppv1\ntcp:8002 10.77.2.2 9001 off ppv2\n"
                         "tcp:8005 og:r 9080 off ppv1\ntcp:8006 og:r 9080 off ppv2\n")
        args = ["-i", peers.ORIGIN_IF, "--duration", "25", "--format", "json",
                "--metrics", f"127.0.0.1:{METRICS_PORT}", "-o", str(tmp_path / "summary.json"),
                "--rules", str(rules)]
        with LiveRun(args, prefix=topo.command("origin", [])) as run:
            run.wait_ready()
            clients = []
            for name in ROUTES:
                clients += peers.drive_clients(topo, name, PER_ROUTE)
            time.sleep(2.5)  # closed connections linger 2 s of capture time, then end
            clients += peers.drive_clients(topo, "noheader", 1)
            records = haproxy.wait_records(len(clients))
            assert len(records) == len(clients)
            want_methods = Counter(METHOD[peers.route(r.route).header.value.split("-")[0]]
                                   for r in records)
            rejected = sum(1 for r in origins.records() if r.status == 400)
            assert rejected == 2 * PER_ROUTE
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                got = {x["metric"].get("method"): int(float(x["value"][1])) for x in _query(
                    topo, "sum by (method) (pcapip_flows_total)")}
                rej = _query(topo, 'sum(pcapip_findings_total{code="origin.rejected"})')
                n_rej = int(float(rej[0]["value"][1])) if rej else 0
                un = _query(topo, 'sum(pcapip_findings_total{code="rule.mismatch"})')
                n_un = int(float(un[0]["value"][1])) if un else 0
                if got == dict(want_methods) and n_rej == rejected and n_un == want_methods["none"]:
                    break
                time.sleep(0.5)
            # (asked while pcapip serves: once its target is gone, Prometheus marks the
            # series stale and an instant query returns nothing)
            sev = _query(topo, 'pcapip_findings_total{code="origin.rejected"}')
            up = _query(topo, 'up{job="pcapip"}')
            packets = _query(topo, "pcapip_packets_total")
            run.interrupt()
            assert run.wait(timeout=30) == 0, run.stderr
        assert got == dict(want_methods), (got, want_methods, run.stderr)
        assert n_rej == rejected
        # every connection of the frontend no rule describes, and no other, is flagged
        assert n_un == want_methods["none"] == PER_ROUTE + 1, run.stderr
        assert _query_value_lines(tmp_path / "summary.json", "rule.mismatch") == n_un
        assert _query_value_lines(tmp_path / "summary.json", "rule.unmatched") == 0
        assert sev and sev[0]["metric"]["severity"] == "error"
        assert up and up[0]["value"][1] == "1"
        assert packets and float(packets[0]["value"][1]) > 0
        assert "metrics at http://127.0.0.1:19877/metrics" in run.stderr
