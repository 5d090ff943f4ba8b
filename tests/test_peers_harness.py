"""The real-peer harness checked against tshark, nginx and HAProxy's own logs.

Tests of ``pcapip analyze``/``live`` trust ``tests/peers.py`` to say which
egress address carried which client.  These tests make sure that trust is
earned: every HAProxy log record must be visible in the capture with a PROXY
header that tshark (an independent decoder) reads as the logged client, and
nginx on the far side must have parsed the same client.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import google_crc32c
import peers
import pytest
from peers import Header, Origin, ScenarioResult
from tools import require_tool

pytestmark = pytest.mark.system

ALL_ROUTES = list(peers.ROUTES)
CONNECTIONS = 3
PP2_TYPE_CRC32C = 0x03
PP2_TYPE_UNIQUE_ID = 0x05

TSHARK_FIELDS = [
    "frame.number",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "ip.dst",
    "ipv6.dst",
    "tcp.dstport",
    "tcp.payload",
    "proxy.version",
    "proxy.v1.proto",
    "proxy.v2.cmd",
    "proxy.v2.addr_family",
    "proxy.src.ipv4",
    "proxy.src.ipv6",
    "proxy.srcport",
    "proxy.v2.length",
    "proxy.v2.tlv.type",
    "proxy.v2.tlv.value",
    "http.response.code",
]


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@dataclass
class Flow:
    """One TCP connection in the capture, keyed by the side that opened it."""

    src: tuple[object, int]
    dst_port: int
    header_frame: int | None = None
    header_payload: bytes = b""
    v1_proto: str | None = None
    v2_cmd: int | None = None
    v2_family: int | None = None
    v2_length: int | None = None
    proxy_src: tuple[object, int] | None = None
    tlvs: list[tuple[int, bytes]] = field(default_factory=list)
    http_status: int | None = None
    payload_bytes: int = 0

    @property
    def has_header(self) -> bool:
        return self.v1_proto is not None or self.v2_cmd is not None


def tshark_flows(pcap: Path, server_ports: set[int]) -> dict[tuple[object, int, int], Flow]:
    """Flows towards ``server_ports`` as tshark dissects them (PROXY by heuristic), keyed by
    (egress address, egress port, server port): HAProxy may give one egress port to
    connections towards two different servers within a recording."""
    argv = ["tshark", "-r", str(pcap), "-o", "tcp.try_heuristic_first:TRUE", "-Y", "tcp"]
    argv += ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
    for name in TSHARK_FIELDS:
        argv += ["-e", name]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    flows: dict[tuple[object, int, int], Flow] = {}
    for line in out.splitlines():
        row = dict(zip(TSHARK_FIELDS, line.split("\t"), strict=True))
        src = ip(row["ip.src"] or row["ipv6.src"]), int(row["tcp.srcport"])
        dst = ip(row["ip.dst"] or row["ipv6.dst"]), int(row["tcp.dstport"])
        if dst[1] in server_ports:
            flow = flows.setdefault((*src, dst[1]), Flow(src=src, dst_port=dst[1]))
        elif src[1] in server_ports and (*dst, src[1]) in flows:
            if row["http.response.code"]:
                flows[(*dst, src[1])].http_status = int(row["http.response.code"])
            continue
        else:
            continue
        flow.payload_bytes += len(row["tcp.payload"].replace(":", "")) // 2
        if not (row["proxy.v1.proto"] or row["proxy.v2.cmd"]):
            continue
        assert flow.header_frame is None, f"two PROXY headers in flow {src} ({pcap})"
        flow.header_frame = int(row["frame.number"])
        flow.header_payload = bytes.fromhex(row["tcp.payload"].replace(":", ""))
        flow.v1_proto = row["proxy.v1.proto"] or None
        if row["proxy.v2.cmd"]:
            flow.v2_cmd = int(row["proxy.v2.cmd"], 0)
            flow.v2_family = int(row["proxy.v2.addr_family"], 0)
            flow.v2_length = int(row["proxy.v2.length"])
        host = row["proxy.src.ipv4"] or row["proxy.src.ipv6"]
        if host:
            flow.proxy_src = ip(host), int(row["proxy.srcport"])
        if row["proxy.v2.tlv.type"]:
            types = [int(t, 0) for t in row["proxy.v2.tlv.type"].split(",")]
            values = [
                bytes.fromhex(v.replace(":", "")) for v in row["proxy.v2.tlv.value"].split(",")
            ]
            flow.tlvs = list(zip(types, values, strict=True))
    return flows


@dataclass
class Observed:
    result: ScenarioResult
    flows: dict[tuple[object, int, int], Flow]

    def flow_of(self, rec: peers.HAProxyRecord) -> Flow:
        key = ip(rec.egress_ip), rec.egress_port, rec.server_port
        assert key in self.flows, f"{rec.frontend}: egress {key} not in {self.result.pcap}"
        return self.flows[key]


@pytest.fixture(scope="module")
def can_run() -> None:
    peers.require_peers("tshark")


@pytest.fixture(
    scope="module",
    params=[(4, 4), (6, 6), (6, 4)],
    ids=["ipv4", "ipv6", "ipv6-client-ipv4-origin"],
)
def observed(request, can_run, tmp_path_factory) -> Iterator[Observed]:
    client_family, origin_family = request.param
    pcap = tmp_path_factory.mktemp("peers") / "all.pcap"
    result = peers.run_scenario(
        ALL_ROUTES,
        pcap,
        connections=CONNECTIONS,
        client_family=client_family,
        origin_family=origin_family,
    )
    yield Observed(result, tshark_flows(pcap, set(peers.ORIGIN_PORTS.values())))


def test_every_client_connection_is_logged(observed: Observed) -> None:
    res = observed.result
    assert all(c.error is None for c in res.clients), res.clients
    for name in ALL_ROUTES:
        logged = sorted(r.client_port for r in res.records_for(name))
        sent = sorted(c.local_port for c in res.clients if c.route == name)
        assert logged == sent and len(sent) == CONNECTIONS, name
    expected_client = peers.addresses(res.client_family).client
    expected_egress = peers.addresses(res.origin_family).proxy_back
    for rec in res.records:
        assert ip(rec.client_ip) == ip(expected_client)
        assert ip(rec.egress_ip) == ip(expected_egress)
        assert rec.bytes_down > 0, rec
        if not rec.route.startswith("rejected"):
            # A rejecting nginx may close while the request is still arriving.
            assert rec.termination == "--", rec


def test_logged_egress_carries_logged_client(observed: Observed) -> None:
    res = observed.result
    checked = 0
    for rec in res.records:
        rt = peers.ROUTES[rec.route]
        if rt.header is Header.NONE:
            continue
        flow = observed.flow_of(rec)
        assert flow.dst_port == rec.server_port
        assert flow.proxy_src == (ip(rec.client_ip), rec.client_port), rec
        if rt.header is Header.V1:
            assert flow.v1_proto == ("TCP4" if res.client_family == 4 else "TCP6")
            assert flow.v2_cmd is None
        else:
            assert flow.v1_proto is None
            assert flow.v2_cmd == 1  # PROXY
            assert flow.v2_family == (0x1 if res.client_family == 4 else 0x2)
        checked += 1
    with_header = [r for r in peers.ROUTES.values() if r.header is not Header.NONE]
    assert checked == CONNECTIONS * len(with_header)


def test_no_header_backend_sends_none(observed: Observed) -> None:
    recs = observed.result.records_for("noheader")
    assert len(recs) == CONNECTIONS
    for rec in recs:
        flow = observed.flow_of(rec)
        assert not flow.has_header
        assert flow.http_status == 200
    replies = [c.reply for c in observed.result.clients if c.route == "noheader"]
    # nginx saw the egress address, not the client: the reason PROXY exists.
    egress = {(ip(r.egress_ip), r.egress_port) for r in recs}
    seen = set()
    for reply in replies:
        _, host, port = reply.rsplit("\n", 2)[-2].split(" ")
        seen.add((ip(host), int(port)))
    assert seen == egress


def test_origin_without_proxy_protocol_answers_400(observed: Observed) -> None:
    for name in ("rejected", "rejected-v2"):
        recs = observed.result.records_for(name)
        assert len(recs) == CONNECTIONS
        for rec in recs:
            flow = observed.flow_of(rec)
            assert flow.has_header, name
            assert flow.http_status == 400, name
        statuses = [c.status for c in observed.result.clients if c.route == name]
        assert statuses == [400] * CONNECTIONS
    for name in ("v1", "v2", "v2-crc-uid", "noheader"):
        assert {c.status for c in observed.result.clients if c.route == name} == {200}


def test_crc32c_and_unique_id_tlvs(observed: Observed) -> None:
    recs = observed.result.records_for("v2-crc-uid")
    assert len(recs) == CONNECTIONS
    for rec in recs:
        flow = observed.flow_of(rec)
        tlvs = dict(flow.tlvs)
        assert set(tlvs) == {PP2_TYPE_CRC32C, PP2_TYPE_UNIQUE_ID}
        assert rec.unique_id and tlvs[PP2_TYPE_UNIQUE_ID] == rec.unique_id.encode()
        # Recompute the checksum independently: over the whole header with
        # the CRC value zeroed (proxy-protocol.txt, PP2_TYPE_CRC32C).
        assert flow.v2_length is not None
        header = bytearray(flow.header_payload[: 16 + flow.v2_length])
        assert len(header) == 16 + flow.v2_length
        at = header.find(bytes([PP2_TYPE_CRC32C, 0, 4]) + tlvs[PP2_TYPE_CRC32C], 16)
        assert at >= 16
        header[at + 3 : at + 7] = bytes(4)
        assert google_crc32c.value(bytes(header)) == int.from_bytes(tlvs[PP2_TYPE_CRC32C], "big")
    plain_v2 = observed.flow_of(observed.result.records_for("v2")[0])
    assert plain_v2.tlvs == []


def test_health_checks_carry_local_or_self_addressed_headers(observed: Observed) -> None:
    res = observed.result
    logged = {(ip(r.egress_ip), r.egress_port, r.server_port) for r in res.records}
    stream_port = peers.ORIGIN_PORTS[Origin.STREAM_PP]
    # A check cut short by HAProxy's stop may have sent nothing yet.
    checks = [f for key, f in observed.flows.items() if key not in logged and f.payload_bytes]
    assert checks, "no health-check connections captured"
    local = [f for f in checks if f.v2_cmd == 0]
    v1_self = [f for f in checks if f.v1_proto is not None]
    assert local and v1_self
    assert len(local) + len(v1_self) == len(checks)
    for f in checks:
        assert f.dst_port == stream_port
    for f in local:
        assert f.proxy_src is None and f.v1_proto is None
    for f in v1_self:
        # HAProxy 2.6 names the check connection itself in v1 checks.
        assert f.proxy_src == f.src and f.v2_cmd is None


def test_nginx_parsed_the_same_client(observed: Observed) -> None:
    # one egress address and port may carry connections to several origin ports at once:
    # the origin's own port is part of the key
    by_egress = {
        (ip(o.remote_ip), o.remote_port, o.server_port): o
        for o in observed.result.origin_records()
    }
    checked = 0
    for rec in observed.result.records:
        rt = peers.ROUTES[rec.route]
        if rt.origin is Origin.HTTP:
            continue
        o = by_egress[(ip(rec.egress_ip), rec.egress_port, rec.server_port)]
        assert (ip(o.proxy_ip), o.proxy_port) == (ip(rec.client_ip), rec.client_port)
        checked += 1
    assert checked > 0


def test_scenario_left_nothing_behind(observed: Observed) -> None:
    res = observed.result
    assert not set(res.namespaces) & set(peers.list_namespaces())
    assert not peers.processes_mentioning(str(res.workdir), str(res.pcap))



def test_topology_is_torn_down_when_the_test_fails(can_run, tmp_path) -> None:
    marker = tmp_path / "sleeper"
    with pytest.raises(RuntimeError, match="boom"), peers.Topology(tmp_path / "wd") as topo:
        names = list(topo.namespaces.values())
        assert set(names) <= set(peers.list_namespaces())
        sleeper = [sys.executable, "-c", "import time; time.sleep(300)", str(marker)]
        proc = topo.spawn("proxy", sleeper, log=tmp_path / "s.log")
        time.sleep(0.1)
        assert proc.poll() is None
        raise RuntimeError("boom")
    assert proc.poll() is not None
    assert not set(names) & set(peers.list_namespaces())
    assert not peers.processes_mentioning(str(marker))


def test_topology_only_reaches_its_own_namespaces(can_run, tmp_path) -> None:
    with peers.Topology(tmp_path / "wd") as topo:
        routes = topo.run("proxy", ["ip", "-o", "route", "show"]).stdout
        assert "default" not in routes
        assert "10.77.1.0/24" in routes and "10.77.2.0/24" in routes
        assert "default" not in topo.run("client", ["ip", "-o", "route", "show"]).stdout
        # The client cannot reach the origin: only the proxy joins the two links.
        probe = topo.run(
            "client",
            [sys.executable, "-c", "import socket; socket.create_connection(('10.77.2.2', 9), 1)"],
        )
        assert probe.returncode != 0
        assert "unreachable" in probe.stderr.lower()


def test_dumpcap_capture(can_run, tmp_path) -> None:
    peers.require_peers("dumpcap")
    pcap = tmp_path / "v2.pcapng"
    res = peers.run_scenario(["v2"], pcap, connections=2, capture_tool="dumpcap")
    assert pcap.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"  # pcapng section header
    flows = tshark_flows(pcap, {peers.ORIGIN_PORTS[Origin.HTTP_PP]})
    assert len(res.records) == 2
    for rec in res.records:
        flow = flows[(ip(rec.egress_ip), rec.egress_port, rec.server_port)]
        assert flow.proxy_src == (ip(rec.client_ip), rec.client_port)


PCAPS = Path(__file__).parent / "pcaps"
TRUTHS = sorted(PCAPS.glob("*.truth.json"))


def test_recorded_captures_are_present_and_small() -> None:
    assert len(TRUTHS) >= 8
    for truth_path in TRUTHS:
        pcap = PCAPS / json.loads(truth_path.read_text())["capture"]
        assert 0 < pcap.stat().st_size < 50_000, pcap


@pytest.mark.parametrize("truth_path", TRUTHS, ids=lambda p: p.name.removesuffix(".truth.json"))
def test_recorded_capture_matches_its_truth(truth_path: Path) -> None:
    require_tool("tshark")
    truth = json.loads(truth_path.read_text())
    routes = {r["name"]: r for r in truth["routes"]}
    flows = tshark_flows(PCAPS / truth["capture"], {r["origin_port"] for r in routes.values()})
    records = truth["haproxy_records"]
    assert len(records) == len(truth["clients"]) > 0
    for rec in records:
        rt = routes[rec["frontend"].removeprefix("fe_")]
        flow = flows[(ip(rec["egress_ip"]), rec["egress_port"], rt["origin_port"])]
        if rt["header"] == Header.NONE:
            assert not flow.has_header
            continue
        assert flow.proxy_src == (ip(rec["client_ip"]), rec["client_port"])
        assert (flow.v1_proto is not None) == (rt["header"] == Header.V1)
        if rt["header"] == Header.V2_CRC_UID:
            assert dict(flow.tlvs)[PP2_TYPE_UNIQUE_ID] == rec["unique_id"].encode()
