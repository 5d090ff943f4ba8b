"""Counting why frames were not (fully) decoded, for summaries and reports."""

from __future__ import annotations

import numpy as np

from pcapip.sources.linktypes import LT_RECORD

from .columns import (
    ST_BAD_HEADER,
    ST_FRAGMENT,
    ST_NO_L4,
    ST_NOT_IP,
    ST_NOT_TCP_UDP,
    ST_TRUNCATED,
    ST_TUNNEL_DEEP,
    ST_UNKNOWN_LINK,
    STATUS_NAMES,
    Packets,
)
from .tunnels import MAX_TUNNEL_DEPTH

# a frame with any of these bits gives no packet to a flow (a cut header may: see in_flows)
_NOT_FLOW = ST_UNKNOWN_LINK | ST_NOT_IP | ST_FRAGMENT | ST_NOT_TCP_UDP | ST_BAD_HEADER


def in_flows(p: Packets) -> np.ndarray:
    """Which frames are packets of a TCP/UDP flow: the flow stage counts them, and
    ``extract`` and ``show`` find a flow's packets among them, so both must agree. A
    transport header cut by the snap length still is one when its ports and flags were
    read (its flow then says ``capture.truncated``)."""
    st = p.status
    ok = ((st & _NOT_FLOW) == 0) & (p.l4_off >= 0) & ((p.proto == 6) | (p.proto == 17))
    return ok & ~(((st & ST_TRUNCATED) != 0) & (p.pay_off <= 0))


def status_counts(packets: Packets) -> dict[str, int]:
    """Counts per reason, so nothing is ever dropped silently.

    Keys: ``packets`` (rows), ``ok`` (status 0: IP and TCP/UDP fully
    decoded), ``tcp``/``udp`` (transport header decoded, payload possibly cut),
    one key per ST_* bit (``unknown_link``, ``not_ip``, ``fragment``,
    ``truncated``, ``not_tcp_udp``, ``bad_header``, ``payload_cut``) counting
    rows with that bit, and ``caplen_gt_origlen`` (damaged record headers
    claiming more captured bytes than were on the wire). All keys are always
    present; sum dicts of several batches with ``collections.Counter``.
    """
    st = packets.status
    l4 = (st & ST_NO_L4) == 0
    out = {
        "packets": int(st.shape[0]),
        "ok": int(np.count_nonzero(st == 0)),
        "tcp": int(np.count_nonzero(l4 & (packets.proto == 6))),
        "udp": int(np.count_nonzero(l4 & (packets.proto == 17))),
    }
    for bit, name in STATUS_NAMES.items():
        out[name] = int(np.count_nonzero(st & bit))
    out["caplen_gt_origlen"] = int(np.count_nonzero(packets.caplen > packets.origlen))
    return out


# --- why a frame gave no TCP/UDP packet, as (reason, value) pairs an operator can read
R_LINK = 0  # value: the link type
R_NOT_IP = 1  # value: the ethertype (0: a null/loop address family that is not IP)
R_IP_PROTO = 2  # value: the IP protocol
R_FRAGMENT = 3
R_TRUNCATED = 4
R_BAD_HEADER = 5
R_UDP_TUNNEL = 6  # value: the UDP destination port (decoded, but its content is a tunnel)
R_TUNNEL_DEEP = 7  # encapsulations nested deeper than the decoder opens

ETHERTYPE_NAMES: dict[int, str] = {
    0x0806: "ARP",
    0x8035: "RARP",
    0x0842: "Wake-on-LAN",
    0x22F0: "AVTP",
    0x809B: "AppleTalk",
    0x8137: "IPX",
    0x8809: "LACP/slow protocols",
    0x8847: "MPLS",
    0x8848: "MPLS multicast",
    0x8863: "PPPoE discovery",
    0x8864: "PPPoE session",
    0x888E: "802.1X (EAPOL)",
    0x8892: "PROFINET",
    0x88CC: "LLDP",
    0x88E5: "MACsec",
    0x88E7: "802.1ah (PBB)",
    0x88F7: "PTP",
    0x8902: "CFM (802.1ag)",
    0x9000: "loopback (CTP)",
}
IP_PROTO_NAMES: dict[int, str] = {
    1: "ICMP",
    2: "IGMP",
    4: "IP-in-IP",
    33: "DCCP",
    41: "IPv6-in-IP",
    47: "GRE",
    50: "ESP",
    58: "ICMPv6",
    59: "IPv6 no next header",
    88: "EIGRP",
    89: "OSPF",
    97: "EtherIP",
    103: "PIM",
    112: "VRRP",
    115: "L2TPv3",
    132: "SCTP",
    136: "UDP-Lite",
    137: "MPLS-in-IP",
}
# encapsulations the decoder does not open (or could not): the flows pcapip is asked about
# may be inside, unseen. (MPLS 0x8847 and PPPoE sessions 0x8864 are opened: what is left of
# them is not IP, e.g. PPP's LCP; IP protocols 4, 41 and 47 left are GRE versions or
# layouts the decoder does not open.)
TUNNEL_ETHERTYPES = frozenset({0x8848, 0x8863, 0x88E5, 0x88E7})
TUNNEL_IP_PROTOS = frozenset({4, 41, 47, 50, 97, 115, 137})
TUNNEL_UDP_PORTS: dict[int, str] = {
    4789: "VXLAN",
    8472: "VXLAN (Linux)",
    6081: "Geneve",
    4754: "GRE-in-UDP",
    2152: "GTP-U",
    1701: "L2TP",
}
_TUNNEL_PORT_LIST = np.array(sorted(TUNNEL_UDP_PORTS), dtype=np.uint16)


def undecoded_reasons(p: Packets, rows: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(reason, value, count, first row of p) for frames ``rows`` that gave no TCP/UDP packet.

    Each frame counts once, for the first bit that stopped it (one bit is set
    per frame, except a cut payload, which is decoded).
    """
    if rows.size == 0:
        return []
    st = p.status[rows]
    reason = np.full(rows.size, R_BAD_HEADER, dtype=np.int64)
    value = np.zeros(rows.size, dtype=np.int64)
    for bit, r in (
        (ST_BAD_HEADER, R_BAD_HEADER),
        (ST_NOT_TCP_UDP, R_IP_PROTO),
        (ST_TRUNCATED, R_TRUNCATED),
        (ST_FRAGMENT, R_FRAGMENT),
        (ST_NOT_IP, R_NOT_IP),
        (ST_UNKNOWN_LINK, R_LINK),
        (ST_TUNNEL_DEEP, R_TUNNEL_DEEP),
    ):  # last wins: the earliest layer that stopped the frame
        reason[(st & bit) != 0] = r
    value = np.where(reason == R_LINK, p.linktype[rows], value)
    value = np.where(reason == R_NOT_IP, p.ethertype[rows], value)
    value = np.where(reason == R_IP_PROTO, p.proto[rows], value)
    return _group(reason * (1 << 32) + value, rows)


def tunnel_reasons(p: Packets, rows: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(R_UDP_TUNNEL, port, count, first row of p) for UDP ``rows`` sent to a tunnel's port."""
    if rows.size == 0:
        return []
    port = p.dport[rows]
    hit = np.flatnonzero(np.isin(port, _TUNNEL_PORT_LIST))
    if hit.size == 0:
        return []
    return _group(R_UDP_TUNNEL * (1 << 32) + port[hit].astype(np.int64), rows[hit])


def _group(keys: np.ndarray, rows: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(reason, value, count, first row) per distinct key; ``rows[k]`` is key k's row."""
    uniq, first, counts = np.unique(keys, return_index=True, return_counts=True)
    return [
        (k >> 32, k & 0xFFFF_FFFF, n, f)
        for k, f, n in zip(uniq.tolist(), rows[first].tolist(), counts.tolist(), strict=True)
    ]


def reason_is_noise(reason: int, value: int) -> bool:
    """Ordinary traffic that is simply not TCP/UDP (ARP, ICMP, ...), as opposed to a blind
    spot: frames that may hide flows (unknown link types, tunnels, fragments, cut or
    broken headers)."""
    if reason == R_LINK:
        return value == LT_RECORD  # a pcapng record that holds no packet: nothing hidden
    if reason == R_NOT_IP:
        return value not in TUNNEL_ETHERTYPES
    if reason == R_IP_PROTO:
        return value not in TUNNEL_IP_PROTOS
    return False


def reason_label(reason: int, value: int) -> str:
    """Short text for a reason, e.g. ``ARP``, ``GRE tunnel (IP protocol 47)``."""
    from pcapip.sources.linktypes import linktype_name

    if reason == R_LINK:
        if value == LT_RECORD:
            return "pcapng records that hold no packet (custom blocks, journal entries)"
        return f"{linktype_name(value)} not supported"
    if reason == R_NOT_IP:
        if value == 0:
            return "not IPv4/IPv6 (address family)"
        if value < 0x0600:
            return "802.3/LLC frames (STP, CDP, ...)"
        name = ETHERTYPE_NAMES.get(value)
        if value in TUNNEL_ETHERTYPES:
            return f"{name} (ethertype 0x{value:04x}, not opened)"
        return name or f"ethertype 0x{value:04x}"
    if reason == R_IP_PROTO:
        name = IP_PROTO_NAMES.get(value)
        if value == 50:
            return "ESP (IP protocol 50, encrypted)"
        if value in TUNNEL_IP_PROTOS:
            return f"{name} tunnel (IP protocol {value}, not opened)"
        return name or f"IP protocol {value}"
    if reason == R_UDP_TUNNEL:
        name = TUNNEL_UDP_PORTS.get(value, "tunnel")
        hint = f": --vxlan-port {value} opens it" if value == 8472 else ""
        return f"{name} (UDP port {value}, not opened{hint})"
    if reason == R_TUNNEL_DEEP:
        return f"encapsulations nested deeper than {MAX_TUNNEL_DEPTH} layers, not opened"
    return {
        R_FRAGMENT: "IP fragments",
        R_TRUNCATED: "headers cut by the snap length",
        R_BAD_HEADER: "impossible header fields",
    }[reason]
