"""Decoded columns against dpkt and tshark, field by field, packet by packet.

Every capture in tests/pcaps is decoded by pcapip and, independently, by
dpkt's dissectors (all frames outside tunnels: addresses, ports, flags,
seq/ack, window, header length, option bytes, payload bytes, and the reason
a frame was not decoded) and by tshark (the TCP/UDP packets pcapip fully
decoded; inside a tunnel, the innermost IP and transport layer tshark shows).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from engine_ref import capture_files, packet_rows, ref_decode
from tools import require_tool

from pcapip.decode import (
    ST_BAD_HEADER,
    ST_FRAGMENT,
    ST_NO_L4,
    ST_NOT_IP,
    ST_NOT_TCP_UDP,
    ST_PAYLOAD_CUT,
    ST_TRUNCATED,
    ST_UNKNOWN_LINK,
    Packets,
    decode,
    ips_to_str,
)
from pcapip.sources import open_capture

CAPTURES = capture_files()
IDS = [p.name for p in CAPTURES]


def decode_file(path: Path) -> list[Packets]:
    with open_capture(path) as src:
        return [decode(b) for b in src]


def rows(packets: list[Packets]):
    """(packets, index, src text, dst text) for every row of every batch."""
    for p in packets:
        src = ips_to_str(p.src_hi, p.src_lo)
        dst = ips_to_str(p.dst_hi, p.dst_lo)
        for i in range(len(p)):
            yield p, i, src[i], dst[i]


@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_every_frame_matches_dpkt(path: Path):
    checked_l4 = 0
    for p, i, src, dst in rows(decode_file(path)):
        if p.tun_seen[i]:
            continue  # dpkt opens no tunnel: tshark checks these (below)
        frame = p.frame_bytes(i)
        ref = ref_decode(frame, int(p.linktype[i]))
        st = int(p.status[i])
        where = f"{path.name} frame {p.frame[i]} status {st:#x} ref {ref.kind}"
        if st & ST_UNKNOWN_LINK:
            assert ref.kind == "unknown_link", where
            continue
        if st & ST_NOT_IP:
            assert ref.kind == "not_ip", where
            continue
        if st & ST_TRUNCATED:
            # dpkt either gives up or hands back a header shorter than it announces
            assert ref.kind != "udp", where
            if ref.kind == "tcp":
                assert len(ref.options) < ref.hlen - 20 or len(frame) < p.l4_off[i] + 20, where
            continue
        if st & ST_BAD_HEADER:
            if ref.kind == "udp":
                assert ref.ulen < 8 or ref.ulen - 8 > len(ref.payload), where
            else:
                assert ref.kind in ("error", "not_ip", "other_l4"), where
            continue
        # the IP header was decoded: addresses, TTL and protocol agree
        assert ref.ipver == p.ipver[i], where
        assert (src, dst) == (ref.src, ref.dst), where
        assert ref.ttl == p.ttl[i] and ref.proto == p.proto[i], where
        if st & ST_FRAGMENT:
            assert ref.kind == "fragment", where
            continue
        if st & ST_NOT_TCP_UDP:
            assert ref.kind == "other_l4", where
            continue
        assert st & ST_NO_L4 == 0
        assert ref.kind == ("tcp" if p.proto[i] == 6 else "udp"), where
        assert (ref.sport, ref.dport) == (p.sport[i], p.dport[i]), where
        if ref.kind == "tcp":
            assert ref.flags == p.tcp_flags[i], where
            assert (ref.seq, ref.ack, ref.win) == (p.seq[i], p.ack[i], p.win[i]), where
            assert ref.hlen == p.tcp_hlen[i] == p.opt_len[i] + 20, where
            assert ref.options == p.options(i), where
        else:
            assert ref.ulen - 8 == p.pay_len[i], where
        payload = p.payload(i)
        assert payload == ref.payload, where
        if st & ST_PAYLOAD_CUT:
            assert p.pay_cap[i] < p.pay_len[i], where
        else:
            assert p.pay_cap[i] == p.pay_len[i] == len(payload), where
        checked_l4 += 1
    if not path.name.startswith(("unknown-linktype", "tunnel-")):
        assert checked_l4 > 0


def _first(text: str) -> str:
    return text.split(",")[0] if text else ""


def _last(text: str) -> str:
    return text.split(",")[-1] if text else ""


@pytest.mark.system
@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_decoded_tcp_udp_match_tshark(path: Path):
    require_tool("tshark")
    ts_rows = packet_rows(path)
    checked = 0
    for p, i, src, dst in rows(decode_file(path)):
        st = int(p.status[i])
        if st & ST_NO_L4:
            continue
        row = ts_rows[int(p.frame[i]) - 1]
        where = f"{path.name} frame {p.frame[i]}"
        if (
            p.linktype[i] == 108
            and p.frame_bytes(i)[3] == 0
            and not row["ip.src"] + row["ipv6.src"]
        ):
            # tshark reads DLT_LOOP families in network byte order only; pcapip (like dpkt,
            # checked above) also takes a host-order family, as DLT_NULL writers produce
            continue
        # outside a tunnel the outermost layer, inside one the innermost, as tshark lists them
        pick = _last if p.tun_seen[i] else _first
        if p.ipver[i] == 4:
            assert (src, dst) == (pick(row["ip.src"]), pick(row["ip.dst"])), where
            assert int(pick(row["ip.ttl"])) == p.ttl[i], where
        else:
            assert (src, dst) == (pick(row["ipv6.src"]), pick(row["ipv6.dst"])), where
            assert int(pick(row["ipv6.hlim"])) == p.ttl[i], where
        if p.proto[i] == 6:
            assert (
                int(row["tcp.srcport"]) == p.sport[i] and int(row["tcp.dstport"]) == p.dport[i]
            ), where
            assert int(row["tcp.seq_raw"]) == p.seq[i] and int(row["tcp.ack_raw"]) == p.ack[i], (
                where
            )
            assert int(row["tcp.flags"], 16) == p.tcp_flags[i], where
            assert int(row["tcp.hdr_len"]) == p.tcp_hlen[i], where
            assert int(row["tcp.window_size_value"]) == p.win[i], where
            assert bytes.fromhex(row["tcp.options"].replace(":", "")) == p.options(i), where
            assert int(row["tcp.len"]) == p.pay_len[i], where
        else:
            assert int(pick(row["udp.srcport"])) == p.sport[i], where
            assert int(pick(row["udp.dstport"])) == p.dport[i], where
            assert int(pick(row["udp.length"])) - 8 == p.pay_len[i], where
        checked += 1
    if not path.name.startswith("unknown-linktype"):
        assert checked > 0


def test_columns_have_the_documented_dtypes():
    p = decode_file(CAPTURES[0])[0]
    expect = {
        "status": np.uint16, "ipver": np.uint8, "proto": np.uint8, "ttl": np.uint8,
        "src_hi": np.uint64, "src_lo": np.uint64, "dst_hi": np.uint64, "dst_lo": np.uint64,
        "ip_off": np.int32, "l4_off": np.int32, "sport": np.uint16, "dport": np.uint16,
        "tcp_flags": np.uint16, "seq": np.uint32, "ack": np.uint32, "win": np.uint16,
        "tcp_hlen": np.uint8, "opt_off": np.int32, "opt_len": np.int32, "opt_flags": np.uint8,
        "pay_off": np.int32, "pay_len": np.int32, "pay_cap": np.int32, "frame": np.int64,
        "ts_ns": np.int64, "caplen": np.int64, "origlen": np.int64, "linktype": np.int32,
        "iface": np.int32, "frame_off": np.int64,
    }  # fmt: skip
    for name, dtype in expect.items():
        assert getattr(p, name).dtype == dtype, name
        assert len(getattr(p, name)) == len(p)
