"""Decoded packets as columns: one numpy array per field, one entry per frame.

Later stages work on whole arrays (flow keys, counters, masks) and touch
individual packets in Python only where they must dissect bytes: TCP options
that may hold a TOA, the first payload bytes of a flow, UDP datagrams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# --- status bits: why a frame was not (fully) decoded. 0 means IP + TCP/UDP decoded.
ST_UNKNOWN_LINK = 1 << 0  # link type pcapip cannot decode
ST_NOT_IP = 1 << 1  # link layer decoded, payload is not IPv4/IPv6 (ARP, LLDP, ...)
ST_FRAGMENT = 1 << 2  # IP fragment (first or later); L4 not decoded
ST_TRUNCATED = 1 << 3  # captured bytes end before the headers (or payload) do: snap length
ST_NOT_TCP_UDP = 1 << 4  # IP decoded, transport is neither TCP nor UDP (ICMP, ...)
ST_BAD_HEADER = 1 << 5  # impossible header field (IHL < 5, TCP data offset < 5, ...)
ST_PAYLOAD_CUT = 1 << 6  # headers complete but payload cut by the snap length
ST_TUNNEL_DEEP = 1 << 7  # encapsulations nested deeper than MAX_TUNNEL_DEPTH (a crafted loop)
# any of these bits: the TCP/UDP header was not decoded (PAYLOAD_CUT alone still has it)
ST_NO_L4 = (
    ST_UNKNOWN_LINK | ST_NOT_IP | ST_FRAGMENT | ST_TRUNCATED | ST_NOT_TCP_UDP | ST_BAD_HEADER
    | ST_TUNNEL_DEEP
)
# names used in status counts and reports, one per bit
STATUS_NAMES: dict[int, str] = {
    ST_UNKNOWN_LINK: "unknown_link",
    ST_NOT_IP: "not_ip",
    ST_FRAGMENT: "fragment",
    ST_TRUNCATED: "truncated",
    ST_NOT_TCP_UDP: "not_tcp_udp",
    ST_BAD_HEADER: "bad_header",
    ST_PAYLOAD_CUT: "payload_cut",
    ST_TUNNEL_DEEP: "tunnel_too_deep",
}

# --- TCP option-walk bits (opt_flags), computed by the decoder for every TCP segment.
OPT_TOA_CANDIDATE = 1 << 0  # an option whose kind is in the TOA kind set
OPT_WALK_BROKEN = 1 << 1  # option length < 2 or past the header: a kernel walk aborts here
OPT_AFTER_EOL = 1 << 2  # non-zero bytes after EOL (a kernel walk never sees them)
OPT_TIMESTAMP = 1 << 3  # kind 8 present
OPT_SACK = 1 << 4  # kind 4 (SACK-permitted) or 5 (SACK blocks) present
OPT_MSS = 1 << 5  # kind 2 present

# --- TCP flag bits (tcp_flags), as on the wire (low 9 bits).
TH_FIN, TH_SYN, TH_RST, TH_PSH, TH_ACK, TH_URG, TH_ECE, TH_CWR, TH_NS = (
    1, 2, 4, 8, 16, 32, 64, 128, 256,
)


@dataclass(slots=True)
class Packets:
    """Columns of one decoded batch. Offsets are relative to the frame start.

    Addresses are 128-bit, split into ``*_hi``/``*_lo`` uint64 halves; IPv4
    addresses are stored IPv4-mapped (``::ffff:a.b.c.d``: hi == 0,
    lo == 0xFFFF_0000_0000 | addr), so one code path keys both families.
    Fields that do not apply (ports of ICMP, TCP fields of UDP) are 0.
    """

    # frame identity, copied from the FrameBatch
    frame: np.ndarray  # int64, 1-based frame number in the capture
    ts_ns: np.ndarray  # int64
    caplen: np.ndarray  # int64
    origlen: np.ndarray  # int64
    linktype: np.ndarray  # int32
    iface: np.ndarray  # int32
    frame_off: np.ndarray  # int64, start of the frame in ``data``
    data: np.ndarray  # uint8 buffer shared with the FrameBatch
    status: np.ndarray  # uint16, ST_* bits
    # network layer
    ipver: np.ndarray  # uint8: 0 (none), 4 or 6
    proto: np.ndarray  # uint8: IP protocol of the transport header (6 TCP, 17 UDP, ...)
    ttl: np.ndarray  # uint8: IPv4 TTL / IPv6 hop limit
    src_hi: np.ndarray  # uint64
    src_lo: np.ndarray  # uint64
    dst_hi: np.ndarray  # uint64
    dst_lo: np.ndarray  # uint64
    ip_off: np.ndarray  # int32, offset of the IP header in the frame (-1: none)
    # transport layer
    l4_off: np.ndarray  # int32, offset of the TCP/UDP header (-1: none)
    sport: np.ndarray  # uint16
    dport: np.ndarray  # uint16
    tcp_flags: np.ndarray  # uint16, TH_* bits
    seq: np.ndarray  # uint32
    ack: np.ndarray  # uint32
    win: np.ndarray  # uint16
    tcp_hlen: np.ndarray  # uint8, TCP header length in bytes (data offset * 4)
    opt_off: np.ndarray  # int32, offset of the TCP options in the frame
    opt_len: np.ndarray  # int32, bytes of TCP options (tcp_hlen - 20), captured or not
    opt_flags: np.ndarray  # uint8, OPT_* bits
    pay_off: np.ndarray  # int32, offset of the L4 payload in the frame
    pay_len: np.ndarray  # int32, L4 payload length per the IP/UDP length fields (wire)
    pay_cap: np.ndarray  # int32, payload bytes actually captured (<= pay_len)
    # link layer
    ethertype: np.ndarray  # uint16, network protocol after any VLAN tags (0: none or unknown)
    # encapsulation (decode/tunnels.py): the tunnel the connection was found in
    tun_kind: np.ndarray  # uint8, TUN_* of the tunnel that names the tenant (0: none)
    tun_id: np.ndarray  # uint64, its identity (VNI, GRE key, session, MPLS labels)
    tun_seen: np.ndarray  # uint16, bit 1 << TUN_* for every encapsulation opened

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def payload(self, i: int) -> bytes:
        """Captured L4 payload of row i."""
        start = int(self.frame_off[i]) + int(self.pay_off[i])
        return self.data[start : start + int(self.pay_cap[i])].tobytes()

    def options(self, i: int) -> bytes:
        """Captured TCP option bytes of row i (may be shorter than opt_len if cut)."""
        start = int(self.frame_off[i]) + int(self.opt_off[i])
        n = max(0, min(int(self.opt_len[i]), int(self.caplen[i]) - int(self.opt_off[i])))
        return self.data[start : start + n].tobytes()

    def frame_bytes(self, i: int) -> bytes:
        """All captured bytes of row i's frame."""
        start = int(self.frame_off[i])
        return self.data[start : start + int(self.caplen[i])].tobytes()
