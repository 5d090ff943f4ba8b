"""pcapip analyze against real peers: HAProxy's log says which egress carried which client.

Every connection HAProxy logged (``%bi:%bp`` -> ``%ci:%cp``) must appear as a
flow whose egress is the logged egress and whose client is the logged client;
backends without a header must give ``none``; an nginx origin without
``proxy_protocol`` must raise ``origin.rejected``. The recorded captures in
tests/pcaps/ are checked the same way without needing root.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import peers
import pytest
from flowpaths import flow_path
from peers import Header, Origin

from pcapip import analyze

PCAPS = Path(__file__).resolve().parent / "pcaps"
TRUTHS = sorted(PCAPS.glob("*.truth.json"))


def _route_of(frontend: str) -> peers.Route:
    return peers.ROUTES[frontend.removeprefix("fe_")]


def _na(v):
    return None if v is None or pd.isna(v) else v


def check_against_log(pcap: Path, records: list[dict], way: str = "normal") -> None:
    with flow_path(way):
        a = analyze(pcap)
    assert not a.errors
    f = a.flows
    assert records, "no logged connection to compare with"
    for rec in records:
        route = _route_of(rec["frontend"])
        # (HAProxy may give one egress port to connections towards two servers)
        m = f[
            (f.egress_ip == rec["egress_ip"])
            & (f.egress_port == rec["egress_port"])
            & (f.origin_port == rec["server_port"])
        ]
        assert len(m) == 1, (
            f"{pcap.name}: egress {rec['egress_ip']}:{rec['egress_port']} to port "
            f"{rec['server_port']} -> {len(m)} flows"
        )
        row = m.iloc[0]
        codes = set(filter(None, str(row.findings).split(";")))
        if route.header is Header.NONE:
            assert row.method == "none" and row.status == "absent"
            assert _na(row.client_ip) is None
            continue
        assert row.method == ("ppv1" if route.header is Header.V1 else "ppv2")
        assert (row.client_ip, int(row.client_port)) == (rec["client_ip"], rec["client_port"])
        assert (row.proxy_ip, int(row.proxy_port)) == (rec["frontend_ip"], rec["frontend_port"])
        assert row.status == "ok"
        if route.header is Header.V2_CRC_UID:
            tlvs = dict(t.split("=", 1) for t in row.tlvs.split(";"))
            assert tlvs["crc32c"] == "ok"
            assert tlvs["unique_id"] == rec["unique_id"]
        if route.origin is Origin.HTTP:  # nginx without proxy_protocol
            assert "origin.rejected" in codes, codes
        else:
            assert "origin.rejected" not in codes, codes


@pytest.mark.parametrize("truth_path", TRUTHS, ids=lambda p: p.name.removesuffix(".truth.json"))
@pytest.mark.parametrize("way", ["normal", "rules"])
def test_recorded_capture_against_haproxy_log(truth_path: Path, way: str) -> None:
    truth = json.loads(truth_path.read_text())
    check_against_log(PCAPS / truth["capture"], truth["haproxy_records"], way)


def test_recorded_health_checks() -> None:
    a = analyze(PCAPS / "haproxy-health-checks.pcap")
    f = a.flows
    local = f[f.pp_command == "LOCAL"]
    assert len(local) >= 1
    assert set(local.method) == {"ppv2"} and local.client_ip.isna().all()
    assert all("proxy.local" in s.split(";") for s in local.findings)


def test_recorded_v1_health_checks_are_not_clients() -> None:
    """HAProxy's v1 checks name the check connection itself; logged connections never do."""
    truth = json.loads((PCAPS / "haproxy-health-checks.truth.json").read_text())
    logged = {(r["egress_ip"], r["egress_port"]) for r in truth["haproxy_records"]}
    f = analyze(PCAPS / "haproxy-health-checks.pcap").flows
    v1 = f[f.method == "ppv1"]
    flagged = {
        (e, int(p)) for e, p, codes in zip(v1.egress_ip, v1.egress_port, v1.findings, strict=True)
        if "proxy.self_addressed" in codes.split(";")
    }
    checks = {(e, int(p)) for e, p in zip(v1.egress_ip, v1.egress_port, strict=True)} - logged
    assert checks, "the capture holds v1 health checks"
    assert flagged == checks


@pytest.mark.system
@pytest.mark.parametrize("families", [(4, 4), (6, 4)], ids=["ipv4", "ipv6-client-ipv4-origin"])
def test_live_haproxy_through_namespaces(tmp_path: Path, families) -> None:
    peers.require_peers()
    pcap = tmp_path / "live.pcap"
    res = peers.run_scenario(
        list(peers.ROUTES),
        pcap,
        connections=2,
        client_family=families[0],
        origin_family=families[1],
    )
    records = [r.to_json() for r in res.records]
    assert len(records) == 2 * len(peers.ROUTES)
    check_against_log(pcap, records)
    # health checks: v2 checks are LOCAL headers, never reported as a client
    f = analyze(pcap).flows
    local = f[f.pp_command == "LOCAL"]
    assert len(local) >= 1 and local.client_ip.isna().all()
