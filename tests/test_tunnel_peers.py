"""pcapip analyze on real kernel tunnels, against HAProxy's log and tshark.

tests/tunnel_lab.py has the Linux kernel carry HAProxy's PROXY v1/v2 connections
to nginx through a tunnel (VXLAN here; GENEVE, GRE, ERSPAN, IP-in-IP, MPLS where
the kernel has them; GENEVE, GRE and ERSPAN II/III from Open vSwitch's userspace
datapath, which needs no kernel module) in two tenants with the same inner
addresses and the same inner ports, and captures the underlay.  Ground truth is HAProxy's log (which
real client each egress connection carried, per tenant) and, as an independent
decoder of the capture, tshark.  pcapip must map every logged connection to its
client with the tenant's ``tunnel`` column, and keep the two tenants' identical
inner connections apart.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import pandas as pd
import peers
import pytest
import tunnel_lab
from flowpaths import flow_path
from peers import Header, Origin
from tools import require_tool
from tunnel_lab import TunnelKind, TunnelResult

from pcapip import analyze

pytestmark = pytest.mark.system

ROUTES = ("v1", "v2", "v2-crc-uid", "noheader")
CONNECTIONS = 3
LINUX_VXLAN_PORT = 8472


@dataclass(frozen=True)
class Case:
    """One lab run: tunnel kind, UDP port (None: the kind's default), inner family."""

    kind: str
    port: int | None = None
    family: peers.Family = 4

    @property
    def id(self) -> str:
        return f"{self.kind}{'-' + str(self.port) if self.port else ''}-inner{self.family}"

    @property
    def tk(self) -> TunnelKind:
        return tunnel_lab.KINDS[self.kind]

    @property
    def vxlan_port(self) -> int | None:
        """The port pcapip must be told about (``--vxlan-port``), None for the default."""
        return self.port if self.tk.device == "vxlan" and self.port != self.tk.port else None


CASES = [
    Case("vxlan"),
    Case("vxlan", port=LINUX_VXLAN_PORT),
    Case("vxlan6", family=6),
    *(Case(k) for k in ("geneve", "gre", "gretap", "ip6gre", "ip6gretap", "erspan2", "erspan3")),
    Case("ipip"),
    Case("sit", family=6),
    Case("ip6tnl", family=4),
    Case("ip6tnl", family=6),
    Case("mpls"),
    # Open vSwitch's userspace datapath sends what this kernel cannot
    Case("ovs-geneve"),
    Case("ovs-geneve6", family=6),
    Case("ovs-gre"),
    Case("ovs-ip6gre"),
    Case("ovs-erspan2"),
    Case("ovs-erspan3"),
    Case("ovs-ip6erspan2"),
]

#: tshark's field for a tenant's identity, per ``ip link`` device type (None: no identity)
TSHARK_IDENT = {
    "vxlan": "vxlan.vni",
    "geneve": "geneve.vni",
    "gre": "gre.key",
    "gretap": "gre.key",
    "ip6gre": "gre.key",
    "ip6gretap": "gre.key",
    "erspan": "erspan.spanid",
    "ip6erspan": "erspan.spanid",
    "mpls": "mpls.label",
}

_RUNS: dict[Case, TunnelResult | Exception] = {}


def _run_case(case: Case, tmp_path_factory: pytest.TempPathFactory) -> TunnelResult:
    """One lab run per case, shared by the tests of the case (skips where the kernel
    cannot make the tunnel, quoting ``ip``'s error)."""
    peers.require_peers("tshark")
    if case.tk.via == "ovs":  # installed by scripts/setup.sh --system: CI must have them
        for tool in tunnel_lab.OVS_TOOLS:
            require_tool(tool)
    reason = tunnel_lab.kernel_lacks(case.tk)
    if reason:
        via = "Open vSwitch" if case.tk.via == "ovs" else "this kernel"
        pytest.skip(f"{via} cannot make a {case.tk.device} tunnel: {reason}")
    if case not in _RUNS:
        d = tmp_path_factory.mktemp(case.id)
        try:
            res = tunnel_lab.run_tunnel_scenario(
                case.tk, ROUTES, d / f"{case.id}.pcap", port=case.port,
                connections=CONNECTIONS, client_family=case.family, origin_family=case.family,
            )
        except peers.PeerError as exc:  # every test of the case fails with it, run once
            _RUNS[case] = exc
            raise
        tenants = [t.to_json() for t in res.tenants]
        truth = {"kind": case.kind, "port": res.port, "tenants": tenants}
        (d / "truth.json").write_text(json.dumps(truth, indent=1))
        _RUNS[case] = res
    got = _RUNS[case]
    if isinstance(got, Exception):
        raise got
    return got


@pytest.fixture(params=CASES, ids=lambda c: c.id)
def run(request, tmp_path_factory) -> tuple[Case, TunnelResult]:
    case = request.param
    return case, _run_case(case, tmp_path_factory)


# --------------------------------------------------------------------------
# tshark: the independent decoder

TSHARK_FIELDS = [
    "ip.src", "ipv6.src", "tcp.srcport", "tcp.dstport",
    "proxy.v1.proto", "proxy.v2.cmd", "proxy.src.ipv4", "proxy.src.ipv6", "proxy.srcport",
]


@dataclass
class InnerFlow:
    """One inner connection as tshark decodes it from the underlay capture."""

    packets: int = 0
    header_src: tuple[str, int] | None = None


def _tshark(res: TunnelResult, pcap: Path, fields: list[str], *args: str) -> list[dict]:
    """tshark's ``fields`` of every TCP frame in ``pcap`` (all occurrences, comma-joined)."""
    argv = ["tshark", "-r", str(pcap), "-o", "tcp.try_heuristic_first:TRUE", *args]
    if res.kind.device == "vxlan" and res.port != tunnel_lab.KINDS["vxlan"].port:
        argv += ["-d", f"udp.port=={res.port},vxlan"]
    argv += ["-Y", "tcp", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout
    return [dict(zip(fields, line.split("\t"), strict=True)) for line in out.splitlines()]


def _tenant_capture(res: TunnelResult, ident_field: str, ident: int) -> Path:
    """The frames of one tenant, as tshark selects them by its identity field: tshark's
    TCP conversations ignore the tunnel, so identical inner connections of two tenants
    would be one conversation to it."""
    out = res.pcap.with_name(f"{res.pcap.stem}-tenant-{ident}.pcap")
    argv = ["tshark", "-r", str(res.pcap), "-F", "pcap", "-w", str(out)]
    if res.kind.device == "vxlan" and res.port != tunnel_lab.KINDS["vxlan"].port:
        argv += ["-d", f"udp.port=={res.port},vxlan"]
    subprocess.run([*argv, "-Y", f"{ident_field} == {ident}"], capture_output=True,
                   timeout=120, check=True)
    return out


def tshark_inner(res: TunnelResult, family: peers.Family) -> dict[tuple, InnerFlow]:
    """Inner connections keyed by (tenant identity, egress ip, egress port, server port),
    as tshark decodes them; asserts every TCP frame is inside the tunnel of a tenant."""
    ident_field = TSHARK_IDENT.get(res.kind.device)
    idents = {t.ident for t in res.tenants}
    fields = ["ip.src", "ipv6.src", "mpls.label", *([ident_field] if ident_field else [])]
    for row in _tshark(res, res.pcap, fields):
        ips = [a for k in ("ip.src", "ipv6.src") for a in row[k].split(",") if a]
        encapsulated = len(ips) >= 2 or (res.kind.device == "mpls" and row["mpls.label"])
        assert encapsulated, f"TCP outside the tunnel in {res.pcap}: {row}"
        if ident_field:
            assert int(row[ident_field].split(",")[-1], 0) in idents, (res.pcap, row)
    server_ports = {r.server_port for _, r in res.records}
    flows: dict[tuple, InnerFlow] = {}
    for ident in sorted(idents):
        pcap = _tenant_capture(res, ident_field, ident) if ident_field else res.pcap
        for row in _tshark(res, pcap, TSHARK_FIELDS):
            v = "ip" if family == 4 else "ipv6"
            src = row[f"{v}.src"].split(",")[-1]
            sport, dport = int(row["tcp.srcport"]), int(row["tcp.dstport"])
            if dport not in server_ports:
                continue
            flow = flows.setdefault((ident, src, sport, dport), InnerFlow())
            flow.packets += 1
            if row["proxy.v1.proto"] or row["proxy.v2.cmd"]:
                host = row["proxy.src.ipv4"] or row["proxy.src.ipv6"]
                assert flow.header_src is None, f"two PROXY headers: {src}:{sport} ({pcap})"
                flow.header_src = (host, int(row["proxy.srcport"]))
    return flows


def logged(res: TunnelResult) -> dict[tuple, tuple[str, int] | None]:
    """HAProxy's log per tenant: inner connection key -> real client (None: no header sent)."""
    out = {}
    for t, r in res.records:
        key = (t.ident, r.egress_ip, r.egress_port, r.server_port)
        assert key not in out, f"tenant {t.name} logged {key} twice"
        header = peers.route(r.route).header is not Header.NONE
        out[key] = (r.client_ip, r.client_port) if header else None
    return out


def test_lab_tunnel_carries_what_haproxy_logged(run) -> None:
    """The lab itself: the underlay holds every logged connection inside the tunnel, in
    its tenant, with the logged client in its PROXY header, as tshark reads it."""
    case, res = run
    tenants = res.tenants
    assert len(tenants) == len(case.tk.ids)
    for t in tenants:
        assert not [c.error for c in t.clients if c.error], t.clients
        assert len(t.records) == CONNECTIONS * len(ROUTES), t.records
        assert {r.client_ip for r in t.records} == {t.client_ips[case.family]}
    if len(tenants) > 1:
        # the tenants' inner connections are identical: only the tunnel separates them
        inner = [{(r.egress_ip, r.egress_port, r.server_port) for r in t.records} for t in tenants]
        assert all(s == inner[0] for s in inner)
    flows = tshark_inner(res, case.family)
    want = logged(res)
    assert {k[0] for k in flows} == {t.ident for t in tenants}
    assert set(flows) == set(want)
    for key, client in want.items():
        assert flows[key].header_src == client, key


def test_lab_each_origin_saw_its_own_tenant(run) -> None:
    """nginx behind each tunnel end parsed its own tenant's clients, none of the other's:
    the tenants share addresses, not traffic."""
    _, res = run
    checked = 0
    for t in res.tenants:
        by_egress = {
            (ip_address(o.remote_ip), o.remote_port, o.server_port): o
            for o in map(peers.parse_origin_line, t.origin_log) if o is not None
        }
        for rec in t.records:
            rt = peers.route(rec.route)
            if rt.header is Header.NONE or rt.origin is not Origin.HTTP_PP:
                continue
            o = by_egress[(ip_address(rec.egress_ip), rec.egress_port, rec.server_port)]
            got = (ip_address(o.proxy_ip), o.proxy_port)
            assert got == (ip_address(rec.client_ip), rec.client_port), (t.name, rec, o)
            checked += 1
    assert checked >= len(res.tenants) * CONNECTIONS


# --------------------------------------------------------------------------
# pcapip


def analyze_rows(pcap: Path, vxlan_port: int | None) -> list[dict]:
    argv = [sys.executable, "-m", "pcapip", "analyze", "--format", "json", "--no-progress"]
    argv += ["--vxlan-port", str(vxlan_port)] if vxlan_port else []
    proc = subprocess.run([*argv, str(pcap)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{argv} {pcap}: exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert rows, f"no rows from {pcap}"
    assert all("tunnel" in r for r in rows), f"no tunnel column in pcapip's JSON: {rows[0]}"
    return rows


_ROWS: dict[tuple[Path, int | None], list[dict]] = {}


def tcp_rows(case: Case, res: TunnelResult) -> list[dict]:
    """pcapip's TCP rows for the case's capture (one run shared by the case's tests)."""
    key = (res.pcap, case.vxlan_port)
    if key not in _ROWS:
        _ROWS[key] = analyze_rows(*key)
    return [r for r in _ROWS[key] if r["transport"] == "tcp"]


def test_analyze_maps_every_tunnelled_connection_to_its_client(run) -> None:
    """Every connection HAProxy logged, in every tenant: one row with the tenant's
    ``tunnel``, the logged egress and origin, and the logged client."""
    case, res = run
    check_rows_against_log(tcp_rows(case, res), res)


@pytest.mark.parametrize("way", ["rules", "pure"])
def test_flow_paths_map_tunnelled_connections_alike(run, way: str) -> None:
    """The per-packet rules and the pure-Python loop (the API, not the CLI) against the
    same log: the tunnel is part of the flow key on every path."""
    case, res = run
    with flow_path(way):
        a = analyze(res.pcap, vxlan_ports=(case.vxlan_port,) if case.vxlan_port else ())
    assert not a.errors
    rows = [
        {k: (None if not isinstance(v, str) and pd.isna(v) else v) for k, v in r.items()}
        for r in a.flows.to_dict("records")
        if r["transport"] == "tcp"
    ]
    check_rows_against_log(rows, res)


def check_rows_against_log(rows: list[dict], res: TunnelResult) -> None:
    assert not [r for r in rows if not r["tunnel"]], "TCP rows outside the tunnel"
    for t, rec in res.records:
        m = [
            r for r in rows
            if r["tunnel"] == t.label
            and (r["egress_ip"], r["egress_port"]) == (rec.egress_ip, rec.egress_port)
            and (r["origin_ip"], r["origin_port"]) == (rec.server_ip, rec.server_port)
        ]
        where = f"tenant {t.name} ({t.label}) egress {rec.egress_ip}:{rec.egress_port}"
        assert len(m) == 1, f"{where}: {len(m)} rows in {res.pcap}"
        row = m[0]
        header = peers.route(rec.route).header
        if header is Header.NONE:
            assert row["method"] == "none" and row["client_ip"] in (None, ""), (where, row)
            continue
        assert row["method"] == ("ppv1" if header is Header.V1 else "ppv2"), (where, row)
        assert (row["client_ip"], row["client_port"]) == (rec.client_ip, rec.client_port), where
        assert (row["proxy_ip"], row["proxy_port"]) == (rec.frontend_ip, rec.frontend_port)
        assert row["status"] == "ok", (where, row)
        if header is Header.V2_CRC_UID:
            tlvs = dict(x.split("=", 1) for x in row["tlvs"].split(";"))
            assert tlvs["crc32c"] == "ok" and tlvs["unique_id"] == rec.unique_id, (where, row)


def test_analyze_keeps_tenants_apart(run) -> None:
    """The same inner connection in two tenants is two rows, each with its own client."""
    case, res = run
    if len(res.tenants) < 2:
        pytest.skip(f"{case.tk.device} carries no tenant identity: one tenant only")
    rows = tcp_rows(case, res)
    by_inner: dict[tuple, list[dict]] = {}
    for r in rows:
        by_inner.setdefault((r["egress_ip"], r["egress_port"], r["origin_port"]), []).append(r)
    labels = sorted(t.label for t in res.tenants)
    for _, rec in res.records:
        same = by_inner.get((rec.egress_ip, rec.egress_port, rec.server_port), [])
        assert sorted(r["tunnel"] for r in same) == labels, (rec, same)
        if peers.route(rec.route).header is Header.NONE:
            continue
        clients = {r["tunnel"]: r["client_ip"] for r in same}
        assert clients == {u.label: u.client_ips[case.family] for u in res.tenants}, same


def test_analyze_agrees_with_tshark(run) -> None:
    """pcapip's tunnelled connections and clients are tshark's, no more and no fewer."""
    case, res = run
    rows = tcp_rows(case, res)
    ident_of = {t.label: t.ident for t in res.tenants}
    server_ports = {r.server_port for _, r in res.records}
    ours = {
        (ident_of.get(r["tunnel"], r["tunnel"]), r["egress_ip"], r["egress_port"], r["origin_port"]):
        (r["client_ip"], r["client_port"]) if r["client_ip"] else None
        for r in rows if r["origin_port"] in server_ports
    }
    theirs = {k: f.header_src for k, f in tshark_inner(res, case.family).items()}
    assert ours == theirs


def test_lab_left_nothing_behind(run) -> None:
    _, res = run
    assert not set(res.namespaces) & set(peers.list_namespaces())
    assert not [p for p in res.pids if peers._pid_alive(p)]
    assert not peers.processes_mentioning(str(res.workdir), str(res.pcap))



@pytest.mark.parametrize("name", ["vxlan", "ovs-geneve"])
def test_lab_is_torn_down_when_the_test_fails(name: str, tmp_path: Path) -> None:
    """Tenants, underlay, OVS daemons and whatever ran inside: gone after an exception."""
    peers.require_peers()
    reason = tunnel_lab.kernel_lacks(name)
    if reason:
        pytest.skip(reason)
    marker = tmp_path / "sleeper"
    workdir = tmp_path / "wd"
    with pytest.raises(RuntimeError, match="boom"), tunnel_lab.TunnelLab(name, workdir=workdir) as lab:
        names = lab.namespaces
        assert set(names) <= set(peers.list_namespaces())
        sleeper = [sys.executable, "-c", "import time; time.sleep(300)", str(marker)]
        proc = lab.tenants[-1].spawn("origin", sleeper, log=tmp_path / "s.log")
        time.sleep(0.1)
        assert proc.poll() is None
        raise RuntimeError("boom")
    assert proc.poll() is not None
    assert not set(names) & set(peers.list_namespaces())
    assert not peers.processes_mentioning(str(marker), str(workdir))


def test_linux_port_without_vxlan_port_opens_nothing(tmp_path_factory) -> None:
    """Without ``--vxlan-port`` the 8472 underlay stays UDP: no tunnel, no client."""
    res = _run_case(Case("vxlan", port=LINUX_VXLAN_PORT), tmp_path_factory)
    rows = analyze_rows(res.pcap, None)
    assert not [r for r in rows if r.get("tunnel") or r["client_ip"]], rows[:5]
    assert not [r for r in rows if r["transport"] == "tcp"]
