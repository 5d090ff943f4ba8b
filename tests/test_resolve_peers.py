"""``pcapip resolve`` against real peers: the logs of a real nginx and a real HAProxy,
resolved with a capture taken at the same time, must name the clients that the peers
themselves saw (nginx's ``$proxy_protocol_addr``, the front HAProxy's ``%ci:%cp``).

* nginx (``listen … proxy_protocol``, no realip: ``$remote_addr`` is HAProxy's egress, IPv4 or IPv6)
  behind HAProxy ``send-proxy`` / ``send-proxy-v2``, running in Asia/Kolkata, writes
  ``$remote_addr $remote_port [$time_local] …``, nginx's predefined ``combined`` (no
  port), a JSON-lines application log, and ``$proxy_protocol_addr`` (the ground truth);
* an HAProxy origin (``option tcplog`` and ``option httplog``, America/New_York) behind
  the front HAProxy, passing the PROXY header through to nginx, writes its default logs.

Everything runs in namespaces the test makes (tests/peers.py), captured at the origin.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import peers
import pytest

pytestmark = pytest.mark.system
ROOT = Path(__file__).resolve().parents[1]
ORIGIN = peers.IPV4.origin
ACCESS = '$remote_addr $remote_port [$time_local] "$request" $status $body_bytes_sent $request_time'
TRUTH = "$remote_addr $remote_port $proxy_protocol_addr $proxy_protocol_port"
APP = ('\'{"time":"$time_iso8601","ip":"$remote_addr","port":"$remote_port",\' '
       '\'"ms":"$msec","uri":"$request_uri"}\'')
HAPROXY_TZ = "America/New_York"
NGINX_TZ = "Asia/Kolkata"


def pcapip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pcapip", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def resolved(*args: str) -> pd.DataFrame:
    r = pcapip("resolve", *args, "--format", "json")
    assert r.returncode == 0, r.stderr
    assert "unparseable" not in r.stderr, r.stderr  # every line nginx / HAProxy wrote parses
    return pd.read_json(io.StringIO(r.stdout), lines=True, dtype=False)


def _temp_paths(root: Path) -> str:
    return "\n".join(f"    {k}_temp_path {root}/tmp/{k};"
                     for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))


def start_nginx(topo: peers.Topology, listen: str, logs: dict[str, str], tz: str) -> Path:
    """nginx in the origin namespace, ``listen … proxy_protocol``, one access log per
    entry of ``logs`` (file name -> log_format text as nginx.conf has it, or ``combined``)."""
    root = topo.workdir / "nginx"
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    formats = "\n".join(f"    log_format f{i} {fmt};" for i, fmt in enumerate(logs.values())
                        if fmt != "combined")
    access = "\n".join(
        f"    access_log {root / name} {'combined' if fmt == 'combined' else f'f{i}'};"
        for i, (name, fmt) in enumerate(logs.items())
    )
    (root / "nginx.conf").write_text(f"""\
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 256; }}
http {{
{formats}
{access}
{_temp_paths(root)}
    server {{
        listen {listen} proxy_protocol;
        return 200 "ok\\n";
    }}
}}
""")
    argv = ["env", f"TZ={tz}", "nginx", "-p", str(root), "-c", str(root / "nginx.conf"),
            "-e", str(root / "error.log")]
    proc = topo.spawn("origin", argv, log=root / "console.log")
    port = int(listen.rsplit(":", 1)[1])
    peers._wait_for_listen(topo, "origin", [port], 10, proc, root / "error.log")
    return root


def wait_lines(path: Path, count: int) -> list[str]:
    peers._wait_for(lambda: path.exists() and len(path.read_text().splitlines()) >= count,
                    10, f"{count} lines in {path.name}", None, None)
    return path.read_text().splitlines()


@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
def test_nginx_logs_behind_haproxy(tmp_path: Path, family: peers.Family) -> None:
    peers.require_peers()
    pcap = tmp_path / "origin.pcap"
    logs = {"access.log": repr(ACCESS).replace('\\"', '"'), "truth.log": f"'{TRUTH}'",
            "combined.log": "combined", "app.jsonl": f"escape=json {APP}"}
    with peers.Topology(tmp_path / "work") as topo:
        origin = peers.addresses(family).origin
        root = start_nginx(topo, peers.hostport(origin, 9001), logs, NGINX_TZ)
        with topo.capture(pcap):
            front = peers.start_haproxy(topo, ["v1", "v2"], origin_family=family)
            clients = peers.drive_clients(topo, "v1", 8)  # within a second or two: ambiguous
            clients += peers.drive_clients(topo, "v2", 3, pause=1.2)  # one a second or so
            assert all(c.status == 200 for c in clients), clients
            records = front.wait_records(len(clients))
            wait_lines(root / "truth.log", len(clients))
            front.stop()
        lines = {name: (root / name).read_text() for name in logs}
    truth = {}
    for line in lines["truth.log"].splitlines():
        ra, rp, pa, pp = line.split()
        truth[(ra, int(rp))] = (pa, int(pp))
    # the front HAProxy's own log: its egress %bi:%bp carried client %ci:%cp
    front_log = {(r.egress_ip, r.egress_port): (r.client_ip, r.client_port) for r in records}
    assert truth == front_log and len(truth) == len(clients)
    for name, text in lines.items():
        (tmp_path / name).write_text(text)
    assert "+0530" in lines["access.log"]  # nginx wrote its local offset, not UTC

    # egress ip and port logged: every record gets the client nginx saw in the header
    out = resolved(str(pcap), "--log", str(tmp_path / "access.log"), "--nginx-format",
                   logs["access.log"])
    assert len(out) == len(clients)
    assert set(out["match"]) == {"exact"} and set(out["candidates"]) == {1}
    for ra, rp, ci, cp in zip(out.remote_addr, out.remote_port, out.client_ip, out.client_port,
                              strict=True):
        assert truth[(ra, int(rp))] == (ci, cp)
    assert set(out["method"]) == {"ppv1", "ppv2"}

    # nginx's predefined combined: no port; a client only where one connection was open
    comb = resolved(str(pcap), "--log", str(tmp_path / "combined.log"))
    assert len(comb) == len(clients) and "remote_user" in comb.columns
    named = comb[comb.client_ip.notna()]
    assert set(comb["match"]) <= {"by-address", "ambiguous"}
    assert (comb["match"] == "ambiguous").any()  # eight connections in a second or two
    assert (comb.loc[comb.match == "ambiguous", "candidates"] > 1).all()
    assert comb.loc[comb.match == "ambiguous", "client_ip"].isna().all()
    sent = {c.local_port: c for c in clients}
    truth_clients = set(truth.values())
    for ci, cp in zip(named.client_ip, named.client_port, strict=True):
        assert (ci, int(cp)) in truth_clients and int(cp) in sent
    # the access log again, its port dropped: never a client the port does not confirm
    no_port = resolved(str(pcap), "--log", str(tmp_path / "access.log"), "--nginx-format",
                       logs["access.log"], "--no-port")
    for ra, rp, ci, cp, m in zip(no_port.remote_addr, no_port.remote_port, no_port.client_ip,
                                 no_port.client_port, no_port.match, strict=True):
        if m == "by-address":
            assert truth[(ra, int(rp))] == (ci, int(cp))
        else:
            assert m == "ambiguous" and pd.isna(ci)

    # a JSON-lines application log (ISO 8601 with +05:30, or $msec epoch seconds)
    for time_field in ("time", "ms"):
        app = resolved(str(pcap), "--log", str(tmp_path / "app.jsonl"), "--jsonl", "--ip-field",
                       "ip", "--port-field", "port", "--time-field", time_field)
        assert set(app["match"]) == {"exact"}
        assert [truth[(ip, int(p))] for ip, p in zip(app.ip, app.port, strict=True)] == list(
            zip(app.client_ip, app.client_port, strict=True))


HAPROXY_ORIGIN = """\
global
    log stdout format raw local0
    nbthread 1
defaults
    log global
    timeout connect 3s
    timeout client 10s
    timeout server 10s
frontend fe_tcp
    mode tcp
    option tcplog
    bind {origin}:9001
    default_backend be_nginx
backend be_nginx
    mode tcp
    server nginx 127.0.0.1:9201
frontend fe_http
    mode http
    option httplog
    bind {origin}:9080
    http-request return status 200 content-type text/plain string ok
"""


def test_haproxy_default_logs_behind_haproxy(tmp_path: Path) -> None:
    """The origin is an HAProxy with HAProxy's default TCP and HTTP log formats: its
    ``%ci:%cp`` is the front proxy's egress; resolve gives the front proxy's client."""
    peers.require_peers()
    pcap = tmp_path / "origin.pcap"
    with peers.Topology(tmp_path / "work") as topo:
        root = start_nginx(topo, "127.0.0.1:9201", {"truth.log": f"'{TRUTH}'"}, "UTC")
        cfg = topo.workdir / "origin-haproxy.cfg"
        cfg.write_text(HAPROXY_ORIGIN.format(origin=ORIGIN))
        log = topo.workdir / "origin-haproxy.log"
        proc = topo.spawn("origin", ["env", f"TZ={HAPROXY_TZ}", "haproxy", "-db", "-f", str(cfg)],
                          log=log)
        peers._wait_for_listen(topo, "origin", [9001, 9080], 10, proc, log)
        with topo.capture(pcap):
            front = peers.start_haproxy(topo, ["v1", "v2", "noheader"])
            clients = []
            for name in ("v1", "v2", "noheader"):
                clients += peers.drive_clients(topo, name, 3)
            assert all(c.status == 200 for c in clients), clients
            records = front.wait_records(len(clients))
            wait_lines(log, len(clients))
            nginx_saw = wait_lines(root / "truth.log", 6)  # the v1 and v2 connections
            front.stop()
        text = log.read_text()
    (tmp_path / "haproxy.log").write_text(text)
    front_log = {(r.egress_ip, r.egress_port): r for r in records}
    args = [str(pcap), "--log", str(tmp_path / "haproxy.log"), "--haproxy"]
    out = resolved(*args, "--tz", HAPROXY_TZ)
    assert len(out) == len(clients)
    assert set(out["match"]) == {"exact"}
    http = out[out.ft == "fe_http"]
    assert len(http) == 3 and set(http["method"]) == {"none"} and http.client_ip.isna().all()
    assert set(http["r"]) == {"GET /noheader HTTP/1.0"}
    flows = pd.read_json(io.StringIO(pcapip("analyze", str(pcap), "--format", "json").stdout),
                         lines=True, dtype=False).set_index("flow")
    for _, row in out.iterrows():
        rec = front_log[(row.ci, int(row.cp))]
        assert (flows.loc[row.flow, "egress_ip"], flows.loc[row.flow, "egress_port"]) == (
            rec.egress_ip, rec.egress_port)
        if row.ft == "fe_tcp":
            assert (row.client_ip, row.client_port) == (rec.client_ip, rec.client_port)
    # and nginx behind the origin HAProxy read the same clients in the passed-on headers
    tcp = out[out.ft == "fe_tcp"]
    assert {(line.split()[2], int(line.split()[3])) for line in nginx_saw} == set(
        zip(tcp.client_ip, tcp.client_port, strict=True))
    # %t names no offset: read as UTC, five hours off, nothing is found, and the note says why
    r = pcapip("resolve", *args, "--format", "csv")
    assert r.returncode == 0
    assert "9 records: 0 exact, 0 by-address, 0 ambiguous, 9 none" in r.stderr
    assert "--tz" in r.stderr
