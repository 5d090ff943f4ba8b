"""Connections inside tunnels, mapped to their clients on every flow path.

The generated captures (tests/gen/tunnel_pcaps.py, built with scapy) put known clients
inside every encapsulation pcapip opens, two tenants with the same inner connection in
each one that names a tenant; their ``.expect.json`` lists what was put in. The kernel
and Open vSwitch tunnels with HAProxy in front are in test_tunnel_peers.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flowpaths import WAYS, analysis

from pcapip.decode.tunnels import ENCAPSULATIONS

PCAPS = Path(__file__).resolve().parent / "pcaps"
CAPTURES = sorted(PCAPS.glob("tunnel-*.pcap"))


def _hp(ip: object, port: object) -> str:
    host = f"[{ip}]" if ":" in str(ip) else str(ip)
    return f"{host}:{int(port)}"  # type: ignore[call-overload]


def rows_with_clients(path: Path, way: str) -> list[tuple[str, ...]]:
    ports = (8472,) if "8472" in path.name else ()
    f = analysis([path], way, vxlan_ports=ports).flows
    f = f[f["client_ip"].notna()]
    return sorted(
        (r.tunnel, _hp(r.egress_ip, r.egress_port), _hp(r.origin_ip, r.origin_port),
         _hp(r.client_ip, r.client_port), r.method)
        for r in f.itertuples()
    )  # fmt: skip


@pytest.mark.parametrize("way", ["normal", "rules", "pure"])
@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_every_client_inside_a_tunnel_is_found(path: Path, way: str) -> None:
    want = json.loads(path.with_name(path.stem + ".expect.json").read_text())
    expect = sorted((w["tunnel"], w["egress"], w["origin"], w["client"], w["method"]) for w in want)
    assert rows_with_clients(path, way) == expect


def test_the_captures_cover_every_encapsulation_with_two_tenants() -> None:
    tunnels = [
        json.loads(p.with_name(p.stem + ".expect.json").read_text()) for p in CAPTURES
    ]
    labels = {row["tunnel"] for rows in tunnels for row in rows}
    for e in ENCAPSULATIONS:
        assert any(t.split(":")[0] == e.name for t in labels), e.name
    # a tenant pair: one inner connection (egress, origin) under two tunnels of one kind
    pairs = {}
    for rows in tunnels:
        for row in rows:
            pairs.setdefault((row["tunnel"].split(":")[0], row["egress"], row["origin"]), set()).add(
                row["tunnel"]
            )
    for name in ("vxlan", "geneve", "gre", "erspan2", "pppoe"):
        assert any(k[0] == name and len(v) > 1 for k, v in pairs.items()), name


def test_mpls_labels_do_not_split_a_connection(tmp_path: Path) -> None:
    """MPLS labels are chosen hop by hop per direction: a connection whose two directions
    carry different label stacks is one flow, shown with its first packet's labels."""
    pytest.importorskip("scapy")
    from scapy.all import IP, TCP, Ether, wrpcap
    from scapy.contrib.mpls import MPLS

    e, o = "192.0.2.10", "198.51.100.20"
    toa = [(200, b"\x13\x89\xcb\x00\x71\x07")]  # 203.0.113.7:5001
    pkts = [
        Ether() / MPLS(label=1001, s=1) / IP(src=e, dst=o) / TCP(sport=40001, dport=80, flags="S", seq=100),
        Ether() / MPLS(label=2002, s=1) / IP(src=o, dst=e) / TCP(sport=80, dport=40001, flags="SA", seq=500, ack=101),
        Ether() / MPLS(label=1001, s=1) / IP(src=e, dst=o) / TCP(sport=40001, dport=80, flags="A", seq=101, ack=501, options=toa),
    ]  # fmt: skip
    path = tmp_path / "mpls.pcap"
    wrpcap(str(path), pkts)
    for way in WAYS:
        f = analysis([path], way).flows
        assert len(f) == 1, way
        r = f.iloc[0]
        assert (r["tunnel"], r["method"], r["client_ip"]) == ("mpls:1001", "toa", "203.0.113.7")
        assert r["packets"] == 3
